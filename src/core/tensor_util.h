// tensor_util.h: small helpers shared by kernels of every backend: dtype dispatch, axis
// normalization, strides and numpy-style broadcasting. Pure functions, thread-safe.
#pragma once

#include <complex>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "tandem/status.h"
#include "tandem/tensor.h"

namespace tandem {

// Calls `f.template operator()<T>()` with T the C++ type of `dtype`, for every dtype but
// string/complex/undefined. Returns false when dtype is not covered.
//   visit_numeric(t.dtype(), [&]<class T>() { ... });
template <class F>
bool visit_numeric(DataType dtype, F&& f) {
  switch (dtype) {
    case DataType::float32: f.template operator()<float>(); return true;
    case DataType::float64: f.template operator()<double>(); return true;
    case DataType::float16: f.template operator()<Float16>(); return true;
    case DataType::bfloat16: f.template operator()<BFloat16>(); return true;
    case DataType::int8: f.template operator()<int8_t>(); return true;
    case DataType::int16: f.template operator()<int16_t>(); return true;
    case DataType::int32: f.template operator()<int32_t>(); return true;
    case DataType::int64: f.template operator()<int64_t>(); return true;
    case DataType::uint8: f.template operator()<uint8_t>(); return true;
    case DataType::uint16: f.template operator()<uint16_t>(); return true;
    case DataType::uint32: f.template operator()<uint32_t>(); return true;
    case DataType::uint64: f.template operator()<uint64_t>(); return true;
    case DataType::boolean: f.template operator()<bool>(); return true;
    default: return false;
  }
}

// Like visit_numeric, plus string and complex types: for data-movement ops that only copy.
template <class F>
bool visit_any(DataType dtype, F&& f) {
  switch (dtype) {
    case DataType::string: f.template operator()<std::string>(); return true;
    case DataType::complex64: f.template operator()<std::complex<float>>(); return true;
    case DataType::complex128: f.template operator()<std::complex<double>>(); return true;
    default: return visit_numeric(dtype, std::forward<F>(f));
  }
}

// Only float16, bfloat16, float32, float64.
template <class F>
bool visit_float(DataType dtype, F&& f) {
  switch (dtype) {
    case DataType::float32: f.template operator()<float>(); return true;
    case DataType::float64: f.template operator()<double>(); return true;
    case DataType::float16: f.template operator()<Float16>(); return true;
    case DataType::bfloat16: f.template operator()<BFloat16>(); return true;
    default: return false;
  }
}

// Element-type traits for kernels templated over every dtype.
template <class T>
inline constexpr bool is_half_v = std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>;
// Any floating-point element: float, double, Float16, BFloat16.
template <class T>
inline constexpr bool is_float_v = std::is_floating_point_v<T> || is_half_v<T>;
// Integer elements, bool excluded.
template <class T>
inline constexpr bool is_int_v = std::is_integral_v<T> && !std::is_same_v<T, bool>;
template <class T>
inline constexpr bool is_complex_v = std::is_same_v<T, std::complex<float>> || std::is_same_v<T, std::complex<double>>;

// Element <-> double conversions that work for every numeric type, Float16/BFloat16 included.
template <class T>
inline double to_double(T v) {
  if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) return static_cast<float>(v);
  else return static_cast<double>(v);
}
template <class T>
inline T from_double(double v) {
  if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) return T(static_cast<float>(v));
  else if constexpr (std::is_same_v<T, bool>) return v != 0.0;
  else return static_cast<T>(v);
}

// A tensor of float type `dtype` (float32, float64, float16, bfloat16) and `shape` holding
// `values` (row-major, at least numel() of them) rounded to the dtype.
Tensor float_tensor(DataType dtype, const Shape& shape, const std::vector<double>& values);

// Maps a possibly negative axis into [0, rank); error when out of range.
Result<int64_t> normalize_axis(int64_t axis, int64_t rank);

// Row-major strides, in elements.
std::vector<int64_t> strides_of(const Shape& shape);

// Numpy-style (multidirectional) broadcast of two or more shapes; error when incompatible.
Result<Shape> broadcast_shapes(const Shape& a, const Shape& b);
Result<Shape> broadcast_shapes(const std::vector<Shape>& shapes);

// Strides of `in` laid against `out` (same rank after left-padding with 1s), 0 where `in`
// broadcasts. Index an input element of broadcast output position p with
// sum(coord_k(p) * strides[k]).
std::vector<int64_t> broadcast_strides(const Shape& in, const Shape& out);

// Maps each output linear index to the linear index of each input under broadcasting.
// Usage: BroadcastIterator it(out, {a.shape(), b.shape()}); for (i...) { it.offset(0) ...; it.next(); }
class BroadcastIterator {
 public:
  BroadcastIterator(const Shape& out, const std::vector<Shape>& inputs);
  int64_t offset(size_t input) const { return offsets_[input]; }
  void next();

 private:
  Shape out_;
  std::vector<std::vector<int64_t>> strides_;
  std::vector<int64_t> coord_;
  std::vector<int64_t> offsets_;
};

// Reads an int32/int64 (or other integer) tensor as int64 values.
std::vector<int64_t> to_int64_vector(const Tensor& t);
// Reads any numeric tensor as doubles.
std::vector<double> to_double_vector(const Tensor& t);

// Converts every element of `src` to `to` (numeric <-> numeric, numeric <-> string per ONNX
// Cast rules). Error when a conversion is not defined.
Result<Tensor> cast_tensor(const Tensor& src, DataType to);

}  // namespace tandem
