// byte_map.cpp: kernels that map 8-bit values through a fixed 256-entry table (int8.h:
// add_byte_map, add_byte_to_float). A quantized convolution uses them for the chain it absorbs
// (qconv.cpp), and DequantizeLinear for channels-last data (quantize.cpp). The tables are
// built by the caller at instance build; the lookups are qtable.h's.
#include <immintrin.h>

#include <algorithm>
#include <array>

#include "backends/cpu/int8.h"
#include "backends/cpu/op_family.h"
#include "backends/cpu/qtable.h"
#include "backends/cpu/runtime_env.h"

namespace tandem::cpu {

namespace {

constexpr int64_t kGrain = 1 << 14;  // elements per parallel piece

// y[i] = table[x[i]] (add_byte_map).
class ByteMapKernel final : public Kernel {
 public:
  int x = -1, y = -1;
  int64_t n = 0;
  std::array<uint8_t, 256> table{};
  Status run(RunCtx& ctx, KernelState*) const override {
    const auto* px = static_cast<const uint8_t*>(ctx.ptr[x]);
    auto* py = static_cast<uint8_t*>(ctx.ptr[y]);
    parallel_range(n < 4 * kGrain ? 1 : ctx.threads, n, kGrain,
                   [&](int64_t lo, int64_t hi) { lut_map(px + lo, py + lo, hi - lo, table.data()); });
    return Status::ok();
  }
};

// Channels-last bytes to plain float32 through a table (add_byte_to_float).
// What the two byte-to-float kernels hold: channels-last bytes x [images, pixels, channels],
// float32 y, the table.
class ByteTableKernel : public Kernel {
 public:
  int x = -1, y = -1;
  int64_t images = 0, channels = 0, pixels = 0;
  std::array<float, 256> table{};
};

class ByteToFloatKernel final : public ByteTableKernel {
 public:
  Status run(RunCtx& ctx, KernelState*) const override {
    const auto* px = static_cast<const uint8_t*>(ctx.ptr[x]);
    auto* py = static_cast<float*>(ctx.ptr[y]);
    const int64_t per_image = channels * pixels;
    const int threads = images * per_image < 4 * kGrain ? 1 : ctx.threads;
    for (int64_t n = 0; n < images; ++n)
      parallel_range(threads, pixels, std::max<int64_t>(16, kGrain / channels), [&](int64_t lo, int64_t hi) {
        lut_to_planar_float(px + n * per_image, py + n * per_image, pixels, channels, table.data(), lo, hi);
      });
    return Status::ok();
  }
};

// Pixels [s0, s1) of channel block cb of a channels-last byte image (C channels) through a
// float table into the blocked layout (`block` lanes per pixel, lanes past C are 0).
void bytes_to_block_scalar(const uint8_t* x, float* y, int64_t C, int64_t s0, int64_t s1, int64_t cb, int64_t block,
                           const float* table) {
  const int64_t lanes = std::min(block, C - cb * block);
  for (int64_t s = s0; s < s1; ++s)
    for (int64_t l = 0; l < block; ++l) y[s * block + l] = l < lanes ? table[x[s * C + cb * block + l]] : 0.0f;
}
// Eight lanes: the pixel's 8 bytes widened and gathered from the table in one step.
TANDEM_TARGET_AVX2 void bytes_to_block8_avx2(const uint8_t* x, float* y, int64_t C, int64_t s0, int64_t s1,
                                             int64_t cb, const float* table) {
  if (C - cb * 8 < 8) return bytes_to_block_scalar(x, y, C, s0, s1, cb, 8, table);
  for (int64_t s = s0; s < s1; ++s) {
    const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(x + s * C + cb * 8));
    _mm256_storeu_ps(y + s * 8, _mm256_i32gather_ps(table, _mm256_cvtepu8_epi32(b), 4));
  }
}

// Sixteen lanes: the pixel's real bytes (a masked load) widened and gathered from the table;
// lanes past C are written as 0.
TANDEM_TARGET_AVX512 void bytes_to_block16_avx512(const uint8_t* x, float* y, int64_t C, int64_t s0, int64_t s1,
                                                  int64_t cb, const float* table) {
  const int64_t lanes = std::min<int64_t>(16, C - cb * 16);
  const __mmask16 real = static_cast<__mmask16>((1u << lanes) - 1u);
  for (int64_t s = s0; s < s1; ++s) {
    const __m128i b = _mm_maskz_loadu_epi8(real, x + s * C + cb * 16);
    _mm512_storeu_ps(y + s * 16, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), real, _mm512_cvtepu8_epi32(b), table, 4));
  }
}

// Bytes [b, e) through a float table, in the same order (channels-last in, channels-last out).
TANDEM_TARGET_AVX512 void bytes_to_floats_avx512(const uint8_t* x, float* y, int64_t b, int64_t e,
                                                 const float* table) {
  int64_t i = b;
  for (; i + 16 <= e; i += 16)
    _mm512_storeu_ps(y + i, _mm512_i32gather_ps(
                                _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i))), table, 4));
  for (; i < e; ++i) y[i] = table[x[i]];
}

class ByteToChannelsLastKernel final : public ByteTableKernel {
 public:
  Status run(RunCtx& ctx, KernelState*) const override {
    const auto* px = static_cast<const uint8_t*>(ctx.ptr[x]);
    auto* py = static_cast<float*>(ctx.ptr[y]);
    const int64_t n = images * pixels * channels;
    const bool avx512 = cpu_isa_level() >= 2;
    parallel_range(n < 4 * kGrain ? 1 : ctx.threads, n, kGrain, [&](int64_t lo, int64_t hi) {
      if (avx512) {
        bytes_to_floats_avx512(px, py, lo, hi, table.data());
        return;
      }
      for (int64_t i = lo; i < hi; ++i) py[i] = table[px[i]];
    });
    return Status::ok();
  }
};

// Channels-last bytes to blocked float32 through a table (add_byte_to_float).
class ByteToBlockedKernel final : public ByteTableKernel {
 public:
  int64_t block = 8;
  Status run(RunCtx& ctx, KernelState*) const override {
    const auto* px = static_cast<const uint8_t*>(ctx.ptr[x]);
    auto* py = static_cast<float*>(ctx.ptr[y]);
    const int64_t blocks = (channels + block - 1) / block;
    const bool avx2 = block == 8 && cpu_isa_level() == 1;
    const bool avx512 = block == 16 && cpu_isa_level() >= 2;
    parallel_block_rows(images * channels * pixels < 4 * kGrain ? 1 : ctx.threads, images, blocks, pixels, kGrain,
                        [&](int64_t n, int64_t cb, int64_t s0, int64_t s1) {
                          const uint8_t* xi = px + n * pixels * channels;
                          float* yb = py + (n * blocks + cb) * pixels * block;
                          if (avx2) bytes_to_block8_avx2(xi, yb, channels, s0, s1, cb, table.data());
                          else if (avx512) bytes_to_block16_avx512(xi, yb, channels, s0, s1, cb, table.data());
                          else bytes_to_block_scalar(xi, yb, channels, s0, s1, cb, block, table.data());
                        });
    return Status::ok();
  }
};

}  // namespace

Status add_byte_to_float(Builder& b, int x, int y, const float* table, const std::string& label) {
  const Shape& s = b.val(x).shape;
  if (s.size() != 4 || b.val(x).layout != Layout::nhwc) return internal_error(label + " byte-to-float map expects nhwc");
  // The blocked layout where the float path has it (the layout its convolutions, pooling,
  // Resize and elementwise kernels take), else plain.
  // Channels-last floats where every reader takes them so (an elementwise kernel that walks
  // channels-last, such as the 8-bit sum that gathers this value's upsampled copy).
  std::unique_ptr<ByteTableKernel> k;
  if (b.readers_take_channels_last_floats(y)) {
    k = std::make_unique<ByteToChannelsLastKernel>();
    b.define(y, Layout::nhwc);
  } else if (float_path_blocked()) {
    auto blocked = std::make_unique<ByteToBlockedKernel>();
    blocked->block = channel_block();
    k = std::move(blocked);
    b.define(y, Layout::blocked);
  } else {
    k = std::make_unique<ByteToFloatKernel>();
    b.define(y, Layout::plain);
  }
  k->label = label;
  std::copy(table, table + 256, k->table.begin());
  k->x = x;
  k->y = y;
  k->images = s[0];
  k->channels = s[1];
  k->pixels = s[2] * s[3];
  k->reads = {x};
  k->writes = {y};
  b.add_work(static_cast<double>(shape_numel(s)));
  b.add_kernel(std::move(k));
  return Status::ok();
}

Status add_byte_map(Builder& b, int x, int y, const uint8_t* table, const std::string& label) {
  auto k = std::make_unique<ByteMapKernel>();
  k->label = label;
  std::copy(table, table + 256, k->table.begin());
  b.define(y, b.val(x).layout);
  k->x = x;
  k->y = y;
  k->reads = {x};
  k->writes = {y};
  k->n = shape_numel(b.val(y).shape);
  b.add_work(static_cast<double>(k->n));
  b.add_kernel(std::move(k));
  return Status::ok();
}

}  // namespace tandem::cpu
