#!/usr/bin/env bash
# Checks that every loop of tests/vectorize/ew_math_loops.cpp (one per ew_math.h function) is
# vectorized with 64-byte vectors by the C++ compiler, with the cpu backend's flags.
#   tests/vectorize/ew_math_vectorizes.sh ROOT [CXX]
set -euo pipefail
root=${1:?usage: ew_math_vectorizes.sh ROOT [CXX]}
cxx=${2:-c++}
src="$root/tests/vectorize/ew_math_loops.cpp"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
report=$("$cxx" -std=c++17 -O3 -fno-math-errno -fno-trapping-math -I"$root/src" -c "$src" -o "$out" \
  -fopt-info-vec-optimized 2>&1)
loops=$(grep -c '^TANDEM_LOOP(' "$src")
vectorized=$(grep -c 'loop vectorized using 64 byte vectors' <<<"$report" || true)
if [ "$vectorized" -ne "$loops" ]; then
  echo "ew_math: $vectorized of $loops loops vectorized with 64-byte vectors:" >&2
  echo "$report" >&2
  exit 1
fi
echo "ew_math: all $loops loops vectorized"
