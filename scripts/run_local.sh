#!/usr/bin/env bash
# The zfed demo on this machine: one broker, WORKERS workers (default 5)
# and a controller running 5 rounds of fib at fibonacci_level 10.
#
#   scripts/run_local.sh                         # the demo
#   scripts/run_local.sh --rounds 20 --level 30  # arguments go to zfed-controller
#   WORKERS=8 scripts/run_local.sh               # more workers
#   scripts/run_local.sh --curve                 # encrypted and authenticated (CurveZMQ)
#   scripts/run_local.sh --fl [--rounds 20 ...]  # federated learning: see below
#   scripts/run_local.sh --help                  # this, and the controller's options
#
# --fl: the 2NN (mlp) trained on Fashion-MNIST across WORKERS sites (default
# 5) whose data never leaves them: zfed-split writes an IID split (cached in
# ZFED_FL_DATA, default /tmp/zfed-fl; FL_SAMPLES=N splits N images, default
# all 60,000), one worker per site serves mlp@site-N with its shard, and the
# controller runs 10 rounds (unless told otherwise), evaluates each round's
# model on the 10,000 test images, prints one line per round with the test
# accuracy and loss, keeps the best round (best_model.safetensors) and draws
# accuracy.png in the job folder (gnuplot).
#
# Installs missing packages and builds first (ZFED_BUILD_DIR=DIR uses the
# programs already built in DIR instead, as the tests do).  Every process
# it starts is stopped when it ends, also on Ctrl-C.  Exits with the
# controller's status (0: job completed).  The broker's and workers' logs
# go to a run folder that is removed when the demo succeeds or is
# interrupted, and kept (its path printed) when it fails or ZFED_KEEP=1;
# results go to the controller's work folder (/tmp/zfed/jobs).  With
# --curve, certificates are made in the run folder: one for the broker,
# one per worker (in keys/workers) and one for the controller (in
# keys/controllers), and every connection is encrypted and authenticated.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
workers=${WORKERS:-5}
if ! [[ "$workers" =~ ^[1-9][0-9]*$ ]] || ((workers > 1000)); then
    echo "run_local.sh: WORKERS must be a number from 1 to 1000, got '$workers'" >&2
    exit 2
fi

for arg in "$@"; do
    case "$arg" in
    -h | --help)
        sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'
        echo
        echo "zfed-controller's options (the demo sets --connect and, unless given, --tasks):"
        echo
        bin=${ZFED_BUILD_DIR:-"$root/build"}
        if [[ -x "$bin/zfed-controller" ]]; then
            "$bin/zfed-controller" --help | tail -n +5
        else
            echo "  (not built yet: run scripts/run_local.sh once, or scripts/build.sh)"
        fi
        exit 0
        ;;
    esac
done

if [[ -n "${ZFED_BUILD_DIR:-}" ]]; then
    bin=$ZFED_BUILD_DIR
    [[ -x "$bin/zfed-controller" ]] || {
        echo "run_local.sh: ZFED_BUILD_DIR=$bin holds no zfed-controller" >&2
        exit 2
    }
else
    "$root/scripts/install-deps.sh"
    "$root/scripts/build.sh"
    bin="$root/build"
fi

# One task per worker each round, like the seed's one task per client,
# unless the arguments say how many tasks there are.
curve=false
fl=false
tasks_given=false
job_id=""
workdir=/tmp/zfed/jobs
controller_args=()
previous=""
for arg in "$@"; do
    case "$previous" in
    --job-id) job_id=$arg ;;
    --workdir) workdir=$arg ;;
    esac
    case "$arg" in
    --job-id=*) job_id=${arg#--job-id=} ;;
    --workdir=*) workdir=${arg#--workdir=} ;;
    esac
    previous=$arg
    case "$arg" in
    --curve) curve=true ;;
    --fl) fl=true ;;
    --tasks | --tasks=* | --levels | --levels=* | --job | --job=* | --resume | --resume=*)
        tasks_given=true
        controller_args+=("$arg")
        ;;
    *) controller_args+=("$arg") ;;
    esac
done
if $fl; then
    # One task per site: the sites set the task count.
    $tasks_given && {
        echo "run_local.sh: --fl has one task per site: set WORKERS, not --tasks" >&2
        exit 2
    }
    [[ -n "$job_id" ]] || job_id=fl-$(date -u +%Y%m%d-%H%M%S)-$$
    fl_samples=${FL_SAMPLES:-0}
    if ! [[ "$fl_samples" =~ ^[0-9]+$ ]]; then
        echo "run_local.sh: FL_SAMPLES must be a number, got '$fl_samples'" >&2
        exit 2
    fi
    fashion=/usr/share/datasets/fashion-mnist
    shards=${ZFED_FL_DATA:-/tmp/zfed-fl}/iid-$workers-sites-$fl_samples-samples
    if [[ ! -s "$shards/split.json" ]]; then
        echo "run_local.sh: splitting Fashion-MNIST into $workers IID sites in $shards" >&2
        split_args=(--sites "$workers" --method iid --seed 0)
        ((fl_samples > 0)) && split_args+=(--samples "$fl_samples")
        rm -rf "$shards.tmp"
        mkdir -p "$(dirname "$shards")"
        "$bin/zfed-split" "${split_args[@]}" "$shards.tmp" >/dev/null
        rm -rf "$shards"
        mv "$shards.tmp" "$shards"
    fi
    controller_args=(--service mlp --split "$shards/split.json" --eval-data "$fashion"
                     --select test_accuracy:max --rounds 10 --job-id "$job_id"
                     --round-timeout 300 ${controller_args[@]+"${controller_args[@]}"})
else
    $tasks_given || controller_args=(--tasks "$workers" ${controller_args[@]+"${controller_args[@]}"})
fi

run_dir=$(mktemp -d /tmp/zfed-demo.XXXXXX)
pids=()
status=1
cleanup() {
    trap - EXIT INT TERM
    if ((${#pids[@]})); then
        kill "${pids[@]}" 2>/dev/null || true
        wait "${pids[@]}" 2>/dev/null || true
    fi
    if [[ "$status" == 0 || "$status" == 130 ]] && [[ -z "${ZFED_KEEP:-}" ]]; then
        rm -rf "$run_dir"
    else
        echo "run_local.sh: logs of the broker and workers are in $run_dir" >&2
    fi
}
trap cleanup EXIT
trap 'status=130; cleanup; exit 130' INT TERM

broker_security=()
controller_security=()
if $curve; then
    keys="$run_dir/keys"
    secrets="$run_dir/secrets"
    mkdir -p "$secrets"
    "$bin/zfed-keygen" --dir "$keys" broker >/dev/null
    "$bin/zfed-keygen" --dir "$keys/controllers" controller >/dev/null
    mv "$keys/controllers/controller.key_secret" "$secrets/"
    for index in $(seq 1 "$workers"); do
        "$bin/zfed-keygen" --dir "$keys/workers" "worker-$index" >/dev/null
        mv "$keys/workers/worker-$index.key_secret" "$secrets/"
    done
    broker_security=(--curve-cert "$keys/broker.key_secret" --workers-dir "$keys/workers"
                     --controllers-dir "$keys/controllers")
    controller_security=(--curve-cert "$secrets/controller.key_secret"
                         --server-key "$keys/broker.key")
    echo "run_local.sh: CURVE on; certificates in $keys, secrets in $secrets" >&2
fi

# A free port, found by the broker itself, so the demo never collides with
# another broker on this machine.
"$bin/zfed-broker" --bind 'tcp://127.0.0.1:*' --endpoint-file "$run_dir/endpoint" \
    ${broker_security[@]+"${broker_security[@]}"} 2>"$run_dir/broker.log" &
pids+=($!)
for _ in $(seq 1 100); do
    [[ -s "$run_dir/endpoint" ]] && break
    kill -0 "${pids[0]}" 2>/dev/null || { cat "$run_dir/broker.log" >&2; exit 1; }
    sleep 0.05
done
endpoint=$(head -n 1 "$run_dir/endpoint")
echo "run_local.sh: broker on $endpoint, starting $workers workers (logs in $run_dir)" >&2

for index in $(seq 1 "$workers"); do
    security=()
    if $curve; then
        security=(--curve-cert "$secrets/worker-$index.key_secret" --server-key "$keys/broker.key")
    fi
    if $fl; then
        site=site-$((index - 1))
        role=(--service mlp --site "$site" --data "$shards/$site")
    else
        role=(--pyramid)
    fi
    "$bin/zfed-worker" --connect "$endpoint" --name "worker-$index" "${role[@]}" \
        ${security[@]+"${security[@]}"} 2>"$run_dir/worker-$index.log" &
    pids+=($!)
done

status=0
"$bin/zfed-controller" --connect "$endpoint" ${controller_security[@]+"${controller_security[@]}"} \
    ${controller_args[@]+"${controller_args[@]}"} || status=$?

# accuracy.png: the test accuracy and loss per round, from summary.json
# (each round's "round": N line comes before its test_accuracy and
# test_loss).
plot_fl() {
    local folder=$workdir/$job_id
    [[ -s "$folder/summary.json" ]] || return 0
    if ! command -v gnuplot >/dev/null; then
        echo "run_local.sh: no gnuplot (scripts/install-deps.sh installs it): no accuracy.png" >&2
        return 0
    fi
    awk '
        /"round": / { gsub(/[^0-9]/, "", $2); round = $2 }
        /"test_accuracy": / { gsub(/[^0-9.eE+-]/, "", $2); accuracy = $2 }
        /"test_loss": / { gsub(/[^0-9.eE+-]/, "", $2); print round, accuracy, $2 }
    ' "$folder/summary.json" >"$folder/accuracy.dat"
    [[ -s "$folder/accuracy.dat" ]] || return 0
    gnuplot <<PLOT
set terminal png size 800,500
set output "$folder/accuracy.png"
set title "zfed: 2NN on Fashion-MNIST across $workers IID sites"
set xlabel "round"
set ylabel "test accuracy"
set y2label "test loss"
set ytics nomirror
set y2tics
set key center right
set grid
set xtics 1
plot "$folder/accuracy.dat" using 1:2 with linespoints title "test accuracy" axes x1y1, \\
     "$folder/accuracy.dat" using 1:3 with linespoints title "test loss" axes x1y2
PLOT
    echo "run_local.sh: $folder/accuracy.png" >&2
}
$fl && plot_fl
exit "$status"
