#!/usr/bin/env python3
"""Writes single-op ONNX models of realistic sizes, to time one op family at a time with
`tandem bench` or side by side with ONNX Runtime through bench/compare.

    python3 bench/ops/make_op_models.py OUT_DIR

Prints the bench/compare --models list (comma-separated PATH@NAME=DIMS entries). Activations are
1x64x112x112 float32 (a ResNet stem's size) unless the op needs another layout; every model has
opset 13 except where the op's form needs a later one. Needs numpy and onnx (Debian's
python3-onnx).
"""
import pathlib
import sys

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

X = [1, 64, 112, 112]


def main():
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "op_models")
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    specs = []

    def save(name, nodes, inputs, inits=(), outputs=("y",), opset=13):
        graph = h.make_graph(nodes, name, [h.make_tensor_value_info(n, T.FLOAT, s) for n, s in inputs],
                             [h.make_tensor_value_info(o, T.FLOAT, None) for o in outputs], list(inits))
        model = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])
        path = out / f"{name}.onnx"
        onnx.save(model, str(path))
        specs.append(f"{path}@" + "@".join(f"{n}={'x'.join(map(str, s))}" for n, s in inputs))

    def i64(name, values):
        return nh.from_array(np.array(values, np.int64), name)

    save("transpose", [h.make_node("Transpose", ["x"], ["y"], perm=[0, 2, 3, 1])], [("x", X)])
    save("split", [h.make_node("Split", ["x", "s"], ["a", "b"], axis=1)], [("x", X)], [i64("s", [32, 32])],
         outputs=("a", "b"))
    save("expand", [h.make_node("Expand", ["x", "s"], ["y"])], [("x", [1, 64, 1, 112])], [i64("s", X)])
    save("tile", [h.make_node("Tile", ["x", "r"], ["y"])], [("x", [1, 64, 56, 112])], [i64("r", [1, 1, 2, 1])])
    save("pad_reflect", [h.make_node("Pad", ["x", "p"], ["y"], mode="reflect")], [("x", X)],
         [i64("p", [0, 0, 2, 2, 0, 0, 2, 2])])
    save("depth_to_space", [h.make_node("DepthToSpace", ["x"], ["y"], blocksize=2)], [("x", X)])
    save("gather_rows", [h.make_node("Gather", ["x", "i"], ["y"], axis=1)], [("x", [1, 1000, 768])],
         [i64("i", rng.integers(0, 1000, size=[512]))])
    save("instance_norm", [h.make_node("InstanceNormalization", ["x", "g", "b"], ["y"])], [("x", X)],
         [nh.from_array(np.ones(64, np.float32), "g"), nh.from_array(np.zeros(64, np.float32), "b")])
    save("argmax_channels", [h.make_node("ArgMax", ["x"], ["i"], axis=1), h.make_node("Cast", ["i"], ["y"], to=1)],
         [("x", X)])
    save("greater_where", [h.make_node("Greater", ["x", "z"], ["c"]), h.make_node("Where", ["c", "x", "z"], ["y"])],
         [("x", X), ("z", X)])
    w = (rng.standard_normal([128, 4, 3, 3]) * 0.1).astype(np.float32)
    save("conv_32_groups", [h.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1], group=32)],
         [("x", [1, 128, 56, 56])], [nh.from_array(w, "w")])
    # Recurrent layers of the sizes sequence models use: a CRNN text recognizer's bidirectional
    # LSTM (80 steps of 512 features, 256 units each way, as PyTorch exports it: bias and zero
    # initial states given), a GRU of a speech model (batch 8, linear_before_reset as PyTorch
    # writes it) and a plain tanh RNN.
    def recurrent(name, op, gates, steps, batch, features, hidden, dirs, **attrs):
        def weights(shape):
            return (rng.standard_normal(shape) / np.sqrt(hidden)).astype(np.float32)
        inits = [nh.from_array(weights([dirs, gates * hidden, features]), "w"),
                 nh.from_array(weights([dirs, gates * hidden, hidden]), "r"),
                 nh.from_array(weights([dirs, 2 * gates * hidden]), "b"),
                 nh.from_array(np.zeros([dirs, batch, hidden], np.float32), "h0")]
        ins = ["x", "w", "r", "b", "", "h0"]
        if op == "LSTM":
            inits.append(nh.from_array(np.zeros([dirs, batch, hidden], np.float32), "c0"))
            ins.append("c0")
        direction = "bidirectional" if dirs == 2 else "forward"
        save(name, [h.make_node(op, ins, ["y", "yh"], hidden_size=hidden, direction=direction, **attrs)],
             [("x", [steps, batch, features])], inits, outputs=("y", "yh"))

    # Detection post-processing: the 100 best of 8400 boxes for each of 80 classes.
    save("topk", [h.make_node("TopK", ["x", "k"], ["y", "i"], axis=-1)], [("x", [1, 80, 8400])], [i64("k", [100])],
         outputs=("y",))
    # The opset-9 Upsample of older detectors' FPNs.
    save("upsample9", [h.make_node("Upsample", ["x", "s"], ["y"], mode="nearest")], [("x", [1, 64, 56, 56])],
         [nh.from_array(np.array([1, 1, 2, 2], np.float32), "s")], opset=9)
    # Attention written as Einsum (8 heads of 64 over 256 tokens): scores, the weighted sum, and
    # the scores of a [batch, tokens, heads, dim] layout, whose heads are not the outer dim.
    save("einsum_qk", [h.make_node("Einsum", ["a", "b"], ["y"], equation="bhqd,bhkd->bhqk")],
         [("a", [1, 8, 256, 64]), ("b", [1, 8, 256, 64])])
    save("einsum_av", [h.make_node("Einsum", ["a", "b"], ["y"], equation="bhqk,bhkd->bhqd")],
         [("a", [1, 8, 256, 256]), ("b", [1, 8, 256, 64])])
    save("einsum_bqhd", [h.make_node("Einsum", ["a", "b"], ["y"], equation="bqhd,bkhd->bhqk")],
         [("a", [1, 256, 8, 64]), ("b", [1, 256, 8, 64])])
    # Linear layers whose weight rows are a multiple of 1 KiB long: a BERT-base FFN and a
    # 384 -> 1024 projection (matmul.cpp lays such weights out with longer rows).
    for name, k, n in (("matmul_768x3072", 768, 3072), ("matmul_384x1024", 384, 1024)):
        save(name, [h.make_node("MatMul", ["x", "w"], ["y"])], [("x", [1, 128, k])],
             [nh.from_array((rng.standard_normal([k, n]) * 0.05).astype(np.float32), "w")])
    # YOLOv4's Conv + Mish, four layers of 64 channels at 80x80 (Mish is an op from opset 18).
    nodes, inits, x = [], [], "x"
    for i in range(4):
        inits += [nh.from_array((rng.standard_normal([64, 64, 3, 3]) * 0.06).astype(np.float32), f"w{i}"),
                  nh.from_array((rng.standard_normal(64) * 0.1).astype(np.float32), f"b{i}")]
        nodes += [h.make_node("Conv", [x, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1]),
                  h.make_node("Mish", [f"c{i}"], ["y" if i == 3 else f"m{i}"])]
        x = f"m{i}"
    save("conv_mish", nodes, [("x", [1, 64, 80, 80])], inits, opset=18)
    # Index ops of detector heads and decoders: the 100 best of 8400 boxes for 80 classes
    # gathered back, rows of a feature map overwritten, running sums, a causal mask.
    save("gather_elements", [h.make_node("GatherElements", ["x", "i"], ["y"], axis=2)], [("x", [1, 80, 8400])],
         [i64("i", rng.integers(0, 8400, size=[1, 80, 100]))])
    save("scatter_nd_rows", [h.make_node("ScatterND", ["x", "i", "u"], ["y"])], [("x", X[1:]), ("u", [16, 112, 112])],
         [i64("i", rng.permutation(64)[:16].reshape(16, 1))])
    save("cumsum", [h.make_node("CumSum", ["x", "a"], ["y"])], [("x", [8, 4096])], [i64("a", 1)])
    save("trilu", [h.make_node("Trilu", ["x"], ["y"], upper=0)], [("x", [8, 512, 512])], opset=14)
    recurrent("lstm_bidirectional", "LSTM", 4, 80, 1, 512, 256, 2)
    recurrent("gru_batch8", "GRU", 3, 100, 8, 256, 256, 1, linear_before_reset=1)
    recurrent("rnn_tanh", "RNN", 1, 100, 4, 128, 256, 1)
    print(",".join(specs))


if __name__ == "__main__":
    main()
