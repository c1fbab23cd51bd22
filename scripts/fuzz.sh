#!/usr/bin/env bash
# Builds every libFuzzer target (tests/fuzz/fuzz_*.cpp) with clang, ASan and
# UBSan, and runs each for FUZZ_SECONDS (default 20) from a scratch copy of
# its seed corpus, FUZZ_JOBS (default: the number of cores) fuzzers at a
# time, each on one core. Fails on a crash, leak or sanitizer report.
#   scripts/fuzz.sh                 all fuzzers
#   scripts/fuzz.sh fuzz_frame      one of them
#   FUZZ_SECONDS=600 scripts/fuzz.sh fuzz_frame   a longer run by hand
# FUZZ_BUILD_DIR (default build-fuzz) may be absolute or relative to the
# project root.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

scripts/install-deps.sh

build_dir=${FUZZ_BUILD_DIR:-build-fuzz}
# The fuzzers run from a scratch directory, so they need the absolute path.
case $build_dir in
    /*) build_path=$build_dir ;;
    *) build_path=$root/$build_dir ;;
esac
seconds=${FUZZ_SECONDS:-20}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DGATEHOUSE_BUILD_FUZZERS=ON -DGATEHOUSE_BUILD_TESTS=OFF -DGATEHOUSE_BUILD_EXAMPLES=OFF \
    -DGATEHOUSE_BUILD_BENCHMARKS=OFF -DGATEHOUSE_WARNINGS_AS_ERRORS=ON >/dev/null
cmake --build "$build_dir" --parallel "$(nproc)"

if [ $# -gt 0 ]; then
    fuzzers=("$@")
else
    fuzzers=()
    for src in tests/fuzz/fuzz_*.cpp; do fuzzers+=("$(basename "$src" .cpp)"); done
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
jobs=${FUZZ_JOBS:-$(nproc)}

# run_one <name>: one fuzzer from a scratch copy of its corpus; its output in
# $scratch/<name>.log, its exit status in $scratch/<name>.rc.
run_one() {
    local name=$1 corpus="$scratch/$1" rc
    mkdir -p "$corpus"
    if [ -d "tests/fuzz/corpus/$name" ]; then cp -r "tests/fuzz/corpus/$name/." "$corpus/"; fi
    mkdir -p "$scratch/$name.artifacts"
    set +e
    (cd "$scratch" && "$build_path/tests/fuzz/$name" -max_total_time="$seconds" -timeout=10 \
        -rss_limit_mb=2048 -artifact_prefix="$scratch/$name.artifacts/" "$corpus" >"$scratch/$name.log" 2>&1)
    rc=$?
    set -e
    echo $rc >"$scratch/$name.rc"
}

echo "fuzz: ${#fuzzers[@]} fuzzer(s), ${seconds}s each, $jobs at a time"
running=0
for name in "${fuzzers[@]}"; do
    if [ "$running" -ge "$jobs" ]; then wait -n; running=$((running - 1)); fi
    run_one "$name" &
    running=$((running + 1))
done
wait

failed=0
for name in "${fuzzers[@]}"; do
    rc=$(cat "$scratch/$name.rc")
    echo "== $name: ${seconds}s"
    grep -E "^Done [0-9]+ runs" "$scratch/$name.log" || true
    if [ "$rc" -ne 0 ]; then
        echo "fuzz: $name failed (exit $rc):" >&2
        tail -n 60 "$scratch/$name.log" >&2
        mkdir -p fuzz-artifacts
        cp "$scratch/$name.artifacts"/* fuzz-artifacts/ 2>/dev/null || true
        failed=$((failed + 1))
    fi
done
if [ "$failed" -ne 0 ]; then
    echo "fuzz: $failed fuzzer(s) failed; their inputs are in fuzz-artifacts/" >&2
    exit 1
fi
echo "fuzz: ${#fuzzers[@]} fuzzer(s) ran ${seconds}s each without a finding"
