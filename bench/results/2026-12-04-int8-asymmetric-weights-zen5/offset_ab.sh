#!/usr/bin/env bash
# The weight-offset route on and off on the asymmetric uint8 files, alternating runs:
#   offset_ab.sh DIR_OF_FILES [ROUNDS]   (files from bench/models/asymmetric_uint8_weights.py,
#   named {det,rec,cls}_{qdq,qoperator,dynamic}_u8.onnx); prints each side's p50s.
set -euo pipefail
dir=${1:?usage: offset_ab.sh DIR [ROUNDS]}; rounds=${2:-2}
tandem=${TANDEM:-build/bin/tandem}
for spec in det:1x3x640x640 rec:1x3x48x320 cls:1x3x48x192; do
  m=${spec%%:*}; shape=${spec#*:}
  for f in qdq qoperator dynamic; do
    for t in 1 2; do
      on=""; off=""
      for r in $(seq "$rounds"); do
        for q in 1 0; do
          p=$(TANDEM_CPU_QOFFSET=$q "$tandem" bench "$dir/${m}_${f}_u8.onnx" --backend cpu --shape "x=$shape" \
                --threads "$t" --iters 10 --warmup 2 --no-progress | grep -oP 'p50 \K[0-9.]+')
          if [ "$q" = 1 ]; then on="$on $p"; else off="$off $p"; fi
        done
      done
      echo "${m}_${f}_u8 threads $t: offset on:$on | off:$off"
    done
  done
done
