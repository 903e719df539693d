#!/usr/bin/env bash
# Constant folding at prepare: every initializer of the PaddleOCR models is rewritten as a
# run-time subgraph (rewrite_initializers.py); the rewritten model must fold back to plain
# weights (info --optimized reports the folding and places every node on cpu) and give the
# original's outputs on the cpu backend.
#   folding_test.sh TANDEM_BINARY SOURCE_DIR
set -euo pipefail
tandem=$1
src=$2
py=/usr/bin/python3  # Debian's python3-onnx (scripts/setup) lives with the system interpreter
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
while read -r model shape; do
  path="$src/models/$model.onnx"
  if [ ! -s "$path" ]; then echo "folding: $path is missing: run scripts/setup"; exit 1; fi
  rewritten="$work/$model.rewritten.onnx"
  "$py" "$src/tests/folding/rewrite_initializers.py" "$path" "$rewritten"
  info=$("$tandem" info --optimized --backend cpu --shape "$shape" "$rewritten")
  if ! grep -q "^folded at prepare: [1-9]" <<<"$info"; then
    echo "FAIL $model: nothing was folded"; status=1
  fi
  if grep -q "on reference:" <<<"$info"; then
    echo "FAIL $model: nodes left on reference after folding:"; grep -m5 "on reference:" <<<"$info"; status=1
  fi
  mkdir -p "$work/a" "$work/b"
  "$tandem" run --backend cpu --random-inputs --seed 7 --shape "$shape" --output-dir "$work/a" "$path" >/dev/null
  "$tandem" run --backend cpu --random-inputs --seed 7 --shape "$shape" --output-dir "$work/b" "$rewritten" >/dev/null
  if ! "$py" - "$work/a" "$work/b" <<'PY'
import os, sys
import numpy as np
a, b = sys.argv[1], sys.argv[2]
names = sorted(os.listdir(a))
assert names and names == sorted(os.listdir(b)), (names, os.listdir(b))
for n in names:
    x, y = np.load(os.path.join(a, n)), np.load(os.path.join(b, n))
    assert x.shape == y.shape and x.dtype == y.dtype, n
    err = float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))) if x.size else 0.0
    assert err <= 1e-5, f"{n}: max abs {err}"
PY
  then
    echo "FAIL $model: outputs differ from the original's"; status=1
  else
    echo "ok $model ($shape)"
  fi
  rm -rf "$work/a" "$work/b"
done <<'LIST'
ch_ppocr_mobile_v2.0_cls_infer x=1x3x48x192
ch_PP-OCRv4_rec_infer x=1x3x48x320
ch_PP-OCRv4_det_infer x=1x3x160x160
LIST
exit $status
