"""Every element type tandem has, round-tripped through an Identity model; typed input errors."""

import numpy as np
import pytest
from onnx import TensorProto

import tandem
import models

# ONNX element type, numpy dtype in, numpy dtype out, ONNX Runtime's type string.
DTYPES = [
    (TensorProto.FLOAT, np.float32, np.float32, "tensor(float)"),
    (TensorProto.DOUBLE, np.float64, np.float64, "tensor(double)"),
    (TensorProto.FLOAT16, np.float16, np.float16, "tensor(float16)"),
    (TensorProto.BFLOAT16, np.float32, np.float32, "tensor(bfloat16)"),
    (TensorProto.INT8, np.int8, np.int8, "tensor(int8)"),
    (TensorProto.UINT8, np.uint8, np.uint8, "tensor(uint8)"),
    (TensorProto.INT16, np.int16, np.int16, "tensor(int16)"),
    (TensorProto.UINT16, np.uint16, np.uint16, "tensor(uint16)"),
    (TensorProto.INT32, np.int32, np.int32, "tensor(int32)"),
    (TensorProto.UINT32, np.uint32, np.uint32, "tensor(uint32)"),
    (TensorProto.INT64, np.int64, np.int64, "tensor(int64)"),
    (TensorProto.UINT64, np.uint64, np.uint64, "tensor(uint64)"),
    (TensorProto.BOOL, np.bool_, np.bool_, "tensor(bool)"),
    (TensorProto.COMPLEX64, np.complex64, np.complex64, "tensor(complex64)"),
    (TensorProto.COMPLEX128, np.complex128, np.complex128, "tensor(complex128)"),
    (TensorProto.STRING, object, object, "tensor(string)"),
]


def _sample(dtype, shape=(4, 3)):
    rng = np.random.default_rng(0)
    if dtype is object:
        return np.array([f"s{i}é" for i in range(12)], dtype=object).reshape(shape)
    if dtype is np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    if np.issubdtype(dtype, np.complexfloating):
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
    if np.issubdtype(dtype, np.floating):
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


@pytest.mark.parametrize("elem,dtype_in,dtype_out,ort_type", DTYPES, ids=[d[3] for d in DTYPES])
def test_identity_round_trip(tmp_path, elem, dtype_in, dtype_out, ort_type):
    path = models.identity(tmp_path / "id.onnx", elem)
    sess = tandem.InferenceSession(path)
    assert sess.get_inputs()[0].type == ort_type
    assert sess.get_outputs()[0].type == ort_type
    x = _sample(dtype_in)
    if elem == TensorProto.BFLOAT16:
        x = (x.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)  # exactly representable
    (y,) = sess.run(None, {"x": x})
    assert y.dtype == np.dtype(dtype_out)
    assert y.shape == x.shape
    if dtype_in is object:
        assert y.tolist() == x.tolist()
    else:
        assert y.tobytes() == x.tobytes()  # bit-identical
    # The output never aliases the input array.
    if dtype_in is not object:
        assert not np.shares_memory(x, y)


def test_bfloat16_input_rounds_to_nearest_even(tmp_path):
    sess = tandem.InferenceSession(models.identity(tmp_path / "id.onnx", TensorProto.BFLOAT16, (3,)))
    x = np.array([1.0, 1.00390625, 1.01171875], np.float32)  # 1 + 2^-8 ties to 1; 1 + 3*2^-8 ties up
    (y,) = sess.run(None, {"x": x})
    np.testing.assert_array_equal(y, np.array([1.0, 1.0, 1.015625], np.float32))


@pytest.fixture()
def sess(tmp_path):
    return tandem.InferenceSession(models.add_mul(tmp_path / "am.onnx"))


def _ok():
    return np.ones((2, 3), np.float32)


def test_wrong_input_name(sess):
    with pytest.raises(tandem.InvalidArgument, match="'c' is not an input"):
        sess.run(None, {"a": _ok(), "b": _ok(), "c": _ok()})


def test_missing_input(sess):
    with pytest.raises(tandem.InvalidArgument, match="missing input 'b'"):
        sess.run(None, {"a": _ok()})


def test_wrong_dtype(sess):
    with pytest.raises(tandem.InvalidArgument, match=r"expected tensor\(float\), got tensor\(double\)") as info:
        sess.run(None, {"a": _ok().astype(np.float64), "b": _ok()})
    assert isinstance(info.value, ValueError) and info.value.code == "invalid_argument"


def test_wrong_shape(sess):
    with pytest.raises(tandem.InvalidArgument):
        sess.run(None, {"a": np.ones((3, 2), np.float32), "b": _ok()})


def test_wrong_output_name(sess):
    with pytest.raises(tandem.InvalidArgument, match="'nope' is not an output"):
        sess.run(["nope"], {"a": _ok(), "b": _ok()})


def test_unsupported_numpy_dtype(sess):
    with pytest.raises(tandem.InvalidArgument, match="no tandem element type"):
        sess.run(None, {"a": np.ones((2, 3), "datetime64[s]"), "b": _ok()})


def test_bad_model_is_invalid_model(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(tandem.InvalidModel):
        tandem.InferenceSession(bad)
    with pytest.raises(tandem.Error):
        tandem.InferenceSession(tmp_path / "missing.onnx")


def test_exception_hierarchy():
    names = ["InvalidArgument", "InvalidModel", "Unsupported", "DeviceError", "Timeout", "OutOfMemory",
             "ParityViolation", "Cancelled", "Unavailable", "InternalError"]
    codes = set()
    for n in names:
        cls = getattr(tandem, n)
        assert issubclass(cls, tandem.Error)
        codes.add(cls.code)
    assert len(codes) == len(names)
    assert issubclass(tandem.Timeout, TimeoutError)
