// arrays.cpp: numpy arrays <-> tandem tensors (see arrays.h).
#include "arrays.h"

#include <cstring>
#include <memory>
#include <utility>

namespace tandem::python {

namespace {

// Drops the array reference a tensor buffer holds; the last owner may be an engine worker
// thread, so the GIL is taken here. Once the interpreter is shutting down the reference is leaked.
struct ArrayRelease {
  PyObject* array;
  void operator()(void*) const {
    if (!Py_IsInitialized() || _Py_IsFinalizing()) return;
    PyGILState_STATE s = PyGILState_Ensure();
    Py_DECREF(array);
    PyGILState_Release(s);
  }
};

Tensor wrap_array(DataType dtype, Shape shape, const py::array& a) {
  PyObject* obj = a.ptr();
  Py_INCREF(obj);
  return Tensor::adopt(dtype, std::move(shape), std::shared_ptr<void>(const_cast<void*>(a.data()), ArrayRelease{obj}));
}

Shape shape_of(const py::array& a) {
  Shape s(static_cast<size_t>(a.ndim()));
  for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<int64_t>(a.shape(static_cast<py::ssize_t>(i)));
  return s;
}

// Module references are leaked on purpose: a static py::object would be released after the
// interpreter has shut down.
py::object numpy_module() {
  static auto* np = new py::object(py::module_::import("numpy"));
  return *np;
}

std::string numpy_dtype_str(const py::dtype& d) { return py::str(py::handle(d)).cast<std::string>(); }

}  // namespace

Result<py::dtype> numpy_dtype_of(DataType t) {
  switch (t) {
    case DataType::float32: return py::dtype::of<float>();
    case DataType::float64: return py::dtype::of<double>();
    case DataType::float16: return py::dtype("float16");
    case DataType::bfloat16: return py::dtype::of<float>();
    case DataType::uint8: return py::dtype::of<uint8_t>();
    case DataType::int8: return py::dtype::of<int8_t>();
    case DataType::uint16: return py::dtype::of<uint16_t>();
    case DataType::int16: return py::dtype::of<int16_t>();
    case DataType::int32: return py::dtype::of<int32_t>();
    case DataType::int64: return py::dtype::of<int64_t>();
    case DataType::uint32: return py::dtype::of<uint32_t>();
    case DataType::uint64: return py::dtype::of<uint64_t>();
    case DataType::boolean: return py::dtype::of<bool>();
    case DataType::complex64: return py::dtype("complex64");
    case DataType::complex128: return py::dtype("complex128");
    case DataType::string: return py::dtype("O");
    case DataType::undefined: break;
  }
  return invalid_argument("no numpy dtype for element type " + std::string(dtype_name(t)));
}

DataType dtype_from_numpy(const py::dtype& d) {
  const char kind = d.kind();
  const auto size = d.itemsize();
  switch (kind) {
    case 'f':
      return size == 2 ? DataType::float16 : size == 4 ? DataType::float32 : size == 8 ? DataType::float64 : DataType::undefined;
    case 'i':
      return size == 1 ? DataType::int8 : size == 2 ? DataType::int16 : size == 4 ? DataType::int32 : size == 8 ? DataType::int64 : DataType::undefined;
    case 'u':
      return size == 1 ? DataType::uint8 : size == 2 ? DataType::uint16 : size == 4 ? DataType::uint32 : size == 8 ? DataType::uint64 : DataType::undefined;
    case 'b': return DataType::boolean;
    case 'c': return size == 8 ? DataType::complex64 : size == 16 ? DataType::complex128 : DataType::undefined;
    case 'O': case 'U': case 'S': return DataType::string;
    default: return DataType::undefined;
  }
}

Result<Tensor> tensor_from_python(const std::string& name, py::handle obj, DataType declared) {
  py::object np = numpy_module();
  py::array a;
  if (py::isinstance<py::array>(obj)) {
    a = py::reinterpret_borrow<py::array>(obj);
  } else {
    // Lists and scalars take the model's element type, as a literal would.
    auto want = declared == DataType::undefined ? Result<py::dtype>(invalid_argument("")) : numpy_dtype_of(declared);
    a = want.is_ok() ? py::array(np.attr("asarray")(obj, *want)) : py::array(np.attr("asarray")(obj));
  }
  DataType dt = dtype_from_numpy(a.dtype());
  if (dt == DataType::undefined)
    return invalid_argument("input '" + name + "': numpy dtype " + numpy_dtype_str(a.dtype()) + " has no tandem element type");
  const Shape shape = shape_of(a);

  if (dt == DataType::string) {
    Tensor t(DataType::string, shape);
    py::array flat = np.attr("ascontiguousarray")(a).attr("reshape")(-1);
    std::string* out = t.data<std::string>();
    for (py::ssize_t i = 0; i < flat.size(); ++i) {
      py::object item = flat.attr("item")(i);
      if (py::isinstance<py::bytes>(item)) out[i] = item.cast<std::string>();
      else out[i] = py::str(item).cast<std::string>();
    }
    return t;
  }
  // A bfloat16 input takes float arrays, rounded to nearest even.
  if (declared == DataType::bfloat16 && is_float_type(dt)) {
    py::array_t<float, py::array::c_style | py::array::forcecast> f(a);
    Tensor t(DataType::bfloat16, shape);
    BFloat16* out = t.data<BFloat16>();
    const float* in = f.data();
    for (py::ssize_t i = 0; i < f.size(); ++i) out[i] = BFloat16(in[i]);
    return t;
  }
  const int flags = py::detail::array_proxy(a.ptr())->flags;
  const bool contiguous = (flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_) != 0;
  const bool aligned = (flags & py::detail::npy_api::NPY_ARRAY_ALIGNED_) != 0;
  const bool native = a.dtype().attr("isnative").cast<bool>();
  if (!contiguous || !aligned || !native) {
    py::dtype native_dt = a.dtype().attr("newbyteorder")("=");
    a = np.attr("ascontiguousarray")(a, native_dt);
  }
  if (a.size() == 0) return Tensor(dt, shape);
  return wrap_array(dt, shape, a);
}

py::object value_to_python(Value&& v) {
  if (v.is_none()) return py::none();
  if (v.is_sequence()) {
    py::list out;
    for (Tensor& t : v.sequence) out.append(value_to_python(Value::of(std::move(t))));
    return out;
  }
  Tensor t = std::move(v.tensor);
  std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end());
  switch (t.dtype()) {
    case DataType::bfloat16: {
      py::array_t<float> out(shape);
      float* dst = out.mutable_data();
      const BFloat16* src = t.data<BFloat16>();
      for (int64_t i = 0; i < t.numel(); ++i) dst[i] = static_cast<float>(src[i]);
      return out;
    }
    case DataType::string: {
      py::array out(py::dtype("O"), shape);
      py::array flat = out.attr("reshape")(-1);
      const std::string* src = t.data<std::string>();
      for (int64_t i = 0; i < t.numel(); ++i) flat[py::int_(i)] = py::str(src[i]);
      return out;
    }
    default: break;
  }
  auto dt = numpy_dtype_of(t.dtype());
  if (!dt.is_ok()) return py::none();
  // A buffer someone else still holds (a model constant, an input passed through) is copied so
  // that writing to the array cannot reach it.
  if (!t.buffer_unshared()) t = t.clone();
  auto* owner = new Tensor(std::move(t));
  py::capsule base(owner, [](void* p) { delete static_cast<Tensor*>(p); });
  return py::array(*dt, shape, owner->raw_data(), base);
}

std::string ort_type_name(const std::string& kind, DataType dtype) {
  std::string elem;
  switch (dtype) {
    case DataType::float32: elem = "float"; break;
    case DataType::float64: elem = "double"; break;
    case DataType::undefined: elem = "undefined"; break;
    default: elem = std::string(dtype_name(dtype)); break;
  }
  if (elem == "boolean") elem = "bool";
  const std::string tensor = "tensor(" + elem + ")";
  if (kind == "sequence") return "seq(" + tensor + ")";
  if (kind == "optional") return "optional(" + tensor + ")";
  if (kind == "map") return "map(" + elem + ")";
  return tensor;
}

}  // namespace tandem::python
