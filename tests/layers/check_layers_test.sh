#!/usr/bin/env bash
# Proves that scripts/check-layers catches what it is for: it copies src/ and include/ into a
# scratch tree, which must pass as the real one does, then plants one violation of each rule
# and expects a non-zero exit with a line naming the file and the include.
#   tests/layers/check_layers_test.sh REPO_ROOT
set -euo pipefail
repo=${1:?usage: check_layers_test.sh REPO_ROOT}
check="$repo/scripts/check-layers"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

fresh_copy() {
  rm -rf "$scratch/tree" && mkdir -p "$scratch/tree"
  cp -r "$repo/src" "$repo/include" "$scratch/tree/"
}

fresh_copy
"$check" --root "$scratch/tree" >/dev/null || { echo "FAIL: the unmodified copy does not pass"; exit 1; }

# plant FILE INCLUDE EXPECTED-MESSAGE-FRAGMENT
plant() {
  fresh_copy
  printf '#include "%s"\n' "$2" >> "$scratch/tree/$1"
  set +e
  out=$("$check" --root "$scratch/tree" 2>&1)
  rc=$?
  set -e
  if [ "$rc" -eq 0 ]; then echo "FAIL: $1 including \"$2\" was not caught"; exit 1; fi
  if ! grep -q "^$1:[0-9]*: .*$3" <<<"$out"; then
    echo "FAIL: $1 including \"$2\": expected a line naming it with '$3', got:"; echo "$out"; exit 1
  fi
  echo "caught: $(grep "^$1:" <<<"$out" | head -1)"
}

plant src/graph/graph.cpp "backends/backend.h" "a layer above it"
plant src/core/tensor.cpp "engine/placement.h" "a layer above it"
plant src/kernels/conv.cpp "passes/shape_inference.h" "a layer above it"
plant src/backends/backend.h "tandem/engine.h" "a layer above it"
plant src/backends/cpu/conv.cpp "backends/reference/executor.h" "of backend 'reference'"
plant include/tandem/engine.h "engine/prepared_model.h" "a layer above it"
plant src/cli/main.cpp "engine/routes.h" "may use only tandem"
plant include/tandem/status.h "tandem/engine.h" "only vocabulary"
echo "check-layers catches every planted upward include"
