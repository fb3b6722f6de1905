#!/usr/bin/env bash
# Draws the benchmark CSV as a PNG: stream throughput and 5-task round
# latency against the number of workers, one line per system; for the
# like-for-like CSV (bench.sh --like, build-bench/like.csv), the zfed /
# baseline ratio of every path and load as bars beside the targets.
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

# The like-for-like CSV (scripts/bench.sh --like): bars of zfed / baseline
# throughput per path and load, with each target drawn as a line.
if [[ $(head -1 "$csv" | cut -d, -f1) == path ]]; then
    awk -F, 'NR > 1 {print $1 "\\n" $2, $5}' "$csv" >"$work/like.dat"
    gnuplot <<GNUPLOT
set terminal pngcairo size 1200,500 font ",10"
set output "$png"
set title "zfed / like-for-like bare libzmq baseline, 5 workers, same run (loopback, $(nproc) CPUs)\\ntargets: strict 0.9 (green), credit 0.8 (blue), batch 0.5 (red)"
set style data histograms
set style fill solid 0.7 border -1
set boxwidth 0.8
set yrange [0:1.2<*]
set bmargin 4
set grid ytics
set ylabel "throughput ratio (zfed / baseline)"
set xtics noenhanced font ",9"
set arrow from graph 0, first 1 to graph 1, first 1 nohead lc rgb "gray40"
set arrow from graph 0, first 0.9 to graph 1, first 0.9 nohead dt 2 lc rgb "dark-green"
set arrow from graph 0, first 0.8 to graph 1, first 0.8 nohead dt 3 lc rgb "blue"
set arrow from graph 0, first 0.5 to graph 1, first 0.5 nohead dt 4 lc rgb "red"
plot "$work/like.dat" using 2:xtic(1) notitle lc rgb "#4477aa"
GNUPLOT
    echo "$png"
    exit 0
fi
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
