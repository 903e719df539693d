// accumulate.h: how the reference kernels of products (matmul.cpp, einsum.cpp) accumulate:
// floats in double, integers in int64 with two's-complement wrapping (never signed-overflow
// UB), and the checked element count that guards their index arithmetic.
#pragma once

#include <cstdint>
#include <type_traits>

#include "core/tensor_util.h"
#include "tandem/tensor.h"

namespace tandem::accumulate {

constexpr int64_t kMaxElements = int64_t{1} << 40;  // guard for index arithmetic

// Accumulator type: double for floats, int64 for integers.
template <class T>
using Acc = std::conditional_t<std::is_integral_v<T>, int64_t, double>;

template <class T>
inline Acc<T> to_acc(T v) {
  if constexpr (std::is_integral_v<T>)
    return static_cast<int64_t>(v);
  else
    return to_double(v);
}

// Wrapping integer multiply-add (two's complement), no signed-overflow UB.
inline int64_t wrap_add(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
}
inline int64_t wrap_mul(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b));
}

template <class T>
inline T from_acc(Acc<T> v) {
  if constexpr (std::is_integral_v<T>)
    return static_cast<T>(v);
  else
    return from_double<T>(v);
}

// Checked product of dims; false on negative dims or overflow past kMaxElements.
inline bool checked_numel(const Shape& s, int64_t* out) {
  int64_t n = 1;
  for (int64_t d : s) {
    if (d < 0) return false;
    if (d != 0 && n > kMaxElements / d) return false;
    n *= d;
  }
  *out = n;
  return true;
}

}  // namespace tandem::accumulate
