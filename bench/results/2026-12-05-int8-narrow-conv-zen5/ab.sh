#!/bin/bash
# ab.sh "ENV_A" "ENV_B" PAIRS THREADS PRECISION MODEL SHAPE: alternating `tandem bench` runs of
# one model under two environments (e.g. a TANDEM_CPU_* switch off and on); prints each side's
# p50s, their medians and the ratio B / A. TANDEM names the binary (default build/bin/tandem).
A="$1"; B="$2"; P=$3; T=$4; PR=$5; M=$6; S=$7
BIN=${TANDEM:-build/bin/tandem}
for i in $(seq "$P"); do
  a=$(env $A "$BIN" bench "$M" --backend cpu --threads "$T" --precision "$PR" --shape "$S" --iters 20 --no-progress 2>&1 | awk '/latency ms/{print $6}')
  b=$(env $B "$BIN" bench "$M" --backend cpu --threads "$T" --precision "$PR" --shape "$S" --iters 20 --no-progress 2>&1 | awk '/latency ms/{print $6}')
  echo "$a $b"
done | python3 -c "
import sys,statistics
r=[tuple(map(float,l.split())) for l in sys.stdin]
a=[x for x,_ in r]; b=[y for _,y in r]
print('A', ' '.join(f'{x:.2f}' for x in a)); print('B', ' '.join(f'{x:.2f}' for x in b))
print(f'median A {statistics.median(a):.2f} B {statistics.median(b):.2f} ratio B/A {statistics.median(b)/statistics.median(a):.3f}; pairwise median {statistics.median([y/x for x,y in r]):.3f}')
"
