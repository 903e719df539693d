#!/usr/bin/env bash
# Keeps source files small enough to read (docs/architecture.md): no file under src/ over 900
# lines, none under src/backends/cpu/ over 600. Prints each offender and fails.
#   tests/layers/file_sizes.sh REPO_ROOT
set -euo pipefail
root=${1:?usage: file_sizes.sh REPO_ROOT}
cd "$root"
status=0
while read -r lines file; do
  limit=900
  case $file in src/backends/cpu/*) limit=600 ;; esac
  if [ "$lines" -gt "$limit" ]; then
    echo "$file: $lines lines (limit $limit): split it by role"
    status=1
  fi
done < <(find src include -type f \( -name '*.cpp' -o -name '*.h' -o -name '*.c' \) -exec wc -l {} + | grep -v ' total$')
[ "$status" -eq 0 ] && echo "every source file is within its size limit"
exit "$status"
