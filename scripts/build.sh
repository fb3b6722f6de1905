#!/usr/bin/env bash
# Configures and builds zfed into a build folder (default: build/).
#
#   scripts/build.sh [BUILD_DIR] [extra cmake -D options...]
#   scripts/build.sh --help
#
# Incremental: re-running rebuilds only what changed.  While something
# compiles it shows the build's progress on stderr (a percentage, and what
# is being built); the full output is shown only when the build fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
case "${1:-}" in
-h | --help)
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
-*)
    echo "build.sh: unknown option '$1' (try --help)" >&2
    exit 2
    ;;
esac
build_dir=${1:-"$root/build"}
shift || true
jobs=$(nproc 2>/dev/null || echo 2)
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# "[ 42%] Building C object CMakeFiles/x.dir/lib/core/zfed_util.c.o" becomes
# "build.sh: 42% lib/core/zfed_util.c": rewritten in place on a terminal,
# one line per new tenth otherwise (so CI logs stay short).  Nothing is
# printed when everything is up to date.
progress() {
    local tty=0
    [[ -t 2 ]] && tty=1
    tee -a "$log" | awk -v tty="$tty" -v dir="$build_dir" '
        match($0, /^\[ *[0-9]+%\] (Building|Linking)/) {
            percent = $0; sub(/^\[ */, "", percent); sub(/%.*/, "", percent)
            what = $NF; sub(/^.*\.dir\//, "", what); sub(/\.o$/, "", what)
            if (!started) { printf "build.sh: building %s\n", dir > "/dev/stderr"; started = 1 }
            if (tty) printf "\r\033[Kbuild.sh: %3d%% %s", percent, what > "/dev/stderr"
            else if (int(percent / 10) > last) {
                last = int(percent / 10)
                printf "build.sh: %3d%% %s\n", percent, what > "/dev/stderr"
            }
            fflush("/dev/stderr")
        }
        END { if (started && tty) printf "\r\033[Kbuild.sh: %s built\n", dir > "/dev/stderr" }'
}

if ! cmake -S "$root" -B "$build_dir" -DZFED_WERROR=ON "$@" >"$log" 2>&1 ||
    ! cmake --build "$build_dir" -j "$jobs" 2>&1 | progress; then
    cat "$log" >&2
    echo "build.sh: build failed in $build_dir" >&2
    exit 1
fi
