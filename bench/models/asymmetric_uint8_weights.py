#!/usr/bin/env python3
"""Rewrites a quantized model's convolution and matrix-product weights as asymmetric quantizers
write them: each weight dequantized, then quantized again to uint8 with one scale and one zero
point for the whole tensor (zero point round(-min / scale), scale (max - min) / 255 over the
weights and 0), the form ONNX Runtime's quantizer gives with `weight_type=QUInt8`; with
--per-channel, one scale and one zero point per output channel (`per_channel=True` there). Their differences from the zero point then leave int8,
which is what the cpu backend's weight-offset route (src/backends/cpu/qconv_offset.cpp) is for.

    python3 bench/models/asymmetric_uint8_weights.py IN.onnx OUT.onnx [--per-channel]

Takes the three formats `tandem quantize` writes:
  dynamic    ConvInteger / MatMulInteger weights (their scale is the initializer W_scale that
             the product's scale Mul reads, by the names `tandem quantize` gives)
  qoperator  QLinearConv weights (the int32 bias is rescaled to the new weight scale) and
             QLinearMatMul weights
  qdq        DequantizeLinear of constant weights read only by Conv or MatMul (as their weights)
Prints how many weights it rewrote and how many of them leave int8. Needs numpy and onnx
(Debian's python3-onnx).
"""
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def asymmetric(real, axis=None):
    """uint8 data, scale and zero point for float weights `real`: one scale and zero point for
    the tensor, or with `axis` one per index of that axis (arrays of that length)."""
    if axis is not None:
        moved = np.moveaxis(real, axis, 0)
        parts = [asymmetric(channel) for channel in moved]
        q = np.moveaxis(np.stack([p[0] for p in parts]), 0, axis)
        return q, np.array([p[1] for p in parts], np.float32), np.array([p[2] for p in parts], np.uint8)
    lo, hi = min(float(real.min()), 0.0), max(float(real.max()), 0.0)
    scale = np.float32((hi - lo) / 255.0 if hi > lo else 1.0)
    zero_point = np.uint8(np.clip(np.round(-lo / scale), 0, 255))
    q = np.clip(np.round(real / scale) + zero_point, 0, 255).astype(np.uint8)
    return q, scale, zero_point


def main():
    args = [a for a in sys.argv[1:] if a != "--per-channel"]
    per_channel = len(args) + 1 != len(sys.argv)
    if len(args) != 2:
        sys.exit(__doc__)
    model = onnx.load(args[0])
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    readers = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)

    def array(name):
        return numpy_helper.to_array(inits[name])

    def put(name, value):
        inits[name].CopyFrom(numpy_helper.from_array(value, name))

    def real_weights(w, s, z, leading):
        w, s, z = w.astype(np.float32), s.astype(np.float32), z.astype(np.float32)
        shape = [-1] + [1] * (w.ndim - 1) if leading else [1] * (w.ndim - 1) + [-1]
        return (w - (z.reshape(shape) if z.size > 1 else z)) * (s.reshape(shape) if s.size > 1 else s)

    done = set()
    ranges = []
    for node in graph.node:
        if node.op_type in ("ConvInteger", "MatMulInteger") and len(node.input) >= 4:
            w, z = node.input[1], node.input[3]
            s = w[: -len("_quantized")] + "_scale" if w.endswith("_quantized") else ""
            if w in done or not {w, z, s} <= inits.keys():
                continue
            conv = node.op_type == "ConvInteger"
            real = real_weights(array(w), array(s), array(z), conv)
            q, scale, zero_point = asymmetric(real, (0 if conv else 1) if per_channel else None)
            if per_channel:  # the scale keeps its per-channel shape ([O, 1, 1] or [N])
                shape = [-1] + [1] * (array(s).ndim - 1) if conv else [-1]
                put(s, scale.reshape(shape))
            else:
                put(s, np.array(scale, np.float32).reshape([1] * array(s).ndim if array(s).size > 1 else []))
        elif node.op_type == "QLinearConv" and len(node.input) >= 6:
            w, s, z = node.input[3], node.input[4], node.input[5]
            if w in done or not {w, s, z} <= inits.keys() or len(readers[w]) != 1:
                continue
            old_scale = array(s).astype(np.float64)
            real = real_weights(array(w), array(s), array(z), True)
            q, scale, zero_point = asymmetric(real, 0 if per_channel else None)
            put(s, np.array(scale, np.float32))
            if len(node.input) > 8 and node.input[8] in inits:  # bias in x_scale * w_scale units
                bias = array(node.input[8]).astype(np.float64)
                put(node.input[8], np.round(bias * old_scale / scale.astype(np.float64)).astype(np.int32))
        elif node.op_type == "QLinearMatMul" and len(node.input) >= 6:
            w, s, z = node.input[3], node.input[4], node.input[5]
            if w in done or not {w, s, z} <= inits.keys() or len(readers[w]) != 1 or array(w).ndim != 2:
                continue
            real = real_weights(array(w), array(s), array(z), False)
            q, scale, zero_point = asymmetric(real, 1 if per_channel else None)
            put(s, np.array(scale, np.float32))
        elif node.op_type == "DequantizeLinear" and len(node.input) >= 2:
            w, s = node.input[0], node.input[1]
            z = node.input[2] if len(node.input) > 2 else ""
            users = readers.get(node.output[0], [])
            if w in done or w not in inits or s not in inits or not users:
                continue
            if any(u.op_type not in ("Conv", "MatMul") or u.input[1] != node.output[0] for u in users):
                continue
            if len({u.op_type for u in users}) != 1 or (users[0].op_type == "MatMul" and array(w).ndim != 2):
                continue
            conv = users[0].op_type == "Conv"
            old_axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            zeros = array(z) if z in inits else np.zeros_like(array(s), np.int8)
            real = real_weights(array(w), array(s), zeros, old_axis == 0)
            axis = (0 if conv else 1) if per_channel else None
            q, scale, zero_point = asymmetric(real, axis)
            s_name, z_name = w + "_asymmetric_scale", w + "_asymmetric_zero_point"
            graph.initializer.extend([numpy_helper.from_array(np.array(scale, np.float32), s_name),
                                      numpy_helper.from_array(np.array(zero_point, np.uint8), z_name)])
            del node.input[1:]
            node.input.extend([s_name, z_name])
            for attribute in list(node.attribute):
                if attribute.name == "axis":
                    node.attribute.remove(attribute)
            if axis is not None:
                node.attribute.append(onnx.helper.make_attribute("axis", axis))
            z = None
        else:
            continue
        put(w, q)
        if z:
            put(z, np.array(zero_point, np.uint8))
        done.add(w)
        zp = zero_point.astype(np.int32)
        leading = node.op_type in ("ConvInteger", "QLinearConv") or (
            node.op_type == "DequantizeLinear" and readers[node.output[0]][0].op_type == "Conv")
        if zp.ndim and leading:  # per output channel: along the leading axis (else the last)
            zp = zp.reshape([-1] + [1] * (q.ndim - 1))
        d = q.astype(np.int32) - zp
        ranges.append((int(d.min()), int(d.max())))
    onnx.save(model, args[1])
    outside = sum(1 for lo, hi in ranges if lo < -128 or hi > 127)
    print(f"{len(ranges)} weights rewritten, {outside} with differences outside int8")


if __name__ == "__main__":
    main()
