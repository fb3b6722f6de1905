#!/usr/bin/env bash
# Issue 11's MLP reference numbers in one run: a site's 2NN epoch in zfed's
# C trainer against numpy and PyTorch (1 thread each and each one's
# default), and centralised accuracy after 10 epochs (bench/mlp_bench.py);
# with --fl first, the federated targets instead: IID and labels:2 jobs on
# 5 sites against centralised training, fedavg vs fedavgm vs fedadam, the
# IID job's time outside training (bench/fl_bench.py).
#
#   bench/mlp_bench.sh [--epochs 10] [--runs 2] [--timed 3]
#   bench/mlp_bench.sh --fl [--rounds 20] [--noniid-rounds 20]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
script=mlp_bench
if [[ "${1:-}" == --fl ]]; then
    script=fl_bench
    shift
fi
"$root/scripts/install-deps.sh" --bench
# Optimised build, separate from the test builds (as scripts/bench.sh).
"$root/scripts/build.sh" "$root/build-bench" -DCMAKE_BUILD_TYPE=Release
exec /usr/bin/python3 "$root/bench/$script.py" --build "$root/build-bench" \
    --out "$root/build-bench/$script.json" "$@"
