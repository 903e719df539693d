"""Tiny ONNX models built with onnx.helper for the binding tests."""

import numpy as np
from onnx import TensorProto, helper


def _save(graph, path, opset=17):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


def identity(path, elem_type, shape=("N", 3)):
    """y = Identity(x) with x of `elem_type` and `shape` (strings are symbolic dims)."""
    x = helper.make_tensor_value_info("x", elem_type, list(shape))
    y = helper.make_tensor_value_info("y", elem_type, list(shape))
    return _save(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity", [x], [y]), path)


def add_mul(path):
    """sum = a + b, prod = a * b on float32 [2, 3]; c is an optional input backed by an initializer."""
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [2, 3])
    s = helper.make_tensor_value_info("sum", TensorProto.FLOAT, [2, 3])
    p = helper.make_tensor_value_info("prod", TensorProto.FLOAT, [2, 3])
    nodes = [helper.make_node("Add", ["a", "b"], ["sum"]), helper.make_node("Mul", ["a", "b"], ["prod"])]
    return _save(helper.make_graph(nodes, "add_mul", [a, b], [s, p]), path)


def matmul_chain(path, n=256, depth=40):
    """A float32 chain of `depth` MatMul+Tanh on [n, n]: slow enough to interrupt."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])
    w = np.eye(n, dtype=np.float32)
    inits = [helper.make_tensor("w", TensorProto.FLOAT, [n, n], w.flatten().tolist())]
    nodes, prev = [], "x"
    for i in range(depth):
        nodes.append(helper.make_node("MatMul", [prev, "w"], [f"m{i}"]))
        out = "y" if i == depth - 1 else f"t{i}"
        nodes.append(helper.make_node("Tanh", [f"m{i}"], [out]))
        prev = out
    return _save(helper.make_graph(nodes, "chain", [x], [y], initializer=inits), path)
