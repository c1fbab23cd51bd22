#!/usr/bin/env bash
# The README's test command: installs what is missing, builds everything with
# warnings as errors, and runs the whole test suite with ctest.
#   BUILD_DIR   build folder (default: build)
#   BUILD_TYPE  CMake build type (default: RelWithDebInfo)
#   CMAKE_ARGS  extra arguments for the CMake configure step
#   CTEST_ARGS  extra arguments for ctest (e.g. "-L protocol")
#   BUILD_ONLY  1: stop after the build (CI builds once, runs the benchmark
#               smoke from this build, then calls this script again to test)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

build_dir=${BUILD_DIR:-build}
jobs=$(nproc)
# shellcheck disable=SC2086
cmake -S . -B "$build_dir" -G Ninja \
    -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" \
    -DGATEHOUSE_WARNINGS_AS_ERRORS=ON \
    ${CMAKE_ARGS:-}
cmake --build "$build_dir" --parallel "$jobs"
if [ "${BUILD_ONLY:-0}" = 1 ]; then exit 0; fi
cd "$build_dir"
# shellcheck disable=SC2086
ctest --output-on-failure --parallel "$jobs" ${CTEST_ARGS:-}
