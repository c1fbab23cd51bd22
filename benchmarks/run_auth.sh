#!/usr/bin/env bash
# The auth benchmark baseline: JWT verification per algorithm beside the raw
# OpenSSL EVP check of the same signature with the same key, in the same
# process (bench_auth prints the ratio table at the end). Release build, one
# thread pinned to one core, a few repetitions; the figures are CPU time.
#   BUILD_DIR    build folder (default: build-bench)
#   CPU          core to pin to (default: 0)
#   REPETITIONS  benchmark repetitions (default: 3)
#   extra arguments are passed to bench_auth (e.g. --benchmark_filter=ES256)
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${BUILD_DIR:-build-bench}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DGATEHOUSE_BUILD_TESTS=OFF -DGATEHOUSE_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build_dir" --target bench_auth

runner=()
if command -v taskset >/dev/null; then runner=(taskset -c "${CPU:-0}"); fi
"${runner[@]}" "$build_dir/benchmarks/bench_auth" \
    --benchmark_repetitions="${REPETITIONS:-3}" \
    --benchmark_report_aggregates_only=true \
    --benchmark_min_time=0.5 "$@"
