#!/usr/bin/env bash
# Runs every zfed test on this machine: installs what is missing, then
#   1. builds (gcc, warnings as errors) and runs the whole suite: unit
#      tests, integration tests on loopback, fault injection, network
#      namespaces (as root), valgrind over an end-to-end job;
#   2. builds again with AddressSanitizer + UndefinedBehaviorSanitizer and
#      runs the whole suite on those binaries;
#   3. builds the libFuzzer targets with clang and fuzzes each for
#      ZFED_FUZZ_SECONDS (default 20) from the committed seed corpus.
#
#   scripts/test.sh            everything (what CI runs)
#   scripts/test.sh -R NAME    only ctest tests matching NAME, in every stage
#   ZFED_STAGES="build" scripts/test.sh   only some stages (build asan fuzz)
#   ZFED_TEST_JOBS=1 scripts/test.sh      tests one at a time (default 2)
#
# Exit status: 0 when every test passed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
stages=${ZFED_STAGES:-"build asan fuzz"}
fuzz_seconds=${ZFED_FUZZ_SECONDS:-20}
# Tests run two at a time by default: most of them wait on sockets and
# child processes, and every one picks its own ports and folders.
test_jobs=${ZFED_TEST_JOBS:-2}

scripts/install-deps.sh --test

started=$(date +%s)
stage() { echo "== $1 ($(($(date +%s) - started)) s)"; }
run_ctest() { (cd "$1" && shift && ctest --output-on-failure --timeout 600 -j "$test_jobs" "$@"); }

if [[ " $stages " == *" build "* ]]; then
    stage "build/: gcc"
    scripts/build.sh "$root/build"
    run_ctest build "$@"
fi
if [[ " $stages " == *" asan "* ]]; then
    stage "build-asan/: AddressSanitizer + UndefinedBehaviorSanitizer"
    scripts/build.sh "$root/build-asan" -DZFED_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        run_ctest build-asan -LE fuzz "$@"
fi
if [[ " $stages " == *" fuzz "* ]]; then
    stage "build-fuzz/: libFuzzer, ${fuzz_seconds} s per target"
    CC=clang scripts/build.sh "$root/build-fuzz" -DZFED_FUZZ=ON \
        -DZFED_FUZZ_SECONDS="$fuzz_seconds" -DCMAKE_C_COMPILER=clang
    run_ctest build-fuzz -L fuzz "$@"
fi
stage "all tests passed"
