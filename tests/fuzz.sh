#!/usr/bin/env bash
# Fuzzes the PROXY protocol decoder and the TLS ClientHello reader with libFuzzer for a
# bounded time, split evenly between the two.
#
#   ./tests/fuzz.sh [SECONDS]      (default 60)
#
# Builds only the fuzz targets with clang in build-fuzz/ (set up once, then reused), runs
# each on a copy of its tests/fuzz/corpus/<name>/ and exits with libFuzzer's status:
# non-zero when it found a crash, a sanitizer report or a broken invariant; the input that did it is kept in build-fuzz/fuzz-artifacts/. Without clang or its libFuzzer
# runtime (Debian: clang, libclang-rt-14-dev) the run is skipped and the exit status is 0.
set -euo pipefail

seconds=${1:-60}
if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds == 0)); then
    echo "usage: $0 [SECONDS]   (a whole number of seconds, default 60)" >&2
    exit 2
fi

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if ! command -v clang++ >/dev/null || ! command -v clang >/dev/null; then
    echo "fuzz: clang++ not found, fuzz run skipped (Debian: apt-get install clang libclang-rt-14-dev)"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# clang without its libFuzzer runtime links nothing with -fsanitize=fuzzer: try it first.
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' \
    >"$work/probe.cpp"
if ! clang++ -fsanitize=fuzzer "$work/probe.cpp" -o "$work/probe" 2>/dev/null; then
    echo "fuzz: clang has no libFuzzer runtime, fuzz run skipped (Debian: apt-get install libclang-rt-14-dev)"
    exit 0
fi

build=build-fuzz
if [[ ! -f $build/build.ninja ]]; then
    CXX=clang++ CC=clang meson setup --wrap-mode=nodownload -Dfuzz=true \
        -Dbuildtype=debugoptimized "$build"
fi
ninja -C "$build" tests/fuzz/proxy-protocol-fuzz tests/fuzz/tls-client-hello-fuzz

mkdir -p "$build/fuzz-artifacts"
status=0
# target, corpus, largest input: the time is split between them.
targets=(
    "proxy-protocol-fuzz proxy_protocol 2048"
    "tls-client-hello-fuzz tls_client_hello 20000"
)
share=$((seconds / ${#targets[@]}))
((share > 0)) || share=1
for entry in "${targets[@]}"; do
    read -r target corpus max_len <<<"$entry"
    mkdir -p "$work/$corpus"
    cp "tests/fuzz/corpus/$corpus/"* "$work/$corpus/"
    echo "fuzz: $target for ${share}s"
    "$build/tests/fuzz/$target" \
        -max_total_time="$share" \
        -max_len="$max_len" \
        -timeout=10 \
        -print_final_stats=1 \
        -artifact_prefix="$build/fuzz-artifacts/" \
        "$work/$corpus" || status=$?
    if ((status != 0)); then
        echo "fuzz: $target FAILED (exit $status); reproduce with" \
            "$build/tests/fuzz/$target $build/fuzz-artifacts/<file>" >&2
        exit "$status"
    fi
done
echo "fuzz: no failure in ${seconds}s"
exit "$status"
