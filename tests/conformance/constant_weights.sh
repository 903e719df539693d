#!/usr/bin/env bash
# The ONNX conformance cases of the recurrent layers (LSTM, GRU, RNN) give the weights as graph
# inputs, which the cpu backend declines (it packs weights once, at compile). Exported models
# hold them as initializers: this rewrites each case so (every input but X becomes an
# initializer with its test value), checks that the whole node is placed on the cpu backend,
# and runs the cases against ONNX's expected outputs there.
#   tests/conformance/constant_weights.sh TANDEM_BINARY NODE_TESTDATA_DIR
set -euo pipefail
tandem=${1:?usage: constant_weights.sh TANDEM NODE_TESTDATA_DIR}
node_dir=${2:?usage: constant_weights.sh TANDEM NODE_TESTDATA_DIR}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 - "$node_dir" "$work" <<'PY'
import glob, os, sys
import onnx
from onnx import numpy_helper
node_dir, out_dir = sys.argv[1], sys.argv[2]
cases = [c for c in sorted(os.listdir(node_dir)) if c.split("_")[1] in ("lstm", "gru", "rnn", "simple")]
if not cases:
    sys.exit("no recurrent cases under " + node_dir)
for case in cases:
    model = onnx.load(os.path.join(node_dir, case, "model.onnx"))
    x = model.graph.node[0].input[0]
    data = os.path.join(node_dir, case, "test_data_set_0")
    inputs = [onnx.load_tensor(p) for p in sorted(glob.glob(os.path.join(data, "input_*.pb")))]
    target = os.path.join(out_dir, case, "test_data_set_0")
    os.makedirs(target)
    kept = []
    for info, tensor in zip(list(model.graph.input), inputs):
        if info.name == x:
            kept.append(info)
            tensor.name = x
            with open(os.path.join(target, "input_0.pb"), "wb") as f:
                f.write(tensor.SerializeToString())
        else:
            model.graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(tensor), info.name))
    del model.graph.input[:]
    model.graph.input.extend(kept)
    onnx.save(model, os.path.join(out_dir, case, "model.onnx"))
    for p in glob.glob(os.path.join(data, "output_*.pb")):
        with open(p, "rb") as src, open(os.path.join(target, os.path.basename(p)), "wb") as dst:
            dst.write(src.read())
print(f"{len(cases)} recurrent cases with constant weights")
PY
status=0
for case in "$work"/*/; do
  placement=$("$tandem" info "$case/model.onnx" --optimized | grep 'nodes per backend')
  if [[ "$placement" != *"nodes per backend: cpu 1 "* ]]; then
    echo "$(basename "$case"): not on the cpu backend: $placement"
    status=1
  fi
done
"$tandem" conformance --backend cpu "$work" || status=1
exit "$status"
