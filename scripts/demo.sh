#!/usr/bin/env bash
# The README's demo command: installs what is missing, builds the demo and
# runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
if [ -f examples/game_gateway/CMakeLists.txt ]; then
    cmake --build "$build_dir" --parallel "$(nproc)" --target game_gateway
    exec "$build_dir/examples/game_gateway/game_gateway" "$@"
else
    cmake --build "$build_dir" --parallel "$(nproc)" --target frame_tour
    exec "$build_dir/examples/frame_tour/frame_tour" "$@"
fi
