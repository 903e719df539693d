// ew_exp_kernels.h: the logistic activations (Sigmoid, and Swish: x * Sigmoid(x)) over float32
// arrays in place, written with explicit AVX-512 and AVX2 intrinsics, where ew_math.h's
// branch-free scalar forms leave the compiler two divisions and a scalar floor per vector.
//
// Used by the elementwise program kernel for its sigmoid and swish ops, and after a oneDNN
// convolution or matrix product whose result ends in Swish: oneDNN 2.6's fused swish post-op
// costs about 0.3 ns per element at one thread on AVX-512 (Zen 5), more than running the
// product without it and then this kernel over its result while it is still in cache.
//
// Accuracy: relative error below 2e-7 against the exact functions in double. Below x = -87.3
// sigmoid is 0 (where e^x leaves the normal floats) and swish is x * 0 (-0, and NaN at -inf);
// NaN stays NaN. The ISA variant follows cpu_isa_level() (TANDEM_CPU_ISA caps it).
// Pure functions of their arrays; thread-safe on disjoint ranges.
#pragma once

#include <cstdint>

namespace tandem::cpu {

// x[i] = 1 / (1 + e^-x[i]) for i < n.
void sigmoid_in_place(float* x, int64_t n);
// x[i] = x[i] * sigmoid(x[i]) for i < n.
void swish_in_place(float* x, int64_t n);

}  // namespace tandem::cpu
