// ew_exp_kernels.h: exponential-based kernels over float32 arrays, written with explicit AVX-512
// and AVX2 intrinsics, where ew_math.h's branch-free scalar forms leave the compiler two
// divisions, a floor in four instructions and a two-step scale per vector (about half the
// speed): the logistic activations (Sigmoid, and Swish: x * Sigmoid(x)) in place, and the
// exponentials of a softmax row with their sum.
//
// The logistic kernels serve the elementwise program kernel's sigmoid and swish ops, and run
// after a oneDNN convolution or matrix product whose result ends in Swish: oneDNN 2.6's fused
// swish post-op costs about 0.3 ns per element at one thread on AVX-512 (Zen 5), more than
// running the product without it and then this kernel over its result while it is still in
// cache. The softmax kernel serves Softmax and LogSoftmax (reduce.cpp).
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
// y[i] = e^(x[i] - shift) for i < n (0 where x[i] - shift < -87.3), and returns their sum,
// accumulated in vector lanes. y may be x, or null for the sum alone. For a softmax row, shift
// is the row's maximum.
float exp_shifted_sum(const float* x, float* y, int64_t n, float shift);

}  // namespace tandem::cpu
