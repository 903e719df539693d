// byte_layout.cpp: 8-bit 4-D values between plain [N, C, H, W] and channels-last [N, H, W, C]
// (add_byte_layout_change, dnnl_kernel.h). Per image that is a C x S byte matrix transposed
// (S = H * W; channels-last to plain, S x C back), in 16 x 16 tiles of SSE2 byte interleaves,
// the edges byte by byte. oneDNN 2.6's reorder for it moved about 3 GB/s (1x96x512x512 uint8,
// plain to channels-last, two threads: 8 ms).
#include <emmintrin.h>

#include <algorithm>
#include <cstdint>

#include "backends/cpu/builder.h"
#include "backends/cpu/dnnl_kernel.h"
#include "backends/cpu/threads.h"

namespace tandem::cpu {

namespace {

// The 16 x 16 bytes at `src` (rows `ss` bytes apart) transposed into `dst` (rows `ds` apart).
// Four rounds of interleaving register pairs, by 1, 2, 4 and 8 bytes, leave transposed row
// kRev[i] (i with its four bits reversed) in register i.
inline void transpose16(const uint8_t* src, int64_t ss, uint8_t* dst, int64_t ds) {
  static constexpr int kRev[16] = {0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15};
  __m128i r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i * ss));
  for (int k = 0; k < 8; ++k) {
    t[k] = _mm_unpacklo_epi8(r[2 * k], r[2 * k + 1]);
    t[k + 8] = _mm_unpackhi_epi8(r[2 * k], r[2 * k + 1]);
  }
  for (int k = 0; k < 8; ++k) {
    r[k] = _mm_unpacklo_epi16(t[2 * k], t[2 * k + 1]);
    r[k + 8] = _mm_unpackhi_epi16(t[2 * k], t[2 * k + 1]);
  }
  for (int k = 0; k < 8; ++k) {
    t[k] = _mm_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
    t[k + 8] = _mm_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
  }
  for (int k = 0; k < 8; ++k) {
    r[k] = _mm_unpacklo_epi64(t[2 * k], t[2 * k + 1]);
    r[k + 8] = _mm_unpackhi_epi64(t[2 * k], t[2 * k + 1]);
  }
  for (int i = 0; i < 16; ++i) _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + kRev[i] * ds), r[i]);
}

// Rows [r0, r1) x columns [c0, c1) of the rows x cols byte matrix `src` into the cols x rows
// matrix `dst`: whole 16 x 16 tiles from (r0, c0), the rest byte by byte.
void transpose_block(const uint8_t* src, int64_t rows, int64_t cols, uint8_t* dst, int64_t r0, int64_t r1, int64_t c0,
                     int64_t c1) {
  const int64_t r_tiles = r0 + (r1 - r0) / 16 * 16, c_tiles = c0 + (c1 - c0) / 16 * 16;
  for (int64_t c = c0; c < c_tiles; c += 16)
    for (int64_t r = r0; r < r_tiles; r += 16) transpose16(src + r * cols + c, cols, dst + c * rows + r, rows);
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c = r < r_tiles ? c_tiles : c0; c < c1; ++c) dst[c * rows + r] = src[r * cols + c];
}

class ByteLayoutKernel final : public Kernel {
 public:
  int src = -1, dst = -1;
  bool to_channels_last = true;
  int64_t N = 0, C = 0, S = 0;
  int threads = 1;

  Status run(RunCtx& ctx, KernelState*) const override {
    const auto* x = static_cast<const uint8_t*>(ctx.ptr[src]);
    auto* y = static_cast<uint8_t*>(ctx.ptr[dst]);
    // Tasks: an image's pixels in chunks (to channels-last: columns of the C x S matrix; back:
    // rows of the S x C one), each with every channel.
    constexpr int64_t kChunk = 256;
    const int64_t chunks = (S + kChunk - 1) / kChunk;
    parallel_range(std::min(threads, ctx.threads), N * chunks, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi; ++t) {
        const int64_t n = t / chunks, s0 = (t % chunks) * kChunk, s1 = std::min(S, s0 + kChunk);
        const uint8_t* from = x + n * C * S;
        uint8_t* to = y + n * C * S;
        if (to_channels_last)
          transpose_block(from, C, S, to, 0, C, s0, s1);
        else
          transpose_block(from, S, C, to, s0, s1, 0, C);
      }
    });
    return Status::ok();
  }
};

}  // namespace

Status add_byte_layout_change(Builder& b, int src, int dst, const std::string& label) {
  const IValue &sv = b.val(src), &dv = b.val(dst);
  const bool bytes = sv.dtype == DataType::uint8 || sv.dtype == DataType::int8;
  const bool plain_to_nhwc = sv.layout == Layout::plain && dv.layout == Layout::nhwc;
  const bool nhwc_to_plain = sv.layout == Layout::nhwc && dv.layout == Layout::plain;
  if (!bytes || dv.dtype != sv.dtype || sv.shape != dv.shape || sv.shape.size() != 4 ||
      !(plain_to_nhwc || nhwc_to_plain))
    return unsupported(label + " not an 8-bit 4-D change between plain and channels-last");
  auto k = std::make_unique<ByteLayoutKernel>();
  k->src = src;
  k->dst = dst;
  k->to_channels_last = plain_to_nhwc;
  k->N = sv.shape[0];
  k->C = sv.shape[1];
  k->S = sv.shape[2] * sv.shape[3];
  k->threads = threads_for(b, static_cast<double>(shape_numel(sv.shape)));
  k->reads = {src};
  k->writes = {dst};
  k->label = label;
  b.add_kernel(std::move(k));
  return Status::ok();
}

}  // namespace tandem::cpu
