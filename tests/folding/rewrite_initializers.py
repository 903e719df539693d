#!/usr/bin/env python3
"""Rewrites every initializer of an ONNX model as a run-time subgraph, the way some exporters
write weights: ConstantOfShape for uniform tensors, and Constant -> Cast -> Reshape (or
Constant -> Reshape -> Cast) chains for the rest. The values are unchanged (float32 data goes
through float64, an exact round trip), so the rewritten model must give the same outputs, and a
runtime that folds constants at prepare must run it as fast as the original.

usage: rewrite_initializers.py IN.onnx OUT.onnx
"""
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto


def rewrite(model: onnx.ModelProto) -> onnx.ModelProto:
    graph = model.graph
    made = []  # nodes that compute the former initializers, in order
    input_names = {i.name for i in graph.input}
    kept = []
    for k, init in enumerate(graph.initializer):
        if init.name in input_names:  # an overridable default: leave it alone
            kept.append(init)
            continue
        value = numpy_helper.to_array(init)
        name = init.name
        shape = np.array(value.shape, dtype=np.int64)
        prefix = f"rewrite{k}"
        shape_const = helper.make_node("Constant", [], [f"{prefix}_shape"],
                                       value=numpy_helper.from_array(shape, f"{prefix}_shape_t"))
        flat = value.reshape(-1)
        if value.size > 0 and np.all(flat == flat[0]) and value.ndim > 0:
            fill = numpy_helper.from_array(flat[:1].copy(), f"{prefix}_fill")
            made += [shape_const, helper.make_node("ConstantOfShape", [f"{prefix}_shape"], [name], value=fill)]
        elif value.dtype == np.float32 and k % 2 == 0:
            wide = numpy_helper.from_array(flat.astype(np.float64), f"{prefix}_f64")
            made += [shape_const,
                     helper.make_node("Constant", [], [f"{prefix}_flat64"], value=wide),
                     helper.make_node("Cast", [f"{prefix}_flat64"], [f"{prefix}_flat"], to=TensorProto.FLOAT),
                     helper.make_node("Reshape", [f"{prefix}_flat", f"{prefix}_shape"], [name])]
        elif value.dtype == np.float32:
            made += [shape_const,
                     helper.make_node("Constant", [], [f"{prefix}_flat"],
                                      value=numpy_helper.from_array(flat.copy(), f"{prefix}_flat_t")),
                     helper.make_node("Reshape", [f"{prefix}_flat", f"{prefix}_shape"], [f"{prefix}_shaped"]),
                     helper.make_node("Cast", [f"{prefix}_shaped"], [name], to=TensorProto.FLOAT)]
        else:
            made += [shape_const,
                     helper.make_node("Constant", [], [f"{prefix}_flat"],
                                      value=numpy_helper.from_array(flat.copy(), f"{prefix}_flat_t")),
                     helper.make_node("Reshape", [f"{prefix}_flat", f"{prefix}_shape"], [name])]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = made + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    model = onnx.load(sys.argv[1])
    rewritten = rewrite(model)
    onnx.checker.check_model(rewritten)
    onnx.save(rewritten, sys.argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
