#!/usr/bin/env bash
# Issue 11's MLP reference numbers in one run: a site's 2NN epoch in zfed's
# C trainer against numpy and PyTorch (1 thread each and each one's
# default), and centralised accuracy after 10 epochs.  See bench/mlp_bench.py.
#
#   bench/mlp_bench.sh [--epochs 10] [--runs 2] [--timed 3]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh" --bench
# Optimised build, separate from the test builds (as scripts/bench.sh).
"$root/scripts/build.sh" "$root/build-bench" -DCMAKE_BUILD_TYPE=Release
exec /usr/bin/python3 "$root/bench/mlp_bench.py" --build "$root/build-bench" \
    --out "$root/build-bench/mlp_bench.json" "$@"
