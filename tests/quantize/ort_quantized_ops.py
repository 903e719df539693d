#!/usr/bin/env python3
"""The 8-bit ops of tandem's reference backend against ONNX Runtime (bench/peer), an outside oracle.

    /usr/bin/python3 tests/quantize/ort_quantized_ops.py TANDEM_BINARY SOURCE_DIR

Builds one single-node model per case (seeded random shapes and values, uint8 and int8,
per-tensor and per-axis / per-column parameters, the weights and quantization parameters as
initializers the way quantized models hold them), runs it with `tandem run --backend reference`
and with bench/peer/ort_run.mjs, and requires 8-bit and int32 outputs to be identical and float
outputs to agree within 1e-5. Covers the standard ops (QuantizeLinear, DequantizeLinear,
DynamicQuantizeLinear, QLinearConv, ConvInteger, QLinearMatMul, MatMulInteger) and the
com.microsoft ones (QuantizeLinear, DequantizeLinear, QLinearAdd/Mul, QLinearSigmoid/LeakyRelu, QLinearGlobalAveragePool,
QLinearAveragePool, QLinearConcat, QGemm, DynamicQuantizeMatMul, MatMulIntegerToFloat).

Left out on purpose: QLinearAveragePool with ceil_mode and count_include_pad together (ONNX
Runtime's divisor also counts a window's part past the end padding; tandem follows AveragePool)
and MatMulIntegerToFloat with int8 A and uint8 B (ONNX Runtime has no kernel for it).
Skips (exit 0) when node or bench/peer/node_modules is absent.
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ELEM = {np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.int8): TensorProto.INT8,
        np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.int32): TensorProto.INT32}
U8, S8, F32, I32 = TensorProto.UINT8, TensorProto.INT8, TensorProto.FLOAT, TensorProto.INT32
MS = 'com.microsoft'

rng = np.random.default_rng(2024)


def cpu_has_vnni():
    try:
        with open('/proc/cpuinfo') as f:
            flags = f.read()
    except OSError:
        return True
    return ' avx512_vnni' in flags or ' avx_vnni' in flags


# Without VNNI, ONNX Runtime multiplies uint8 by int8 with vpmaddubsw, whose int16 sum of two
# products saturates (its documented limitation; its quantizer's reduce_range exists for it), so
# there it is an oracle only for int8 weights within [-64, 64] (255 * 128 < 32768). tandem's
# reference is exact either way; weights are drawn from that range on such CPUs.
NARROW_S8_WEIGHTS = not cpu_has_vnni()


def q8(shape, t, weight=False):
    if t == 'u8':
        return rng.integers(0, 256, shape).astype(np.uint8)
    if weight and NARROW_S8_WEIGHTS:
        return rng.integers(-64, 65, shape).astype(np.int8)
    return rng.integers(-128, 128, shape).astype(np.int8)


def zp(t, shape=()):
    return rng.integers(100, 161, shape).astype(np.uint8) if t == 'u8' else rng.integers(-20, 21, shape).astype(np.int8)


def sc(lo, hi, shape=()):
    return rng.uniform(lo, hi, shape).astype(np.float32)


def elem(t):
    return U8 if t == 'u8' else S8


def data(shape, lo, hi):
    return rng.uniform(lo, hi, shape).astype(np.float32)


class Case:
    def __init__(self, name, op, inputs, attrs, outputs, domain=''):
        # inputs: (name, array or None, is_graph_input); outputs: element types
        self.name, self.op, self.inputs, self.attrs, self.outputs, self.domain = name, op, inputs, attrs, outputs, domain


def standard_cases():
    cases = []
    for t in ['u8', 's8']:
        for i, axis in enumerate([1, 0, 3]):
            s = tuple(int(v) for v in rng.integers(1, 8, 4))
            c = s[axis]
            cases.append(Case(f'QuantizeLinear_{t}_axis{axis}', 'QuantizeLinear',
                              [('x', data(s, -4, 4), True), ('s', sc(.01, .05, (c,)), False), ('z', zp(t, (c,)), False)],
                              {'axis': axis}, [elem(t)]))
            cases.append(Case(f'DequantizeLinear_{t}_axis{axis}', 'DequantizeLinear',
                              [('x', q8(s, t), True), ('s', sc(.01, .05, (c,)), False), ('z', zp(t, (c,)), False)],
                              {'axis': axis}, [F32]))
        cases.append(Case(f'QuantizeLinear_{t}_tensor', 'QuantizeLinear',
                          [('x', data((3, 5, 7), -4, 4), True), ('s', sc(.01, .05), False), ('z', zp(t), False)], {}, [elem(t)]))
    cases.append(Case('DynamicQuantizeLinear', 'DynamicQuantizeLinear', [('x', data((4, 9, 5), -3, 5), True)], {},
                      [U8, F32, U8]))
    convs = [('u8', 's8', True, True, 1, 3, 11, 13, 8, 3, 2, 1, 1, 1), ('u8', 's8', True, False, 2, 8, 7, 9, 8, 3, 1, 1, 1, 8),
             ('u8', 'u8', False, True, 1, 4, 9, 8, 6, 1, 1, 0, 1, 1), ('s8', 's8', True, True, 1, 6, 10, 7, 4, 3, 1, 2, 2, 2),
             ('s8', 's8', False, False, 1, 5, 6, 6, 7, 2, 2, 0, 1, 1)]
    for j, (tx, tw, per_channel, bias, n, c, h, w, m, k, stride, pad, dilation, group) in enumerate(convs):
        ch = (m,) if per_channel else ()
        attrs = dict(kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4, dilations=[dilation, dilation], group=group)
        ins = [('x', q8((n, c, h, w), tx), True), ('xs', sc(.01, .03), False), ('xz', zp(tx), False),
               ('w', q8((m, c // group, k, k), tw, weight=True), False), ('ws', sc(.002, .01, ch), False),
               ('wz', np.zeros(ch, np.int8) if tw == 's8' else zp(tw, ch), False), ('ys', sc(.05, .2), False),
               ('yz', zp(tx), False)]
        if bias:
            ins.append(('b', rng.integers(-2000, 2000, (m,)).astype(np.int32), False))
        cases.append(Case(f'QLinearConv_{j}_{tx}{tw}', 'QLinearConv', ins, attrs, [elem(tx)]))
        cases.append(Case(f'ConvInteger_{j}_{tx}', 'ConvInteger',
                          [('x', q8((n, c, h, w), tx), True), ('w', q8((m, c // group, k, k), tx), False),
                           ('xz', zp(tx), False), ('wz', zp(tx), False)], attrs, [I32]))
    for ta, tb in [('u8', 's8'), ('u8', 'u8'), ('s8', 's8')]:
        for per_column in (False, True):
            m, k, n = (int(v) for v in (rng.integers(1, 10), rng.integers(2, 34), rng.integers(1, 18)))
            bs = (n,) if per_column else ()
            tag = f'{ta}{tb}_{"column" if per_column else "tensor"}'
            cases.append(Case(f'QLinearMatMul_{tag}', 'QLinearMatMul',
                              [('a', q8((2, m, k), ta), True), ('as', sc(.01, .03), False), ('az', zp(ta), False),
                               ('b', q8((k, n), tb, weight=True), False), ('bs', sc(.002, .01, bs), False), ('bz', zp(tb, bs), False),
                               ('ys', sc(.1, .4), False), ('yz', zp(ta), False)], {}, [elem(ta)]))
            cases.append(Case(f'MatMulInteger_{tag}', 'MatMulInteger',
                              [('a', q8((3, m, k), ta), True), ('b', q8((k, n), tb, weight=True), False), ('az', zp(ta), False),
                               ('bz', zp(tb, bs), False)], {}, [I32]))
    return cases


def contrib_cases():
    cases = []
    for t in ['u8', 's8']:
        s = tuple(int(v) for v in rng.integers(1, 8, 3))
        cases.append(Case(f'QuantizeLinear_ms_{t}', 'QuantizeLinear',
                          [('x', data(s, -4, 4), True), ('s', sc(.01, .05, (s[1],)), False), ('z', zp(t, (s[1],)), False)],
                          {'axis': 1}, [elem(t)], MS))
        cases.append(Case(f'DequantizeLinear_ms_{t}', 'DequantizeLinear',
                          [('x', q8(s, t), True), ('s', sc(.01, .05), False), ('z', zp(t), False)], {}, [F32], MS))
    for t in ['u8', 's8']:
        for i in range(6):
            s = tuple(int(v) for v in rng.integers(1, 8, 4))
            bshape = s if i % 2 == 0 else (s[1], s[2], 1)
            for op in ['QLinearAdd', 'QLinearMul']:
                out_scale = sc(.05, .1) if op == 'QLinearMul' else sc(.02, .05)
                cases.append(Case(f'{op}_{t}_{i}', op,
                                  [('a', q8(s, t), True), ('as', sc(.01, .03), False), ('az', zp(t), False),
                                   ('b', q8(bshape, t), True), ('bs', sc(.01, .03), False), ('bz', zp(t), False),
                                   ('cs', out_scale, False), ('cz', zp(t), False)], {}, [elem(t)], MS))
            low = np.array(0 if t == 'u8' else -128, dtype=np.uint8 if t == 'u8' else np.int8)
            cases.append(Case(f'QLinearSigmoid_{t}_{i}', 'QLinearSigmoid',
                              [('x', q8(s, t), True), ('xs', sc(.02, .06), False), ('xz', zp(t), False),
                               ('ys', np.float32(1 / 256), False), ('yz', low, False)], {}, [elem(t)], MS))
            cases.append(Case(f'QLinearLeakyRelu_{t}_{i}', 'QLinearLeakyRelu',
                              [('x', q8(s, t), True), ('xs', sc(.02, .06), False), ('xz', zp(t), False),
                               ('ys', sc(.02, .05), False), ('yz', zp(t), False)], {'alpha': 0.1}, [elem(t)], MS))
            last = i % 2
            cases.append(Case(f'QLinearGlobalAveragePool_{t}_{i}', 'QLinearGlobalAveragePool',
                              [('x', q8(tuple(int(v) for v in rng.integers(1, 10, 4)), t), True), ('xs', sc(.02, .05), False),
                               ('xz', zp(t), False), ('ys', sc(.01, .04), False), ('yz', zp(t), False)],
                              {'channels_last': last}, [elem(t)], MS))
            n, c, h, w = 1 + i % 2, int(rng.integers(1, 6)), int(rng.integers(5, 13)), int(rng.integers(5, 13))
            pool = [dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 1, 1]),
                    dict(kernel_shape=[3, 2], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1),
                    dict(kernel_shape=[3, 2], strides=[2, 2], pads=[0, 1, 1, 0], ceil_mode=1),
                    dict(kernel_shape=[2, 3], auto_pad='SAME_UPPER')][i % 4]
            cases.append(Case(f'QLinearAveragePool_{t}_{i}', 'QLinearAveragePool',
                              [('x', q8((n, h, w, c) if last else (n, c, h, w), t), True), ('xs', sc(.02, .05), False),
                               ('xz', zp(t), False), ('ys', sc(.02, .05), False), ('yz', zp(t), False)],
                              dict(pool, channels_last=last), [elem(t)], MS))
            base = [int(v) for v in rng.integers(1, 6, 3)]
            ins = [('ys', sc(.02, .05), False), ('yz', zp(t), False)]
            for j in range(3):
                sj = list(base)
                sj[1] = int(rng.integers(1, 5))
                ins += [(f'x{j}', q8(tuple(sj), t), True), (f's{j}', sc(.01, .06), False), (f'z{j}', zp(t), False)]
            cases.append(Case(f'QLinearConcat_{t}_{i}', 'QLinearConcat', ins, {'axis': 1}, [elem(t)], MS))
    for ta, tb in [('u8', 's8'), ('u8', 'u8'), ('s8', 's8')]:
        for i in range(4):
            m, k, n = (int(v) for v in (rng.integers(1, 10), rng.integers(2, 41), rng.integers(1, 18)))
            trans, quantized = i % 2 == 1, i >= 2
            ins = [('a', q8((k, m) if trans else (m, k), ta), True), ('as', sc(.01, .03), False), ('az', zp(ta), False),
                   ('b', q8((n, k) if trans else (k, n), tb, weight=True), False), ('bs', sc(.002, .01, (n,)), False),
                   ('bz', np.zeros((n,), np.int8) if tb == 's8' else zp(tb, (n,)), False),
                   ('c', rng.integers(-3000, 3000, (n,)).astype(np.int32), False)]
            if quantized:
                ins += [('ys', sc(.05, .2), False), ('yz', zp(ta), False)]
            cases.append(Case(f'QGemm_{ta}{tb}_{i}', 'QGemm', ins,
                              {'transA': int(trans), 'transB': int(trans), 'alpha': 0.5 if trans else 1.0},
                              [elem(ta) if quantized else F32], MS))
    for tb in ['u8', 's8']:
        for i in range(3):
            m, k, n = (int(v) for v in (rng.integers(1, 10), rng.integers(2, 41), rng.integers(1, 18)))
            a_shape = (2, m, k) if i == 1 else (m, k)
            cols = (n,) if i != 1 else ()
            cases.append(Case(f'DynamicQuantizeMatMul_{tb}_{i}', 'DynamicQuantizeMatMul',
                              [('a', data(a_shape, -3, 2), True), ('b', q8((k, n), tb, weight=True), False), ('bs', sc(.002, .01, cols), False),
                               ('bz', zp(tb, cols) if i != 2 else None, False), ('bias', data((n,), -1, 1), False)],
                              {}, [F32], MS))
            for ta in ['u8', 's8'] if tb == 's8' else ['u8']:
                cases.append(Case(f'MatMulIntegerToFloat_{ta}{tb}_{i}', 'MatMulIntegerToFloat',
                                  [('a', q8(a_shape, ta), True), ('b', q8((k, n), tb, weight=True), False), ('as', sc(.01, .03), False),
                                   ('bs', sc(.002, .01, cols), False), ('az', zp(ta), False), ('bz', zp(tb, cols), False),
                                   ('bias', data((n,), -1, 1), False)], {}, [F32], MS))
    return cases


def run_case(case, work, tandem, runner):
    d = os.path.join(work, case.name)
    os.makedirs(os.path.join(d, 'ort'))
    os.makedirs(os.path.join(d, 'tandem'))
    graph_inputs, initializers, names, feeds = [], [], [], []
    for name, value, is_input in case.inputs:
        if value is None:
            names.append('')
            continue
        names.append(name)
        value = np.asarray(value)
        if is_input:
            graph_inputs.append(helper.make_tensor_value_info(name, ELEM[value.dtype], value.shape))
            np.save(os.path.join(d, name + '.npy'), value)
            feeds.append(f'{name}={os.path.join(d, name + ".npy")}')
        else:
            initializers.append(numpy_helper.from_array(value, name))
    outputs = [f'y{i}' for i in range(len(case.outputs))]
    node = helper.make_node(case.op, names, outputs, name='n', domain=case.domain, **case.attrs)
    graph = helper.make_graph([node], case.name, graph_inputs,
                              [helper.make_tensor_value_info(o, t, None) for o, t in zip(outputs, case.outputs)],
                              initializer=initializers)
    opsets = [helper.make_opsetid('', 13)] + ([helper.make_opsetid(MS, 1)] if case.domain else [])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    path = os.path.join(d, 'model.onnx')
    onnx.save(model, path)
    ort = subprocess.run(['node', runner, path, *[a for f in feeds for a in ('--input', f)], '--output-dir',
                          os.path.join(d, 'ort'), '--quiet'], capture_output=True, text=True)
    if ort.returncode:
        return f'ONNX Runtime failed: {ort.stderr.strip()[-300:]}'
    ours = subprocess.run([tandem, 'run', '--backend', 'reference', path, '--input', *feeds, '--output-dir',
                           os.path.join(d, 'tandem')], capture_output=True, text=True)
    if ours.returncode:
        return f'tandem failed: {ours.stderr.strip()[-300:]}'
    for o in outputs:
        want = np.load(os.path.join(d, 'ort', o + '.npy'))
        got = np.load(os.path.join(d, 'tandem', o + '.npy'))
        if want.dtype != got.dtype or want.shape != got.shape:
            return f'{o}: {got.dtype}{list(got.shape)}, ONNX Runtime gives {want.dtype}{list(want.shape)}'
        diff = np.abs(want.astype(np.float64) - got.astype(np.float64))
        bound = 0.0 if want.dtype.kind in 'iu' else 1e-5
        if diff.size and diff.max() > bound:
            return f'{o}: {int((diff > bound).sum())} of {diff.size} elements differ, by up to {diff.max():g}'
    return None


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    tandem, src = sys.argv[1], sys.argv[2]
    runner = os.path.join(src, 'bench', 'peer', 'ort_run.mjs')
    if shutil.which('node') is None or not os.path.isdir(os.path.join(src, 'bench', 'peer', 'node_modules', 'onnxruntime-node')):
        print('ort_quantized_ops: bench/peer/node_modules is absent (run scripts/setup): skipping')
        return 0
    cases = standard_cases() + contrib_cases()
    work = tempfile.mkdtemp(prefix='tandem-ort-quant-')
    failures = 0
    try:
        for case in cases:
            problem = run_case(case, work, tandem, runner)
            if problem:
                failures += 1
                print(f'FAIL {case.name}: {problem}')
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f'ort_quantized_ops: {len(cases) - failures} of {len(cases)} cases agree with ONNX Runtime')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
