#!/usr/bin/env bash
# zfed's benchmark: zfed's real broker, workers and controller against a
# bare libzmq baseline, in one run, on loopback.  Prints a table with
# zfed/baseline ratios and writes a CSV (default build/bench.csv).
#
#   scripts/bench.sh             full grid (workers 1 2 5 16 64; about 2 minutes)
#   scripts/bench.sh --quick     smaller grid, under a minute
#   scripts/bench.sh --scale     also 1,000 worker sockets and a 100,000-task round
#   scripts/bench.sh --curve     also zfed over CurveZMQ
#   scripts/bench.sh --like      like for like only (5 workers): strict, credit 8 and
#                                batch 8, each against the baseline doing the same
#                                (credit with credit, batch with batch): the stream,
#                                a 100,000-task round through zfed-controller and
#                                5-task rounds; ratios, controller CPU per task, load
#                                average; --repeat N for medians, --quick shorter
#   scripts/bench.sh --out F     CSV path
#   scripts/bench.sh --models    model rounds instead (bench/models.py: a 1 GiB
#                                model through 5 workers against the baseline,
#                                peak RSS, small models against vecavg; --quick)
#
# Then scripts/plot-bench.sh build/bench.csv build/bench.png draws it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh" --bench
# Optimised build of the real programs, separate from the test builds.
"$root/scripts/build.sh" "$root/build-bench" -DCMAKE_BUILD_TYPE=Release
# 1,000 worker sockets and their connections need file descriptors.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "${1:-}" = "--models" ]; then
    shift
    exec /usr/bin/python3 "$root/bench/models.py" --build "$root/build-bench" "$@"
fi
exec /usr/bin/python3 "$root/bench/bench.py" --build "$root/build-bench" \
    --out "$root/build-bench/bench.csv" "$@"
