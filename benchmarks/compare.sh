#!/usr/bin/env bash
# Two builds of the gateway side by side: the echo benchmark and idle memory
# of gateway_echo from BASE_BUILD and from NEW_BUILD, alternated round by
# round in one run, with the plain websocketpp echo of NEW_BUILD as the
# transport's ceiling. For a change's cost: build the commit before it and
# the commit after it (Release, targets loadgen echo_server gateway_echo),
# then
#
#   benchmarks/compare.sh BASE_BUILD NEW_BUILD [ROUNDS]
#
# e.g. git worktree add /tmp/base HEAD~1 && cmake -S /tmp/base -B /tmp/base/build-rel
# -G Ninja -DCMAKE_BUILD_TYPE=Release -DGATEHOUSE_BUILD_TESTS=OFF -DGATEHOUSE_BUILD_EXAMPLES=OFF
# && cmake --build /tmp/base/build-rel --target loadgen echo_server gateway_echo.
#
# Per round and build: round trips per second (100 connections x 8 calls in
# flight, 64 B, DURATION seconds, default 5), the server's CPU time per round
# trip (utime+stime from /proc over the run: far less sensitive than
# throughput to a host that lends the other core to someone else), and the
# server's memory per idle session at IDLE_CONNECTIONS (default 10,000).
# The summary gives medians and the median of the per-round new/base ratios.
# Server on core 0, load generator on core 1; loopback only.
set -uo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 BASE_BUILD NEW_BUILD [ROUNDS]" >&2
    exit 2
fi
base=$1 new=$2 rounds=${3:-5}
dur=${DURATION:-5}
idle=${IDLE_CONNECTIONS:-10000}
py=/usr/bin/python3
for b in "$base" "$new"; do
    for t in loadgen echo_server gateway_echo; do
        if [ ! -x "$b/benchmarks/loadgen/$t" ]; then
            echo "compare.sh: $b/benchmarks/loadgen/$t is missing (build loadgen echo_server gateway_echo)" >&2
            exit 2
        fi
    done
done
ulimit -n 262144 2>/dev/null || ulimit -n "$(ulimit -Hn)"
scratch=$(mktemp -d)
pid=""
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$scratch"
}
trap cleanup EXIT
field() { $py -c "import json,sys; print(json.loads(sys.argv[1] or '{}').get(sys.argv[2], 0))" "$1" "$2"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# start BUILD plain|gateway: sets pid and port (empty when it did not start)
start() {
    local bin=$1/benchmarks/loadgen
    rm -f "$scratch/port"
    if [ "$2" = plain ]; then
        taskset -c 0 "$bin/echo_server" 0 >"$scratch/port" 2>"$scratch/err" &
    else
        taskset -c 0 "$bin/gateway_echo" --tokens "$idle" --token-file "$scratch/tokens" >"$scratch/port" 2>"$scratch/err" &
    fi
    pid=$!
    for _ in $(seq 600); do grep -q '^port ' "$scratch/port" 2>/dev/null && break; sleep 0.05; done
    port=$(awk '/^port /{print $2}' "$scratch/port")
}
stop() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=""
}
load() {
    local bin=$1/benchmarks/loadgen kind=$2
    shift 2
    if [ "$kind" = plain ]; then
        taskset -c 1 "$bin/loadgen" --mode raw --port "$port" --server-pid "$pid" --json "$@" || true
    else
        taskset -c 1 "$bin/loadgen" --mode protocol --endpoint /bench/echo --token-file "$scratch/tokens" \
            --port "$port" --server-pid "$pid" --json "$@" || true
    fi
}

results=$scratch/results
: >"$results"
for r in $(seq "$rounds"); do
    for v in base new plain; do
        b=$base kind=gateway
        [ "$v" = new ] && b=$new
        [ "$v" = plain ] && { b=$new; kind=plain; }
        start "$b" "$kind"
        if [ -z "$port" ]; then echo "round $r: $v did not start" >&2; cat "$scratch/err" >&2; stop; continue; fi
        c0=$(cpu_ticks "$pid")
        out=$(load "$b" "$kind" --connections 100 --inflight 8 --duration "$dur" --warmup 0)
        c1=$(cpu_ticks "$pid")
        stop
        done_=$(field "$out" completed)
        rps=$(field "$out" round_trips_per_second)
        cpu_us=$($py -c "print(($c1 - $c0) * 1e6 / $(getconf CLK_TCK) / max(1, $done_))")
        start "$b" "$kind"
        if [ -z "$port" ]; then echo "round $r: $v did not start" >&2; stop; continue; fi
        before=$(awk '/^VmRSS:/{print $2}' "/proc/$pid/status")
        out=$(load "$b" "$kind" --connections "$idle" --idle --duration 1 --warmup 0.5 --sources 16)
        stop
        kib=$($py -c "print(($(field "$out" server_rss_kib) - $before) / max(1, $(field "$out" connected)))")
        printf 'round %s %-5s echo %9.0f rt/s  cpu %6.3f us/rt  idle %6.3f KiB/conn  (load %s)\n' \
            "$r" "$v" "$rps" "$cpu_us" "$kib" "$(cut -d' ' -f1 /proc/loadavg)"
        echo "$r $v $rps $cpu_us $kib" >>"$results"
    done
done

$py - "$results" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
by = {}
for r, v, rps, cpu, kib in rows:
    by.setdefault(v, {})[int(r)] = (float(rps), float(cpu), float(kib))
med = lambda xs: statistics.median(xs) if xs else float("nan")
print()
print("| build | echo rt/s (median) | server CPU us/rt (median) | idle KiB/conn (median) |")
print("|---|---|---|---|")
for v in ("base", "new", "plain"):
    d = by.get(v, {}).values()
    print(f"| {v} | {med([x[0] for x in d]):.0f} | {med([x[1] for x in d]):.3f} | {med([x[2] for x in d]):.3f} |")
both = sorted(set(by.get("base", {})) & set(by.get("new", {})))
ratio = lambda i: med([by["new"][r][i] / by["base"][r][i] for r in both if by["base"][r][i] > 0])
print()
print(f"new/base, median of {len(both)} paired rounds: echo rt/s {ratio(0):.3f}, "
      f"CPU per round trip {ratio(1):.3f}, idle memory {ratio(2):.3f}")
plain = by.get("plain", {})
if plain and by.get("new"):
    print(f"new/plain (same rounds): idle memory "
          f"{med([by['new'][r][2] / plain[r][2] for r in both if r in plain and plain[r][2] > 0]):.3f}")
EOF
