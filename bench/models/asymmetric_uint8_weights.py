#!/usr/bin/env python3
"""Rewrites a dynamically quantized model (`tandem quantize --format dynamic`) with the weights
that asymmetric quantizers write: each ConvInteger and MatMulInteger weight dequantized, then
quantized again to uint8 with one scale and one zero point for the whole tensor (zero point
round(-min / scale), scale (max - min) / 255 over the weights and 0), the form ONNX Runtime's
dynamic quantization gives with `weight_type=QUInt8`. Their differences from the zero point
then leave int8, which is what the cpu backend's weight-offset route (qconv_offset.cpp) is for.

    python3 bench/models/asymmetric_uint8_weights.py IN.onnx OUT.onnx

Relies on the names `tandem quantize` gives (W_quantized, W_zero_point, W_scale). Prints how
many weights it rewrote and how many of them leave int8. Needs numpy and onnx (Debian's
python3-onnx).
"""
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    model = onnx.load(sys.argv[1])
    inits = {t.name: t for t in model.graph.initializer}

    def put(name, array):
        inits[name].CopyFrom(numpy_helper.from_array(array, name))

    rewritten = outside = 0
    for node in model.graph.node:
        if node.op_type not in ("ConvInteger", "MatMulInteger") or len(node.input) < 4:
            continue
        w_name, z_name = node.input[1], node.input[3]
        if not w_name.endswith("_quantized") or w_name not in inits or z_name not in inits:
            continue
        s_name = w_name[: -len("_quantized")] + "_scale"
        if s_name not in inits:
            continue
        w = numpy_helper.to_array(inits[w_name]).astype(np.float32)
        z = numpy_helper.to_array(inits[z_name]).astype(np.float32)
        s = numpy_helper.to_array(inits[s_name]).astype(np.float32)
        # Per-channel parameters lie along the output channels: Conv's first axis, MatMul's last.
        axis_shape = [-1] + [1] * (w.ndim - 1) if node.op_type == "ConvInteger" else [1] * (w.ndim - 1) + [-1]
        real = (w - (z.reshape(axis_shape) if z.size > 1 else z)) * (s.reshape(axis_shape) if s.size > 1 else s)
        lo, hi = min(float(real.min()), 0.0), max(float(real.max()), 0.0)
        scale = np.float32((hi - lo) / 255.0 if hi > lo else 1.0)
        zero_point = np.uint8(np.clip(np.round(-lo / scale), 0, 255))
        q = np.clip(np.round(real / scale) + zero_point, 0, 255).astype(np.uint8)
        put(w_name, q)
        put(z_name, np.array(zero_point, np.uint8))
        put(s_name, np.array(scale, np.float32).reshape([1] * s.ndim if s.size > 1 else []))
        d = q.astype(np.int32) - int(zero_point)
        rewritten += 1
        outside += int(d.min() < -128 or d.max() > 127)
    onnx.save(model, sys.argv[2])
    print(f"{rewritten} weights rewritten, {outside} with differences outside int8")


if __name__ == "__main__":
    main()
