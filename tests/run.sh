#!/usr/bin/env bash
# Installs what is missing, then builds and tests fulcrum three times: a normal build in
# build/, an AddressSanitizer + UndefinedBehaviorSanitizer build in build-asan/, and a
# ThreadSanitizer build in build-tsan/ that runs the integration tests with two workers;
# then fuzzes the PROXY protocol decoder and the TLS ClientHello reader for a minute in
# all (tests/fuzz.sh).
# Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

./tests/install-deps.sh --test --bench --fuzz

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

# Builds directory $1 and runs its tests; more arguments go to `meson test` (a suite
# name, --wrapper). `meson test` builds what the tests it runs need and no more: where
# only the integration suite runs, the unit tests are not compiled.
build_and_test() {
    local dir=$1
    shift
    echo "=== $dir: build and test"
    meson test -C "$dir" --print-errorlogs "$@"
}

# Room for the integration tests' thousands of connections; not fatal where the hard
# limit is lower.
ulimit -n 20000 2>/dev/null || true

# No debug information in the normal build, and line tables only (-g1) in the sanitizer
# builds, whose reports still name file and line: full -g is 40% of their compile time.
setup build -Doptimization=2 -Ddebug=false -Dwerror=true
# -O1 keeps sanitizer stack traces readable and the run much faster than -O0.
# (tests/meson.build turns off one false GCC 12 warning for the tests in this build.)
# No vptr check: it proves a vtable readable by writing it to a pipe(), so when a test
# runs fulcrum out of descriptors every virtual call reports "invalid vptr".
setup build-asan -Dwerror=true -Ddebug=false -Dcpp_args='-g1 -fno-sanitize=vptr' -Doptimization=1 \
    -Db_sanitize=address,undefined -Db_lundef=false
setup build-tsan -Dwerror=true -Ddebug=false -Dcpp_args=-g1 -Doptimization=1 \
    -Db_sanitize=thread -Db_lundef=false

build_and_test build
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    build_and_test build-asan

# ThreadSanitizer: the integration tests only (the unit tests run one thread), with two
# workers in every fulcrum the tests start unless a test pins its own count. A report in
# a child fails its test (tests/integration/harness.hpp); halt_on_error=0 lets the run
# show every report. GCC 12's ThreadSanitizer cannot map its shadow memory when the
# kernel randomizes mmap with more than 28 bits: then the tests run without ASLR.
tsan_wrapper=()
if (($(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 28) > 28)); then
    tsan_wrapper=(--wrapper "setarch $(uname -m) -R")
fi
FULCRUM_TEST_WORKERS=2 \
    TSAN_OPTIONS="halt_on_error=0:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp" \
    build_and_test build-tsan "${tsan_wrapper[@]}" --suite integration

# The PROXY protocol decoder under libFuzzer (skipped, with a message, without clang).
./tests/fuzz.sh 60

echo "all test suites passed"
