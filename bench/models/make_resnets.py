#!/usr/bin/env python3
"""Writes ResNet-18 and ResNet-50 (torchvision's layer sizes, random weights, BatchNormalization
kept as nodes as PyTorch exports it) at opset 13, to time them side by side with ONNX Runtime
through bench/compare:

    python3 bench/models/make_resnets.py OUT_DIR

Prints the bench/compare --models list (input x 1x3x224x224). Needs numpy and onnx (Debian's
python3-onnx).
"""
import pathlib
import sys

import numpy as np
from onnx import TensorProto as T
from onnx import helper as h

from make_synthetic_models import Builder


class ResNet:
    def __init__(self, seed):
        self.b = Builder(seed)
        self.name = self.b.unique

    def conv_bn(self, x, cin, cout, kernel, stride=1, relu=True):
        b, n = self.b, self.name("conv")
        y = b.node("Conv", [x, b.weight(n + "w", [cout, cin, kernel, kernel], np.sqrt(2 / (cin * kernel * kernel)))],
                   [n], kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[kernel // 2] * 4)
        stats = [b.const(n + s, v.astype(np.float32)) for s, v in
                 [("g", 1 + 0.1 * b.rng.standard_normal(cout)), ("b", 0.1 * b.rng.standard_normal(cout)),
                  ("m", 0.1 * b.rng.standard_normal(cout)), ("v", 1 + 0.1 * b.rng.random(cout))]]
        y = b.node("BatchNormalization", [y] + stats, [n + "bn"])
        return b.node("Relu", [y], [n + "r"]) if relu else y

    def block(self, x, cin, width, stride, bottleneck):
        cout = width * 4 if bottleneck else width
        if bottleneck:
            y = self.conv_bn(x, cin, width, 1)
            y = self.conv_bn(y, width, width, 3, stride)
            y = self.conv_bn(y, width, cout, 1, relu=False)
        else:
            y = self.conv_bn(x, cin, width, 3, stride)
            y = self.conv_bn(y, width, width, 3, relu=False)
        shortcut = x if stride == 1 and cin == cout else self.conv_bn(x, cin, cout, 1, stride, relu=False)
        n = self.name("add")
        return self.b.node("Relu", [self.b.node("Add", [y, shortcut], [n])], [n + "r"]), cout

    def save(self, path, depth):
        bottleneck, blocks = {18: (False, [2, 2, 2, 2]), 50: (True, [3, 4, 6, 3])}[depth]
        x = self.conv_bn("x", 3, 64, 7, 2)
        x = self.b.node("MaxPool", [x], ["pool"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
        ch = 64
        for stage, (width, count) in enumerate(zip([64, 128, 256, 512], blocks)):
            for i in range(count):
                x, ch = self.block(x, ch, width, 2 if stage > 0 and i == 0 else 1, bottleneck)
        x = self.b.node("Flatten", [self.b.node("GlobalAveragePool", [x], ["gap"])], ["flat"])
        self.b.node("Gemm", [x, self.b.weight("fc", [1000, ch], 1 / np.sqrt(ch)), self.b.weight("fcb", [1000], 0.01)],
                    ["y"], transB=1)
        self.b.save(path, f"resnet{depth}", [h.make_tensor_value_info("x", T.FLOAT, [1, 3, 224, 224])],
                    [h.make_tensor_value_info("y", T.FLOAT, [1, 1000])])
        return f"{path}@x=1x3x224x224"


def main():
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "resnets")
    out.mkdir(parents=True, exist_ok=True)
    print(",".join(ResNet(20 + depth).save(out / f"resnet{depth}.onnx", depth) for depth in (18, 50)))


if __name__ == "__main__":
    main()
