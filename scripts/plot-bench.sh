#!/usr/bin/env bash
# Draws the benchmark CSV as a PNG: stream throughput and 5-task round
# latency against the number of workers, one line per system.
#
#   scripts/plot-bench.sh [CSV] [PNG]     (defaults: build-bench/bench.csv, build-bench/bench.png)
#
# Needs gnuplot (Debian: gnuplot-nox; scripts/install-deps.sh --bench).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
csv=${1:-"$root/build-bench/bench.csv"}
png=${2:-"${csv%.csv}.png"}
[[ -r "$csv" ]] || { echo "plot-bench.sh: no CSV at $csv (run scripts/bench.sh)" >&2; exit 2; }
command -v gnuplot >/dev/null || { echo "plot-bench.sh: gnuplot missing (scripts/install-deps.sh --bench)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# One data file per (system, load): "workers value".
systems=$(awk -F, 'NR > 1 {print $1}' "$csv" | awk '!seen[$0]++')
for system in $systems; do
    awk -F, -v s="$system" 'NR > 1 && $1 == s && $3 == "stream" {print $2, $4}' "$csv" \
        | sort -n >"$work/$system.stream"
    awk -F, -v s="$system" 'NR > 1 && $1 == s && $3 == "round5" {print $2, $5 / 1000}' "$csv" \
        | sort -n >"$work/$system.round5"
done

plots_stream=""
plots_round=""
for system in $systems; do
    plots_stream+="'$work/$system.stream' using 1:2 with linespoints title '$system', "
    plots_round+="'$work/$system.round5' using 1:2 with linespoints title '$system', "
done

gnuplot <<GNUPLOT
set terminal pngcairo size 1200,500 font ",10"
set output "$png"
set multiplot layout 1,2 title "zfed vs bare libzmq (loopback, $(nproc) CPUs)"
set logscale x 2
set grid
set key top left
set xlabel "workers"
set ylabel "tasks/s"
set title "steady stream (256 tasks in flight)"
plot ${plots_stream%, }
set key top left
set ylabel "ms"
set title "5-task round, median latency"
plot ${plots_round%, }
unset multiplot
GNUPLOT
echo "$png"
