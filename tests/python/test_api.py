"""The ONNX Runtime style session and tandem's Engine API on small generated models."""

import json
import threading

import numpy as np
import pytest
from onnx import TensorProto

import tandem
import models


@pytest.fixture()
def add_mul_path(tmp_path):
    return models.add_mul(tmp_path / "add_mul.onnx")


def test_session_metadata_like_onnxruntime(tmp_path):
    path = models.identity(tmp_path / "id.onnx", TensorProto.FLOAT, ("batch", 3, None))
    sess = tandem.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    (out,) = sess.get_outputs()
    assert inp.name == "x" and out.name == "y"
    assert inp.type == "tensor(float)"
    assert inp.shape == ["batch", 3, None]
    assert sess.get_providers() == ["CPUExecutionProvider"]


def test_session_run_all_and_named_outputs(add_mul_path):
    sess = tandem.InferenceSession(add_mul_path)
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.full((2, 3), 2.0, dtype=np.float32)
    s, p = sess.run(None, {"a": a, "b": b})
    np.testing.assert_array_equal(s, a + b)
    np.testing.assert_array_equal(p, a * b)
    assert len(sess.run([], {"a": a, "b": b})) == 2  # empty: every output, as in ONNX Runtime
    (p2,) = sess.run(["prod"], {"a": a, "b": b})
    np.testing.assert_array_equal(p2, a * b)
    # Outputs are writable arrays of their own.
    p2 += 1
    np.testing.assert_array_equal(sess.run(["prod"], {"a": a, "b": b})[0], a * b)


def test_session_accepts_bytes_lists_and_options(add_mul_path):
    opts = tandem.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = tandem.InferenceSession(add_mul_path.read_bytes(), sess_options=opts, providers=["reference"])
    s, _ = sess.run(None, {"a": [[1, 2, 3], [4, 5, 6]], "b": np.ones((2, 3), np.float32)})
    assert s.dtype == np.float32
    np.testing.assert_array_equal(s, [[2, 3, 4], [5, 6, 7]])
    assert sess.prepared.placement()["routes"][0]["backend"] == "reference"


def test_unknown_provider_is_invalid_argument(add_mul_path):
    with pytest.raises(tandem.InvalidArgument):
        tandem.InferenceSession(add_mul_path, providers=["CUDAExecutionProvider"])


def test_non_contiguous_and_byte_swapped_inputs_are_converted(add_mul_path):
    sess = tandem.InferenceSession(add_mul_path)
    a = np.arange(12, dtype=np.float32).reshape(3, 4)[:2, :3]  # a strided view
    b = np.ones((2, 3), dtype=">f4")                               # big-endian
    s, _ = sess.run(None, {"a": a, "b": b})
    np.testing.assert_array_equal(s, a + 1)


def test_engine_api(add_mul_path, tmp_path):
    engine = tandem.Engine(threads=1)
    assert engine.backends[-1] == "reference"
    model = engine.prepare(add_mul_path, name="am", routes="cpu,reference", warmup_runs=2, seed=7)
    assert model.name == "am"
    assert len(model.cache_key) == 64 and all(c in "0123456789abcdef" for c in model.cache_key)
    schema = model.io_schema
    assert [i["name"] for i in schema["inputs"]] == ["a", "b"]
    assert schema["outputs"][0]["shape"] == [2, 3] and schema["outputs"][0]["dtype"] == "float32"
    sla = model.sla_estimate
    assert sla["measured"] and sla["warmup_runs"] == 2 and sla["estimate_ms"] > 0
    assert sla["deadline_margin_ms"] >= sla["estimate_ms"]
    assert sla["warmup_shapes"] == {"a": [2, 3], "b": [2, 3]}, sla["warmup_shapes"]
    assert sla["per_backend_runs"] == {"cpu": 2, "reference": 2}
    assert sla["batch_rows"] == {"verdict": "unchecked", "detail": ""}  # not asked for
    # Rows merged along a free first dim: warmed and checked at prepare.
    batched = tandem.Engine(threads=1).prepare(models.identity(tmp_path / "rows.onnx", TensorProto.FLOAT),
                                               routes="cpu,reference", warmup_batch_sizes=[4], check_batch_rows=True)
    assert batched.sla_estimate["warmed_batch_sizes"] == [4]
    assert batched.sla_estimate["batch_rows"] == {"verdict": "independent", "detail": "checked on cpu"}
    # A cap this small stops each route's warm-up after its first run.
    capped = tandem.Engine(threads=1).prepare(add_mul_path, routes="cpu,reference", warmup_time_cap_ms=1e-6)
    assert capped.sla_estimate["per_backend_runs"] == {"cpu": 1, "reference": 1}
    # The bound on plans kept per input shape is taken, and a negative one refused.
    bounded = tandem.Engine(threads=1).prepare(add_mul_path, routes="cpu,reference", shape_cache_mb=64)
    assert list(bounded.infer({"a": np.ones((2, 3), np.float32), "b": np.ones((2, 3), np.float32)})) == ["sum", "prod"]
    with pytest.raises(tandem.InvalidArgument, match="shape_cache_mb"):
        tandem.Engine(threads=1).prepare(add_mul_path, shape_cache_mb=-1)
    placement = model.placement()
    assert [r["backend"] for r in placement["routes"]] == ["cpu", "reference"]
    assert "cpu" in placement["text"]
    a = np.ones((2, 3), np.float32)
    out = model.infer({"a": a, "b": a * 3}, deadline_ms=5000)
    assert list(out) == ["sum", "prod"]
    np.testing.assert_array_equal(out["sum"], np.full((2, 3), 4, np.float32))
    res = model.infer({"a": a, "b": a}, return_info=True, strict=True)
    assert res["info"]["backend"] == "cpu" and res["info"]["attempts"] == 1 and res["info"]["total_ms"] > 0
    assert tandem.last_infer_ms() == res["info"]["total_ms"]
    tel = engine.telemetry()
    (m,) = tel["models"]
    assert m["model"] == "am" and m["requests"] == 2 and m["succeeded"] == 2
    json.dumps(tel)
    prom = engine.telemetry_prometheus()
    assert 'model="am"' in prom and "tandem_" in prom
    assert model.telemetry()["requests"] == 2


def test_unknown_prepare_option_is_invalid_argument(add_mul_path):
    engine = tandem.Engine()
    with pytest.raises(tandem.InvalidArgument, match="unknown prepare option 'nope'"):
        engine.prepare(add_mul_path, nope=1)
    with pytest.raises(tandem.InvalidArgument):
        engine.prepare(add_mul_path, precision="fp7")
    with pytest.raises(tandem.InvalidArgument):
        engine.prepare(add_mul_path, breaker={"window_size": "big"})


def test_strict_mode_and_fault_injection_through_prepare_options(add_mul_path):
    engine = tandem.Engine(threads=1)
    a = np.ones((2, 3), np.float32)
    # Every call on the cpu route fails: the fallback chain answers from the reference ...
    lenient = engine.prepare(add_mul_path, routes=["cpu", "reference"], fault_injection="route=cpu,error=1",
                             warmup_runs=0)
    res = lenient.infer({"a": a, "b": a}, return_info=True)
    assert res["info"]["backend"] == "reference" and "faulty(cpu)" in res["info"]["fallback_reason"]
    np.testing.assert_array_equal(res["outputs"]["sum"], 2 * a)
    # ... infer(strict=True) refuses an answer that came from a fallback route ...
    with pytest.raises(tandem.Unavailable, match="strict"):
        lenient.infer({"a": a, "b": a}, strict=True)
    # ... and strict prepare never leaves the first route: the injected fault surfaces, typed.
    strict = engine.prepare(add_mul_path, routes=["cpu", "reference"], fault_injection="route=cpu,error=1",
                            strict=True, warmup_runs=0)
    with pytest.raises(tandem.DeviceError) as info:
        strict.infer({"a": a, "b": a})
    assert info.value.code == "device_error"
    assert "\n" not in str(info.value)
    assert isinstance(info.value, tandem.Error)


def test_same_route_retries_through_prepare_options(add_mul_path):
    engine = tandem.Engine(threads=1)
    a = np.ones((2, 3), np.float32)
    # A failing route is called 1 + same_route_retries times before the reference answers.
    for retries in (0, 2):
        model = engine.prepare(add_mul_path, routes=["cpu", "reference"], fault_injection="route=cpu,error=1",
                               warmup_runs=0, same_route_retries=retries)
        res = model.infer({"a": a, "b": a}, return_info=True)
        assert res["info"]["backend"] == "reference" and res["info"]["attempts"] == retries + 2
        cpu = model.telemetry()["backends"][0]
        assert cpu["retries"] == retries and cpu["requests"] == retries + 1
    with pytest.raises(tandem.InvalidArgument, match="same_route_retries"):
        engine.prepare(add_mul_path, same_route_retries=-1)


def test_parity_sampling_through_prepare_options(add_mul_path):
    engine = tandem.Engine(threads=1)
    model = engine.prepare(add_mul_path, routes=["cpu", "reference"], parity_sample_rate=1.0,
                           parity_budget={"max_abs": 0.0, "rmse": 0.0})
    a = np.ones((2, 3), np.float32)
    for _ in range(3):
        model.infer({"a": a, "b": a})
    assert model.drain_parity(5000)
    cpu = model.telemetry()["backends"][0]
    assert cpu["parity"]["samples"] == 3 and cpu["parity"]["violations"] == 0


def test_many_python_threads_share_one_session(add_mul_path):
    sess = tandem.InferenceSession(add_mul_path)
    errors = []

    def work(k):
        try:
            a = np.full((2, 3), k, np.float32)
            for _ in range(50):
                s, p = sess.run(None, {"a": a, "b": a})
                assert (s == 2 * k).all() and (p == k * k).all()
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sess.prepared.telemetry()["succeeded"] == 400


def test_outputs_share_tandem_buffers_without_copy(add_mul_path):
    sess = tandem.InferenceSession(add_mul_path)
    a = np.ones((2, 3), np.float32)
    s, _ = sess.run(None, {"a": a, "b": a})
    assert s.base is not None and not s.flags.owndata  # a view over the tensor (capsule base)
    assert s.flags.writeable and s.flags.c_contiguous
