#!/usr/bin/env bash
# Runs every zfed test on this machine: installs what is missing, builds,
# and runs the whole suite with ctest.
#
#   scripts/test.sh            everything (what CI runs)
#   scripts/test.sh -R NAME    only the ctest tests matching NAME
#
# Exit status: 0 when every test passed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

scripts/install-deps.sh --test

started=$(date +%s)
echo "== build (build/)"
scripts/build.sh "$root/build"
echo "== ctest"
(cd build && ctest --output-on-failure --timeout 300 "$@")
echo "== all tests passed in $(($(date +%s) - started)) s"
