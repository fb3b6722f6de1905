#!/usr/bin/env bash
# Configures and builds zfed into a build folder (default: build/).
#
#   scripts/build.sh [BUILD_DIR] [extra cmake -D options...]
#
# Incremental: re-running rebuilds only what changed.  Quiet unless the
# build fails, in which case its whole output is shown.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${1:-"$root/build"}
shift || true
jobs=$(nproc 2>/dev/null || echo 2)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { cmake -S "$root" -B "$build_dir" -DZFED_WERROR=ON "$@" &&
       cmake --build "$build_dir" -j "$jobs"; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "build.sh: build failed in $build_dir" >&2
    exit 1
fi
