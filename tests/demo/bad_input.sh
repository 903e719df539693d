#!/bin/sh
# bad_input.sh DEMO IMAGE PATTERN: the demo must exit 1 with exactly one line of output, an
# error line matching PATTERN.
out=$("$1" --image "$2" 2>&1)
rc=$?
printf '%s\n' "$out"
[ "$rc" -eq 1 ] || { echo "bad_input.sh: exit status $rc, expected 1"; exit 1; }
[ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] || { echo "bad_input.sh: expected one line of output"; exit 1; }
printf '%s\n' "$out" | grep -q "^tandem-ocr: error: .*$3" || { echo "bad_input.sh: no error line matching '$3'"; exit 1; }
