#!/usr/bin/env bash
# End-to-end benchmark matrix: the gateway's echo endpoint against a plain
# websocketpp echo server with the same transport settings (the ceiling of
# this transport), both driven by benchmarks/loadgen in the same run, server
# and load generator pinned to different cores. Prints one table of ratios.
#
#   benchmarks/run.sh                  the full matrix (several minutes)
#   QUICK=1 benchmarks/run.sh          a small smoke run (CI): figures mean little
#   BUILD_DIR=build-rel benchmarks/run.sh
#
# Every figure is measured in this run; nothing is compared with numbers from
# elsewhere. Loopback only; every run is bounded in time and count.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

build=${BUILD_DIR:-build-bench}
if [ ! -x "$build/benchmarks/loadgen/loadgen" ] || [ "${REBUILD:-1}" = 1 ]; then
    cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGATEHOUSE_BUILD_TESTS=OFF \
        -DGATEHOUSE_BUILD_EXAMPLES=OFF >/dev/null
    cmake --build "$build" --parallel "$(nproc)" --target loadgen echo_server gateway_echo >/dev/null
fi
bin="$build/benchmarks/loadgen"
py=/usr/bin/python3

if [ "${QUICK:-0}" = 1 ]; then
    echo_conns=20; echo_inflight=4; dur=1; warm=0.5
    rate=2000; rate_conns=100
    idle_conns=500; upgrade_conns=500
    soak_conns=0
else
    echo_conns=100; echo_inflight=8; dur=${DURATION:-10}; warm=2
    rate=20000; rate_conns=1000
    idle_conns=10000; upgrade_conns=5000
    soak_conns=${SOAK_CONNECTIONS:-50000}; soak_seconds=${SOAK_SECONDS:-60}
fi

ulimit -n 262144 2>/dev/null || ulimit -n "$(ulimit -Hn)"
server_cpu=0
loadgen_cpu=$(( $(nproc) > 1 ? 1 : 0 ))
scratch=$(mktemp -d)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$scratch"
}
trap cleanup EXIT

# start_server plain|gateway [tokens]: sets server_pid and port
start_server() {
    local kind=$1 tokens=${2:-100}
    if [ "$kind" = plain ]; then
        taskset -c $server_cpu "$bin/echo_server" 0 >"$scratch/port" 2>"$scratch/server.err" &
    else
        taskset -c $server_cpu "$bin/gateway_echo" --tokens "$tokens" --token-file "$scratch/tokens" \
            >"$scratch/port" 2>"$scratch/server.err" &
    fi
    server_pid=$!
    for _ in $(seq 200); do
        if grep -q '^port ' "$scratch/port" 2>/dev/null; then break; fi
        sleep 0.05
    done
    port=$(awk '/^port /{print $2}' "$scratch/port")
    if [ -z "$port" ]; then echo "run.sh: $kind server did not start:" >&2; cat "$scratch/server.err" >&2; exit 1; fi
}

stop_server() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}

rss_kib() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }

# load plain|gateway args...: one loadgen run against the current server, JSON
# on stdout ({} when the load generator failed; its message is on stderr). A
# run with errors still reports its figures: the table shows the errors.
load() {
    local kind=$1 out
    shift
    if [ "$kind" = plain ]; then
        out=$(taskset -c $loadgen_cpu "$bin/loadgen" --mode raw --port "$port" --server-pid "$server_pid" --json "$@") || true
    else
        out=$(taskset -c $loadgen_cpu "$bin/loadgen" --mode protocol --endpoint /bench/echo \
            --token-file "$scratch/tokens" --port "$port" --server-pid "$server_pid" --json "$@") || true
    fi
    if [ -n "$out" ]; then echo "$out"; else echo '{}'; fi
}

field() { $py -c "import json,sys; print(json.loads(sys.argv[1] or '{}').get(sys.argv[2], 0))" "$1" "$2"; }

declare -A result
for kind in plain gateway; do
    start_server "$kind" "$(( soak_conns > idle_conns ? soak_conns : idle_conns ))"
    r=$(load "$kind" --connections $echo_conns --inflight $echo_inflight --duration "$dur" --warmup "$warm")
    result[$kind.echo]=$(field "$r" round_trips_per_second)
    result[$kind.echo_errors]=$(( $(field "$r" errors) + $(field "$r" dropped_connections) + $(field "$r" failed_connections) ))
    r=$(load "$kind" --connections $rate_conns --rate $rate --duration "$dur" --warmup "$warm")
    result[$kind.p99]=$(field "$r" p99_us)
    result[$kind.rate_rps]=$(field "$r" round_trips_per_second)
    stop_server

    start_server "$kind" "$(( soak_conns > idle_conns ? soak_conns : idle_conns ))"
    before=$(rss_kib "$server_pid")
    r=$(load "$kind" --connections $idle_conns --idle --duration 1 --warmup 0.5 --sources 16)
    result[$kind.idle_kib]=$($py -c "print(($(field "$r" server_rss_kib) - $before) / max(1, $(field "$r" connected)))")
    result[$kind.idle_connected]=$(field "$r" connected)
    stop_server

    start_server "$kind" "$upgrade_conns"
    r=$(load "$kind" --connections $upgrade_conns --idle --duration 0.5 --warmup 0 --sources 16)
    result[$kind.upgrades]=$(field "$r" upgrades_per_second)
    stop_server
done

soak="skipped (QUICK)"
if [ "$soak_conns" -gt 0 ]; then
    # One process may hold only `ulimit -n` sockets (20,000 here, a hard
    # limit that needs CAP_SYS_RESOURCE to raise): the sessions are split over
    # as many gateway processes (each with its own load generator) as that
    # takes. Every session still calls once a second for the whole run.
    per_process=$(( $(ulimit -n) - 2000 ))
    parts=$(( (soak_conns + per_process - 1) / per_process ))
    share=$(( (soak_conns + parts - 1) / parts ))
    soak_pids=()
    for i in $(seq "$parts"); do
        "$bin/gateway_echo" --tokens "$share" --token-file "$scratch/soak-tokens-$i" \
            >"$scratch/soak-port-$i" 2>"$scratch/soak-server-$i.err" &
        soak_pids+=($!)
    done
    soak_ports=()
    for i in $(seq "$parts"); do
        for _ in $(seq 600); do grep -q '^port ' "$scratch/soak-port-$i" 2>/dev/null && break; sleep 0.05; done
        soak_ports+=("$(awk '/^port /{print $2}' "$scratch/soak-port-$i")")
    done
    loads=()
    for i in $(seq "$parts"); do
        "$bin/loadgen" --mode protocol --endpoint /bench/echo --token-file "$scratch/soak-tokens-$i" \
            --port "${soak_ports[$((i - 1))]}" --server-pid "${soak_pids[$((i - 1))]}" --json \
            --connections "$share" --rate "$share" --duration "$soak_seconds" --warmup 5 \
            --sources 64 --connect-rate $(( 20000 / parts )) >"$scratch/soak-$i.json" 2>"$scratch/soak-$i.err" &
        loads+=($!)
    done
    for pid in "${loads[@]}"; do wait "$pid" || true; done
    for pid in "${soak_pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    soak=$($py - "$scratch" "$parts" "$soak_conns" <<'PY'
import json, sys
scratch, parts, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
runs = []
for i in range(1, parts + 1):
    try:
        runs.append(json.load(open(f"{scratch}/soak-{i}.json")))
    except (OSError, ValueError):
        runs.append({})
s = lambda k: sum(float(r.get(k, 0)) for r in runs)
print(f"{s('connected'):.0f}/{total} sessions in {parts} gateway processes, {s('completed'):.0f} calls, "
      f"errors {s('errors'):.0f}, dropped {s('dropped_connections'):.0f}, failed {s('failed_connections'):.0f}, "
      f"worst p99 {max(float(r.get('p99_us', 0)) for r in runs):.0f} us, "
      f"server rss {s('server_rss_kib') / 1024:.0f} MiB in all")
PY
)
fi

$py - "$soak" <<EOF
import sys
r = {k: float(v) for k, v in [$(for k in "${!result[@]}"; do printf '("%s", "%s"),' "$k" "${result[$k]}"; done)]}
def row(name, plain, gw, ratio, goal):
    print(f"| {name:<46} | {plain:>14} | {gw:>14} | {ratio:>7} | {goal:<10} |")
print("| scenario" + " " * 38 + " | plain wspp     | gateway        | ratio   | goal       |")
print("|" + "-" * 48 + "|" + "-" * 16 + "|" + "-" * 16 + "|" + "-" * 9 + "|" + "-" * 12 + "|")
row("echo $echo_conns conns x $echo_inflight in flight, 64 B (round trips/s)",
    f"{r['plain.echo']:.0f}", f"{r['gateway.echo']:.0f}", f"{r['gateway.echo'] / max(r['plain.echo'], 1):.2f}", ">= 0.85")
row("$rate calls/s over $rate_conns conns: p99 latency (us)",
    f"{r['plain.p99']:.0f}", f"{r['gateway.p99']:.0f}", f"{r['gateway.p99'] / max(r['plain.p99'], 1):.2f}", "<= 1.2")
row("idle memory per connection at $idle_conns (KiB)",
    f"{r['plain.idle_kib']:.2f}", f"{r['gateway.idle_kib']:.2f}", f"{r['gateway.idle_kib'] / max(r['plain.idle_kib'], 0.01):.2f}", "<= 1.3")
row("upgrades/s, $upgrade_conns conns (gateway: HS256 + session)",
    f"{r['plain.upgrades']:.0f}", f"{r['gateway.upgrades']:.0f}", f"{r['gateway.upgrades'] / max(r['plain.upgrades'], 1):.2f}", ">= 5000/s")
print()
print(f"errors in the echo runs: plain {r['plain.echo_errors']:.0f}, gateway {r['gateway.echo_errors']:.0f}; "
      f"idle connections held: plain {r['plain.idle_connected']:.0f}, gateway {r['gateway.idle_connected']:.0f}")
print(f"soak (each session one call per second): {sys.argv[1]}")
EOF
