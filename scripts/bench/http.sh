#!/usr/bin/env bash
# Load benchmark of GET /auth/session against release builds, all in one run
# so the figures compare as ratios on a shared, noisy machine:
#   1. bare axum returning 2 KB of static bytes (the ceiling),
#   2. `serve` against Redis with the L1 cache (L1 hit),
#   3. `serve` against Redis with the L1 cache off (one Redis GET a request),
#   4. `dev` mode (in-memory store, L1 hit).
# Every server listens on 127.0.0.1 and is stopped by PID at exit.
#
# Usage: scripts/bench/http.sh   (DURATION=10s CONNECTIONS=64 THREADS=2)
# Needs: wrk, redis-server, curl.

set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
duration="${DURATION:-10s}"
connections="${CONNECTIONS:-64}"
threads="${THREADS:-2}"
secret="bench-secret-0123456789abcdef0123456789abcdef"
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
    echo "error: $1 did not answer" >&2
    exit 1
}

run_wrk() {
    local label="$1" url="$2"
    echo "== $label"
    TOKENS_FILE="$workdir/tokens" wrk -t"$threads" -c"$connections" -d"$duration" --latency \
        -s scripts/bench/tokens.lua "$url" | tee "$workdir/$label.txt" | grep -E "RESULT|Requests/sec|Non-2xx"
}

cargo build --release --locked -p sessionfold-api -p sessionfold-projector --bins --example bare_static

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "wrk: -t$threads -c$connections -d$duration"

# Tokens for the 30 demo users, minted by dev mode with the shared secret.
dev_port="$(free_port)"
JWT_SECRET="$secret" RUST_LOG=warn target/release/sessionfold-api dev --listen "127.0.0.1:$dev_port" >"$workdir/dev.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$dev_port/healthz"
for n in $(seq -w 1 30); do
    curl -s "http://127.0.0.1:$dev_port/dev/token?user=user-00$n" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'
done | grep -v '^$' >"$workdir/tokens"
# user-0020 has revoked sessions (tv 2): keep only tokens that get a 200.
while read -r token; do
    code="$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://127.0.0.1:$dev_port/auth/session")"
    [[ "$code" == "200" ]] && echo "$token"
done <"$workdir/tokens" >"$workdir/tokens.ok"
mv "$workdir/tokens.ok" "$workdir/tokens"
echo "tokens: $(wc -l <"$workdir/tokens") users"

static_port="$(free_port)"
target/release/examples/bare_static "127.0.0.1:$static_port" 2>/dev/null &
pids+=($!)
wait_http "http://127.0.0.1:$static_port/auth/session"

redis_port="$(free_port)"
redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no --dir "$workdir" >/dev/null &
pids+=($!)
sleep 0.5
export REDIS_URL="redis://127.0.0.1:$redis_port"
target/release/sessionfold-projector demo >"$workdir/demo.ndjson"
RUST_LOG=warn target/release/sessionfold-projector replay "$workdir/demo.ndjson"

l1_port="$(free_port)"
JWT_SECRET="$secret" RUST_LOG=warn target/release/sessionfold-api serve --listen "127.0.0.1:$l1_port" >"$workdir/serve-l1.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$l1_port/healthz"

redis_read_port="$(free_port)"
JWT_SECRET="$secret" L1_CACHE_MAX_BYTES=0 RUST_LOG=warn target/release/sessionfold-api serve \
    --listen "127.0.0.1:$redis_read_port" >"$workdir/serve-redis.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$redis_read_port/healthz"

run_wrk bare_static "http://127.0.0.1:$static_port"
run_wrk serve_l1_hit "http://127.0.0.1:$l1_port"
run_wrk serve_redis_get "http://127.0.0.1:$redis_read_port"
run_wrk dev_l1_hit "http://127.0.0.1:$dev_port"

echo
echo "== ratios to bare_static (requests/s)"
base="$(grep -o 'rps=[0-9]*' "$workdir/bare_static.txt" | cut -d= -f2)"
for label in bare_static serve_l1_hit serve_redis_get dev_l1_hit; do
    line="$(grep RESULT "$workdir/$label.txt")"
    rps="$(grep -o 'rps=[0-9]*' <<<"$line" | cut -d= -f2)"
    python3 -c "print(f'$label: {$rps/$base:.2f}  ($line)')"
done
