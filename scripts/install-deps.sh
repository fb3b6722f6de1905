#!/usr/bin/env bash
# Installs the Debian packages zfed needs, and nothing that is already there.
#
#   scripts/install-deps.sh            build and run (demo)
#   scripts/install-deps.sh --test     also what the test suite uses
#   scripts/install-deps.sh --bench    also what the benchmarks and plots use
#
# Idempotent: a second run installs nothing.  Runs apt-get as root, or
# through sudo when not root.
set -euo pipefail

# gnuplot-nox draws the federated demo's accuracy.png (run_local.sh --fl,
# which works without it, only with no picture).
build=(gcc make cmake pkg-config libzmq3-dev libczmq-dev libmsgpack-dev libjansson-dev
       libgmp-dev zlib1g-dev libopenblas-dev dataset-fashion-mnist
       libssl-dev gnuplot-nox)
# Python peers, the zfed Python package (python/) and the integration tests
# use Debian's Python with its zmq, msgpack and numpy modules
# (/usr/bin/python3); venv, setuptools, wheel and pip install the package
# into a venv without the network (pip install --no-index
# --no-build-isolation ./python); the MLP's tests check the C trainer
# against numpy and torch.optim.SGD, and examples/torch (run in CI by
# test_torch_example) trains its sites in torch.
test=(python3 python3-zmq python3-msgpack python3-numpy python3-torch python3-venv
      python3-setuptools python3-wheel python3-pip valgrind clang libclang-rt-14-dev iproute2
      clang-format)
bench=(linux-perf)

wanted=("${build[@]}")
for arg in "$@"; do
    case "$arg" in
    --test) wanted+=("${test[@]}") ;;
    --bench) wanted+=("${test[@]}" "${bench[@]}") ;;
    -h | --help)
        sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "install-deps.sh: unknown option '$arg' (try --help)" >&2
        exit 2
        ;;
    esac
done

missing=()
for package in "${wanted[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$package")
done
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

as_root=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || {
        echo "install-deps.sh: need root or sudo to install: ${missing[*]}" >&2
        exit 1
    }
    as_root=(sudo)
fi
echo "install-deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# A fresh machine may have no package lists yet: update once on failure.
if ! "${as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; then
    "${as_root[@]}" apt-get update -q >&2
    "${as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi
