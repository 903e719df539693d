// deconv_chain.h: what the patch ConvTranspose's two files share (deconv_patch.cpp: the first
// stage, the stores and the kernel; deconv_chain.cpp: the second of two chained stages, which
// reads the first's accumulators row by row). Internal to the cpu backend; see deconv_patch.h.
#pragma once

#include <cstdint>
#include <cstring>

#include "backends/cpu/ew_program.h"
#include "tandem/tensor.h"

namespace tandem::cpu::deconv {

// ConvTranspose with kernel == stride, no padding, no dilation and one group: every input pixel
// produces its own k x k output patch, out[o][y*k+i][x*k+j] = b[o] + sum_c in[c][y][x] W[c][o][i][j].
// The input is blocked or channels-last; per pixel the k*k*O outputs are accumulated in M = 16*V
// lanes (m = (i, j, o) for a blocked output, m = (o, i, j) for a plain one; M rounds k*k*O up
// to 16).
struct PatchDeconv {
  int64_t N = 0, C = 0, H = 0, W = 0, O = 0, k = 0;
  int64_t M = 0;           // accumulators per pixel (multiple of 16)
  bool blocked_out = true;
  bool nhwc_in = false;    // the input channels-last, else in blocks of channel_block() lanes
  Tensor wp;               // [C][M]
  Tensor bias;             // [M]
  EwProgram post;          // pointwise
  // bf16 products: the weight as [C rounded to 16 / 2][M][2] bfloat16 channel pairs.
  bool bf16 = false;
  Tensor wpb;
};

// A bfloat16 channel pair (two halves) as the 32-bit word a dot-product instruction broadcasts.
inline uint32_t pair_at(const uint16_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// The second of two chained stages reads row i of the first's patches straight from the first's
// accumulators (laid out m = (i, j, o)): pixel X = x * k1 + j of that row has its O1 channels
// contiguous at acc1 + x * M1 + (i * k1 + j) * O1.
struct MidRow {
  const float* acc1;
  int64_t M1, k1, O1, i;
  const float* pixel(int64_t X) const { return acc1 + (X / k1) * M1 + (i * k1 + X % k1) * O1; }
};

// One middle row `mid` through the chained stage `p` into its accumulators `acc_row` ([W][M]),
// float32 products (AVX-512 for M <= 128, else portable).
void chain_row(const PatchDeconv& p, const MidRow& mid, float* acc_row);
// The same on bf16 products: `mid16` holds the first stage's row (after its program) rounded to
// bfloat16 in the accumulators' layout (AVX512_BF16).
void chain_row_bf16(const PatchDeconv& p, const uint16_t* mid16, const MidRow& mid, float* acc_row);
// True when chain_row_lanes takes stage `p`: AVX-512, float32 products, a plain output and at
// most 8 values per pixel (O k^2).
bool chain_takes_lanes(const PatchDeconv& p);
// The chained stage with 16 middle pixels across the lanes, written straight to output rows
// y * k .. y * k + k - 1 of image n (OH rows high), with the stage's program applied there.
void chain_row_lanes(const PatchDeconv& p, const MidRow& mid, float* o, int64_t n, int64_t y, int64_t OH);

}  // namespace tandem::cpu::deconv
