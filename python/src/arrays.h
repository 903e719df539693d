// arrays.h: numpy arrays <-> tandem tensors for the Python bindings.
//
// Inputs: a C-contiguous, aligned, native-order array whose dtype tandem has is wrapped
// without a copy (the tensor's buffer holds a reference to the array); anything else is
// converted first. Outputs: the array's memory is the tensor's own buffer (a capsule keeps
// the tensor alive), except bfloat16 (widened to float32), strings (object arrays), and
// buffers still shared with something else (copied, so writing to the array is private).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "tandem/status.h"
#include "tandem/tensor.h"
#include "tandem/value.h"

namespace tandem::python {

namespace py = pybind11;

// The numpy dtype that holds `t` (bfloat16: float32); invalid_argument for undefined.
Result<py::dtype> numpy_dtype_of(DataType t);
// The tandem element type of a numpy dtype; undefined when tandem has none.
DataType dtype_from_numpy(const py::dtype& d);

// Turns `obj` (an ndarray or anything numpy.asarray accepts) into a tensor. `declared` is the
// model's element type for that input (undefined when unknown): non-array objects are
// converted to it, and float32 arrays are narrowed for a bfloat16 input. Needs the GIL.
Result<Tensor> tensor_from_python(const std::string& name, py::handle obj, DataType declared);

// The array for an output value (a tensor; sequences become lists of arrays). Needs the GIL.
py::object value_to_python(Value&& v);

// "tensor(float)", "seq(tensor(int64))" ... as ONNX Runtime writes types.
std::string ort_type_name(const std::string& kind, DataType dtype);

}  // namespace tandem::python
