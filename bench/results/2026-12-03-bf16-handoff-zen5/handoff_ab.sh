#!/bin/bash
# A/B of TANDEM_CPU_BF16_HANDOFF=1|0 on precision=bf16, alternating runs, median of each run's p50.
cd "$(git rev-parse --show-toplevel)"
for spec in det:ch_PP-OCRv4_det_infer:1x3x640x640:20 rec:ch_PP-OCRv4_rec_infer:1x3x48x320:50 cls:ch_ppocr_mobile_v2.0_cls_infer:1x3x48x192:200; do
  IFS=: read n f s it <<< "$spec"
  for t in 1 2; do
    on=(); off=()
    for p in 1 2 3 4 5; do
      for h in 1 0; do
        v=$(TANDEM_CPU_BF16_HANDOFF=$h build/bin/tandem bench models/$f.onnx --backend cpu --precision bf16 --shape x=$s --threads $t --iters $it --no-progress 2>&1 | sed -n 's/.*p50 \([0-9.]*\).*/\1/p')
        if [ $h = 1 ]; then on+=($v); else off+=($v); fi
      done
    done
    mon=$(printf '%s\n' "${on[@]}" | sort -n | sed -n 3p); moff=$(printf '%s\n' "${off[@]}" | sort -n | sed -n 3p)
    echo "$n ${t}t: hand-off $mon ms (${on[*]}), without $moff ms (${off[*]})"
  done
done
