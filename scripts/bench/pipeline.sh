#!/usr/bin/env bash
# Benchmark of the Kafka-to-Redis pipeline against release builds, on
# loopback only, with its own redis-server and Tansu broker on free ports:
#   1. projector throughput: USERS x 10 events are published first, then a
#      fresh `sessionfold-projector run` consumes them. Events/s counts from
#      the first Redis write to the last one, so the consumer group join
#      (about half of KAFKA_SESSION_TIMEOUT_MS on Tansu 0.6) is excluded.
#   2. projection lag: with the projector and `serve` running, LAG_EVENTS
#      `user.profile_updated` events are published one at a time, after a
#      random pause of up to 500 ms, and GET /auth/session is polled until
#      each new name shows. The Redis invalidation message of each write
#      splits the lag into publish-to-Redis and Redis-to-HTTP.
# Every process is started here and stopped by PID at exit.
#
# Usage: scripts/bench/pipeline.sh   (USERS=5000 LAG_EVENTS=200 PARTITIONS=3)
# Needs: redis-server, redis-cli, python3, curl, .tools/bin/tansu (scripts/install-tansu.sh).

set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
users="${USERS:-5000}"
lag_events="${LAG_EVENTS:-200}"
partitions="${PARTITIONS:-3}"
# Tansu 0.6 completes a group join after about half the session timeout.
session_timeout_ms="${KAFKA_SESSION_TIMEOUT_MS:-6000}"
l1_ttl_ms="${L1_CACHE_TTL_MS:-1000}"
secret="bench-secret-0123456789abcdef0123456789abcdef"
tansu="${SESSIONFOLD_TANSU_BIN:-$root/.tools/bin/tansu}"
projector="$root/target/release/sessionfold-projector"
api="$root/target/release/sessionfold-api"
helper="$root/scripts/bench/pipeline.py"
topics="sessionfold.users,sessionfold.bookings,sessionfold.subscriptions"
workdir="$(mktemp -d)"
pids=()

cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$workdir"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_http() {
    for _ in $(seq 1 100); do
        curl -s -o /dev/null "$1" && return 0
        sleep 0.1
    done
    echo "error: $1 did not respond within 10 s" >&2
    exit 1
}

# Waits up to $2 seconds for a JSON log line whose message is $3 in file $1.
wait_log() {
    local file="$1" seconds="$2" message="$3"
    for _ in $(seq 1 $((seconds * 10))); do
        grep -q "\"message\":\"$message\"" "$file" && return 0
        sleep 0.1
    done
    echo "error: no '$message' in $file within $seconds s; its tail:" >&2
    tail -n 20 "$file" >&2
    exit 1
}

# Removes PID $1 from the cleanup list once its process has exited, so a
# reused PID is never signalled.
forget_pid() {
    local kept=() pid
    for pid in "${pids[@]}"; do [[ "$pid" != "$1" ]] && kept+=("$pid"); done
    pids=("${kept[@]}")
}

# Sends SIGTERM to the projector $1 and waits up to 30 s for it to exit.
stop_projector() {
    local pid="$1" state
    kill -TERM "$pid"
    for _ in $(seq 1 300); do
        # An exited child stays a zombie until `wait`, and `kill -0` still
        # finds it, so check the process state instead.
        state="$(ps -o stat= -p "$pid" 2>/dev/null || true)"
        if [[ -z "$state" || "$state" == Z* ]]; then
            wait "$pid" || true
            forget_pid "$pid"
            return 0
        fi
        sleep 0.1
    done
    echo "error: projector $pid did not stop within 30 s" >&2
    exit 1
}

# Prints the `applied` total from the "projector stopped" line of log $1.
applied_events() {
    grep '"message":"projector stopped"' "$1" | grep -o 'applied: [0-9]*' | cut -d' ' -f2
}

if [[ ! -x "$tansu" ]]; then
    echo "error: tansu not found at $tansu; run scripts/install-tansu.sh or set SESSIONFOLD_TANSU_BIN" >&2
    exit 1
fi

cargo build --release --locked -p sessionfold-api -p sessionfold-projector --bins

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "broker: $("$tansu" --version), memory storage; $(redis-server --version | cut -d' ' -f1-3)"
echo "users: $users, events: $((users * 10)), partitions per topic: $partitions," \
    "KAFKA_SESSION_TIMEOUT_MS=$session_timeout_ms, L1_CACHE_TTL_MS=$l1_ttl_ms," \
    "PROJECTOR_BATCH_SIZE=${PROJECTOR_BATCH_SIZE:-500}, PROJECTOR_BATCH_WAIT_MS=${PROJECTOR_BATCH_WAIT_MS:-50}"

redis_port="$(free_port)"
redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no --dir "$workdir" >"$workdir/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
    sleep 0.1
done
redis-cli -p "$redis_port" ping >/dev/null

broker_port="$(free_port)"
broker_url="tcp://127.0.0.1:$broker_port"
"$tansu" broker --listener-url "$broker_url" --advertised-listener-url "$broker_url" \
    --storage-engine memory://tansu/ >"$workdir/tansu.log" 2>&1 &
pids+=($!)
created=""
for _ in $(seq 1 100); do
    if "$tansu" topic create --broker "$broker_url" --partitions "$partitions" sessionfold.users >/dev/null 2>&1; then
        created=yes
        break
    fi
    sleep 0.1
done
if [[ -z "$created" ]]; then
    echo "error: could not create topics on the broker at $broker_url within 10 s; its log:" >&2
    tail -n 20 "$workdir/tansu.log" >&2
    exit 1
fi
"$tansu" topic create --broker "$broker_url" --partitions "$partitions" sessionfold.bookings >/dev/null
"$tansu" topic create --broker "$broker_url" --partitions "$partitions" sessionfold.subscriptions >/dev/null
"$tansu" topic create --broker "$broker_url" --partitions 1 sessionfold.dead-letter >/dev/null

export KAFKA_BROKERS="127.0.0.1:$broker_port"
export KAFKA_TOPICS="$topics"
export KAFKA_GROUP_ID="pipeline-bench-$(date +%s)"
export KAFKA_SESSION_TIMEOUT_MS="$session_timeout_ms"
export REDIS_URL="redis://127.0.0.1:$redis_port"

echo
echo "== publish"
python3 "$helper" generate --users "$users" --out-dir "$workdir"
publish_start="$(date +%s.%N)"
for topic in ${topics//,/ }; do
    RUST_LOG=warn "$projector" publish --topic "$topic" "$workdir/${topic#sessionfold.}.ndjson"
done
publish_end="$(date +%s.%N)"
python3 -c "print(f'publish: {$users * 10} events in {$publish_end - $publish_start:.2f} s, \
{$users * 10 / ($publish_end - $publish_start):.0f} events/s (3 sequential publish commands)')"

echo
echo "== projector throughput"
python3 "$helper" watch --redis-port "$redis_port" --users "$users" --out "$workdir/watch.json" &
watch_pid=$!
pids+=("$watch_pid")
sleep 0.3
spawned="$(date +%s.%N)"
LOG_FORMAT=json RUST_LOG=info "$projector" run >"$workdir/projector-1.log" 2>&1 &
projector_pid=$!
pids+=("$projector_pid")
wait "$watch_pid"
forget_pid "$watch_pid"
python3 "$helper" throughput --watch "$workdir/watch.json" --log "$workdir/projector-1.log" \
    --spawned "$spawned" --events "$((users * 10))" --users "$users" --out "$workdir/throughput.json" \
    | tee "$workdir/throughput.txt"
stop_projector "$projector_pid"
applied="$(applied_events "$workdir/projector-1.log")"
echo "projector 1 stopped: applied $applied of $((users * 10)) events"
if [[ "$applied" != "$((users * 10))" ]]; then
    echo "error: the projector applied $applied events, expected $((users * 10)); see its log:" >&2
    tail -n 20 "$workdir/projector-1.log" >&2
    exit 1
fi

echo
echo "== projection lag"
api_port="$(free_port)"
JWT_SECRET="$secret" L1_CACHE_TTL_MS="$l1_ttl_ms" RUST_LOG=warn "$api" serve --listen "127.0.0.1:$api_port" \
    >"$workdir/serve.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$api_port/healthz"
# The same group resumes from the offsets projector 1 committed.
LOG_FORMAT=json RUST_LOG=info "$projector" run >"$workdir/projector-2.log" 2>&1 &
projector_pid=$!
pids+=("$projector_pid")
wait_log "$workdir/projector-2.log" 60 "partitions assigned"
python3 "$helper" lag --projector "$projector" --users-file "$workdir/users.ndjson" \
    --api-port "$api_port" --redis-port "$redis_port" --secret "$secret" --count "$lag_events" --l1-ttl-ms "$l1_ttl_ms" \
    --publisher-log "$workdir/publish-lag.log" --out "$workdir/lag.json" | tee "$workdir/lag.txt"
stop_projector "$projector_pid"
echo "projector 2 stopped: applied $(applied_events "$workdir/projector-2.log") events"

echo
echo "== summary"
grep RESULT "$workdir/throughput.txt" "$workdir/lag.txt" | cut -d: -f2-
