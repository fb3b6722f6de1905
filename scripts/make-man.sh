#!/usr/bin/env bash
# Writes a man page (section 1) for a zfed program from its --help and
# --version output, so the page never drifts from the program.
#
#   scripts/make-man.sh PROGRAM OUTPUT
set -euo pipefail
program=$1
output=$2
name=$(basename "$program")
version=$("$program" --version | head -n 1 | awk '{print $NF}')
help=$("$program" --help)
summary=$(printf '%s\n' "$help" | sed -n '2p')
{
    printf '.TH "%s" 1 "" "zfed %s" "User Commands"\n' "$(echo "$name" | tr a-z A-Z)" "$version"
    printf '.SH NAME\n%s \\- %s\n' "$name" "$(printf '%s' "$summary" | sed 's/\\/\\\\/g; s/^-/\\-/')"
    printf '.SH SYNOPSIS\n.B %s\n[\\fIOPTION\\fR]...\n' "$name"
    printf '.SH DESCRIPTION\n.nf\n'
    # Whole help text, verbatim: escape backslashes and leading dots/quotes.
    printf '%s\n' "$help" | tail -n +2 | sed 's/\\/\\e/g; s/^\([.'"'"']\)/\\\&\1/'
    printf '.fi\n.SH SEE ALSO\nzfed-broker(1), zfed-worker(1), zfed-controller(1), zfed-keygen(1), zfed-split(1)\n'
} >"$output"
