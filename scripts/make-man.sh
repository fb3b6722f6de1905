#!/usr/bin/env bash
# Writes a man page (section 1) for a zfed program from its --help and
# --version output, so the page never drifts from the program.
#
#   scripts/make-man.sh PROGRAM OUTPUT
#
# NAME is the first sentence of the help's description (the paragraph
# after "Usage:"), whole however many lines it spans.
set -euo pipefail
program=$1
output=$2
name=$(basename "$program")
version=$("$program" --version | awk 'NR == 1 {print $NF}')
help=$("$program" --help)
# awk reads the help to its end (no early exit): printf would otherwise get
# SIGPIPE once the help outgrows one write, and pipefail would fail the build.
summary=$(printf '%s\n' "$help" | awk 'NR == 1 || done { next } /^$/ { done = 1; next } { printf "%s ", $0 }' |
    sed 's/  */ /g; s/\([.!?]\) .*/\1/; s/ $//; s/\.$//')
{
    printf '.TH "%s" 1 "" "zfed %s" "User Commands"\n' "$(echo "$name" | tr a-z A-Z)" "$version"
    printf '.SH NAME\n%s \\- %s\n' "$name" "$(printf '%s' "$summary" | sed 's/\\/\\\\/g; s/^-/\\-/')"
    printf '.SH SYNOPSIS\n.B %s\n[\\fIOPTION\\fR]...\n' "$name"
    printf '.SH DESCRIPTION\n.nf\n'
    # Whole help text, verbatim: escape backslashes and leading dots/quotes.
    printf '%s\n' "$help" | tail -n +2 | sed 's/\\/\\e/g; s/^\([.'"'"']\)/\\\&\1/'
    printf '.fi\n.SH FILES\n'
    printf 'Installed with zfed in \\fIshare/doc/zfed/\\fR under its prefix:\n'
    printf '\\fBJOB.md\\fR (job files), \\fBWORKDIR.md\\fR (the work folder), '
    printf '\\fBPROTOCOL.md\\fR (the wire protocol), \\fBSECURITY.md\\fR (keys and CURVE) '
    printf 'and \\fBexamples/jobs/\\fR.\n'
    printf '.SH SEE ALSO\nzfed-broker(1), zfed-worker(1), zfed-controller(1), zfed-keygen(1), zfed-split(1), zfed-model(1)\n'
} >"$output"
