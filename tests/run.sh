#!/usr/bin/env bash
# Installs what is missing, then builds and tests fulcrum twice: a normal build in
# build/ and an AddressSanitizer + UndefinedBehaviorSanitizer build in build-asan/; then
# fuzzes the PROXY protocol decoder for a minute (tests/fuzz.sh).
# Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

./tests/install-deps.sh --bench --fuzz

# Sets up build directory $1 with the meson options that follow. An existing directory
# gets them through `meson configure` (meson 1.0's `setup --reconfigure` can drop a
# changed cpp_args); one meson cannot reconfigure is wiped and set up afresh.
setup() {
    local dir=$1
    shift
    if [[ -f $dir/build.ninja ]] && meson configure "$dir" "$@" >/dev/null; then
        return
    fi
    rm -rf "$dir"
    meson setup --wrap-mode=nodownload "$@" "$dir"
}

# Builds and tests directory $1.
build_and_test() {
    local dir=$1
    echo "=== $dir: build"
    meson compile -C "$dir"
    echo "=== $dir: test"
    meson test -C "$dir" --print-errorlogs
}

# Room for the integration tests' thousands of connections; not fatal where the hard
# limit is lower.
ulimit -n 20000 2>/dev/null || true

setup build -Dbuildtype=debugoptimized
# -O1 keeps sanitizer stack traces readable and the run much faster than -O0.
# (tests/meson.build turns off one false GCC 12 warning for the tests in this build.)
setup build-asan -Ddebug=true -Doptimization=1 \
    -Db_sanitize=address,undefined -Db_lundef=false

build_and_test build
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    build_and_test build-asan

# The PROXY protocol decoder under libFuzzer (skipped, with a message, without clang).
./tests/fuzz.sh 60

echo "all test suites passed"
