#!/usr/bin/env bash
# Builds every libFuzzer target (tests/fuzz/fuzz_*.cpp) with clang, ASan and
# UBSan, and runs each for FUZZ_SECONDS (default 20) from a scratch copy of
# its seed corpus. Fails on the first crash, leak or sanitizer report.
#   scripts/fuzz.sh                 all fuzzers
#   scripts/fuzz.sh fuzz_frame      one of them
#   FUZZ_SECONDS=600 scripts/fuzz.sh fuzz_frame   a longer run by hand
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

build_dir=${FUZZ_BUILD_DIR:-build-fuzz}
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
for name in "${fuzzers[@]}"; do
    corpus="$scratch/$name"
    mkdir -p "$corpus"
    if [ -d "tests/fuzz/corpus/$name" ]; then cp -r "tests/fuzz/corpus/$name/." "$corpus/"; fi
    echo "== $name: ${seconds}s"
    log="$scratch/$name.log"
    set +e
    (cd "$scratch" && "$OLDPWD/$build_dir/tests/fuzz/$name" -max_total_time="$seconds" -timeout=10 \
        -rss_limit_mb=2048 -artifact_prefix="$scratch/" "$corpus" >"$log" 2>&1)
    rc=$?
    set -e
    grep -E "^Done [0-9]+ runs" "$log" || true
    if [ $rc -ne 0 ]; then
        echo "fuzz: $name failed (exit $rc):" >&2
        tail -n 60 "$log" >&2
        mkdir -p fuzz-artifacts
        cp "$scratch"/crash-* "$scratch"/leak-* "$scratch"/timeout-* "$scratch"/oom-* fuzz-artifacts/ 2>/dev/null || true
        exit 1
    fi
done
echo "fuzz: ${#fuzzers[@]} fuzzer(s) ran ${seconds}s each without a finding"
