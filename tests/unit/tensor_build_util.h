// tensor_build_util.h: small tensors written out in tests: one builder per element type, and
// float32 <-> float16 conversion of whole tensors.
#pragma once

#include <cstdint>
#include <vector>

#include "tandem/tensor.h"

namespace tandem::testing {

inline Tensor f32(Shape s, std::vector<float> v) { return Tensor::from_vector<float>(std::move(s), v); }
inline Tensor f64(Shape s, std::vector<double> v) { return Tensor::from_vector<double>(std::move(s), v); }
inline Tensor i32(Shape s, std::vector<int32_t> v) { return Tensor::from_vector<int32_t>(std::move(s), v); }
inline Tensor i64(Shape s, std::vector<int64_t> v) { return Tensor::from_vector<int64_t>(std::move(s), v); }
// A 1-D int64 tensor: shapes, axes, indices.
inline Tensor i64(std::vector<int64_t> v) { return Tensor::from_vector<int64_t>({static_cast<int64_t>(v.size())}, v); }
inline Tensor u8(Shape s, std::vector<uint8_t> v) { return Tensor::from_vector<uint8_t>(std::move(s), v); }
inline Tensor s8(Shape s, std::vector<int8_t> v) { return Tensor::from_vector<int8_t>(std::move(s), v); }
inline Tensor bools(Shape s, std::vector<bool> v) {
  Tensor t(DataType::boolean, std::move(s));
  for (size_t i = 0; i < v.size() && static_cast<int64_t>(i) < t.numel(); ++i) t.data<bool>()[i] = v[i];
  return t;
}
inline Tensor f32_scalar(float v) { return Tensor::scalar<float>(v); }
inline Tensor i64_scalar(int64_t v) { return Tensor::scalar<int64_t>(v); }

// A float32 tensor rounded to float16, and a float16 tensor widened to float32 (a float32
// tensor comes back as it is).
inline Tensor to_half(const Tensor& t) {
  Tensor h(DataType::float16, t.shape());
  for (int64_t i = 0; i < t.numel(); ++i) h.data<Float16>()[i] = Float16(t.data<float>()[i]);
  return h;
}
inline Tensor to_float(const Tensor& t) {
  if (t.dtype() == DataType::float32) return t;
  Tensor f(DataType::float32, t.shape());
  for (int64_t i = 0; i < t.numel(); ++i) f.data<float>()[i] = static_cast<float>(t.data<Float16>()[i]);
  return f;
}

}  // namespace tandem::testing
