#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages fulcrum needs, only those that are missing.
#   tests/install-deps.sh          build, run and test
#   tests/install-deps.sh --bench  also the benchmark's peers and load tools (the
#                                  integration tests use HAProxy and nginx, with its
#                                  stream module, too)
#   tests/install-deps.sh --fuzz   also clang and its libFuzzer runtime (tests/fuzz.sh)
set -euo pipefail

packages=(
    build-essential g++ meson ninja-build pkg-config cmake
    libuv1-dev libcpp-httplib-dev libtoml11-dev catch2 libspdlog-dev libcli11-dev
    nlohmann-json3-dev libssl-dev clang-format python3 curl openssl
)
for option in "$@"; do
    case "$option" in
        --bench) packages+=(haproxy nginx libnginx-mod-stream wrk socat) ;;
        --fuzz) packages+=(clang libclang-rt-dev) ;;
        *)
            echo "usage: $0 [--bench] [--fuzz]" >&2
            exit 2
            ;;
    esac
done

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$package")
    fi
done
if ((${#missing[@]} == 0)); then
    exit 0
fi

sudo=()
if ((EUID != 0)); then
    sudo=(sudo)
fi
echo "installing: ${missing[*]}"
"${sudo[@]}" apt-get update
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    "${missing[@]}"
