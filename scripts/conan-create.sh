#!/usr/bin/env bash
# Runs the Conan recipe for real, offline: `conan create` of conanfile.py
# with test_package/, using Conan 2.8.1 from ../shared/tools (run from
# source with Debian's Python packages, scripts/install-deps.sh) and a
# profile whose [platform_requires] name the Debian packages' exact
# versions, read from dpkg-query, so nothing is downloaded. CONAN_HOME is a
# fresh temporary folder. with_redis is built both ways; test_package is
# built Debug (the package is headers only: its build type only changes how
# long the test program takes to compile).
#   CONAN=<path>   the conan to run (default ../shared/tools/bin/conan)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
conan=${CONAN:-$root/../shared/tools/bin/conan}
if [ ! -x "$conan" ]; then
    echo "conan-create: $conan not found (../shared/tools beside the checkout)" >&2
    exit 1
fi

# Debian's version of a package: epoch and revision dropped (1:1.28.1-0.2 -> 1.28.1).
upstream() {
    local v
    v=$(dpkg-query -W -f='${Version}' "$1")
    v=${v#*:}
    v=${v%%-*}
    v=${v%%+*}
    v=${v%%~*}
    echo "$v"
}

export CONAN_HOME
CONAN_HOME=$(mktemp -d)
trap 'rm -rf "$CONAN_HOME" test_package/build test_package/CMakeUserPresets.json' EXIT
"$conan" profile detect >/dev/null 2>&1
profile=$CONAN_HOME/profiles/debian
cat >"$profile" <<PROFILE
include(default)
[settings]
compiler.cppstd=17
build_type=Debug
[platform_requires]
asio/$(upstream libasio-dev)
websocketpp/$(upstream libwebsocketpp-dev)
openssl/$(upstream libssl-dev)
nlohmann_json/$(upstream nlohmann-json3-dev)
hiredis/$(upstream libhiredis-dev)
PROFILE
echo "conan-create: profile"
sed 's/^/    /' "$profile"

for redis in True False; do
    start=$(date +%s)
    "$conan" create . -pr:a "$profile" -nr -o "gatehouse/*:with_redis=$redis" --build=missing
    echo "conan-create: with_redis=$redis passed in $(( $(date +%s) - start )) s"
done
