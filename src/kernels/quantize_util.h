// quantize_util.h: what the reference quantization kernels share (quantize.cpp and
// quantize_contrib.cpp): the ranges of the 8-bit types, element access to 8-bit tensors,
// requantization (round half to even, then saturate) and the data-derived parameters of
// DynamicQuantizeLinear.
//
// Everything here is inline and pure: thread-safe, no state.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "tandem/tensor.h"

namespace tandem::quant {

inline bool is_8bit(DataType t) { return t == DataType::uint8 || t == DataType::int8; }

// The values an 8-bit type holds: [0, 255] for uint8, [-128, 127] for int8.
struct Range {
  int64_t lo = 0;
  int64_t hi = 255;
};
inline Range range_of(DataType t) { return t == DataType::int8 ? Range{-128, 127} : Range{0, 255}; }

// Element i of a uint8 or int8 tensor.
inline int64_t int8_at(const Tensor& t, int64_t i) {
  return t.dtype() == DataType::uint8 ? static_cast<int64_t>(t.data<uint8_t>()[i])
                                      : static_cast<int64_t>(t.data<int8_t>()[i]);
}

// Writes v (already inside the type's range) to element i of a uint8 or int8 tensor.
inline void store_8bit(Tensor& t, int64_t i, int64_t v) {
  if (t.dtype() == DataType::uint8) t.data<uint8_t>()[i] = static_cast<uint8_t>(v);
  else t.data<int8_t>()[i] = static_cast<int8_t>(v);
}

// saturate(round_half_to_even(v) + zero_point) into `r`. `v` must not be NaN (callers check
// their scales); infinities saturate.
inline int64_t round_add_saturate(double v, int64_t zero_point, Range r) {
  const double q = std::nearbyint(v) + static_cast<double>(zero_point);  // default FP environment: ties to even
  if (q < static_cast<double>(r.lo)) return r.lo;
  if (q > static_cast<double>(r.hi)) return r.hi;
  return static_cast<int64_t>(q);
}

// The parameters DynamicQuantizeLinear derives from its data: uint8, over the range
// [min(0, x), max(0, x)] (NaN ignored), computed in float32 as the ONNX reference does:
//   scale = (max - min) / 255, zero_point = saturate(round_half_to_even(0 - min / scale)).
// A zero or non-finite scale quantizes everything to the zero point.
struct DynamicParams {
  float scale = 0.0f;
  uint8_t zero_point = 0;
  bool usable() const { return scale != 0.0f && std::isfinite(scale); }
};

inline DynamicParams dynamic_params(const std::vector<double>& xs) {
  float x_min = 0.0f, x_max = 0.0f;
  for (double v : xs) {
    const float f = static_cast<float>(v);
    if (std::isnan(f)) continue;
    if (f < x_min) x_min = f;
    if (f > x_max) x_max = f;
  }
  DynamicParams p;
  p.scale = (x_max - x_min) / 255.0f;
  if (p.usable()) {
    const float inter = 0.0f - x_min / p.scale;
    p.zero_point = static_cast<uint8_t>(round_add_saturate(inter, 0, Range{0, 255}));
  }
  return p;
}

// One value quantized with DynamicParams: saturate(round_half_to_even(x / scale) + zero_point),
// the division in float32; NaN quantizes to the zero point.
inline uint8_t dynamic_quantize(double x, const DynamicParams& p) {
  if (!p.usable()) return p.zero_point;
  const float q = static_cast<float>(x) / p.scale;
  if (std::isnan(q)) return p.zero_point;
  return static_cast<uint8_t>(round_add_saturate(q, p.zero_point, Range{0, 255}));
}

}  // namespace tandem::quant
