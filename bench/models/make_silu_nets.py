#!/usr/bin/env python3
"""Writes three convolutional networks built on SiLU (x * Sigmoid(x), written out as the two
nodes PyTorch exports), with random weights, at opset 13, to time them side by side with ONNX
Runtime through bench/compare:

    python3 bench/models/make_silu_nets.py OUT_DIR

  efficientnet.onnx  an EfficientNet-B0-style classifier over 1x3x224x224: MBConv blocks (1x1
                     expansion, 3x3 or 5x5 depthwise, squeeze-excite with GlobalAveragePool,
                     1x1 projection, residual where shapes allow), SiLU after every expansion
                     and depthwise convolution, Gemm and Softmax at the end
  yolo.onnx          a YOLOv8n-style detector over 1x3x640x640: C2f blocks (Split, bottlenecks,
                     Concat), SPPF (three chained 5x5 MaxPools), an FPN/PAN neck with nearest
                     Resize, three decoupled heads, and the distribution-focal box decoding
                     (Reshape, Transpose, Softmax, a 1x1 Conv of 0..15) into 1x84x8400
  vae_decoder.onnx   a Stable-Diffusion-VAE-style decoder from a 1x4x32x32 latent to 1x3x128x128:
                     residual blocks of GroupNorm (as PyTorch exports it: Reshape,
                     InstanceNormalization, Reshape, Mul, Add), SiLU and 3x3 convolutions at 256
                     and 128 channels, one spatial self-attention block (1x1 projections,
                     MatMul, Softmax over 1024 positions), two nearest 2x upsamplings

Prints the bench/compare --models list. Needs numpy and onnx (Debian's python3-onnx).
"""
import pathlib
import sys

import numpy as np
from onnx import TensorProto as T
from onnx import helper as h

from make_synthetic_models import Builder


class Net:
    def __init__(self, seed):
        self.b = Builder(seed)
        self.name = self.b.unique

    def silu(self, x):
        n = self.name("silu")
        return self.b.node("Mul", [x, self.b.node("Sigmoid", [x], [n + "s"])], [n])

    def conv(self, x, cin, cout, kernel, stride=1, group=1, act=True):
        b, n = self.b, self.name("conv")
        fan_in = cin // group * kernel * kernel
        y = b.node("Conv", [x, b.weight(n + "w", [cout, cin // group, kernel, kernel], np.sqrt(2 / fan_in)),
                            b.weight(n + "b", [cout], 0.05)], [n],
                   kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[kernel // 2] * 4, group=group)
        return self.silu(y) if act else y

    def i64(self, *values):
        return self.b.const(self.name("shape"), np.array(values, np.int64))


def efficientnet(path):
    net = Net(31)
    b = net.b
    x, ch = net.conv("x", 3, 32, 3, 2), 32
    # (expansion, output channels, repeats, stride, kernel) as in EfficientNet-B0
    for expand, out, repeats, stride, kernel in [(1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5),
                                                  (6, 80, 3, 2, 3), (6, 112, 3, 1, 5), (6, 192, 4, 2, 5),
                                                  (6, 320, 1, 1, 3)]:
        for i in range(repeats):
            s, hidden, y = stride if i == 0 else 1, ch * expand, x
            if expand != 1:
                y = net.conv(y, ch, hidden, 1)
            y = net.conv(y, hidden, hidden, kernel, s, group=hidden)
            squeeze = max(1, ch // 4)
            se = b.node("GlobalAveragePool", [y], [net.name("gap")])
            se = net.conv(se, hidden, squeeze, 1)
            se = b.node("Sigmoid", [net.conv(se, squeeze, hidden, 1, act=False)], [net.name("gate")])
            y = b.node("Mul", [y, se], [net.name("excite")])
            y = net.conv(y, hidden, out, 1, act=False)
            x = b.node("Add", [x, y], [net.name("res")]) if s == 1 and ch == out else y
            ch = out
    x = net.conv(x, ch, 1280, 1)
    x = b.node("Flatten", [b.node("GlobalAveragePool", [x], ["pool"])], ["flat"])
    x = b.node("Gemm", [x, b.weight("fc", [1000, 1280], 0.03), b.weight("fcb", [1000], 0.01)], ["fc_out"], transB=1)
    b.node("Softmax", [x], ["y"], axis=1)
    b.save(path, "efficientnet", [h.make_tensor_value_info("x", T.FLOAT, [1, 3, 224, 224])],
           [h.make_tensor_value_info("y", T.FLOAT, [1, 1000])])
    return f"{path}@x=1x3x224x224"


def yolo(path):
    net = Net(32)
    b = net.b

    def c2f(x, cin, cout, blocks, shortcut=True):
        c = cout // 2
        a, y = net.name("half"), net.name("half")
        b.node("Split", [net.conv(x, cin, 2 * c, 1), net.i64(c, c)], [a, y], axis=1)
        outs = [a, y]
        for _ in range(blocks):
            t = net.conv(net.conv(y, c, c, 3), c, c, 3)
            y = b.node("Add", [y, t], [net.name("res")]) if shortcut else t
            outs.append(y)
        return net.conv(b.node("Concat", outs, [net.name("cat")], axis=1), (2 + blocks) * c, cout, 1)

    def sppf(x, cin, cout):
        c = cin // 2
        x = net.conv(x, cin, c, 1)
        pools = [x]
        for _ in range(3):
            pools.append(b.node("MaxPool", [pools[-1]], [net.name("pool")], kernel_shape=[5, 5], pads=[2] * 4))
        return net.conv(b.node("Concat", pools, [net.name("cat")], axis=1), 4 * c, cout, 1)

    def up(x):
        return b.node("Resize", [x, "", b.const(net.name("scales"), np.array([1, 1, 2, 2], np.float32))],
                      [net.name("up")], mode="nearest")

    w = [16, 32, 64, 128, 256]
    x = net.conv(net.conv("x", 3, w[0], 3, 2), w[0], w[1], 3, 2)
    x = c2f(x, w[1], w[1], 1)
    p3 = c2f(net.conv(x, w[1], w[2], 3, 2), w[2], w[2], 2)
    p4 = c2f(net.conv(p3, w[2], w[3], 3, 2), w[3], w[3], 2)
    p5 = sppf(c2f(net.conv(p4, w[3], w[4], 3, 2), w[4], w[4], 1), w[4], w[4])
    n4 = c2f(b.node("Concat", [up(p5), p4], [net.name("cat")], axis=1), w[4] + w[3], w[3], 1, False)
    n3 = c2f(b.node("Concat", [up(n4), p3], [net.name("cat")], axis=1), w[3] + w[2], w[2], 1, False)
    m4 = c2f(b.node("Concat", [net.conv(n3, w[2], w[2], 3, 2), n4], [net.name("cat")], axis=1), w[2] + w[3], w[3], 1,
             False)
    m5 = c2f(b.node("Concat", [net.conv(m4, w[3], w[3], 3, 2), p5], [net.name("cat")], axis=1), w[3] + w[4], w[4], 1,
             False)
    heads = []
    for feature, ch in ((n3, w[2]), (m4, w[3]), (m5, w[4])):
        box = net.conv(net.conv(net.conv(feature, ch, 64, 3), 64, 64, 3), 64, 64, 1, act=False)
        cls = net.conv(net.conv(net.conv(feature, ch, 80, 3), 80, 80, 3), 80, 80, 1, act=False)
        heads.append(b.node("Reshape", [b.node("Concat", [box, cls], [net.name("head")], axis=1), net.i64(1, 144, -1)],
                            [net.name("flat")]))
    b.node("Split", [b.node("Concat", heads, ["anchors"], axis=2), net.i64(64, 80)], ["box", "cls"], axis=1)
    d = b.node("Transpose", [b.node("Reshape", ["box", net.i64(1, 4, 16, -1)], ["dist"])], ["dist_t"], perm=[0, 2, 1, 3])
    d = b.node("Conv", [b.node("Softmax", [d], ["dist_p"], axis=1),
                        b.const("bins", np.arange(16, dtype=np.float32).reshape(1, 16, 1, 1))], ["dist_e"])
    d = b.node("Reshape", [d, net.i64(1, 4, -1)], ["ltrb"])
    b.node("Concat", [d, b.node("Sigmoid", ["cls"], ["scores"])], ["y"], axis=1)
    b.save(path, "yolo", [h.make_tensor_value_info("x", T.FLOAT, [1, 3, 640, 640])],
           [h.make_tensor_value_info("y", T.FLOAT, [1, 84, 8400])])
    return f"{path}@x=1x3x640x640"


def vae_decoder(path, latent=32):
    net = Net(33)
    b = net.b

    def group_norm(x, ch, side, groups=32):
        y = b.node("Reshape", [x, net.i64(1, groups, -1)], [net.name("grouped")])
        y = b.node("InstanceNormalization", [y, b.const(net.name("ones"), np.ones(groups, np.float32)),
                                             b.const(net.name("zeros"), np.zeros(groups, np.float32))],
                   [net.name("inorm")], epsilon=1e-5)
        y = b.node("Reshape", [y, net.i64(1, ch, side, side)], [net.name("ungrouped")])
        y = b.node("Mul", [y, b.const(net.name("gamma"), (1 + 0.1 * b.rng.standard_normal([ch, 1, 1])).astype(np.float32))],
                   [net.name("scaled")])
        return b.node("Add", [y, b.weight(net.name("beta"), [ch, 1, 1], 0.1)], [net.name("shifted")])

    def res_block(x, ch, side):
        y = net.conv(net.silu(group_norm(x, ch, side)), ch, ch, 3, act=False)
        y = net.conv(net.silu(group_norm(y, ch, side)), ch, ch, 3, act=False)
        return b.node("Add", [x, y], [net.name("res")])

    def attention(x, ch, side):
        y, n = group_norm(x, ch, side), side * side
        q = b.node("Transpose", [b.node("Reshape", [net.conv(y, ch, ch, 1, act=False), net.i64(1, ch, n)],
                                        [net.name("q")])], [net.name("qt")], perm=[0, 2, 1])
        k = b.node("Reshape", [net.conv(y, ch, ch, 1, act=False), net.i64(1, ch, n)], [net.name("k")])
        v = b.node("Reshape", [net.conv(y, ch, ch, 1, act=False), net.i64(1, ch, n)], [net.name("v")])
        scores = b.node("Mul", [b.node("MatMul", [q, k], [net.name("qk")]),
                                b.const(net.name("scale"), np.float32(ch ** -0.5))], [net.name("scores")])
        probs = b.node("Softmax", [scores], [net.name("probs")], axis=-1)
        out = b.node("MatMul", [v, b.node("Transpose", [probs], [net.name("pt")], perm=[0, 2, 1])], [net.name("ctx")])
        out = b.node("Reshape", [out, net.i64(1, ch, side, side)], [net.name("ctx_img")])
        return b.node("Add", [x, net.conv(out, ch, ch, 1, act=False)], [net.name("attn")])

    ch, side = 256, latent
    x = net.conv("x", 4, ch, 3, act=False)
    x = res_block(attention(res_block(x, ch, side), ch, side), ch, side)
    for _ in range(2):
        x = res_block(x, ch, side)
        x = b.node("Resize", [x, "", b.const(net.name("scales"), np.array([1, 1, 2, 2], np.float32))], [net.name("up")],
                   mode="nearest")
        side *= 2
        x = net.conv(x, ch, ch, 3, act=False)
    x = res_block(net.conv(x, ch, 128, 3, act=False), 128, side)
    y = net.conv(net.silu(group_norm(x, 128, side)), 128, 3, 3, act=False)
    b.node("Identity", [y], ["y"])
    b.save(path, "vae_decoder", [h.make_tensor_value_info("x", T.FLOAT, [1, 4, latent, latent])],
           [h.make_tensor_value_info("y", T.FLOAT, [1, 3, side, side])])
    return f"{path}@x=1x4x{latent}x{latent}"


def main():
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "silu_nets")
    out.mkdir(parents=True, exist_ok=True)
    print(",".join([efficientnet(out / "efficientnet.onnx"), yolo(out / "yolo.onnx"),
                    vae_decoder(out / "vae_decoder.onnx")]))


if __name__ == "__main__":
    main()
