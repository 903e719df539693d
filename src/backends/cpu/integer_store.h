// integer_store.h: how the backend's own integer products (int8.h: IntegerProduct) write an
// exact int32 accumulator, shared by the direct loops (qdirect.cpp) and the float32 route
// (qfloat.cpp): int32 as it is, float32 for a fused Cast, float32 acc * multiplier for an
// absorbed chain (unrounded), or 8-bit round_half_even(double(acc) * multiplier) + zero point,
// saturated (the reference kernels' requantization; NaN gives the low end).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "backends/cpu/int8.h"

namespace tandem::cpu {

// Writes acc (output channel m) as the product's output type.
struct Store {
  DataType type = DataType::int32;
  const float* multipliers = nullptr;  // null: int32 output
  int64_t count = 1;
  int32_t zp = 0;
  void operator()(void* out, int64_t i, int64_t m, int32_t acc) const {
    if (!multipliers) {
      if (type == DataType::float32) static_cast<float*>(out)[i] = static_cast<float>(acc);  // a fused Cast
      else static_cast<int32_t*>(out)[i] = acc;
      return;
    }
    const float mult = multipliers[count == 1 ? 0 : m];
    if (type == DataType::float32) {  // requantized, before rounding (a product's absorbed chain)
      static_cast<float*>(out)[i] = static_cast<float>(static_cast<double>(acc) * static_cast<double>(mult));
      return;
    }
    double q = __builtin_rint(static_cast<double>(acc) * static_cast<double>(mult)) + zp;  // ties to even, no libm call
    const double lo = type == DataType::uint8 ? 0.0 : -128.0, hi = type == DataType::uint8 ? 255.0 : 127.0;
    q = std::isnan(q) ? lo : std::clamp(q, lo, hi);
    if (type == DataType::uint8) static_cast<uint8_t*>(out)[i] = static_cast<uint8_t>(q);
    else static_cast<int8_t*>(out)[i] = static_cast<int8_t>(q);
  }
};

// A kernel holding an IntegerProduct and the Store its run reads.
class IntegerKernelBase : public Kernel {
 public:
  IntegerProduct p;
  bool src_signed = false;
  DataType out_type = DataType::int32;

  Store store(const RunCtx& ctx) const {
    Store s;
    s.type = out_type;
    if (p.scales >= 0) s.multipliers = static_cast<const float*>(ctx.ptr[p.scales]);
    s.count = p.scale_count;
    s.zp = p.dst_zp.read(ctx);
    return s;
  }
};

}  // namespace tandem::cpu
