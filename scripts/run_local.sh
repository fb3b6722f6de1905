#!/usr/bin/env bash
# The zfed demo on this machine: one broker, WORKERS workers (default 5)
# and a controller running 5 rounds of fib at fibonacci_level 10.
#
#   scripts/run_local.sh                         # the demo
#   scripts/run_local.sh --rounds 20 --level 30  # arguments go to zfed-controller
#   WORKERS=8 scripts/run_local.sh               # more workers
#   scripts/run_local.sh --curve                 # encrypted and authenticated (CurveZMQ)
#   scripts/run_local.sh --help                  # this, and the controller's options
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
        sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
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
tasks_given=false
controller_args=()
for arg in "$@"; do
    case "$arg" in
    --curve) curve=true ;;
    --tasks | --tasks=* | --levels | --levels=* | --job | --job=* | --resume | --resume=*)
        tasks_given=true
        controller_args+=("$arg")
        ;;
    *) controller_args+=("$arg") ;;
    esac
done
$tasks_given || controller_args=(--tasks "$workers" ${controller_args[@]+"${controller_args[@]}"})

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
    "$bin/zfed-worker" --connect "$endpoint" --name "worker-$index" --pyramid \
        ${security[@]+"${security[@]}"} 2>"$run_dir/worker-$index.log" &
    pids+=($!)
done

status=0
"$bin/zfed-controller" --connect "$endpoint" ${controller_security[@]+"${controller_security[@]}"} \
    ${controller_args[@]+"${controller_args[@]}"} || status=$?
exit "$status"
