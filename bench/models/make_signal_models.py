#!/usr/bin/env python3
"""Writes synthetic float32 models built on 1-D and 3-D convolutions, with random weights, to
time them side by side with ONNX Runtime through bench/compare:

    python3 bench/models/make_signal_models.py OUT_DIR

  speech.onnx   a wav2vec-style speech encoder over one second of 16 kHz audio: five strided
                1-D convolutions of 256 channels with exact Gelu (the first with instance
                normalization), LayerNormalization, a projection to 384 and a grouped 1-D
                positional convolution added back, at opset 17
  vocoder.onnx  a HiFi-GAN-style vocoder from 64 frames of an 80-band mel spectrogram: three
                ConvTranspose upsamplings (x8, x8, x2) from 256 channels down to 32, each
                followed by three residual dilated 1-D convolutions with LeakyRelu, then Tanh
  video.onnx    a C3D-style video classifier over 16 frames of 56x56: four 3x3x3 convolutions
                with Relu (two strided), global average pooling
  listener.onnx a Whisper-tiny-style audio encoder over 30 s of an 80-band mel spectrogram
                (1x80x3000): two 1-D convolutions of 384 with exact Gelu (the second strided),
                positions added, four pre-norm transformer layers (6 heads over 1500 frames,
                attention as MatMul/Softmax, FFN 1536), LayerNormalization, at opset 17

Prints the bench/compare --models list. Needs numpy and onnx (Debian's python3-onnx).
"""
import pathlib
import sys

import numpy as np
from onnx import TensorProto as T
from onnx import helper as h

from make_synthetic_models import Builder


def conv(b, name, x, cin, cout, kernel, dims=1, bias=True, **attrs):
    inputs = [x, b.weight(name + "w", [cout, cin // attrs.get("group", 1)] + [kernel] * dims,
                          np.sqrt(2 / (cin // attrs.get("group", 1) * kernel ** dims)))]
    if bias:
        inputs.append(b.weight(name + "b", [cout], 0.05))
    return b.node("Conv", inputs, [name], kernel_shape=[kernel] * dims, **attrs)


def gelu(b, name, x):
    erf = b.node("Erf", [b.node("Div", [x, b.const(name + "r2", np.float32(np.sqrt(2)))], [name + "d"])], [name + "e"])
    half = b.node("Mul", [x, b.const(name + "h", np.float32(0.5))], [name + "m"])
    return b.node("Mul", [half, b.node("Add", [erf, b.const(name + "1", np.float32(1))], [name + "a"])], [name])


def speech(path, samples=16000, width=256, model=384):
    b = Builder(11)
    x, ch = b.node("Unsqueeze", ["x", b.const("axis1", np.array([1], np.int64))], ["wave"]), 1
    for i, (kernel, stride) in enumerate([(10, 5), (3, 2), (3, 2), (3, 2), (2, 2)]):
        x = conv(b, f"c{i}", x, ch, width, kernel, bias=False, strides=[stride])
        if i == 0:
            x = b.node("InstanceNormalization", [x, b.const("gn_s", np.ones(width, np.float32)),
                                                 b.const("gn_b", np.zeros(width, np.float32))], ["gn"])
        x, ch = gelu(b, f"g{i}", x), width
    x = b.node("Transpose", [x], ["frames"], perm=[0, 2, 1])
    x = b.node("LayerNormalization", [x, b.const("ln_s", np.ones(ch, np.float32)), b.const("ln_b", np.zeros(ch, np.float32))],
               ["ln"], axis=-1)
    x = b.node("MatMul", [x, b.weight("proj", [ch, model], 1 / np.sqrt(ch))], ["projected"])
    pos = b.node("Transpose", [x], ["channels"], perm=[0, 2, 1])
    pos = conv(b, "pos", pos, model, model, 16, group=16, pads=[8, 8])
    pos = b.node("Slice", [pos, b.const("s0", np.array([0], np.int64)), b.const("s1", np.array([-1], np.int64)),
                           b.const("s2", np.array([2], np.int64))], ["pos_cut"])
    pos = b.node("Transpose", [gelu(b, "pos_g", pos)], ["pos_t"], perm=[0, 2, 1])
    b.node("Add", [x, pos], ["y"])
    b.save(path, "speech", [h.make_tensor_value_info("x", T.FLOAT, [1, samples])],
           [h.make_tensor_value_info("y", T.FLOAT, [1, None, model])], opset=17)
    return f"{path}@x=1x{samples}"


def vocoder(path, frames=64, mels=80):
    b = Builder(12)
    x, ch = conv(b, "pre", "x", mels, 256, 7, pads=[3, 3]), 256
    for i, (out, kernel, stride) in enumerate([(128, 16, 8), (64, 16, 8), (32, 4, 2)]):
        x = b.node("LeakyRelu", [x], [f"up{i}_a"], alpha=0.1)
        w = b.weight(f"up{i}w", [ch, out, kernel], np.sqrt(stride / (ch * kernel)))
        x = b.node("ConvTranspose", [x, w, b.weight(f"up{i}b", [out], 0.05)], [f"up{i}"], kernel_shape=[kernel],
                   strides=[stride], pads=[(kernel - stride) // 2] * 2)
        for d in [1, 3, 5]:
            y = b.node("LeakyRelu", [x], [f"r{i}_{d}_a"], alpha=0.1)
            y = conv(b, f"r{i}_{d}", y, out, out, 3, dilations=[d], pads=[d, d])
            x = b.node("Add", [x, y], [f"r{i}_{d}_s"])
        ch = out
    x = b.node("LeakyRelu", [x], ["post_a"], alpha=0.01)
    b.node("Tanh", [conv(b, "post", x, ch, 1, 7, pads=[3, 3])], ["y"])
    b.save(path, "vocoder", [h.make_tensor_value_info("x", T.FLOAT, [1, mels, frames])],
           [h.make_tensor_value_info("y", T.FLOAT, [1, 1, frames * 128])])
    return f"{path}@x=1x{mels}x{frames}"


def video(path, frames=16, size=56):
    b = Builder(13)
    x, ch = "x", 3
    for i, (out, stride) in enumerate([(32, 1), (64, 2), (64, 1), (128, 2)]):
        x = b.node("Relu", [conv(b, f"c{i}", x, ch, out, 3, dims=3, strides=[stride] * 3, pads=[1] * 6)], [f"r{i}"])
        ch = out
    b.node("Flatten", [b.node("GlobalAveragePool", [x], ["pooled"])], ["y"])
    b.save(path, "video", [h.make_tensor_value_info("x", T.FLOAT, [1, 3, frames, size, size])],
           [h.make_tensor_value_info("y", T.FLOAT, [1, ch])])
    return f"{path}@x=1x3x{frames}x{size}x{size}"


def listener(path, frames=3000, mels=80, width=384, heads=6, ffn=1536, layers=4):
    b = Builder(14)
    steps, dh = frames // 2, width // heads
    x = gelu(b, "g0", conv(b, "c0", "x", mels, width, 3, pads=[1, 1]))
    x = gelu(b, "g1", conv(b, "c1", x, width, width, 3, pads=[1, 1], strides=[2]))
    x = b.node("Add", [b.node("Transpose", [x], ["frames"], perm=[0, 2, 1]), b.weight("pos", [1, steps, width], 0.02)],
               ["x0"])
    split = b.const("heads", np.array([1, steps, heads, dh], np.int64))
    scale = b.const("scale", np.float32(dh ** -0.25))  # on q and on k, as Whisper does

    def norm(t, p):
        return b.node("LayerNormalization", [t, b.weight(p + "g", [width], 0.1), b.weight(p + "b", [width], 0.05)],
                      [p], axis=-1, epsilon=1e-5)

    def linear(t, p, k, n, bias=True):
        y = b.node("MatMul", [t, b.weight(p + "w", [k, n], 1 / np.sqrt(k))], [p + "mm"])
        return b.node("Add", [y, b.weight(p + "b", [n], 0.02)], [p]) if bias else y

    for l in range(layers):
        p = f"l{l}_"
        y = norm(x, p + "ln1")
        q, k, v = linear(y, p + "q", width, width), linear(y, p + "k", width, width, False), linear(y, p + "v", width, width)
        q = b.node("Mul", [b.node("Transpose", [b.node("Reshape", [q, split], [p + "qr"])], [p + "qt"], perm=[0, 2, 1, 3]),
                           scale], [p + "qs"])
        k = b.node("Mul", [b.node("Transpose", [b.node("Reshape", [k, split], [p + "kr"])], [p + "kt"], perm=[0, 2, 3, 1]),
                           scale], [p + "ks"])
        v = b.node("Transpose", [b.node("Reshape", [v, split], [p + "vr"])], [p + "vt"], perm=[0, 2, 1, 3])
        probs = b.node("Softmax", [b.node("MatMul", [q, k], [p + "qk"])], [p + "sm"], axis=-1)
        ctx = b.node("Transpose", [b.node("MatMul", [probs, v], [p + "ctx"])], [p + "ctxt"], perm=[0, 2, 1, 3])
        ctx = b.node("Reshape", [ctx, b.const(p + "join", np.array([1, steps, width], np.int64))], [p + "ctxr"])
        x = b.node("Add", [x, linear(ctx, p + "o", width, width)], [p + "res1"])
        f = gelu(b, p + "gelu", linear(norm(x, p + "ln2"), p + "f1", width, ffn))
        x = b.node("Add", [x, linear(f, p + "f2", ffn, width)], [p + "res2"])
    norm(x, "y")
    b.save(path, "listener", [h.make_tensor_value_info("x", T.FLOAT, [1, mels, frames])],
           [h.make_tensor_value_info("y", T.FLOAT, [1, steps, width])], opset=17)
    return f"{path}@x=1x{mels}x{frames}"


def main():
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "signal_models")
    out.mkdir(parents=True, exist_ok=True)
    print(",".join([speech(out / "speech.onnx"), vocoder(out / "vocoder.onnx"), video(out / "video.onnx"),
                    listener(out / "listener.onnx")]))


if __name__ == "__main__":
    main()
