#!/usr/bin/env bash
# The README's demo command: installs what is missing, builds the demo gateway
# (examples/game_gateway) and starts it on ws://127.0.0.1:9000/connect. It
# prints a demo token and how to connect; Ctrl-C stops it. Arguments are
# passed on (--port N, --host ADDR, --threads N).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build_dir" --parallel "$(nproc)" --target game_gateway
exec "$build_dir/examples/game_gateway/game_gateway" "$@"
