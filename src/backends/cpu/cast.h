// cast.h: the element types the cpu backend's Cast converts between, and the narrowing of
// float32 values to bfloat16 that precision=bf16 products read (cast.cpp).
#pragma once

#include <cstdint>
#include <string>

#include "backends/cpu/builder.h"
#include "tandem/tensor.h"

namespace tandem::cpu {

// The element types Cast converts between on the cpu backend (float32, float16, the int32,
// int64 and bool of shape arithmetic, and the uint8 and int8 of quantized models). supports()
// and the Cast kernel agree.
bool castable(DataType t);

// bfloat16 copies of float32 activations (Builder::require_bf16): the project's own kernel
// (vcvtne2ps2bf16, round to nearest even) where the CPU narrows natively and the copy keeps
// the value's layout; elsewhere oneDNN's reorder. Measured on an AMD EPYC (Zen 5), 2.4M values
// in nChw16c: 0.16-0.18 ms for oneDNN's reorder at one thread but 0.23-0.69 ms at two; the
// kernel 0.09-0.22 ms at two. False under TANDEM_CPU_BF16_NARROWING=0 (the compile and the
// bf16 timing then both take the reorder).
bool narrows_to_bf16_natively(const IValue& from, Layout to);
// The kernel's loop: float32 -> bfloat16 bits, n elements, round to nearest even (NaN stays
// NaN). Only where has_native_bf16().
void narrow_to_bf16(const float* src, uint16_t* dst, int64_t n);
// bfloat16 bits -> float32, n elements (exact: a bf16 value is the top half of a float).
void widen_from_bf16(const uint16_t* src, float* dst, int64_t n);
// Adds the kernel writing `dst` (bfloat16, same shape and layout as `src`); `unsupported` when
// narrows_to_bf16_natively() says no.
Status add_bf16_narrowing(Builder& b, int src, int dst, const std::string& label);
// Best of two timed narrowings of a value like `from` on scratch buffers, at the calling
// thread's OpenMP team size (bf16_choice.h counts it against a product's bf16 gain); infinity
// when the native kernel does not apply.
double time_bf16_narrowing_ms(const IValue& from);

}  // namespace tandem::cpu
