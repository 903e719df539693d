// bf16_test_util.h: helpers shared by the cpu backend's bf16 tests (cpu_bf16_narrowing_test,
// cpu_bf16_handoff_test): seeded uniform float32 tensors, and a tensor rounded to bfloat16
// (to nearest even, as tandem's BFloat16 does) and back to float32.
#pragma once

#include <cstdint>
#include <random>

#include "tandem/tensor.h"

namespace tandem::testing {

inline Tensor random_tensor(const Shape& shape, uint32_t seed, float lo, float hi) {
  Tensor t(DataType::float32, shape);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(gen);
  return t;
}

inline Tensor rounded_to_bf16(const Tensor& t) {
  Tensor r(DataType::float32, t.shape());
  for (int64_t i = 0; i < t.numel(); ++i) r.data<float>()[i] = static_cast<float>(BFloat16(t.data<float>()[i]));
  return r;
}

}  // namespace tandem::testing
