// conv_winograd.h: 3x3 stride-1 convolutions on bfloat16 products by Winograd's minimal
// filtering F(2x2, 3x3), the backend's own kernel for precision bf16.
//
// oneDNN 2.6 has Winograd kernels for float32 only; its bf16 convolutions are direct, nine
// multiply-adds per weight and output. F(2x2, 3x3) computes each 2x2 output tile from a 4x4
// input tile with 16 products per channel pair instead of 36 (2.25 times fewer):
//   V = B^T d B (the input tile transformed, per input channel)
//   U = G g G^T (each 3x3 filter transformed, once at build)
//   M[p] = sum over channels of U[p] V[p] for the 16 positions p (16 small matrix products)
//   Y = A^T M A (the 2x2 outputs), then bias and the pointwise program.
// V and U are rounded to bfloat16 and multiplied by AVX512_BF16 dot products of channel pairs
// with float32 sums; the transforms are float32. The transforms' coefficients are 0, +-1 and
// +-1/2, so the rounding of V and U adds to the direct bf16 kernel's error by about half again
// (RMSE 3.6e-3 against 2.4e-3 on a 96-channel layer of unit-scale activations): still the
// error of bf16 operands, far below the bf16 parity budget's RMSE on typical layers.
//
// The kernel walks the output in chunks of tiles (the flattened n, tile row, tile column
// order), each chunk on one thread: its transformed inputs and products stay in the thread's
// scratchpad (about 160 KB, in L2) between the three passes. Sources and results are blocked
// (nChw16c), float32 or held in bfloat16 (a hand-off, Builder::define_handed_off).
// TANDEM_CPU_BF16_WINOGRAD=0 keeps oneDNN's direct bf16 kernel (read at each compile).
#pragma once

#include <string>

#include "backends/cpu/builder.h"
#include "backends/cpu/conv_geometry.h"
#include "backends/cpu/ew_program.h"

namespace tandem::cpu {

// True when a convolution with input dims `xs`, weight dims `ws` and geometry `g` in `groups`
// groups computes by the bf16 Winograd kernel: 2-D, one group, a 3x3 kernel, stride and dilation
// 1, at least 16 input channels and 8 output channels (fewer leave the dot products idle), an
// output of at least 4x4, a transformed weight of at most 1 MiB (it is read once per chunk), a
// CPU with AVX512_BF16 and 16-channel blocks, and the switch on.
bool winograd_bf16_fits(const Shape& xs, const Shape& ws, const Geometry& g, int64_t groups);

// Adds the kernel: `src` the blocked input (float32, or held in bfloat16), `out` the step's
// output, defined here blocked (held in bfloat16 when `hand_off`, which needs
// b.readers_take_bf16(out)). `weight` [O][C][3][3] and `bias` (null or O values) are float32
// constants, packed here; `post` is a pointwise program applied after the bias.
Status add_winograd_bf16(Builder& b, int src, int out, const Shape& xs, const Geometry& g, const Tensor& weight,
                         const Tensor* bias, const EwProgram& post, bool hand_off, const std::string& label);

}  // namespace tandem::cpu
