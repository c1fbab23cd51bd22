#!/usr/bin/env bash
# Three gatehouse nodes and a Redis on loopback, and a demo crossing them:
#   - alice on node a, bob on node b, carol on node c join one chat room;
#     alice speaks and everyone hears it, whatever node they are on;
#   - an admin on node c revokes bob's account: bob's connection on node b
#     closes with 4002;
#   - node c is killed (SIGKILL); alice whispers to carol's session, which
#     no node holds now, so the whisper waits in Redis; carol reconnects to
#     node b with the same token, gets it and hears the room again.
#
#   examples/cluster/run.sh            builds (BUILD_DIR, default build) and runs
#   examples/cluster/run.sh --check    the same, failing on any surprise (ctest)
#   --node PATH                        a cluster_node binary to use (no build)
set -euo pipefail
cd "$(dirname "$0")/../.."
check=0
node_bin=""
while [ $# -gt 0 ]; do
    case $1 in
        --check) check=1 ;;
        --node) node_bin=$2; shift ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
if [ -z "$node_bin" ]; then
    build=${BUILD_DIR:-build}
    cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$build" --target cluster_node >/dev/null
    node_bin=$build/examples/cluster/cluster_node
fi

scratch=$(mktemp -d /tmp/gatehouse-cluster-XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    # Nodes stop gracefully (SIGTERM); whatever is still there after 5 s is killed.
    for _ in $(seq 100); do
        alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.05
    done
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    rm -rf "$scratch"
}
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$scratch" \
    >"$scratch/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
    sleep 0.05
done

declare -A node_pid node_port
for id in a b c; do
    "$node_bin" --node-id "$id" --port 0 --redis-port "$redis_port" >"$scratch/node-$id.out" 2>"$scratch/node-$id.err" &
    node_pid[$id]=$!
    pids+=($!)
    disown "$!"  # the demo kills one: no job report from bash
done
for id in a b c; do
    for _ in $(seq 200); do
        grep -q 'listening on' "$scratch/node-$id.out" 2>/dev/null && break
        sleep 0.05
    done
    node_port[$id]=$(sed -n 's|.*ws://127.0.0.1:\([0-9]*\)/connect|\1|p' "$scratch/node-$id.out")
    if [ -z "${node_port[$id]}" ]; then
        echo "node $id did not start:" >&2
        cat "$scratch/node-$id.err" >&2
        exit 1
    fi
    echo "node $id: ws://127.0.0.1:${node_port[$id]}/connect (pid ${node_pid[$id]})"
done
echo "redis: 127.0.0.1:$redis_port"
echo

args=(--port-a "${node_port[a]}" --port-b "${node_port[b]}" --port-c "${node_port[c]}" --pid-c "${node_pid[c]}")
[ "$check" = 1 ] && args+=(--check)
/usr/bin/python3 examples/cluster/demo.py "${args[@]}"
