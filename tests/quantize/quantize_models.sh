#!/usr/bin/env bash
# Quantizes the three PaddleOCR models in every format (qdq, qoperator, dynamic; per-channel,
# minmax, calibrated on the golden input of tests/golden) and has outside tools judge the
# results: the ONNX checker (Debian's python3-onnx, full_check) must accept every quantized
# model, and ONNX Runtime (bench/peer, when installed) must run it
#   - close to its own outputs for the float32 model (bounds per model below: 8-bit
#     activations move det's probability map by up to ~0.9 on a few text-edge pixels, so det is
#     bounded by RMSE; cls's two-class softmax moves by up to ~0.05; rec and cls must keep
#     every argmax), and
#   - close to tandem's outputs for the same quantized file on the cpu backend (rounding to 8
#     bits can flip one step where the two runtimes' float sums differ in the last bit, and
#     flips compound over the layers, so the bounds are RMSE and max-abs, not bit equality).
# One more run covers per-tensor weights, the percentile method on random calibration inputs
# (unlike the images, hence looser bounds; every argmax must still hold) and an exclusion; bad
# requests must fail with one error line.
#
#   tests/quantize/quantize_models.sh TANDEM_BINARY SOURCE_DIR
set -euo pipefail
tandem=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

. "$src/tests/lib/script_env.sh"
python=$(find_python "import onnx, numpy" quantize_models) || exit 1
run_ort=$(ort_available "$src" quantize_models)
# Without VNNI, ONNX Runtime multiplies uint8 by int8 with vpmaddubsw, whose int16 pair sums
# saturate on full-range int8 weights (its documented limitation), so there its outputs are
# printed but not judged, and tandem's (exact integer products) are held to ONNX Runtime's
# bounds against the float32 model instead.
vnni=1
grep -qwE 'avx512_vnni|avx_vnni' /proc/cpuinfo 2>/dev/null || vnni=0

# Compares the .npy files of two folders: max-abs and RMSE bounds, and (when the last argument
# is "argmax") the same argmax over the last axis everywhere.
compare() {
  "$python" - "$@" <<'PY'
import os, sys, numpy as np
what, ref_dir, got_dir, max_abs_bound, rmse_bound = sys.argv[1:6]
argmax = len(sys.argv) > 6 and sys.argv[6] == "argmax"
bad = False
for f in sorted(os.listdir(ref_dir)):
    ref = np.load(os.path.join(ref_dir, f)).astype(np.float64)
    got = np.load(os.path.join(got_dir, f)).astype(np.float64)
    if ref.shape != got.shape:
        print(f"{what} {f}: shape {got.shape}, expected {ref.shape}")
        bad = True
        continue
    d = np.abs(got - ref)
    max_abs, rmse = float(d.max()), float(np.sqrt((d ** 2).mean()))
    agree = float((got.argmax(-1) == ref.argmax(-1)).mean()) * 100
    ok = max_abs <= float(max_abs_bound) and rmse <= float(rmse_bound) and (not argmax or agree == 100)
    print(f"{what} {f[:-4]}: max-abs {max_abs:.6g}, rmse {rmse:.6g}, argmax agreement {agree:.2f}% "
          f"({'within' if ok else 'OUTSIDE'} {max_abs_bound}, {rmse_bound}{', every argmax' if argmax else ''})")
    bad = bad or not ok
sys.exit(1 if bad else 0)
PY
}

check_model() {
  "$python" -c "import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)" "$1"
  echo "onnx.checker (full_check): ok"
}

# model file, golden folder, bounds against the float32 model (max-abs, RMSE, argmax or -),
# bounds of tandem cpu against ONNX Runtime on the same file (max-abs, RMSE)
cases=(
  "ch_PP-OCRv4_det_infer.onnx det_text 1 3e-2 - 1 3e-2"
  "ch_PP-OCRv4_rec_infer.onnx rec 0.2 2e-3 argmax 0.2 2e-3"
  "ch_ppocr_mobile_v2.0_cls_infer.onnx cls 8e-2 8e-2 argmax 3e-2 3e-2"
)

for c in "${cases[@]}"; do
  read -r model golden fp32_max fp32_rmse argmax ort_max ort_rmse <<<"$c"
  original="$src/models/$model"
  [ -s "$original" ] || { echo "quantize_models: $original is missing; run scripts/setup" >&2; exit 1; }
  stem=${model%.onnx}
  input="$src/tests/golden/$golden/input_x.npy"
  mkdir -p "$work/$stem.calibration"
  cp "$input" "$work/$stem.calibration/x.npy"
  ((run_ort)) && node "$src/bench/peer/ort_run.mjs" "$original" --input "x=$input" --output-dir "$work/$stem.ort32" --quiet
  # qdq-float-outputs: qdq written with --float-outputs (ONNX Runtime runs its Convs in float32).
  for format in qdq qoperator dynamic qdq-float-outputs; do
    quantized="$work/$stem.$format.onnx"
    echo "== $model ($format)"
    flags=(--format "$format")
    [ "$format" = qdq-float-outputs ] && flags=(--format qdq --float-outputs)
    "$tandem" quantize "$original" "${flags[@]}" --per-channel --calibration "$work/$stem.calibration" -o "$quantized"
    check_model "$quantized"
    "$tandem" run --backend cpu --input "x=$input" --output-dir "$work/$stem.$format.tandem" "$quantized" >/dev/null
    if ((run_ort)); then
      node "$src/bench/peer/ort_run.mjs" "$quantized" --input "x=$input" --output-dir "$work/$stem.$format.ort" --quiet 2>/dev/null
      if ((vnni)); then
        compare "onnxruntime against the float32 model:" "$work/$stem.ort32" "$work/$stem.$format.ort" "$fp32_max" "$fp32_rmse" "$argmax"
        compare "tandem cpu against onnxruntime:" "$work/$stem.$format.ort" "$work/$stem.$format.tandem" "$ort_max" "$ort_rmse"
      else
        compare "onnxruntime (no VNNI: not judged) against the float32 model:" "$work/$stem.ort32" "$work/$stem.$format.ort" "$fp32_max" "$fp32_rmse" "$argmax" || true
        compare "tandem cpu against the float32 model:" "$work/$stem.ort32" "$work/$stem.$format.tandem" "$fp32_max" "$fp32_rmse" "$argmax"
      fi
    fi
  done
done

# Per-tensor weights, percentile calibration on random inputs, one op type left in float32.
quantized="$work/rec.percentile.onnx"
echo "== ch_PP-OCRv4_rec_infer.onnx (qdq, per-tensor, percentile, --exclude-op MatMul)"
out=$("$tandem" quantize "$src/models/ch_PP-OCRv4_rec_infer.onnx" --method percentile --calibration-random 2 \
  --shape x=1x3x48x320 --exclude-op MatMul -o "$quantized")
echo "$out"
grep -q "quantized: 38 Conv;" <<<"$out" || { echo "quantize_models: expected exactly the 38 Conv nodes quantized" >&2; exit 1; }
grep -q "kept float32: 13 nodes" <<<"$out" || { echo "quantize_models: expected the 13 MatMul nodes kept" >&2; exit 1; }
check_model "$quantized"
if ((run_ort)); then
  node "$src/bench/peer/ort_run.mjs" "$quantized" --input "x=$src/tests/golden/rec/input_x.npy" --output-dir "$work/rec.percentile.ort" --quiet 2>/dev/null
  if ((vnni)); then
    compare "onnxruntime against the float32 model:" "$work/ch_PP-OCRv4_rec_infer.ort32" "$work/rec.percentile.ort" 1 1e-2 argmax
  else
    "$tandem" run --backend cpu --input "x=$src/tests/golden/rec/input_x.npy" --output-dir "$work/rec.percentile.tandem" "$quantized" >/dev/null
    compare "tandem cpu against the float32 model:" "$work/ch_PP-OCRv4_rec_infer.ort32" "$work/rec.percentile.tandem" 1 1e-2 argmax
  fi
fi

# Per-channel weights with mse ranges: the report says what equalization and bias correction did
# (rec's stem is its one Conv -> depthwise Conv value; every Conv and the MatMul + Add layers
# are corrected), and both can be turned off.
quantized="$work/rec.mse.onnx"
echo "== ch_PP-OCRv4_rec_infer.onnx (qdq, per-channel, mse)"
out=$("$tandem" quantize "$src/models/ch_PP-OCRv4_rec_infer.onnx" --method mse --per-channel --calibration-random 2 \
  --shape x=1x3x48x320 -o "$quantized")
echo "$out"
grep -q "^equalized: 1 activations" <<<"$out" || { echo "quantize_models: expected one equalized value" >&2; exit 1; }
grep -q "^bias correction: 47 nodes" <<<"$out" || { echo "quantize_models: expected 47 bias-corrected nodes" >&2; exit 1; }
check_model "$quantized"
"$tandem" run --backend cpu --input "x=$src/tests/golden/rec/input_x.npy" --output-dir "$work/rec.mse.tandem" "$quantized" >/dev/null
if ((run_ort)); then
  compare "tandem cpu (mse) against the float32 model:" "$work/ch_PP-OCRv4_rec_infer.ort32" "$work/rec.mse.tandem" 1 1e-2 argmax
fi
out=$("$tandem" quantize "$src/models/ch_PP-OCRv4_rec_infer.onnx" --per-channel --calibration-random 1 \
  --shape x=1x3x48x320 --no-equalization --no-bias-correction -o "$work/rec.plain.onnx")
if grep -qE "^(equalized|bias correction):" <<<"$out"; then
  echo "quantize_models: --no-equalization --no-bias-correction still adjusted the model" >&2
  exit 1
fi

# Bad requests: one error line on stderr, nothing on stdout, a non-zero exit.
cls="$src/models/ch_ppocr_mobile_v2.0_cls_infer.onnx"
mkdir -p "$work/stray"
cp "$src/tests/golden/cls/input_x.npy" "$work/stray/y.npy"
bad_requests=(
  "$cls --format int4 --calibration-random 1 --shape x=1x3x48x192"
  "$cls --method kl --calibration-random 1 --shape x=1x3x48x192"
  "$cls --method mse"
  "$cls --bias-correction always --calibration-random 1 --shape x=1x3x48x192"
  "$cls --format qoperator --float-outputs --calibration-random 1 --shape x=1x3x48x192"
  "$cls"
  "$cls --calibration-random 1"
  "$cls --calibration $work/stray"
  "$cls --calibration $work/absent"
  "$work/absent.onnx --format dynamic"
  "$cls --format dynamic --accuracy-target 0.01"
  "$cls --accuracy-target -1 --calibration-random 1 --shape x=1x3x48x192"
)
for args in "${bad_requests[@]}"; do
  set +e
  # shellcheck disable=SC2086
  "$tandem" quantize $args -o "$work/bad.onnx" >"$work/bad.out" 2>"$work/bad.err"
  rc=$?
  set -e
  lines=$(wc -l <"$work/bad.err")
  if [ "$rc" -eq 0 ] || [ "$lines" -ne 1 ] || [ -s "$work/bad.out" ]; then
    echo "quantize_models: 'tandem quantize $args' exited $rc with $lines error lines" >&2
    cat "$work/bad.err" >&2
    exit 1
  fi
  echo "refused ($rc): $(cat "$work/bad.err")"
done
echo "quantize_models: all quantized models pass"
