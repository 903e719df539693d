#!/usr/bin/env python3
"""Every tensor datatype over every protocol: ONNX's node tests served by `tandem serve`.

Usage: python3 wire_conformance_test.py REPO_ROOT TANDEM_BINARY
(ONNX's test data: $TANDEM_ONNX_TESTDATA, default /usr/share/libonnx-testdata/data.)

From ONNX's node tests, those whose inputs and outputs are all tensors of a datatype the
protocol carries are grouped by the datatypes of their inputs and outputs, and the first two of
each group (by name) go into one model repository. The server must load every one of them. Each
test's first data set is sent over gRPC (raw contents, and typed contents unless an input is
FP16 or BF16, which have no typed field), REST binary and REST JSON, and:
  - gRPC with typed contents and REST binary answer the same datatypes, shapes and bytes as
    gRPC with raw contents;
  - REST JSON answers the same values (floats exactly, after the conversion to the datatype;
    NaN and infinities as null, since JSON has none; BF16 and FP16 as their values) — JSON is
    skipped for a test whose inputs are not finite;
  - a request refused on one protocol is refused on all three, with the same message;
  - the gRPC answer matches the test's expected outputs (rtol 1e-3, atol 1e-4), except for the
    cases the conformance suite lists as expected failures (tests/conformance) and the tests
    of random ops, whose outputs are not reproducible.
The server is stopped whatever happens.
"""
import json
import os
import shutil
import struct
import sys
import tempfile
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from e2e_checks import FAILURES, Served, load_stubs
from e2e_checks import check as check_any

ROOT, TANDEM = sys.argv[1], sys.argv[2]
TESTDATA = os.environ.get("TANDEM_ONNX_TESTDATA", "/usr/share/libonnx-testdata/data")
PER_GROUP = 2
RANDOM_OPS = {"Bernoulli", "Dropout", "Multinomial", "RandomNormal", "RandomNormalLike", "RandomUniform",
              "RandomUniformLike"}
DATATYPES = {TensorProto.FLOAT: "FP32", TensorProto.DOUBLE: "FP64", TensorProto.FLOAT16: "FP16",
             TensorProto.BFLOAT16: "BF16", TensorProto.INT8: "INT8", TensorProto.INT16: "INT16",
             TensorProto.INT32: "INT32", TensorProto.INT64: "INT64", TensorProto.UINT8: "UINT8",
             TensorProto.UINT16: "UINT16", TensorProto.UINT32: "UINT32", TensorProto.UINT64: "UINT64",
             TensorProto.BOOL: "BOOL", TensorProto.STRING: "BYTES"}
NUMPY = {"FP32": "<f4", "FP64": "<f8", "FP16": "<f2", "BF16": "<u2", "INT8": "i1", "INT16": "<i2", "INT32": "<i4",
         "INT64": "<i8", "UINT8": "u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8", "BOOL": "?"}
def check(condition, what):
    """Hundreds of checks: only failures are printed."""
    return check_any(condition, what, quiet=True)


def pick_cases():
    """{test name: (folder, [(input name, datatype)], [(output name, datatype)])}, PER_GROUP per
    combination of datatypes."""
    node = os.path.join(TESTDATA, "node")
    picked, groups = {}, {}
    for name in sorted(os.listdir(node)):
        folder = os.path.join(node, name)
        data = os.path.join(folder, "test_data_set_0")
        if not os.path.isdir(data):
            continue
        model = onnx.load(os.path.join(folder, "model.onnx"))
        initialized = {i.name for i in model.graph.initializer}
        values = [v for v in model.graph.input if v.name not in initialized] + list(model.graph.output)
        if not all(v.type.HasField("tensor_type") and v.type.tensor_type.elem_type in DATATYPES for v in values):
            continue
        inputs = [(v.name, DATATYPES[v.type.tensor_type.elem_type]) for v in model.graph.input if v.name not in initialized]
        outputs = [(v.name, DATATYPES[v.type.tensor_type.elem_type]) for v in model.graph.output]
        if sorted(f for f in os.listdir(data) if f.startswith("input_")) != [f"input_{i}.pb" for i in range(len(inputs))]:
            continue  # optional inputs left out: the data set does not say which
        key = (tuple(t for _, t in inputs), tuple(t for _, t in outputs))
        if groups.get(key, 0) >= PER_GROUP:
            continue
        groups[key] = groups.get(key, 0) + 1
        random = any(n.op_type in RANDOM_OPS for n in model.graph.node)
        picked[name] = (folder, inputs, outputs, random)
    return picked


def expected_failures():
    path = os.path.join(ROOT, "tests", "conformance", "reference.expected_failures")
    with open(path) as f:
        return {line.strip() for line in f if line.strip() and not line.startswith("#")}


def to_raw(array, datatype):
    if datatype == "BYTES":  # each element: a 4-byte little-endian length, then its bytes
        return b"".join(struct.pack("<I", len(b)) + b for b in (as_bytes(x) for x in array.ravel()))
    return np.ascontiguousarray(array).astype(NUMPY[datatype], copy=False).tobytes()


def as_bytes(x):
    return x if isinstance(x, bytes) else str(x).encode()


def from_raw(raw, datatype, shape):
    if datatype == "BYTES":
        values, i = [], 0
        while i < len(raw):
            n = struct.unpack_from("<I", raw, i)[0]
            values.append(raw[i + 4:i + 4 + n])
            i += 4 + n
        return np.array(values, dtype=object).reshape(shape)
    return np.frombuffer(raw, dtype=NUMPY[datatype]).reshape(shape)


TYPED_FIELD = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
               "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
               "UINT32": "uint_contents", "UINT64": "uint64_contents", "FP32": "fp32_contents",
               "FP64": "fp64_contents", "BYTES": "bytes_contents"}


def typed_values(array, datatype):
    flat = array.ravel()
    if datatype == "BYTES":
        return [as_bytes(x) for x in flat]
    if datatype == "BOOL":
        return [bool(x) for x in flat]
    if datatype in ("FP32", "FP64"):
        return [float(x) for x in flat]
    return [int(x) for x in flat]


def bf16_to_f32(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16(values):
    bits = np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def json_values(array, datatype):
    if datatype == "BYTES":
        return [as_bytes(x).decode() for x in array.ravel()]
    if datatype == "BOOL":
        return [bool(x) for x in array.ravel()]
    if datatype == "BF16":
        return [float(x) for x in bf16_to_f32(array.ravel())]
    if datatype in ("FP16", "FP32", "FP64"):
        return [float(x) for x in array.ravel()]
    return [int(x) for x in array.ravel()]


def finite(array, datatype):
    if datatype == "BF16":
        return bool(np.isfinite(bf16_to_f32(array)).all())
    return datatype not in ("FP16", "FP32", "FP64") or bool(np.isfinite(array).all())


def same_as_json(raw_array, datatype, values):
    """Whether the JSON `values` carry exactly the elements of `raw_array`."""
    flat = raw_array.ravel()
    if len(values) != flat.size:
        return False
    if datatype == "BYTES":
        return all(isinstance(v, str) and v.encode() == as_bytes(x) for v, x in zip(values, flat))
    if datatype in ("FP16", "FP32", "FP64", "BF16"):
        wide = bf16_to_f32(flat) if datatype == "BF16" else flat
        for v, x in zip(values, wide):
            if not np.isfinite(x):
                if v is not None:
                    return False
            elif v is None:
                return False
        got = np.array([0.0 if v is None else v for v in values], dtype=np.float64)
        got = f32_to_bf16(got) if datatype == "BF16" else got.astype(NUMPY[datatype])
        keep = np.isfinite(wide)
        return bool(np.array_equal(got[keep], flat[keep]))
    if datatype == "BOOL":
        return all(isinstance(v, bool) and v == bool(x) for v, x in zip(values, flat))
    return all(isinstance(v, int) and not isinstance(v, bool) and v == int(x) for v, x in zip(values, flat))


def close_to_expected(got, datatype, expected):
    if datatype == "BYTES":
        return got.shape == expected.shape and all(as_bytes(a) == as_bytes(b) for a, b in zip(got.ravel(), expected.ravel()))
    if datatype == "BF16":
        got = bf16_to_f32(got)
        expected = bf16_to_f32(expected) if expected.dtype == np.uint16 else expected
    if got.shape != expected.shape:
        return False
    if np.issubdtype(got.dtype, np.floating):
        return bool(np.allclose(got.astype(np.float64), expected.astype(np.float64), rtol=1e-3, atol=1e-4, equal_nan=True))
    return bool(np.array_equal(got, expected.astype(got.dtype)))


def repository_index(server):
    request = urllib.request.Request(f"http://127.0.0.1:{server.http_port}/v2/repository/index", data=b"{}",
                                     method="POST")
    return json.loads(urllib.request.urlopen(request, timeout=10).read())


def post(url, body, headers):
    """(status, header length or None, body bytes) of a POST."""
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=30)
        length = response.headers.get("Inference-Header-Content-Length")
        return response.status, int(length) if length else None, response.read()
    except urllib.error.HTTPError as e:
        return e.code, None, e.read()


def run_case(pb, server, name, inputs, outputs, arrays):
    """The answers of the three protocols: {protocol: [numpy arrays] or ("error", message)};
    "json" holds the raw JSON outputs."""
    answers = {}
    request = pb.ModelInferRequest(model_name=name)
    for (input_name, datatype), array in zip(inputs, arrays):
        request.inputs.add(name=input_name, datatype=datatype, shape=list(array.shape))
        request.raw_input_contents.append(to_raw(array, datatype))
    try:
        response = server.stub.ModelInfer(request, timeout=30)
        check([o.name for o in response.outputs] == [n for n, _ in outputs], f"{name}: gRPC answers every output in order")
        answers["grpc"] = [(o.datatype, from_raw(raw, o.datatype, list(o.shape)))
                           for o, raw in zip(response.outputs, response.raw_output_contents)]
    except grpc.RpcError as e:
        answers["grpc"] = ("error", e.details())

    # gRPC with typed contents (clients that fill InferTensorContents); FP16 and BF16 have no
    # typed field and travel raw in every request.
    if all(t not in ("FP16", "BF16") for _, t in inputs):
        request = pb.ModelInferRequest(model_name=name)
        for (input_name, datatype), array in zip(inputs, arrays):
            tensor = request.inputs.add(name=input_name, datatype=datatype, shape=list(array.shape))
            getattr(tensor.contents, TYPED_FIELD[datatype]).extend(typed_values(array, datatype))
        try:
            response = server.stub.ModelInfer(request, timeout=30)
            answers["grpc_typed"] = [(o.datatype, from_raw(raw, o.datatype, list(o.shape)))
                                     for o, raw in zip(response.outputs, response.raw_output_contents)]
        except grpc.RpcError as e:
            answers["grpc_typed"] = ("error", e.details())

    url = f"http://127.0.0.1:{server.http_port}/v2/models/{name}/infer"
    raws = [to_raw(a, t) for (_, t), a in zip(inputs, arrays)]
    header = json.dumps({"inputs": [{"name": n, "datatype": t, "shape": list(a.shape),
                                     "parameters": {"binary_data_size": len(r)}}
                                    for (n, t), a, r in zip(inputs, arrays, raws)],
                         "outputs": [{"name": n, "parameters": {"binary_data": True}} for n, _ in outputs]}).encode()
    status, length, body = post(url, header + b"".join(raws), {"Content-Type": "application/octet-stream",
                                                                "Inference-Header-Content-Length": str(len(header))})
    if status != 200:
        answers["binary"] = ("error", json.loads(body)["error"])
    else:
        document = json.loads(body[:length])
        at, got = length, []
        for o in document["outputs"]:
            size = o["parameters"]["binary_data_size"]
            got.append((o["datatype"], from_raw(body[at:at + size], o["datatype"], o["shape"])))
            at += size
        check(at == len(body), f"{name}: REST binary's sections add up to the body")
        answers["binary"] = got

    if all(finite(a, t) for (_, t), a in zip(inputs, arrays)):
        document = {"inputs": [{"name": n, "datatype": t, "shape": list(a.shape), "data": json_values(a, t)}
                               for (n, t), a in zip(inputs, arrays)]}
        status, _, body = post(url, json.dumps(document, allow_nan=False).encode(), {"Content-Type": "application/json"})
        answers["json"] = json.loads(body)["outputs"] if status == 200 else ("error", json.loads(body)["error"])
    return answers


def main():
    cases = pick_cases()
    check(len(cases) >= 100, f"at least 100 node tests carry only protocol datatypes (found {len(cases)})")
    datatypes = {t for _, inputs, outputs, _ in cases.values() for _, t in inputs + outputs}
    check(datatypes == set(DATATYPES.values()), f"the tests cover every datatype (missing: "
          f"{sorted(set(DATATYPES.values()) - datatypes)})")
    known = expected_failures()
    with tempfile.TemporaryDirectory() as tmp:
        pb, pb_grpc = load_stubs(ROOT, tmp)
        repo = os.path.join(tmp, "repo")
        for name, (folder, _, _, _) in cases.items():
            os.makedirs(os.path.join(repo, name, "1"))
            shutil.copy(os.path.join(folder, "model.onnx"), os.path.join(repo, name, "1", "model.onnx"))
        with Served(TANDEM, pb, pb_grpc, repo, tmp, "wire", wait_ready=False) as server:
            deadline = time.monotonic() + 300
            while True:
                states = {m["name"]: m.get("state") for m in repository_index(server)}
                if all(s in ("READY", "UNAVAILABLE") for s in states.values()) and len(states) == len(cases):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("models still loading after 300 s: " + server.tail())
                time.sleep(0.1)
            not_ready = sorted(n for n, s in states.items() if s != "READY")
            check(not not_ready, f"every model loads (not ready: {not_ready})")
            counts = {"answered": 0, "typed": 0, "refused": 0, "json_skipped": 0, "unchecked": 0}
            for name, (folder, inputs, outputs, random) in cases.items():
                if name in not_ready:
                    continue
                data = os.path.join(folder, "test_data_set_0")
                arrays = [numpy_helper.to_array(onnx.load_tensor(os.path.join(data, f"input_{i}.pb")))
                          for i in range(len(inputs))]
                answers = run_case(pb, server, name, inputs, outputs, arrays)
                counts["json_skipped"] += "json" not in answers
                refused = {p: a[1] for p, a in answers.items() if isinstance(a, tuple)}
                if refused:
                    counts["refused"] += 1
                    check(len(refused) == len(answers) and len(set(refused.values())) == 1,
                          f"{name}: refused alike on every protocol ({refused}, of {sorted(answers)})")
                    continue
                counts["answered"] += 1
                grpc_answer = answers["grpc"]
                if "grpc_typed" in answers:
                    counts["typed"] += 1
                    check(len(answers["grpc_typed"]) == len(grpc_answer), f"{name}: typed contents answer every output")
                    for (datatype, a), (ttype, b) in zip(grpc_answer, answers["grpc_typed"]):
                        same = list(a.ravel()) == list(b.ravel()) if datatype == "BYTES" else a.tobytes() == b.tobytes()
                        check(datatype == ttype and a.shape == b.shape and (same or random),
                              f"{name}: gRPC with typed contents answers what raw contents do ({datatype})")
                # A random op answers differently each time: only datatypes and shapes must agree.
                check(len(answers["binary"]) == len(grpc_answer), f"{name}: REST binary answers every output")
                for (datatype, a), (btype, b) in zip(grpc_answer, answers["binary"]):
                    same = list(a.ravel()) == list(b.ravel()) if datatype == "BYTES" else a.tobytes() == b.tobytes()
                    check(datatype == btype and a.shape == b.shape and (same or random),
                          f"{name}: REST binary answers what gRPC does ({datatype})")
                if "json" in answers:
                    check(len(answers["json"]) == len(grpc_answer), f"{name}: REST JSON answers every output")
                    for (datatype, a), o in zip(grpc_answer, answers["json"]):
                        check(o["datatype"] == datatype and o["shape"] == list(a.shape) and
                              (random or same_as_json(a, datatype, o["data"])),
                              f"{name}: REST JSON answers what gRPC does ({datatype} {list(a.shape)})")
                if random or name in known:
                    counts["unchecked"] += 1
                    continue
                for i, (datatype, a) in enumerate(grpc_answer):
                    expected = numpy_helper.to_array(onnx.load_tensor(os.path.join(data, f"output_{i}.pb")))
                    check(close_to_expected(a, datatype, expected),
                          f"{name}: output {i} ({datatype}) matches the test's expected output")
    print(f"{len(cases)} node tests over gRPC, REST binary and REST JSON: {counts['answered']} answered "
          f"({counts['typed']} also with gRPC's typed contents), "
          f"{counts['refused']} refused alike, JSON skipped for {counts['json_skipped']} (inputs not finite), "
          f"{counts['unchecked']} not compared with expected outputs (random ops or known failures)")
    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed")
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
