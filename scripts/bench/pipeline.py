#!/usr/bin/env python3
"""Helper of scripts/bench/pipeline.sh: generates the events, watches Redis
while the projector catches up, and measures publish-to-visible latency.

Standard library only. Talks to the benchmark's own redis-server, broker and
API on 127.0.0.1.

Subcommands:
  generate      write users/bookings/subscriptions NDJSON files
  watch         poll Redis until every document is written and writes stop
  throughput    combine the watch result and the projector log into events/s
  lag           publish profile updates one at a time and poll GET /auth/session
"""

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import math
import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

# Events per user in the generated dataset, see `generate`.
EVENTS_PER_USER = 10
TOPIC_FILES = {
    "sessionfold.users": "users.ndjson",
    "sessionfold.bookings": "bookings.ndjson",
    "sessionfold.subscriptions": "subscriptions.ndjson",
}


# --- Redis ------------------------------------------------------------------


class Redis:
    """Minimal RESP2 client: enough for DBSIZE, INFO and SCAN."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.settimeout(None)
        self.reader = self.sock.makefile("rb")

    def command(self, *args):
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.sock.sendall(b"".join(parts))
        return self._read_reply()

    def _read_reply(self):
        line = self.reader.readline()
        if not line:
            raise ConnectionError("Redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(f"Redis error: {rest.decode()}")
        if kind == b":":
            return int(rest)
        if kind == b"$":
            length = int(rest)
            if length < 0:
                return None
            return self.reader.read(length + 2)[:-2]
        if kind == b"*":
            length = int(rest)
            if length < 0:
                return None
            return [self._read_reply() for _ in range(length)]
        raise RuntimeError(f"unexpected Redis reply: {line!r}")

    def evalsha_calls(self):
        """Return how many EVALSHA commands the server has run. Each
        projection write of one user is one EVALSHA."""
        info = self.command("INFO", "commandstats").decode()
        for line in info.splitlines():
            if line.startswith("cmdstat_evalsha:"):
                fields = dict(item.split("=", 1) for item in line.split(":", 1)[1].split(","))
                return int(fields["calls"])
        return 0

    def read_reply(self):
        """Read the next reply, such as a pub/sub message after SUBSCRIBE."""
        return self._read_reply()

    def count_keys(self, pattern):
        cursor, total = b"0", 0
        while True:
            cursor, keys = self.command("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
            total += len(keys)
            if cursor == b"0":
                return total


# --- generate ---------------------------------------------------------------


def cloud_event(event_type, source, subject, at, data):
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": source,
        "type": event_type,
        "subject": subject,
        "time": iso(at),
        "datacontenttype": "application/json",
        "data": data,
    }


def iso(moment):
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def user_id(index):
    return f"user-{index:05d}"


def generate(args):
    """Write EVENTS_PER_USER events per user: 2 user events, 5 booking
    events and 3 subscription events, each file in user order."""
    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    out = Path(args.out_dir)
    roles = ["student", "student", "student", "teacher", "shaala_owner"]
    counts = {}
    files = {topic: open(out / name, "w") for topic, name in TOPIC_FILES.items()}
    try:
        for index in range(1, args.users + 1):
            subject = user_id(index)
            created = now - timedelta(days=90)
            role = roles[index % len(roles)]
            user_data = {
                "version": 1,
                "email": f"bench{index}@example.com",
                "name": f"Bench User {index}",
                "role": role,
                "isActive": True,
                "isVerified": True,
            }
            if role == "shaala_owner":
                user_data["ownerApproved"] = True
            users = [
                cloud_event("user.created", "/services/users", subject, created, user_data),
                cloud_event(
                    "user.preferences_changed",
                    "/services/users",
                    subject,
                    created + timedelta(days=1),
                    {"version": 2, "preferences": {"theme": "dark", "language": "en"}},
                ),
            ]

            bookings = []
            for number in range(1, 5):
                starts = now + timedelta(hours=24 * number + index % 24)
                bookings.append(
                    cloud_event(
                        "booking.created",
                        "/services/bookings",
                        subject,
                        now - timedelta(days=2),
                        {
                            "version": 1,
                            "bookingId": f"bk-{index}-{number}",
                            "classId": f"cl-{number}",
                            "className": f"Class {number}",
                            "shaalaId": f"sh-{index % 50}",
                            "shaalaName": f"Shaala {index % 50}",
                            "teacherName": "A. Teacher",
                            "startsAt": iso(starts),
                            "endsAt": iso(starts + timedelta(hours=1)),
                        },
                    )
                )
            bookings.append(
                cloud_event(
                    "booking.cancelled",
                    "/services/bookings",
                    subject,
                    now - timedelta(days=1),
                    {"version": 2, "bookingId": f"bk-{index}-2", "reason": "benchmark"},
                )
            )

            subscriptions = [
                cloud_event(
                    "subscription.activated",
                    "/services/subscriptions",
                    subject,
                    now - timedelta(days=10),
                    {
                        "version": 1,
                        "subscriptionId": f"sub-{index}-1",
                        "planId": "plan-10",
                        "planName": "10-Class Pack",
                        "shaalaId": f"sh-{index % 50}",
                        "startsAt": iso(now - timedelta(days=10)),
                        "endsAt": iso(now + timedelta(days=20)),
                        "classesRemaining": 10,
                    },
                ),
                cloud_event(
                    "subscription.activated",
                    "/services/subscriptions",
                    subject,
                    now - timedelta(days=40),
                    {
                        "version": 1,
                        "subscriptionId": f"sub-{index}-2",
                        "planId": "plan-monthly",
                        "planName": "Monthly Unlimited",
                        "startsAt": iso(now - timedelta(days=40)),
                        "endsAt": iso(now + timedelta(days=5)),
                    },
                ),
                cloud_event(
                    "subscription.renewed",
                    "/services/subscriptions",
                    subject,
                    now - timedelta(days=1),
                    {
                        "version": 2,
                        "subscriptionId": f"sub-{index}-1",
                        "endsAt": iso(now + timedelta(days=50)),
                        "classesRemaining": 8,
                    },
                ),
            ]

            for topic, events in (
                ("sessionfold.users", users),
                ("sessionfold.bookings", bookings),
                ("sessionfold.subscriptions", subscriptions),
            ):
                for event in events:
                    files[topic].write(json.dumps(event, separators=(",", ":")) + "\n")
                counts[topic] = counts.get(topic, 0) + len(events)
    finally:
        for handle in files.values():
            handle.close()

    total = sum(counts.values())
    assert total == EVENTS_PER_USER * args.users, counts
    for topic, count in counts.items():
        print(f"generated {count} events for {topic}")
    print(f"generated {total} events for {args.users} users")


# --- watch ------------------------------------------------------------------


def watch(args):
    """Poll Redis from before the projector starts. Record the wall-clock
    time of the first observed write, of the poll that saw every document,
    and of the last observed write, once writes have stopped for
    --quiet-ms with every document present."""
    redis = Redis(args.redis_port)
    interval = args.poll_ms / 1000
    quiet = args.quiet_ms / 1000
    deadline = time.time() + args.timeout

    first_write = all_docs = last_write = None
    last_calls = redis.evalsha_calls()
    if last_calls or redis.command("DBSIZE"):
        sys.exit("error: the benchmark Redis is not empty before the projector starts")

    while True:
        now = time.time()
        if now > deadline:
            sys.exit(
                f"error: timed out after {args.timeout} s: first write {first_write}, "
                f"keys {redis.command('DBSIZE')} of {2 * args.users}"
            )
        calls = redis.evalsha_calls()
        if calls != last_calls:
            last_calls = calls
            last_write = now
            if first_write is None:
                first_write = now
        # Each user has two keys: the document and the fold state.
        if all_docs is None and first_write is not None and redis.command("DBSIZE") >= 2 * args.users:
            all_docs = now
        if all_docs is not None and now - last_write >= quiet:
            break
        time.sleep(interval)

    result = {
        "first_write": first_write,
        "all_docs": all_docs,
        "last_write": last_write,
        "documents": redis.count_keys("sf:v1:*:doc"),
        "evalsha_calls": last_calls,
        "poll_ms": args.poll_ms,
        "quiet_ms": args.quiet_ms,
    }
    Path(args.out).write_text(json.dumps(result))


# --- throughput -------------------------------------------------------------


def log_events(path):
    """Yield (wall-clock seconds, message, fields) of each JSON log line."""
    for line in Path(path).read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        fields = entry.get("fields", {})
        stamp = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00")).timestamp()
        yield stamp, fields.get("message", ""), fields


def first_assignment(path):
    for stamp, message, _fields in log_events(path):
        if message == "partitions assigned":
            return stamp
    return None


def throughput(args):
    watched = json.loads(Path(args.watch).read_text())
    assigned = first_assignment(args.log)
    if assigned is None:
        sys.exit(f"error: no 'partitions assigned' line in {args.log}")
    if watched["documents"] != args.users:
        sys.exit(f"error: {watched['documents']} documents in Redis, expected {args.users}")

    events = args.events
    join = assigned - args.spawned
    fold = watched["last_write"] - watched["first_write"]
    from_assignment = watched["last_write"] - assigned
    result = {
        "events": events,
        "users": args.users,
        "group_join_s": join,
        "assigned_to_first_write_s": watched["first_write"] - assigned,
        "first_to_last_write_s": fold,
        "first_write_to_all_docs_s": watched["all_docs"] - watched["first_write"],
        "events_per_s": events / fold,
        "events_per_s_from_assignment": events / from_assignment,
        "spawn_to_last_write_s": watched["last_write"] - args.spawned,
        "evalsha_calls": watched["evalsha_calls"],
        "poll_ms": watched["poll_ms"],
    }
    Path(args.out).write_text(json.dumps(result))
    print(f"group join (spawn to 'partitions assigned'): {join:.2f} s")
    print(f"assignment to first write: {result['assigned_to_first_write_s']:.3f} s")
    print(f"first to last write: {fold:.2f} s ({events} events, {args.users} users)")
    print(f"first write to all {args.users} documents present: {result['first_write_to_all_docs_s']:.2f} s")
    print(f"RESULT projector events_per_s={result['events_per_s']:.0f} "
          f"from_assignment={result['events_per_s_from_assignment']:.0f} "
          f"redis_writes={watched['evalsha_calls']}")


# --- lag --------------------------------------------------------------------


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint_hs256(secret, subject, lifetime_s=3600):
    """Sign an HS256 token with the claims of the dev-mode minter."""
    now = int(time.time())
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64url(json.dumps({"sub": subject, "iat": now, "exp": now + lifetime_s, "tv": 0}).encode())
    signing_input = f"{header}.{claims}".encode()
    signature = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{claims}.{b64url(signature)}"


def user_versions(path):
    """Return the highest user version per subject in a users NDJSON file."""
    versions = {}
    with open(path) as handle:
        for line in handle:
            event = json.loads(line)
            subject = event["subject"]
            versions[subject] = max(versions.get(subject, 0), event["data"]["version"])
    return versions


class SessionClient:
    def __init__(self, port):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def user_name(self, token):
        self.connection.request("GET", "/auth/session", headers={"Authorization": f"Bearer {token}"})
        response = self.connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET /auth/session returned {response.status}: {body[:300]!r}")
        return json.loads(body)["user"]["name"]


class InvalidationListener:
    """Recorder of when the projector's write of each user reaches Redis,
    from the user ids it publishes on the invalidation channel."""

    CHANNEL = "sf:v1:invalidate"

    def __init__(self, port):
        self.redis = Redis(port)
        self.redis.command("SUBSCRIBE", self.CHANNEL)
        self.lock = threading.Lock()
        self.received = {}
        thread = threading.Thread(target=self._listen, daemon=True)
        thread.start()

    def _listen(self):
        while True:
            kind, _channel, payload = self.redis.read_reply()
            if kind == b"message":
                with self.lock:
                    self.received[payload.decode()] = time.perf_counter()

    def forget(self, subject):
        with self.lock:
            self.received.pop(subject, None)

    def received_at(self, subject):
        with self.lock:
            return self.received.get(subject)


def percentile(sorted_values, percent):
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(percent / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def lag(args):
    """Publish `user.profile_updated` events one at a time through one
    long-running `sessionfold-projector publish -` and poll
    GET /auth/session until the new name shows. The clock starts just before
    the line is written to the publisher's stdin. A random pause between
    probes keeps them from locking onto the phase of a periodic wait in the
    broker, the consumer or the projector's batching."""
    versions = user_versions(args.users_file)
    subjects = sorted(versions)
    total = args.warmup + args.count
    # Spread the probes over the users; distinct users while total <= users.
    stride = max(1, len(subjects) // total)

    publisher_log = open(args.publisher_log, "w")
    publisher = subprocess.Popen(
        [args.projector, "publish", "--topic", "sessionfold.users", "-"],
        stdin=subprocess.PIPE,
        stdout=publisher_log,
        stderr=subprocess.STDOUT,
    )
    client = SessionClient(args.api_port)
    listener = InvalidationListener(args.redis_port)
    pauses = random.Random(args.seed)
    interval = args.poll_ms / 1000
    latencies_ms, store_ms, polls = [], [], []
    try:
        for probe in range(total):
            subject = subjects[(probe * stride) % len(subjects)]
            versions[subject] += 1
            token = mint_hs256(args.secret, subject)
            expected = f"Lag Probe {probe:05d}"
            # Load the old document, so the API serves it from L1 until the
            # invalidation (or the L1 TTL) removes it.
            if client.user_name(token) == expected:
                raise RuntimeError(f"{subject} already shows {expected!r} before the publish")

            event = cloud_event(
                "user.profile_updated",
                "/services/users",
                subject,
                datetime.now(timezone.utc),
                {"version": versions[subject], "name": expected},
            )
            line = (json.dumps(event, separators=(",", ":")) + "\n").encode()
            time.sleep(pauses.uniform(0, args.max_pause_ms / 1000))
            listener.forget(subject)
            started = time.perf_counter()
            publisher.stdin.write(line)
            publisher.stdin.flush()

            count = 0
            while True:
                count += 1
                if client.user_name(token) == expected:
                    elapsed = time.perf_counter() - started
                    break
                if time.perf_counter() - started > args.timeout:
                    raise RuntimeError(
                        f"probe {probe} ({subject}) not visible after {args.timeout} s; "
                        f"publisher exit status {publisher.poll()}"
                    )
                time.sleep(interval)
            written = listener.received_at(subject)
            if probe >= args.warmup:
                latencies_ms.append(elapsed * 1000)
                polls.append(count)
                if written is not None:
                    store_ms.append((written - started) * 1000)
    finally:
        publisher.stdin.close()
        try:
            publisher.wait(timeout=30)
        except subprocess.TimeoutExpired:
            publisher.kill()
            publisher.wait()
        publisher_log.close()
    if publisher.returncode != 0:
        sys.exit(f"error: publish exited with status {publisher.returncode}; see {args.publisher_log}")

    ordered = sorted(latencies_ms)
    to_store = sorted(store_ms)
    result = {
        "count": len(ordered),
        "warmup": args.warmup,
        "p50_ms": percentile(ordered, 50),
        "p90_ms": percentile(ordered, 90),
        "p99_ms": percentile(ordered, 99),
        "max_ms": ordered[-1],
        "min_ms": ordered[0],
        "mean_ms": sum(ordered) / len(ordered),
        "mean_polls": sum(polls) / len(polls),
        "at_or_over_l1_ttl": sum(1 for value in ordered if value >= args.l1_ttl_ms),
        "poll_ms": args.poll_ms,
        "to_redis_count": len(to_store),
        "to_redis_p50_ms": percentile(to_store, 50) if to_store else None,
        "to_redis_p99_ms": percentile(to_store, 99) if to_store else None,
        "to_redis_max_ms": to_store[-1] if to_store else None,
    }
    Path(args.out).write_text(json.dumps(result))
    print(f"probes: {result['count']} measured after {args.warmup} warm-up, "
          f"{result['mean_polls']:.1f} GETs each on average, {args.poll_ms} ms between GETs")
    print(f"probes at or over the L1 TTL ({args.l1_ttl_ms} ms): {result['at_or_over_l1_ttl']}")
    print(f"RESULT lag p50_ms={result['p50_ms']:.1f} p90_ms={result['p90_ms']:.1f} "
          f"p99_ms={result['p99_ms']:.1f} max_ms={result['max_ms']:.1f} "
          f"min_ms={result['min_ms']:.1f} mean_ms={result['mean_ms']:.1f}")
    if to_store:
        print(f"RESULT lag_to_redis p50_ms={result['to_redis_p50_ms']:.1f} "
              f"p99_ms={result['to_redis_p99_ms']:.1f} max_ms={result['to_redis_max_ms']:.1f} "
              f"(invalidation message seen for {len(to_store)} of {len(ordered)} probes)")


# --- main -------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    command = commands.add_parser("generate", help="write the NDJSON event files")
    command.add_argument("--users", type=int, required=True)
    command.add_argument("--out-dir", required=True)
    command.set_defaults(run=generate)

    command = commands.add_parser("watch", help="poll Redis while the projector catches up")
    command.add_argument("--redis-port", type=int, required=True)
    command.add_argument("--users", type=int, required=True)
    command.add_argument("--poll-ms", type=float, default=10, help="milliseconds between polls")
    command.add_argument("--quiet-ms", type=float, default=2000,
                         help="milliseconds without a write, after every document is present, that end the run")
    command.add_argument("--timeout", type=float, default=300, help="seconds before giving up")
    command.add_argument("--out", required=True)
    command.set_defaults(run=watch)

    command = commands.add_parser("throughput", help="compute events/s from the watch result")
    command.add_argument("--watch", required=True, help="JSON written by `watch`")
    command.add_argument("--log", required=True, help="projector log with LOG_FORMAT=json")
    command.add_argument("--spawned", type=float, required=True, help="Unix time the projector was started")
    command.add_argument("--events", type=int, required=True)
    command.add_argument("--users", type=int, required=True)
    command.add_argument("--out", required=True)
    command.set_defaults(run=throughput)

    command = commands.add_parser("lag", help="measure publish-to-visible latency")
    command.add_argument("--projector", required=True, help="path of the sessionfold-projector binary")
    command.add_argument("--users-file", required=True, help="users NDJSON from `generate`")
    command.add_argument("--api-port", type=int, required=True)
    command.add_argument("--redis-port", type=int, required=True, help="Redis whose invalidation channel is watched")
    command.add_argument("--secret", required=True, help="JWT_SECRET of the API")
    command.add_argument("--count", type=int, default=200, help="measured probes")
    command.add_argument("--warmup", type=int, default=5, help="probes sent first and not measured")
    command.add_argument("--poll-ms", type=float, default=1, help="milliseconds between GETs")
    command.add_argument("--timeout", type=float, default=10, help="seconds one probe may take")
    command.add_argument("--max-pause-ms", type=float, default=500,
                         help="maximum random pause before each publish, in milliseconds")
    command.add_argument("--seed", type=int, default=1, help="seed of the random pauses")
    command.add_argument("--l1-ttl-ms", type=float, default=1000, help="L1_CACHE_TTL_MS of the API")
    command.add_argument("--publisher-log", required=True)
    command.add_argument("--out", required=True)
    command.set_defaults(run=lag)

    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
