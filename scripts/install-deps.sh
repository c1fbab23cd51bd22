#!/usr/bin/env bash
# Installs, with apt-get, every Debian package gatehouse needs to build, test,
# fuzz and benchmark. Does nothing (and needs no root) when all are present.
set -euo pipefail

packages=(
    build-essential cmake ninja-build pkg-config git
    clang libclang-rt-14-dev           # libFuzzer, sanitizers with clang
    libasio-dev libwebsocketpp-dev libssl-dev openssl
    doctest-dev nlohmann-json3-dev libbenchmark-dev
    libhiredis-dev redis-server redis-tools
    python3 python3-jwt python3-cryptography python3-websockets
    # Conan 2.8.1 from source (../shared/tools/bin/conan), for the recipe's test
    python3-requests python3-urllib3 python3-colorama python3-yaml python3-fasteners
    python3-distro python3-jinja2 python3-dateutil python3-patch-ng
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

echo "gatehouse: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian package starts a Redis on port 6379; tests start their own on
# free ports and never use it.
