#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages fulcrum needs, only those that are missing, and the
# status page test's npm package (tests/browser, from its lockfile).
#   tests/install-deps.sh          build, run and test
#   tests/install-deps.sh --test   also what only the tests use: promtool, Chromium and
#                                  Node.js with tests/browser's npm lockfile
#   tests/install-deps.sh --bench  also the benchmark's peers and load tools (the
#                                  integration tests use HAProxy and nginx, with its
#                                  stream module, too)
#   tests/install-deps.sh --fuzz   also clang and its libFuzzer runtime (tests/fuzz.sh)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

packages=(
    build-essential g++ meson ninja-build pkg-config cmake
    libuv1-dev libcpp-httplib-dev libtoml11-dev catch2 libspdlog-dev libcli11-dev
    nlohmann-json3-dev libc-ares-dev libssl-dev libsystemd-dev clang-format python3 curl
    openssl
)
browser_driver=false
for option in "$@"; do
    case "$option" in
        --bench) packages+=(haproxy nginx libnginx-mod-stream wrk socat) ;;
        --fuzz) packages+=(clang libclang-rt-dev) ;;
        --test)
            # promtool; Redis and PostgreSQL servers for the health checks; dnsmasq for
            # DNS discovery; etcd for etcd discovery; systemd-analyze and man for the
            # install test; Chromium and Node.js for the status page's browser test
            # (Debian's npm unless the nodejs in place brings its own).
            packages+=(prometheus redis-server postgresql dnsmasq etcd-server etcd-client
                chromium nodejs systemd man-db)
            command -v npm >/dev/null || packages+=(npm)
            browser_driver=true
            ;;
        *)
            echo "usage: $0 [--test] [--bench] [--fuzz]" >&2
            exit 2
            ;;
    esac
done

# The browser test's driver, once the packages are in.
install_browser_driver() {
    if $browser_driver && [[ ! -d tests/browser/node_modules/playwright-core ]]; then
        npm ci --prefix tests/browser --no-audit --no-fund
    fi
}

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$package")
    fi
done
if ((${#missing[@]} == 0)); then
    install_browser_driver
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
install_browser_driver
