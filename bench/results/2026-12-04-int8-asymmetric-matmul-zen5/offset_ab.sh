#!/usr/bin/env bash
# The weight-offset route on and off, alternating runs, on files rewritten by
# bench/models/asymmetric_uint8_weights.py (with and without --per-channel):
#   offset_ab.sh DIR [ROUNDS]
# DIR holds {det,rec,cls,encoder}_{qdq,qoperator,dynamic}_{u8,u8pc}.onnx (any subset); prints
# each side's p50s (ms) at one and two threads.
set -euo pipefail
dir=${1:?usage: offset_ab.sh DIR [ROUNDS]}; rounds=${2:-2}
tandem=${TANDEM:-build/bin/tandem}
for spec in det:x=1x3x640x640 rec:x=1x3x48x320 cls:x=1x3x48x192 encoder:x=1x128x384,mask=1x128; do
  m=${spec%%:*}; shapes=()
  IFS=, read -ra parts <<< "${spec#*:}"
  for p in "${parts[@]}"; do shapes+=(--shape "$p"); done
  for f in qdq qoperator dynamic; do
    for w in u8 u8pc; do
      file="$dir/${m}_${f}_${w}.onnx"
      [ -f "$file" ] || continue
      for t in 1 2; do
        on=""; off=""
        for r in $(seq "$rounds"); do
          for q in 1 0; do
            p=$(TANDEM_CPU_QOFFSET=$q "$tandem" bench "$file" --backend cpu "${shapes[@]}" \
                  --threads "$t" --iters 10 --warmup 2 --no-progress | grep -oP 'p50 \K[0-9.]+')
            if [ "$q" = 1 ]; then on="$on $p"; else off="$off $p"; fi
          done
        done
        echo "${m}_${f}_${w} threads $t: offset on:$on | off:$off"
      done
    done
  done
done
