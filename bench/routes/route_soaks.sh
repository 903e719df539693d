#!/usr/bin/env bash
# The route-chain soaks of the fast-fallback work: for each model, a soak with no faults and one
# with errors injected on cpu@bf16 (the chain cpu@bf16 -> cpu@fp32 -> reference), a hung
# cpu@bf16 under a deadline of 4x the fp32 median, and parity sampling under the default and
# an fp32 budget (random inputs; for det also the text page of tests/golden/det_text, whole and
# faded). Prints each soak's summary; writes JSON per soak into OUT.
#
# Usage: bench/routes/route_soaks.sh OUT [SECONDS_PER_SOAK] [PHASES]
#   PHASES: any of fallback,hang,parity (default all). Run on a quiet machine, after scripts/build.
#   MODELS=cls (or det) runs one model only.
#   On CPUs where bf16 products time slower than float32 (Intel without AMX), cpu@bf16 computes
#   in float32 (docs/cpu-backend.md); TANDEM_CPU_BF16=always makes it compute in bf16, which
#   the parity phase needs there to show violations under an fp32 budget.
set -euo pipefail
out=${1:?usage: route_soaks.sh OUT [SECONDS] [PHASES]}
secs=${2:-600}
phases=${3:-fallback,hang,parity}
root=$(cd "$(dirname "$0")/../.." && pwd)
tandem=${TANDEM:-$root/build/bin/tandem}
mkdir -p "$out"
chain=cpu@bf16,cpu@fp32,reference
common=(--threads 2 --engine-threads 1 --quiet)
det=("$root/models/ch_PP-OCRv4_det_infer.onnx" --shape x=1x3x640x640)
cls=("$root/models/ch_ppocr_mobile_v2.0_cls_infer.onnx" --shape x=1x3x48x192)

soak() {  # name, then soak arguments
  local name=$1; shift
  echo "== $name: tandem soak $*"
  "$tandem" soak "$@" "${common[@]}" --json "$out/$name.json" | tee "$out/$name.txt"
}
p50() { /usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['latency_ms']['p50'])" "$1"; }

if [[ $phases == *hang* ]]; then
  # The machine's own stalls: a hang soak's deadline is a few times a median, and a stall longer
  # than the slack fails a request whatever the chain does (see machine_stalls.py).
  "$root/bench/routes/machine_stalls.py" 30 1 1.3 5 | tee "$out/machine-stalls.txt"
fi
for m in ${MODELS:-det cls}; do
  declare -n model=$m
  if [[ $phases == *fallback* ]]; then
    soak "$m-healthy" "${model[@]}" --routes $chain --duration "$secs"
    soak "$m-faults" "${model[@]}" --routes $chain --inject route=cpu@bf16,error=0.3 --duration "$secs"
  fi
  if [[ $phases == *hang* ]]; then
    soak "$m-fp32" "${model[@]}" --routes cpu,reference --duration 30
    deadline=$(/usr/bin/python3 -c "print(round(4 * $(p50 "$out/$m-fp32.json"), 2))")
    soak "$m-hang" "${model[@]}" --routes $chain --inject route=cpu@bf16,hang=1.0 --deadline-ms "$deadline" \
      --duration $((secs / 2))
    soak "$m-deadline-healthy" "${model[@]}" --routes cpu,reference --deadline-ms "$deadline" --duration $((secs / 2))
  fi
  if [[ $phases == *parity* ]]; then
    soak "$m-parity-default" "${model[@]}" --routes $chain --parity-sample 0.1 --duration $((secs / 2))
    soak "$m-parity-fp32" "${model[@]}" --routes $chain --parity-sample 0.1 --parity-max-abs 1e-3 --parity-rmse 1e-4 \
      --duration $((secs / 2))
    if [[ $m == det ]]; then
      # A real text page, where bf16 moves the map most (beyond the bf16 budget), and the same
      # page faded to 6% contrast, where bf16's error (0.004-0.006 with the bf16 hand-off)
      # lies between the fp32 and bf16 budgets.
      page=$root/tests/golden/det_text/input_x.npy
      faint=$out/det_text_faint.npy
      /usr/bin/python3 -c "
import numpy as np, sys
page = np.load(sys.argv[1])
background = np.median(page.reshape(page.shape[1], -1), axis=1).reshape(1, -1, 1, 1)
np.save(sys.argv[2], np.ascontiguousarray(background + 0.06 * (page - background), dtype=np.float32))" "$page" "$faint"
      soak det-text-parity-default "${model[0]}" --input "x=$page" --routes $chain --parity-sample 0.1 \
        --duration $((secs / 2))
      soak det-faint-parity-default "${model[0]}" --input "x=$faint" --routes $chain --parity-sample 0.1 \
        --duration $((secs / 2))
      soak det-faint-parity-fp32 "${model[0]}" --input "x=$faint" --routes $chain --parity-sample 0.1 \
        --parity-max-abs 1e-3 --parity-rmse 1e-4 --duration $((secs / 2))
      # The bf16 precision alone (its default chain), sampled at 0.2: its budget, and 1e-5.
      soak det-faint-bf16-default "${model[0]}" --input "x=$faint" --precision bf16 --parity-sample 0.2 \
        --duration $((secs / 2))
      soak det-faint-bf16-1e-5 "${model[0]}" --input "x=$faint" --precision bf16 --parity-sample 0.2 \
        --parity-max-abs 1e-5 --duration $((secs / 2))
    fi
  fi
done
