#!/usr/bin/env bash
# Issue 11's federated targets in one run: IID and labels:2 jobs of the 2NN
# on 5 sites against centralised training, fedavg vs fedavgm vs fedadam,
# the IID job's time outside training, and a site's epoch in C, numpy and
# torch.  See bench/fl_bench.py.
#
#   bench/fl_bench.sh [--rounds 20] [--noniid-rounds 20] [--out FILE]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh" --bench
# Optimised build, separate from the test builds (as scripts/bench.sh).
"$root/scripts/build.sh" "$root/build-bench" -DCMAKE_BUILD_TYPE=Release
exec /usr/bin/python3 "$root/bench/fl_bench.py" --build "$root/build-bench" \
    --out "$root/build-bench/fl_bench.json" "$@"
