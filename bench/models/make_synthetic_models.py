#!/usr/bin/env python3
"""Writes synthetic float32 models of architectures users run, with random weights, to time
whole networks side by side with ONNX Runtime through bench/compare:

    python3 bench/models/make_synthetic_models.py OUT_DIR

  encoder.onnx  a 4-layer transformer encoder (BERT-small sizes: 128 tokens of 384, 6 heads,
                FFN 1536) written as PyTorch exports it at opset 13: decomposed LayerNorm and
                exact Gelu, attention as MatMul/Softmax with an additive mask from an int64 input
  crnn.onnx     a CRNN text recognizer: a 5-layer conv backbone over a 1x3x32x320 line, then
                two bidirectional LSTM layers of 256 units each way and a 6625-class softmax
  decoder.onnx  a 4-layer GPT-style causal language model at opset 17 (128 tokens of 384, 6
                heads, vocabulary 8000): token embeddings gathered from int64 ids, positions from
                Range, fused QKV split three ways, a causal mask from Trilu and Where,
                LayerNormalization, tanh-approximated Gelu, logits from the tied embeddings
  detector.onnx a YOLO-style single-scale detector over 1x3x320x320: a strided conv backbone,
                an 85-channel head, boxes decoded from centre and size, class scores, then
                NonMaxSuppression and the kept boxes gathered (output length varies per input)

Prints the bench/compare --models list. Needs numpy and onnx (Debian's python3-onnx).
"""
import pathlib
import sys

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh


class Builder:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits = [], []
        self.count = 0

    def unique(self, prefix):
        """A fresh name: the prefix and a counter shared by every prefix."""
        self.count += 1
        return f"{prefix}{self.count}"

    def const(self, name, value):
        self.inits.append(nh.from_array(np.asarray(value), name))
        return name

    def weight(self, name, shape, scale):
        return self.const(name, (self.rng.standard_normal(shape) * scale).astype(np.float32))

    def node(self, op, inputs, outputs, **attrs):
        self.nodes.append(h.make_node(op, inputs, outputs, **attrs))
        return outputs[0]

    def save(self, path, name, inputs, outputs, opset=13):
        graph = h.make_graph(self.nodes, name, inputs, outputs, self.inits)
        model = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])
        onnx.checker.check_model(model)
        onnx.save(model, str(path))


def encoder(path, tokens=128, width=384, heads=6, ffn=1536, layers=4):
    b = Builder(0)
    dh = width // heads

    def layer_norm(x, p):
        mean = b.node("ReduceMean", [x], [p + "m"], axes=[-1])
        d = b.node("Sub", [x, mean], [p + "d"])
        sq = b.node("Pow", [d, b.const(p + "two", np.float32(2))], [p + "sq"])
        var = b.node("ReduceMean", [sq], [p + "v"], axes=[-1])
        std = b.node("Sqrt", [b.node("Add", [var, b.const(p + "eps", np.float32(1e-5))], [p + "e"])], [p + "s"])
        n = b.node("Div", [d, std], [p + "n"])
        g = b.node("Mul", [n, b.weight(p + "g", [width], 1.0)], [p + "g_"])
        return b.node("Add", [g, b.weight(p + "b", [width], 0.05)], [p + "o"])

    def linear(x, p, k, n):
        return b.node("Add", [b.node("MatMul", [x, b.weight(p + "w", [k, n], 0.05)], [p + "mm"]),
                              b.weight(p + "b", [n], 0.05)], [p])

    mask = b.node("Cast", [b.node("Unsqueeze", ["mask", b.const("ax12", np.array([1, 2], np.int64))], ["mu"])],
                  ["mf"], to=T.FLOAT)
    mask = b.node("Mul", [b.node("Sub", [b.const("one", np.float32(1)), mask], ["mi"]),
                          b.const("neg", np.float32(-10000))], ["madd"])
    x = "x"
    for l in range(layers):
        p = f"l{l}_"
        split = b.const(p + "split", np.array([1, tokens, heads, dh], np.int64))

        def heads_of(t, perm):
            return b.node("Transpose", [b.node("Reshape", [t, split], [t + "r"])], [t + "t"], perm=perm)

        q = heads_of(linear(x, p + "q", width, width), [0, 2, 1, 3])
        k = heads_of(linear(x, p + "k", width, width), [0, 2, 3, 1])
        v = heads_of(linear(x, p + "v", width, width), [0, 2, 1, 3])
        scores = b.node("Div", [b.node("MatMul", [q, k], [p + "qk"]), b.const(p + "sqrt", np.float32(np.sqrt(dh)))],
                        [p + "sc"])
        probs = b.node("Softmax", [b.node("Add", [scores, mask], [p + "scm"])], [p + "sm"], axis=-1)
        ctx = b.node("Transpose", [b.node("MatMul", [probs, v], [p + "ctx"])], [p + "ctxt"], perm=[0, 2, 1, 3])
        ctx = b.node("Reshape", [ctx, b.const(p + "join", np.array([1, tokens, width], np.int64))], [p + "ctxr"])
        x1 = layer_norm(b.node("Add", [linear(ctx, p + "o", width, width), x], [p + "res1"]), p + "ln1")
        f = linear(x1, p + "f1", width, ffn)
        erf = b.node("Erf", [b.node("Div", [f, b.const(p + "r2", np.float32(1.4142135))], [p + "gd"])], [p + "ge"])
        gelu = b.node("Mul", [b.node("Mul", [f, b.node("Add", [erf, b.const(p + "one", np.float32(1))], [p + "ga"])],
                                     [p + "gm"]), b.const(p + "half", np.float32(0.5))], [p + "gelu"])
        x = layer_norm(b.node("Add", [linear(gelu, p + "f2", ffn, width), x1], [p + "res2"]), p + "ln2")
    b.node("Identity", [x], ["y"])
    b.save(path, "encoder", [h.make_tensor_value_info("x", T.FLOAT, [1, tokens, width]),
                             h.make_tensor_value_info("mask", T.INT64, [1, tokens])],
           [h.make_tensor_value_info("y", T.FLOAT, [1, tokens, width])])
    return f"{path}@x=1x{tokens}x{width}@mask=1x{tokens}"


def crnn(path, hidden=256, classes=6625):
    b = Builder(1)
    x, ch = "x", 3
    for i, (co, stride) in enumerate([(64, (2, 2)), (128, (2, 1)), (256, (2, 2)), (256, (2, 1)), (256, (2, 1))]):
        conv = b.node("Conv", [x, b.weight(f"cw{i}", [co, ch, 3, 3], np.sqrt(2 / (ch * 9))), b.weight(f"cb{i}", [co], 0.01)],
                      [f"c{i}"], pads=[1, 1, 1, 1], strides=list(stride))
        x, ch = b.node("Relu", [conv], [f"r{i}"]), co
    x = b.node("Squeeze", [x, b.const("ax2", np.array([2], np.int64))], ["sq"])  # [1, 256, 80]
    x = b.node("Transpose", [x], ["seq"], perm=[2, 0, 1])  # [80, 1, 256]
    for l in range(2):
        features = 256 if l == 0 else 2 * hidden
        s = 1 / np.sqrt(hidden)
        zeros = np.zeros([2, 1, hidden], np.float32)
        y = b.node("LSTM", [x, b.weight(f"lw{l}", [2, 4 * hidden, features], s), b.weight(f"lr{l}", [2, 4 * hidden, hidden], s),
                            b.weight(f"lb{l}", [2, 8 * hidden], s), "", b.const(f"h{l}", zeros), b.const(f"cell{l}", zeros)],
                   [f"ly{l}", f"lh{l}", f"lc{l}"], hidden_size=hidden, direction="bidirectional")
        y = b.node("Transpose", [y], [f"lt{l}"], perm=[0, 2, 1, 3])  # [80, 1, 2, hidden]
        x = b.node("Reshape", [y, b.const(f"rs{l}", np.array([0, 0, -1], np.int64))], [f"lo{l}"])
    logits = b.node("Add", [b.node("MatMul", [x, b.weight("fc", [2 * hidden, classes], 0.05)], ["fcm"]),
                            b.weight("fcb", [classes], 0.01)], ["logits"])
    b.node("Softmax", [logits], ["y"], axis=-1)
    b.save(path, "crnn", [h.make_tensor_value_info("x", T.FLOAT, [1, 3, 32, 320])],
           [h.make_tensor_value_info("y", T.FLOAT, [80, 1, classes])])
    return f"{path}@x=1x3x32x320"


def decoder(path, tokens=128, width=384, heads=6, ffn=1536, layers=4, vocab=8000):
    b = Builder(2)
    dh = width // heads
    i64 = lambda *v: np.array(v, np.int64)
    embed = b.weight("wte", [vocab, width], 0.02)
    length = b.node("Gather", [b.node("Shape", ["ids"], ["ids_shape"]), b.const("one_i", np.int64(1))],
                    ["length"], axis=0)
    positions = b.node("Range", [b.const("zero_i", np.int64(0)), length, b.const("step_i", np.int64(1))], ["pos"])
    x = b.node("Add", [b.node("Gather", [embed, "ids"], ["tok"]),
                       b.node("Gather", [b.weight("wpe", [tokens, width], 0.01), positions], ["pe"])], ["x0"])
    square = b.node("Concat", [b.node("Unsqueeze", [length, b.const("ax0", i64(0))], ["len1"])] * 2, ["sq"], axis=0)
    ones = b.node("ConstantOfShape", [square], ["ones"], value=h.make_tensor("v", T.FLOAT, [1], [1.0]))
    causal = b.node("Cast", [b.node("Trilu", [ones], ["tril"], upper=0)], ["causal"], to=T.BOOL)
    lowest = b.const("lowest", np.float32(np.finfo(np.float32).min))

    def layer_norm(t, p):
        return b.node("LayerNormalization", [t, b.weight(p + "g", [width], 1.0), b.weight(p + "b", [width], 0.05)],
                      [p + "o"], axis=-1, epsilon=1e-5)

    def linear(t, p, k, n):
        return b.node("Add", [b.node("MatMul", [t, b.weight(p + "w", [k, n], 0.05)], [p + "mm"]),
                              b.weight(p + "b", [n], 0.05)], [p])

    split = b.const("heads", i64(1, -1, heads, dh))
    for l in range(layers):
        p = f"l{l}_"
        qkv = linear(layer_norm(x, p + "ln1"), p + "qkv", width, 3 * width)
        q, k, v = b.node("Split", [qkv, b.const(p + "parts", i64(width, width, width))],
                         [p + "q", p + "k", p + "v"], axis=-1), p + "k", p + "v"
        q, k, v = (b.node("Transpose", [b.node("Reshape", [t, split], [t + "r"])], [t + "t"], perm=perm)
                   for t, perm in ((q, [0, 2, 1, 3]), (k, [0, 2, 3, 1]), (v, [0, 2, 1, 3])))
        scores = b.node("Mul", [b.node("MatMul", [q, k], [p + "qk"]), b.const(p + "scale", np.float32(dh ** -0.5))],
                        [p + "sc"])
        probs = b.node("Softmax", [b.node("Where", [causal, scores, lowest], [p + "masked"])], [p + "sm"], axis=-1)
        ctx = b.node("Transpose", [b.node("MatMul", [probs, v], [p + "ctx"])], [p + "ctxt"], perm=[0, 2, 1, 3])
        ctx = b.node("Reshape", [ctx, b.const(p + "join", i64(1, -1, width))], [p + "ctxr"])
        x = b.node("Add", [linear(ctx, p + "o", width, width), x], [p + "res1"])
        f = linear(layer_norm(x, p + "ln2"), p + "f1", width, ffn)
        cube = b.node("Mul", [b.node("Pow", [f, b.const(p + "three", np.float32(3))], [p + "cube"]),
                              b.const(p + "c", np.float32(0.044715))], [p + "cubec"])
        inner = b.node("Mul", [b.node("Add", [f, cube], [p + "in"]), b.const(p + "gk", np.float32(np.sqrt(2 / np.pi)))],
                       [p + "ins"])
        gelu = b.node("Mul", [b.node("Mul", [f, b.const(p + "half", np.float32(0.5))], [p + "fh"]),
                              b.node("Add", [b.node("Tanh", [inner], [p + "th"]), b.const(p + "one", np.float32(1))],
                                     [p + "th1"])], [p + "gelu"])
        x = b.node("Add", [linear(gelu, p + "f2", ffn, width), x], [p + "res2"])
    x = layer_norm(x, "lnf")
    b.node("MatMul", [x, b.node("Transpose", [embed], ["wte_t"], perm=[1, 0])], ["logits"])
    b.save(path, "decoder", [h.make_tensor_value_info("ids", T.INT64, [1, tokens])],
           [h.make_tensor_value_info("logits", T.FLOAT, [1, tokens, vocab])], opset=17)
    return f"{path}@ids=1x{tokens}"


def detector(path, size=320, classes=80):
    b = Builder(3)
    x, ch = "x", 3
    for i, co in enumerate([16, 32, 64, 128, 256]):
        conv = b.node("Conv", [x, b.weight(f"cw{i}", [co, ch, 3, 3], np.sqrt(2 / (ch * 9))), b.weight(f"cb{i}", [co], 0.01)],
                      [f"c{i}"], pads=[1, 1, 1, 1], strides=[2, 2])
        x, ch = b.node("Mul", [conv, b.node("Sigmoid", [conv], [f"s{i}"])], [f"a{i}"]), co  # SiLU
    head = b.node("Conv", [x, b.weight("hw", [5 + classes, ch, 1, 1], 0.05), b.weight("hb", [5 + classes], 0.5)], ["head"])
    cells = (size // 32) ** 2
    pred = b.node("Transpose", [b.node("Reshape", [head, b.const("flat", np.array([1, 5 + classes, cells], np.int64))],
                                       ["headr"])], ["pred"], perm=[0, 2, 1])  # [1, cells, 85]
    pred = b.node("Sigmoid", [pred], ["preds"])

    def cols(lo, hi, name):
        return b.node("Slice", [pred, b.const(name + "s", np.array([lo], np.int64)), b.const(name + "e", np.array([hi], np.int64)),
                                b.const(name + "a", np.array([2], np.int64))], [name])

    grid = np.stack(np.meshgrid(np.arange(size // 32), np.arange(size // 32)), -1).reshape(1, cells, 2) * 32.0
    centre = b.node("Add", [b.node("Mul", [cols(0, 2, "xy"), b.const("stride", np.float32(64))], ["xy64"]),
                            b.const("grid", grid.astype(np.float32))], ["centre"])
    half = b.node("Mul", [cols(2, 4, "wh"), b.const("anchor", np.float32(64))], ["half"])
    boxes = b.node("Concat", [b.node("Sub", [centre, half], ["tl"]), b.node("Add", [centre, half], ["br"])], ["boxes"], axis=2)
    scores = b.node("Mul", [cols(5, 5 + classes, "cls"), cols(4, 5, "obj")], ["scores"])
    scores = b.node("Transpose", [scores], ["scores_t"], perm=[0, 2, 1])  # [1, classes, cells]
    keep = b.node("NonMaxSuppression", [boxes, scores, b.const("max_out", np.array([20], np.int64)),
                                        b.const("iou", np.array([0.45], np.float32)),
                                        b.const("thresh", np.array([0.25], np.float32))], ["keep"])
    box_index = b.node("Squeeze", [b.node("Slice", [keep, b.const("k2", np.array([2], np.int64)),
                                                    b.const("k3", np.array([3], np.int64)),
                                                    b.const("k1", np.array([1], np.int64))], ["keep2"]),
                                   b.const("sq1", np.array([1], np.int64))], ["box_index"])
    b.node("Gather", [boxes, box_index], ["kept_boxes"], axis=1)
    b.save(path, "detector", [h.make_tensor_value_info("x", T.FLOAT, [1, 3, size, size])],
           [h.make_tensor_value_info("kept_boxes", T.FLOAT, [1, None, 4]),
            h.make_tensor_value_info("keep", T.INT64, [None, 3])])
    return f"{path}@x=1x3x{size}x{size}"


def main():
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "synthetic_models")
    out.mkdir(parents=True, exist_ok=True)
    print(",".join([encoder(out / "encoder.onnx"), crnn(out / "crnn.onnx"), decoder(out / "decoder.onnx"),
                    detector(out / "detector.onnx")]))


if __name__ == "__main__":
    main()
