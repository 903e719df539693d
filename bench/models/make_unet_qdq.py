#!/usr/bin/env python3
"""Writes a U-Net-style segmentation model and 8-bit forms of it as other tools write them, to
time tandem's 8-bit bilinear upsampling side by side with ONNX Runtime through bench/compare:

    python3 bench/models/make_unet_qdq.py OUT_DIR

  unet.onnx            float32: five residual U-blocks (3x3 convolutions, one dilated; 2x2 max
                       pooling with ceil_mode; bilinear Resize to the size of the skip map it
                       joins, read by Shape as PyTorch's interpolate(size=...) exports it;
                       channel Concat; residual Add), a sigmoid mask; input 1x3xHxW (symbolic)
  unet_qdq.onnx        the same in ONNX Runtime's QDQ layout: a QuantizeLinear/DequantizeLinear
                       pair on every activation that a Conv, MaxPool, Resize, Concat, Add or
                       Sigmoid reads, every reader (Shape included) reading the DequantizeLinear;
                       Relu after a Conv removed (its output quantized with zero point 0); MaxPool
                       and Resize outputs quantized as their inputs; Conv weights int8 per output
                       channel. Scales are fixed (0.05), not calibrated: a timing model.
  resize_qdq.onnx      DequantizeLinear -> Resize (linear, x2) -> QuantizeLinear on 1x64x256x256
                       uint8, the same quantization on both sides
  resize_requant.onnx  the same with another output scale
  resize_uint8.onnx    a uint8 Resize (linear, x2) of 1x64x256x256, as QOperator models keep it

Prints the bench/compare --models list. Needs numpy and onnx (Debian's python3-onnx).
"""
import pathlib
import sys

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh


class Net:
    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.count = [], [], 0

    def fresh(self, prefix):
        self.count += 1
        return f"{prefix}{self.count}"

    def const(self, prefix, array):
        name = self.fresh(prefix)
        self.inits.append(nh.from_array(array, name))
        return name

    def add(self, op, inputs, prefix, **attrs):
        out = self.fresh(prefix)
        self.nodes.append(h.make_node(op, inputs, [out], **attrs))
        return out

    def conv(self, x, cin, cout, dilation=1, relu=True):
        w = (self.rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2.0 / (cin * 9))).astype(np.float32)
        b = (self.rng.standard_normal(cout) * 0.1).astype(np.float32)
        y = self.add("Conv", [x, self.const("w", w), self.const("b", b)], "conv", kernel_shape=[3, 3],
                     dilations=[dilation, dilation], pads=[dilation] * 4)
        return self.add("Relu", [y], "relu") if relu else y

    def pool(self, x):
        return self.add("MaxPool", [x], "pool", kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)

    def upsample_like(self, x, like):
        # sizes = x's N and C, then like's H and W (PyTorch's interpolate(x, size=like.shape[2:]))
        nc = self.add("Slice", [self.add("Shape", [x], "shape"), self.const("i", np.array([0], np.int64)),
                                self.const("i", np.array([2], np.int64))], "nc")
        hw = self.add("Slice", [self.add("Shape", [like], "shape"), self.const("i", np.array([2], np.int64)),
                                self.const("i", np.array([4], np.int64))], "hw")
        sizes = self.add("Concat", [nc, hw], "sizes", axis=0)
        return self.add("Resize", [x, "", "", sizes], "up", mode="linear",
                        coordinate_transformation_mode="half_pixel")

    def block(self, x, cin, mid, cout):
        hx = self.conv(x, cin, cout)
        e1 = self.conv(hx, cout, mid)
        e2 = self.conv(self.pool(e1), mid, mid)
        e3 = self.conv(self.pool(e2), mid, mid)
        e4 = self.conv(e3, mid, mid, dilation=2)
        d3 = self.conv(self.add("Concat", [e4, e3], "cat", axis=1), 2 * mid, mid)
        d2 = self.conv(self.add("Concat", [self.upsample_like(d3, e2), e2], "cat", axis=1), 2 * mid, mid)
        d1 = self.conv(self.add("Concat", [self.upsample_like(d2, e1), e1], "cat", axis=1), 2 * mid, cout)
        return self.add("Add", [d1, hx], "add")


def unet():
    n = Net()
    s1 = n.block("x", 3, 16, 32)
    s2 = n.block(n.pool(s1), 32, 16, 64)
    s3 = n.block(n.pool(s2), 64, 32, 64)
    d2 = n.block(n.add("Concat", [n.upsample_like(s3, s2), s2], "cat", axis=1), 128, 16, 64)
    d1 = n.block(n.add("Concat", [n.upsample_like(d2, s1), s1], "cat", axis=1), 96, 16, 32)
    n.nodes.append(h.make_node("Sigmoid", [n.conv(d1, 32, 1, relu=False)], ["mask"]))
    g = h.make_graph(n.nodes, "unet", [h.make_tensor_value_info("x", T.FLOAT, [1, 3, "H", "W"])],
                     [h.make_tensor_value_info("mask", T.FLOAT, [1, 1, "H", "W"])], n.inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def ort_style_qdq(model):
    """The QDQ layout ONNX Runtime's quantization tool writes (see the module's docstring)."""
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    quantized_readers = {"Conv", "MaxPool", "Resize", "Concat", "Add", "Sigmoid"}
    # Relu after a Conv goes; its readers read the Conv, whose output keeps zero point 0.
    relu_of = {n.output[0]: n.input[0] for n in g.node
               if n.op_type == "Relu" and n.input[0] in producer and producer[n.input[0]].op_type == "Conv"}
    nodes = [n for n in g.node if not (n.op_type == "Relu" and n.output[0] in relu_of)]
    for n in nodes:
        for i, t in enumerate(n.input):
            if t in relu_of:
                n.input[i] = relu_of[t]
    nonnegative = set(relu_of.values())
    producer = {o: n for n in nodes for o in n.output}
    params, pairs, out, added = {}, {}, [], []

    def quant_params(t):
        if t not in params:
            p = producer.get(t)
            source = p.input[0].removesuffix("_dq") if p is not None else ""
            if p is not None and p.op_type in ("MaxPool", "Resize") and source in params:
                params[t] = params[source]  # outputs quantized as their inputs
            else:
                s, z = t + "_scale", t + "_zero"
                added.extend([nh.from_array(np.array(0.05, np.float32), s),
                              nh.from_array(np.array(0 if t in nonnegative else 128, np.uint8), z)])
                params[t] = (s, z)
        return params[t]

    def dequantized(t):
        if t not in pairs:
            s, z = quant_params(t)
            out.append(h.make_node("QuantizeLinear", [t, s, z], [t + "_q"]))
            out.append(h.make_node("DequantizeLinear", [t + "_q", s, z], [t + "_dq"]))
            pairs[t] = t + "_dq"
        return pairs[t]

    shape_nodes = []
    for n in nodes:
        if n.op_type in quantized_readers:
            data = [0] if n.op_type in ("Resize", "MaxPool", "Sigmoid") else range(len(n.input))
            for i in data:
                t = n.input[i]
                if not t or t in inits or (t in producer and producer[t].op_type in ("Shape", "Slice")):
                    continue
                if n.op_type == "Conv" and i > 0:
                    continue
                n.input[i] = dequantized(t)
            if n.op_type == "Conv":
                w = nh.to_array(inits[n.input[1]])
                scale = (np.abs(w).reshape(w.shape[0], -1).max(axis=1) / 127).astype(np.float32)
                q = np.round(w / scale[:, None, None, None]).astype(np.int8)
                name = n.input[1] + "_int8"
                added.extend([nh.from_array(q, name), nh.from_array(scale, name + "_scale"),
                              nh.from_array(np.zeros(w.shape[0], np.int8), name + "_zero")])
                out.append(h.make_node("DequantizeLinear", [name, name + "_scale", name + "_zero"], [name + "_dq"],
                                       axis=0))
                n.input[1] = name + "_dq"
        if n.op_type == "Shape":
            shape_nodes.append(n)
        out.append(n)
    for n in shape_nodes:  # every reader of a quantized tensor reads its DequantizeLinear
        if n.input[0] in pairs:
            n.input[0] = pairs[n.input[0]]
    # Topological order (a Shape now reads a DequantizeLinear made after it).
    known = {i.name for i in g.input} | set(inits) | {a.name for a in added}
    ordered, pending = [], out
    while pending:
        rest = []
        for n in pending:
            if all(not i or i in known for i in n.input):
                ordered.append(n)
                known.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            raise SystemExit("make_unet_qdq: the graph has a cycle")
        pending = rest
    del g.node[:]
    g.node.extend(ordered)
    g.initializer.extend(added)
    return model


def resize_model(kind):
    nodes, inits = [], [nh.from_array(np.array([1, 1, 2, 2], np.float32), "scales")]
    if kind == "uint8":
        nodes.append(h.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear"))
    else:
        inits += [nh.from_array(np.array(0.05, np.float32), "s"), nh.from_array(np.array(117, np.uint8), "z"),
                  nh.from_array(np.array(0.05 if kind == "qdq" else 0.06, np.float32), "s_out")]
        nodes += [h.make_node("DequantizeLinear", ["x", "s", "z"], ["xf"]),
                  h.make_node("Resize", ["xf", "", "scales"], ["yf"], mode="linear"),
                  h.make_node("QuantizeLinear", ["yf", "s_out", "z"], ["y"])]
    g = h.make_graph(nodes, "resize_" + kind, [h.make_tensor_value_info("x", T.UINT8, [1, 64, 256, 256])],
                     [h.make_tensor_value_info("y", T.UINT8, [1, 64, 512, 512])], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_unet_qdq.py OUT_DIR")
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    models = {"unet": unet(), "resize_qdq": resize_model("qdq"), "resize_requant": resize_model("requant"),
              "resize_uint8": resize_model("uint8")}
    models["unet_qdq"] = ort_style_qdq(unet())
    for name, m in models.items():
        onnx.checker.check_model(m)
        onnx.save(m, out / f"{name}.onnx")
    shapes = {"unet": "x=1x3x512x512", "unet_qdq": "x=1x3x512x512", "resize_qdq": "x=1x64x256x256",
              "resize_requant": "x=1x64x256x256", "resize_uint8": "x=1x64x256x256"}
    print(" ".join(f"{out / name}.onnx@{shape}" for name, shape in shapes.items()))


if __name__ == "__main__":
    main()
