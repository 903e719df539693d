#!/usr/bin/env bash
# The accuracy of the 8-bit PaddleOCR det and rec models (issue 9): quantizes both in every
# format (qdq, qoperator, dynamic; per-channel weights, minmax) and measures the quantized model
# on tandem's cpu backend against the float32 model on inputs it was NOT calibrated on.
#
#   tests/quantize/accuracy.sh TANDEM_BINARY SOURCE_DIR
#
# Inputs (tests/quantize/accuracy_inputs.py; numpy's default_rng, so seeded and reproducible):
#   - calibration: 8 seeded pages (det, seeds 1000-1007) and 8 seeded text lines (rec, seeds
#     1000-1007), normalized like real images;
#   - evaluation: det on the synthetic text page (tests/golden/det_text) and seeded pages
#     (seeds 0-15); rec on its golden input (tests/golden/rec) and seeded text lines (seeds 0-15).
#     The evaluation seeds never calibrate.
# The float32 side: det on the reference backend (about 2.5 s per 160x160 page); rec on the cpu
# backend, after checking on the golden input that cpu is within 1e-4 of the reference backend
# (rec on the reference backend takes about 12 s per input on a loaded 2-core machine).
#
# Figures, one line per model and format:
#   det: max-abs and RMSE of the probability map on the text page, and over the seeded pages;
#        the issue's target is max-abs <= 5e-2 on both.
#   rec: argmax agreement over time steps (40 per input) on the golden input plus the seeded
#        lines; the target is >= 97%.
# Each line says whether it meets the target. The script fails (exit 1) only when a figure
# is outside the regression bounds below, which are the targets where they are met and, for det,
# where they are not, a bound just above today's figures (see docs/quantize.md, "Accuracy").
#
# Environment:
#   TANDEM_ACCURACY_FULL=1  the issue's full run: 16 seeded det pages and 16 seeded rec lines
#                           instead of 4 and 8, qdq without equalization and bias correction,
#                           with local bias correction only, with --float-outputs, and with
#                           the other calibration methods, and the rows with --accuracy-target (0.05 for
#                           det in every format, 0.2 for rec qdq; each quantizes every node alone
#                           once, a minute or more per row): about 10-15 minutes on 2 cores.
#                           ctest (quantize_accuracy, label slow) runs the short form: about 2
#                           minutes on 2 idle cores, up to 5 on loaded ones. The figures in
#                           docs/quantize.md are the full run.
#   TANDEM_ACCURACY_REDUCE_RANGE=1  also every format with --reduce-range (7-bit weights).
#   TANDEM_ACCURACY_SEEDED=N  N seeded evaluation inputs for each model instead (a larger N
#                           narrows the spread of the figures; rec runs fast on cpu).
#   TANDEM_ACCURACY_MODELS="rec"  only these of "det rec" (det's float32 side, on the reference
#                           backend, takes most of the time).
set -euo pipefail
tandem=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python=/usr/bin/python3
"$python" -c 'import numpy' 2>/dev/null || python=python3
"$python" -c 'import numpy' || { echo "accuracy: no python3 with numpy" >&2; exit 1; }

full=${TANDEM_ACCURACY_FULL:-0}
det_seeded=4
rec_seeded=8
if [ "$full" = 1 ]; then det_seeded=16; rec_seeded=16; fi
if [ -n "${TANDEM_ACCURACY_SEEDED:-}" ]; then det_seeded=$TANDEM_ACCURACY_SEEDED; rec_seeded=$TANDEM_ACCURACY_SEEDED; fi
models=" ${TANDEM_ACCURACY_MODELS:-det rec} "
wanted() { [[ "$models" == *" $1 "* ]]; }
# Regression bounds (see the header): det max-abs and RMSE on the text page and the seeded
# pages; rec argmax agreement in percent.
det_bound_max=1.0
det_bound_rmse=0.2
rec_bound_agree=93

gen="$src/tests/quantize/accuracy_inputs.py"
"$python" "$gen" det "$work/det.calibration" 1000 8
"$python" "$gen" rec "$work/rec.calibration" 1000 8
mkdir -p "$work/det.eval/text" "$work/rec.eval/golden"
cp "$src/tests/golden/det_text/input_x.npy" "$work/det.eval/text/x.npy"
cp "$src/tests/golden/rec/input_x.npy" "$work/rec.eval/golden/x.npy"
"$python" "$gen" det "$work/det.eval" 0 "$det_seeded"
"$python" "$gen" rec "$work/rec.eval" 0 "$rec_seeded"

det="$src/models/ch_PP-OCRv4_det_infer.onnx"
rec="$src/models/ch_PP-OCRv4_rec_infer.onnx"
for m in "$det" "$rec"; do [ -s "$m" ] || { echo "accuracy: $m is missing; run scripts/setup" >&2; exit 1; }; done

# run_all MODEL BACKEND EVAL_DIR OUT_DIR: one `tandem run` per input folder.
run_all() {
  local model=$1 backend=$2 eval=$3 out=$4
  for d in "$eval"/*/; do
    local name
    name=$(basename "$d")
    "$tandem" run --backend "$backend" --input "x=$d/x.npy" --output-dir "$out/$name" "$model" >/dev/null
  done
}

start=$SECONDS
if wanted det; then
  run_all "$det" reference "$work/det.eval" "$work/det.fp32"
  echo "det float32 on the reference backend: $((SECONDS - start)) s for $((det_seeded + 1)) inputs"
fi
"$tandem" run --backend reference --input "x=$work/rec.eval/golden/x.npy" --output-dir "$work/rec.golden.reference" "$rec" >/dev/null
run_all "$rec" cpu "$work/rec.eval" "$work/rec.fp32"
"$python" - "$work/rec.golden.reference" "$work/rec.fp32/golden" <<'PY'
import os, sys, numpy as np
a, b = (np.load(os.path.join(d, "softmax_11.tmp_0.npy")).astype(np.float64) for d in sys.argv[1:3])
d = float(np.abs(a - b).max())
print(f"rec float32: cpu against reference on the golden input: max-abs {d:.3g}")
sys.exit(0 if d <= 1e-4 else 1)
PY

# evaluate KIND LABEL FP32_DIR QUANTIZED_DIR: prints the figures; exit 1 outside the bounds.
evaluate() {
  "$python" - "$@" "$det_bound_max" "$det_bound_rmse" "$rec_bound_agree" <<'PY'
import os, sys, numpy as np
kind, label, ref_dir, got_dir, bmax, brmse, bagree = sys.argv[1:8]
out = "sigmoid_0.tmp_0.npy" if kind == "det" else "softmax_11.tmp_0.npy"
load = lambda d, n: np.load(os.path.join(d, n, out)).astype(np.float64)
names = sorted(os.listdir(ref_dir))
if kind == "det":
    text = np.abs(load(got_dir, "text") - load(ref_dir, "text"))
    seeded = [np.abs(load(got_dir, n) - load(ref_dir, n)) for n in names if n != "text"]
    t_max, t_rmse = text.max(), np.sqrt((text ** 2).mean())
    s_max = max(d.max() for d in seeded)
    s_rmse = np.sqrt(np.mean([(d ** 2).mean() for d in seeded]))
    # The share of pixels on the other side of 0.3, the threshold PaddleOCR's DB post-processing
    # binarizes the map at.
    flips = [np.mean((load(got_dir, n) > 0.3) != (load(ref_dir, n) > 0.3)) for n in names]
    meets = t_max <= 5e-2 and s_max <= 5e-2
    ok = max(t_max, s_max) <= float(bmax) and max(t_rmse, s_rmse) <= float(brmse)
    print(f"det {label:<28} text page max-abs {t_max:.3g} rmse {t_rmse:.3g} | {len(seeded)} seeded: max-abs {s_max:.3g} "
          f"rmse {s_rmse:.3g} | pixels flipped at 0.3: {100 * np.mean(flips):.2f}% | "
          f"{'MEETS' if meets else 'misses'} max-abs 5e-2")
else:
    agree = {n: (load(got_dir, n).argmax(-1) == load(ref_dir, n).argmax(-1)) for n in names}
    # The steps where the float32 model is sure (top-1 probability >= 0.5): flips elsewhere are
    # between near-tied classes.
    sure = {n: load(ref_dir, n).max(-1) >= 0.5 for n in names}
    steps = sum(a.size for a in agree.values())
    total = 100.0 * sum(a.sum() for a in agree.values()) / steps
    sure_steps = sum(s.sum() for s in sure.values())
    sure_agree = 100.0 * sum((agree[n] & sure[n]).sum() for n in names) / max(sure_steps, 1)
    golden = 100.0 * agree["golden"].mean()
    worst = min(100.0 * a.mean() for a in agree.values())
    ok = total >= float(bagree)
    print(f"rec {label:<28} argmax agreement {total:.2f}% of {steps} steps (golden {golden:.1f}%, worst input "
          f"{worst:.1f}%; {sure_agree:.2f}% of the {sure_steps} steps with float32 top-1 >= 0.5) | "
          f"{'MEETS' if total >= 97 else 'misses'} 97%")
if not ok:
    print(f"accuracy: {kind} {label} is outside the regression bounds", file=sys.stderr)
sys.exit(0 if ok else 1)
PY
}

status=0
# case KIND MODEL FORMAT [extra quantize options...]
case_() {
  local kind=$1 model=$2 format=$3
  shift 3
  wanted "$kind" || return 0
  local label="$format${*:+ $*}"
  local tag="$kind.$format${1:+.extra}"
  local begin=$SECONDS
  "$tandem" quantize "$model" --format "$format" --per-channel --calibration "$work/$kind.calibration" \
    -o "$work/$tag.onnx" "$@" >"$work/$tag.report"
  grep -E "^(accuracy target|kept float32)" "$work/$tag.report" | sed "s/^/  $kind $format: /" || true
  run_all "$work/$tag.onnx" cpu "$work/$kind.eval" "$work/$tag.out"
  # Rows that show the quantizer without an adjustment (unbounded=1) only inform.
  evaluate "$kind" "$label" "$work/$kind.fp32" "$work/$tag.out" || [ "${unbounded:-0}" = 1 ] || status=1
  echo "  ($((SECONDS - begin)) s)"
}

for format in qdq qoperator dynamic; do case_ det "$det" "$format"; done
for format in qdq qoperator dynamic; do case_ rec "$rec" "$format"; done
if [ "${TANDEM_ACCURACY_REDUCE_RANGE:-0}" = 1 ]; then
  for format in qdq qoperator dynamic; do case_ det "$det" "$format" --reduce-range; done
  for format in qdq qoperator dynamic; do case_ rec "$rec" "$format" --reduce-range; done
fi
if [ "$full" = 1 ]; then
  # What equalization and bias correction (on by default) bring, and the other calibration methods.
  for kind in det rec; do
    m=$det; [ "$kind" = rec ] && m=$rec
    unbounded=1 case_ "$kind" "$m" qdq --no-equalization --no-bias-correction
    unbounded=1 case_ "$kind" "$m" qdq --bias-correction local
    case_ "$kind" "$m" qdq --float-outputs
    case_ "$kind" "$m" qdq --method percentile
    case_ "$kind" "$m" qdq --method mse
  done
  for format in qdq qoperator dynamic; do case_ det "$det" "$format" --accuracy-target 0.05; done
  case_ rec "$rec" qdq --accuracy-target 0.2
fi
echo "accuracy: total $SECONDS s"
exit $status
