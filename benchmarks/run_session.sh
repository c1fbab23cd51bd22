#!/usr/bin/env bash
# Session store benchmarks, with their baselines measured in the same run:
#   - Redis: starts a private redis-server on a free loopback port, then for
#     ROUNDS rounds (default 3; figures on a shared machine are noisy, so each
#     round measures baselines and ours back to back and the ratios are taken
#     per round) runs redis-benchmark against it, then bench_session_redis
#     (load / touch through redis_session_store, 800 in flight on one
#     connection = what -c 50 -P 16 keeps in flight) against the same server.
#     Baselines, all pipelined with -P 16 and the default 50 connections:
#       hot       redis-benchmark -t get / -t set: one 3-byte key, always in
#                 the CPU cache (the issue's goal: ours >= 0.7 of this);
#       keyspace  GET / SET over POPULATION keys of the size of a session
#                 record (GET) and of an activity stamp (SET), with TTLs: the
#                 shape of our data, the same commands as the first;
#       command   our own commands over that keyspace: MGET of a record key
#                 and an activity key (load), SET ... XX PX ... GET (touch):
#                 what Redis itself can do for our operations.
#     and, for scale, the cheapest single commands that could carry load and
#     touch at all: keyspace-GET above (one key per load) and PEXPIRE over
#     that keyspace (a touch that only slides a TTL); their ratios to the hot
#     baselines bound what any key schema could reach.
#     Besides the rates it prints the Redis server's CPU per operation for
#     every run (INFO cpu), and our client's CPU per operation.
#   - Memory: bench_session_memory (100,000 live sessions, one core) beside a
#     locked std::unordered_map baseline.
# Usage: benchmarks/run_session.sh [build-dir]   (a Release build is best)
#   ROUNDS=3 REQUESTS=1000000 benchmarks/run_session.sh build
set -euo pipefail

BUILD_DIR=${1:-build}
BENCH_DIR=$BUILD_DIR/benchmarks
ROUNDS=${ROUNDS:-3}
REQUESTS=${REQUESTS:-1000000}
POPULATION=10000  # bench_session_redis's population_size
for b in bench_session_redis bench_session_memory; do
    [[ -x $BENCH_DIR/$b ]] || { echo "missing $BENCH_DIR/$b: build the benchmarks first" >&2; exit 1; }
done
command -v redis-server >/dev/null || { echo "redis-server not installed" >&2; exit 1; }

WORK=$(mktemp -d /tmp/gatehouse-bench-XXXXXX)
REDIS_PID=
cleanup() {
    if [[ -n $REDIS_PID ]]; then kill -9 "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$PORT" --bind 127.0.0.1 --dir "$WORK" --save '' --appendonly no \
    --daemonize no --logfile "$WORK/redis.log" &
REDIS_PID=$!
for _ in $(seq 100); do redis-cli -p "$PORT" ping 2>/dev/null | grep -q PONG && break; sleep 0.05; done

redis_cpu() { redis-cli -p "$PORT" info cpu | tr -d '\r' | awk -F: '/^used_cpu_(sys|user):/{s+=$2} END{printf "%.6f", s}'; }

# bench <round> <name> <redis-benchmark arguments...>: one baseline; appends
# "round name rate redis_us_per_op" to $WORK/baselines.txt.
bench() {
    local round=$1 name=$2; shift 2
    local before after rate
    before=$(redis_cpu)
    rate=$(redis-benchmark -p "$PORT" -P 16 -n "$REQUESTS" -q "$@" | tr '\r' '\n' |
        awk '/requests per second/{for(i=1;i<=NF;i++) if($i=="requests"){print $(i-1); exit}}')
    after=$(redis_cpu)
    echo "$round $name $rate $(awk -v a="$after" -v b="$before" -v n="$REQUESTS" 'BEGIN{printf "%.3f", (a-b)*1e6/n}')" |
        tee -a "$WORK/baselines.txt"
}

# A keyspace shaped like ours: record-sized values and activity stamps, with
# TTLs, under names redis-benchmark can pick at random (-r).
RECORD=$(head -c 295 /dev/zero | tr '\0' 'r')
populate() {
    redis-benchmark -p "$PORT" -P 16 -n $((POPULATION * 20)) -r "$POPULATION" -q \
        SET 'bs:s:__rand_int__' "$RECORD" PX 86400000 >/dev/null
    redis-benchmark -p "$PORT" -P 16 -n $((POPULATION * 20)) -r "$POPULATION" -q \
        SET 'bs:a:__rand_int__' 1700000000000 PX 1800000 >/dev/null
}

echo "== redis-server on port $PORT; $ROUNDS rounds; $REQUESTS requests per baseline; columns: round, run, requests/s, Redis CPU us/op"
for round in $(seq "$ROUNDS"); do
    redis-cli -p "$PORT" flushall >/dev/null
    bench "$round" hot-SET -t set
    bench "$round" hot-GET -t get
    populate
    bench "$round" keyspace-GET -r "$POPULATION" GET 'bs:s:__rand_int__'
    bench "$round" keyspace-SET -r "$POPULATION" SET 'bs:a:__rand_int__' 1700000000001 PX 1800000
    bench "$round" command-load -r "$POPULATION" MGET 'bs:s:__rand_int__' 'bs:a:__rand_int__'
    bench "$round" command-touch -r "$POPULATION" SET 'bs:a:__rand_int__' 1700000000002 XX PX 1800000 GET
    bench "$round" keyspace-PEXPIRE -r "$POPULATION" PEXPIRE 'bs:a:__rand_int__' 1800000
    redis-cli -p "$PORT" flushall >/dev/null
    GATEHOUSE_REDIS_PORT=$PORT "$BENCH_DIR/bench_session_redis" --benchmark_filter='BM_redis_(load|touch)' \
        --benchmark_out="$WORK/redis-$round.json" --benchmark_out_format=json | grep '^BM_' | sed "s/^/$round /"
done
redis-cli -p "$PORT" flushall >/dev/null
GATEHOUSE_REDIS_PORT=$PORT "$BENCH_DIR/bench_session_redis" --benchmark_filter='BM_redis_create_revoke' \
    --benchmark_out="$WORK/redis-create.json" --benchmark_out_format=json | grep '^BM_'

/usr/bin/python3 - "$WORK" "$ROUNDS" <<'PY'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
base = {}
for line in open(work + "/baselines.txt"):
    r, name, rate, cpu = line.split()
    base[(int(r), name)] = (float(rate), float(cpu))
ours = {}
for r in range(1, rounds + 1):
    for b in json.load(open("%s/redis-%d.json" % (work, r)))["benchmarks"]:
        op = b["name"].split("/")[0].replace("BM_redis_", "")
        ops = b["items_per_second"] * b["real_time"] / {"ms": 1e3, "us": 1e6, "ns": 1e9}[b["time_unit"]]
        client = b["cpu_time"] / {"ms": 1e3, "us": 1e6, "ns": 1e9}[b["time_unit"]] * 1e6 / ops
        ours[(r, op)] = (b["items_per_second"], client, b.get("redis_us_per_op", float("nan")))
def spread(values):
    return "%.2f (%.2f-%.2f)" % (statistics.median(values), min(values), max(values))
print()
print("per round: ours / baseline (rates measured back to back)")
print("%-6s %-6s %10s | %14s | %14s | %14s | %10s %10s" % ("round", "op", "ours/s", "hot", "keyspace", "command",
      "client us", "redis us"))
ratios = {}
for op, ref in (("load", "GET"), ("touch", "SET")):
    for r in range(1, rounds + 1):
        rate, client, redis_us = ours[(r, op)]
        row = []
        for kind, name in (("hot", "hot-" + ref), ("keyspace", "keyspace-" + ref), ("command", "command-" + op)):
            brate, bcpu = base[(r, name)]
            ratios.setdefault((op, kind), []).append(rate / brate)
            row.append("%6.2f %7.0fk" % (rate / brate, brate / 1e3))
        print("%-6d %-6s %9.0fk | %s | %s | %s | %10.2f %10.2f" % (r, op, rate / 1e3, row[0], row[1], row[2],
              client, redis_us))
print()
print("Redis CPU per operation, median over rounds (us): " + ", ".join(
    "%s %.2f" % (name, statistics.median(base[(r, name)][1] for r in range(1, rounds + 1)))
    for name in ("hot-GET", "hot-SET", "keyspace-GET", "keyspace-SET", "command-load", "command-touch", "keyspace-PEXPIRE")) +
    ", ours: load %.2f, touch %.2f" % (statistics.median(ours[(r, "load")][2] for r in range(1, rounds + 1)),
                                      statistics.median(ours[(r, "touch")][2] for r in range(1, rounds + 1))))
print("Client CPU per operation, median (us): load %.2f, touch %.2f" % (
    statistics.median(ours[(r, "load")][1] for r in range(1, rounds + 1)),
    statistics.median(ours[(r, "touch")][1] for r in range(1, rounds + 1))))
print()
print("ratio ours / baseline, median (min-max) over %d rounds:" % rounds)
for op in ("load", "touch"):
    print("  %-6s hot %s   keyspace %s   command %s" % (op, spread(ratios[(op, "hot")]),
          spread(ratios[(op, "keyspace")]), spread(ratios[(op, "command")])))
print("goal (issue 4): load and touch >= 0.70 of the pipelined GET / SET rate ('hot').")
print("single-command bounds, median over rounds: keyspace GET / hot GET %.2f, keyspace PEXPIRE / hot SET %.2f" % (
    statistics.median(base[(r, "keyspace-GET")][0] / base[(r, "hot-GET")][0] for r in range(1, rounds + 1)),
    statistics.median(base[(r, "keyspace-PEXPIRE")][0] / base[(r, "hot-SET")][0] for r in range(1, rounds + 1))))
for b in json.load(open(work + "/redis-create.json"))["benchmarks"]:
    print("create+revoke: %.0f operations/s (Lua scripts; no goal)" % b["items_per_second"])
PY

echo
echo "== $BENCH_DIR/bench_session_memory (pinned to one core)"
taskset -c 0 "$BENCH_DIR/bench_session_memory" --benchmark_min_time=1 --benchmark_out="$WORK/memory.json" --benchmark_out_format=json
/usr/bin/python3 - "$WORK/memory.json" <<'PY'
import json, sys
b = {x['name']: x.get('items_per_second', 0.0) for x in json.load(open(sys.argv[1]))['benchmarks']}
base = b.get('BM_baseline_locked_map_load')
load = b.get('BM_memory_load')
if base and load:
    print("\nmemory load with 100,000 live sessions: %.0f loads/s on one core; locked unordered_map baseline %.0f/s; ratio %.2f" % (load, base, load / base))
PY
