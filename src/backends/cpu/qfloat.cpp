// qfloat.cpp: integer products through float32 arithmetic (int8.h: add_integer_conv_float,
// add_integer_matmul_float). The 8-bit source minus its zero point and the weights minus theirs
// are small integers, exact in float32, and so is every partial sum while |bias| + 255 * sum |w|
// stays at or below 2^24 for each output channel, whatever order the sums take. oneDNN's float32
// convolution (blocked layout) or matrix product then yields the exact int32 products, which a
// store kernel writes by the own kernels' rule (integer_store.h). This is how CPUs without VNNI
// run 8-bit weights (there oneDNN's int8 kernels sum u8 x s8 pairs in saturating int16), and how
// any CPU runs weights that leave int8.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>

#include "backends/cpu/int8.h"
#include "backends/cpu/integer_store.h"
#include "backends/cpu/op_family.h"
#include "backends/cpu/runtime_env.h"

namespace tandem::cpu {

namespace {

// The 8-bit source minus its zero point, as float32 (exact), plain layout.
class ToFloatKernel final : public Kernel {
 public:
  int src = -1, dst = -1;
  bool src_signed = false;
  ZeroPoint zp;
  int64_t n = 0;

  Status run(RunCtx& ctx, KernelState*) const override {
    const float z = static_cast<float>(zp.read(ctx));
    float* y = static_cast<float*>(ctx.ptr[dst]);
    const void* x = ctx.ptr[src];
    parallel_range(n < (1 << 16) ? 1 : ctx.threads, n, 4096, [&](int64_t lo, int64_t hi) {
      if (src_signed) {
        const int8_t* xs = static_cast<const int8_t*>(x);
        for (int64_t i = lo; i < hi; ++i) y[i] = static_cast<float>(xs[i]) - z;
      } else {
        const uint8_t* xs = static_cast<const uint8_t*>(x);
        for (int64_t i = lo; i < hi; ++i) y[i] = static_cast<float>(xs[i]) - z;
      }
    });
    return Status::ok();
  }
};

// Pixels [s0, s1) of channel block `cb` of a channels-last 8-bit image (C channels) minus the
// zero point z, as float32 in the blocked layout: y holds that block's `B` lanes per pixel
// (lanes past C are 0).
template <class T, int B>
TANDEM_ISA_BODY void widen_block(const T* x, float* y, int64_t C, int64_t s0, int64_t s1, int64_t cb, float z) {
  const int64_t lanes = std::min<int64_t>(B, C - cb * B);
  if (lanes == B) {
    for (int64_t s = s0; s < s1; ++s)
      for (int l = 0; l < B; ++l) y[s * B + l] = static_cast<float>(x[s * C + cb * B + l]) - z;
    return;
  }
  for (int64_t s = s0; s < s1; ++s)
    for (int l = 0; l < B; ++l) y[s * B + l] = l < lanes ? static_cast<float>(x[s * C + cb * B + l]) - z : 0.0f;
}
template <class T>
TANDEM_ISA_BODY void widen_block_any(const T* x, float* y, int64_t C, int64_t s0, int64_t s1, int64_t cb, float z,
                                     int64_t block) {
  if (block == 16) widen_block<T, 16>(x, y, C, s0, s1, cb, z);
  else widen_block<T, 8>(x, y, C, s0, s1, cb, z);
}
TANDEM_ISA_BODY void widen_block_u8_body(const uint8_t* x, float* y, int64_t C, int64_t s0, int64_t s1, int64_t cb,
                                         float z, int64_t block) {
  widen_block_any(x, y, C, s0, s1, cb, z, block);
}
TANDEM_ISA_BODY void widen_block_s8_body(const int8_t* x, float* y, int64_t C, int64_t s0, int64_t s1, int64_t cb,
                                         float z, int64_t block) {
  widen_block_any(x, y, C, s0, s1, cb, z, block);
}
TANDEM_ISA_DISPATCH(widen_block_u8,
                    (const uint8_t* x, float* y, int64_t C, int64_t s0, int64_t s1, int64_t cb, float z, int64_t block),
                    (x, y, C, s0, s1, cb, z, block))
TANDEM_ISA_DISPATCH(widen_block_s8,
                    (const int8_t* x, float* y, int64_t C, int64_t s0, int64_t s1, int64_t cb, float z, int64_t block),
                    (x, y, C, s0, s1, cb, z, block))

// The channels-last 8-bit source [N, S, C] minus its zero point, as float32 in the blocked
// layout [N, C / block, S, block] the float32 convolution reads: no reorder between them.
class ChannelsLastToBlockedKernel final : public Kernel {
 public:
  int src = -1, dst = -1;
  bool src_signed = false;
  ZeroPoint zp;
  int64_t N = 1, C = 1, S = 1, block = 8;

  Status run(RunCtx& ctx, KernelState*) const override {
    const float z = static_cast<float>(zp.read(ctx));
    float* y = static_cast<float*>(ctx.ptr[dst]);
    const void* x = ctx.ptr[src];
    const int64_t blocks = (C + block - 1) / block;
    parallel_block_rows(N * C * S < (1 << 16) ? 1 : ctx.threads, N, blocks, S, 2048,
                        [&](int64_t n, int64_t cb, int64_t s0, int64_t s1) {
                          float* yb = y + (n * blocks + cb) * S * block;
                          if (src_signed)
                            widen_block_s8(static_cast<const int8_t*>(x) + n * S * C, yb, C, s0, s1, cb, z, block);
                          else
                            widen_block_u8(static_cast<const uint8_t*>(x) + n * S * C, yb, C, s0, s1, cb, z, block);
                        });
    return Status::ok();
  }
};

// Requantizes pixels [s0, s1) of one channel block of exact float32 products (`src`, `block`
// lanes per pixel, `lanes` of them real) into the plain 8-bit rows y + l * S: the own kernels'
// rule, round_half_even(double(acc) * mult[l]) + zp saturated (NaN: the low end). Eight pixels
// at a time go through a lane-major tile so that each row gets eight consecutive bytes.
template <class T>
TANDEM_ISA_BODY void requant_rows(const float* src, int64_t block, int64_t lanes, int64_t s0, int64_t s1,
                                  const double* mult, double zp, T* y, int64_t S) {
  constexpr double lo = std::is_same_v<T, uint8_t> ? 0.0 : -128.0, hi = std::is_same_v<T, uint8_t> ? 255.0 : 127.0;
  auto one = [&](float acc, int64_t l) {
    const double q = __builtin_rint(static_cast<double>(acc) * mult[l]) + zp;
    return static_cast<T>(static_cast<int32_t>(q != q ? lo : std::min(std::max(q, lo), hi)));
  };
  int64_t s = s0;
  if (block == 8) {
    for (; s + 8 <= s1; s += 8) {
      T tile[8][8];
      for (int64_t j = 0; j < 8; ++j)
        for (int64_t l = 0; l < 8; ++l) tile[l][j] = one(src[(s + j) * 8 + l], l);
      for (int64_t l = 0; l < lanes; ++l) std::memcpy(y + l * S + s, tile[l], 8 * sizeof(T));
    }
  }
  for (; s < s1; ++s)
    for (int64_t l = 0; l < lanes; ++l) y[l * S + s] = one(src[s * block + l], l);
}
TANDEM_ISA_BODY void requant_rows_u8_body(const float* src, int64_t block, int64_t lanes, int64_t s0, int64_t s1,
                                          const double* mult, double zp, uint8_t* y, int64_t S) {
  requant_rows<uint8_t>(src, block, lanes, s0, s1, mult, zp, y, S);
}
TANDEM_ISA_BODY void requant_rows_s8_body(const float* src, int64_t block, int64_t lanes, int64_t s0, int64_t s1,
                                          const double* mult, double zp, int8_t* y, int64_t S) {
  requant_rows<int8_t>(src, block, lanes, s0, s1, mult, zp, y, S);
}
// Four products: round_half_even(double(v) * m) + z, within [lo, hi] (NaN: lo), as int32.
TANDEM_TARGET_AVX2 inline __m128i requant4(__m128 v, __m256d m, __m256d z, __m256d lo, __m256d hi) {
  __m256d d = _mm256_round_pd(_mm256_mul_pd(_mm256_cvtps_pd(v), m), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  d = _mm256_min_pd(_mm256_max_pd(_mm256_add_pd(d, z), lo), hi);  // max(NaN, lo) is lo
  return _mm256_cvtpd_epi32(d);
}

// AVX2, 8-channel blocks: the same rule in double vectors, eight pixels per step.
template <class T>
TANDEM_TARGET_AVX2 void requant_rows_avx2(const float* src, int64_t lanes, int64_t s0, int64_t s1, const double* mult,
                                          double zp, T* y, int64_t S) {
  constexpr double lo = std::is_same_v<T, uint8_t> ? 0.0 : -128.0, hi = std::is_same_v<T, uint8_t> ? 255.0 : 127.0;
  const __m256d m0 = _mm256_loadu_pd(mult), m1 = _mm256_loadu_pd(mult + 4);
  const __m256d z = _mm256_set1_pd(zp), vlo = _mm256_set1_pd(lo), vhi = _mm256_set1_pd(hi);
  int64_t s = s0;
  for (; s + 8 <= s1; s += 8) {
    alignas(32) int32_t t[8][8];  // [pixel][lane]
    for (int64_t j = 0; j < 8; ++j) {
      const __m256 v = _mm256_loadu_ps(src + (s + j) * 8);
      _mm_store_si128(reinterpret_cast<__m128i*>(t[j]), requant4(_mm256_castps256_ps128(v), m0, z, vlo, vhi));
      _mm_store_si128(reinterpret_cast<__m128i*>(t[j] + 4), requant4(_mm256_extractf128_ps(v, 1), m1, z, vlo, vhi));
    }
    for (int64_t l = 0; l < lanes; ++l) {
      T row[8];
      for (int64_t j = 0; j < 8; ++j) row[j] = static_cast<T>(t[j][l]);
      std::memcpy(y + l * S + s, row, sizeof row);
    }
  }
  if (s < s1) requant_rows<T>(src, 8, lanes, s, s1, mult, zp, y, S);
}

// Eight products (multipliers m0 for the first four, m1 for the rest) requantized as requant4
// does, packed into the low eight bytes.
template <class T>
TANDEM_TARGET_AVX2 inline __m128i requant8_bytes(__m256 v, __m256d m0, __m256d m1, __m256d z, __m256d lo, __m256d hi) {
  const __m128i a = requant4(_mm256_castps256_ps128(v), m0, z, lo, hi);
  const __m128i b = requant4(_mm256_extractf128_ps(v, 1), m1, z, lo, hi);
  const __m128i w = _mm_packs_epi32(a, b);  // within [-128, 255]: exact in int16
  return std::is_same_v<T, uint8_t> ? _mm_packus_epi16(w, w) : _mm_packs_epi16(w, w);
}

// The same into a channels-last output: pixel s's `lanes` values (at most 8; src + s * stride)
// go to y + s * C (their first channel), consecutive bytes per pixel.
template <class T>
TANDEM_TARGET_AVX2 void requant_pixels_avx2(const float* src, int64_t stride, int64_t lanes, int64_t s0, int64_t s1,
                                            const double* mult, double zp, T* y, int64_t C) {
  constexpr double lo = std::is_same_v<T, uint8_t> ? 0.0 : -128.0, hi = std::is_same_v<T, uint8_t> ? 255.0 : 127.0;
  const __m256d m0 = _mm256_loadu_pd(mult), m1 = _mm256_loadu_pd(mult + 4);
  const __m256d z = _mm256_set1_pd(zp), vlo = _mm256_set1_pd(lo), vhi = _mm256_set1_pd(hi);
  for (int64_t s = s0; s < s1; ++s) {
    const __m128i bytes = requant8_bytes<T>(_mm256_loadu_ps(src + s * stride), m0, m1, z, vlo, vhi);
    if (lanes == 8) {
      _mm_storel_epi64(reinterpret_cast<__m128i*>(y + s * C), bytes);
    } else {
      alignas(16) T row[16];
      _mm_store_si128(reinterpret_cast<__m128i*>(row), bytes);
      std::memcpy(y + s * C, row, static_cast<size_t>(lanes) * sizeof(T));
    }
  }
}

// One row of a matrix product's exact float32 products, column j's multiplier (or the one),
// requantized eight columns a step; returns how many columns it wrote (a multiple of 8).
template <class T>
TANDEM_TARGET_AVX2 int64_t requant_row_avx2(const float* src, int64_t n, const Store& st, T* y) {
  constexpr double lo = std::is_same_v<T, uint8_t> ? 0.0 : -128.0, hi = std::is_same_v<T, uint8_t> ? 255.0 : 127.0;
  const __m256d z = _mm256_set1_pd(st.zp), vlo = _mm256_set1_pd(lo), vhi = _mm256_set1_pd(hi);
  const __m256d one = _mm256_set1_pd(static_cast<double>(st.multipliers[0]));
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256d m0 = one, m1 = one;
    if (st.count != 1) {
      const __m256 m = _mm256_loadu_ps(st.multipliers + j);
      m0 = _mm256_cvtps_pd(_mm256_castps256_ps128(m));
      m1 = _mm256_cvtps_pd(_mm256_extractf128_ps(m, 1));
    }
    _mm_storel_epi64(reinterpret_cast<__m128i*>(y + j), requant8_bytes<T>(_mm256_loadu_ps(src + j), m0, m1, z, vlo, vhi));
  }
  return j;
}

TANDEM_ISA_DISPATCH(requant_rows_u8,
                    (const float* src, int64_t block, int64_t lanes, int64_t s0, int64_t s1, const double* mult,
                     double zp, uint8_t* y, int64_t S),
                    (src, block, lanes, s0, s1, mult, zp, y, S))
TANDEM_ISA_DISPATCH(requant_rows_s8,
                    (const float* src, int64_t block, int64_t lanes, int64_t s0, int64_t s1, const double* mult,
                     double zp, int8_t* y, int64_t S),
                    (src, block, lanes, s0, s1, mult, zp, y, S))

// The exact int32 products of a float32 convolution (blocked [N, O, S] with S output pixels)
// through the own kernels' output rule (Store), into the plain output.
class FloatAccStoreKernel final : public IntegerKernelBase {
 public:
  int acc = -1;
  int64_t N = 1, O = 1, S = 1, block = 8;
  bool channels_last = false;  // the output is [N, S, O] (else plain [N, O, S])

  Status run(RunCtx& ctx, KernelState*) const override {
    const float* a = static_cast<const float*>(ctx.ptr[acc]);
    void* y = ctx.ptr[p.out];
    const Store st = store(ctx);
    const int64_t blocks = (O + block - 1) / block;
    parallel_block_rows(N * O * S < (1 << 16) ? 1 : ctx.threads, N, blocks, S, 1024,
                        [&](int64_t n, int64_t ob, int64_t s0, int64_t s1) {
      const int64_t lanes = std::min(block, O - ob * block);
      const float* src = a + (n * blocks + ob) * S * block;
      if (channels_last) {
        const int64_t first = n * S * O + ob * block;  // pixel s, lane l: first + s * O + l
        // AVX2 and up: eight lanes at a time (a 16-lane block in two halves).
        if (st.multipliers && is_8bit(st.type) && cpu_isa_level() >= 1 && block % 8 == 0) {
          double mult[kMaxBlock] = {0};
          for (int64_t l = 0; l < lanes; ++l) mult[l] = st.multipliers[st.count == 1 ? 0 : ob * block + l];
          for (int64_t h = 0; h * 8 < lanes; ++h) {
            const int64_t half = std::min<int64_t>(8, lanes - h * 8);
            if (st.type == DataType::uint8)
              requant_pixels_avx2<uint8_t>(src + h * 8, block, half, s0, s1, mult + h * 8, st.zp,
                                           static_cast<uint8_t*>(y) + first + h * 8, O);
            else
              requant_pixels_avx2<int8_t>(src + h * 8, block, half, s0, s1, mult + h * 8, st.zp,
                                          static_cast<int8_t*>(y) + first + h * 8, O);
          }
          return;
        }
        for (int64_t s = s0; s < s1; ++s)
          for (int64_t l = 0; l < lanes; ++l)
            st(y, first + s * O + l, ob * block + l, static_cast<int32_t>(src[s * block + l]));
        return;
      }
      const int64_t row = (n * O + ob * block) * S;  // lane l's output row starts at row + l * S
      if (st.multipliers && st.type != DataType::float32) {  // requantized 8-bit: the common case
        double mult[kMaxBlock] = {0};
        for (int64_t l = 0; l < lanes; ++l) mult[l] = st.multipliers[st.count == 1 ? 0 : ob * block + l];
        const bool avx2 = block == 8 && cpu_isa_level() == 1;
        if (st.type == DataType::uint8) {
          auto* yr = static_cast<uint8_t*>(y) + row;
          if (avx2) requant_rows_avx2<uint8_t>(src, lanes, s0, s1, mult, st.zp, yr, S);
          else requant_rows_u8(src, block, lanes, s0, s1, mult, st.zp, yr, S);
        } else {
          auto* yr = static_cast<int8_t*>(y) + row;
          if (avx2) requant_rows_avx2<int8_t>(src, lanes, s0, s1, mult, st.zp, yr, S);
          else requant_rows_s8(src, block, lanes, s0, s1, mult, st.zp, yr, S);
        }
        return;
      }
      for (int64_t s = s0; s < s1; ++s)
        for (int64_t l = 0; l < lanes; ++l)
          st(y, row + l * S + s, ob * block + l, static_cast<int32_t>(src[s * block + l]));
    });
    return Status::ok();
  }
};
// The exact products of a float32 matrix product ([rows, N], plain) through the own kernels'
// output rule (Store; column j's multiplier), into the plain output.
class PlainAccStoreKernel final : public IntegerKernelBase {
 public:
  int acc = -1;
  int64_t rows = 1, N = 1;

  Status run(RunCtx& ctx, KernelState*) const override {
    const float* a = static_cast<const float*>(ctx.ptr[acc]);
    void* y = ctx.ptr[p.out];
    const Store st = store(ctx);
    const bool avx2 = st.multipliers && is_8bit(st.type) && cpu_isa_level() >= 1;
    parallel_range(rows * N < (1 << 16) ? 1 : ctx.threads, rows, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        int64_t j = 0;
        if (avx2) {
          j = st.type == DataType::uint8
                  ? requant_row_avx2<uint8_t>(a + i * N, N, st, static_cast<uint8_t*>(y) + i * N)
                  : requant_row_avx2<int8_t>(a + i * N, N, st, static_cast<int8_t*>(y) + i * N);
        }
        for (; j < N; ++j) st(y, i * N + j, j, static_cast<int32_t>(a[i * N + j]));
      }
    });
    return Status::ok();
  }
};

// Completes widening kernel `k` (p's 8-bit source minus its zero point) into a new float32
// temporary of shape `x` in layout `l`, adds it and returns the temporary.
template <class K>
int add_widening(Builder& b, const IntegerProduct& p, std::unique_ptr<K> k, const Shape& x, Layout l,
                 const char* what) {
  const int f = b.add_temp(DataType::float32, x, l);
  k->label = p.label + what;
  k->src = p.src;
  k->dst = f;
  k->src_signed = b.val(p.src).dtype == DataType::int8;
  k->zp = p.src_zp;
  k->reads = p.reads;
  k->reads.push_back(p.src);
  k->writes = {f};
  b.add_work(static_cast<double>(shape_numel(x)));
  b.add_kernel(std::move(k));
  return f;
}

// p's plain 8-bit source (shape `x`) widened into a plain float32 temporary.
int add_source_to_float(Builder& b, const IntegerProduct& p, const Shape& x) {
  auto k = std::make_unique<ToFloatKernel>();
  k->n = shape_numel(x);
  return add_widening(b, p, std::move(k), x, Layout::plain, " (to float32)");
}

// The same for a channels-last 2-D source, straight into the blocked layout.
int add_channels_last_to_blocked(Builder& b, const IntegerProduct& p, const Shape& x) {
  auto k = std::make_unique<ChannelsLastToBlockedKernel>();
  k->N = x[0];
  k->C = x[1];
  k->S = x[2] * x[3];
  k->block = channel_block();
  return add_widening(b, p, std::move(k), x, Layout::blocked, " (to float32, blocked)");
}

// The integer weights as float32 (exact), reordered from `plain` into oneDNN's `packed` format.
dnnl::memory pack_float_weights(const std::vector<int32_t>& weights, int64_t count, const dnnl::memory::desc& plain,
                                const dnnl::memory::desc& packed) {
  std::vector<float> wf(weights.begin(), weights.begin() + count);
  dnnl::memory out(packed, cpu_engine());
  dnnl::memory in(plain, cpu_engine(), wf.data());
  dnnl::stream s(cpu_engine());
  dnnl::reorder(in, out).execute(s, in, out);
  s.wait();
  return out;
}

// Completes store kernel `k` reading the float32 products `acc` into p.out, and adds it.
void add_store(Builder& b, std::unique_ptr<IntegerKernelBase> k, int acc, IntegerProduct&& p, double work) {
  k->out_type = b.val(p.out).dtype;
  k->label = p.label + " (store)";
  k->reads = p.reads;
  k->reads.push_back(acc);
  if (p.scales >= 0) k->reads.push_back(p.scales);
  k->writes = {p.out};
  k->p = std::move(p);
  b.add_work(work);
  b.add_kernel(std::move(k));
}

}  // namespace

// A 2-D integer convolution through float32 arithmetic: the source minus its zero point and the
// weights minus theirs are small integers, exact in float32, and so is every partial sum while
// |bias[o]| + 255 * sum |w[o]| stays at or below 2^24, whatever order the sums take. oneDNN's
// float32 convolution on the blocked layout (the fast kernels of every ISA path) then yields the
// exact int32 products, which FloatAccStoreKernel writes out. Declines (adding nothing) when the
// bound or the geometry does not hold.
Status add_integer_conv_float(Builder& b, IntegerProduct& p, const Shape& x, const Shape& w, const Shape& dst,
                              const std::vector<int64_t>& strides, const std::vector<int64_t>& dilations,
                              const std::vector<int64_t>& pads_begin, int64_t group, const FloatTailOps* tail) {
  using dt = dnnl::memory::data_type;
  if (x.size() != 4 || cpu_isa_level() < 1 || !feature_enabled("QFLOAT")) return unsupported(p.label + " float route");
  const int64_t O = w[0], per_channel = shape_numel(w) / O;
  for (int64_t o = 0; o < O; ++o) {
    double bound = p.bias.empty() ? 0.0 : std::fabs(static_cast<double>(p.bias[static_cast<size_t>(o)]));
    for (int64_t k = 0; k < per_channel; ++k)
      bound += 255.0 * std::abs(static_cast<double>(p.weights[static_cast<size_t>(o * per_channel + k)]));
    if (bound > 16777216.0) return unsupported(p.label + " partial sums could pass 2^24");
  }
  dnnl::memory::dims st, dil, pl, pr;
  for (size_t i = 0; i < 2; ++i) {
    const int64_t extent = (w[2 + i] - 1) * dilations[i] + 1;
    const int64_t end = (dst[2 + i] - 1) * strides[i] + extent - x[2 + i] - pads_begin[i];
    if (end < 0 || pads_begin[i] < 0) return unsupported(p.label + " negative padding");
    st.push_back(strides[i]);
    dil.push_back(dilations[i] - 1);
    pl.push_back(pads_begin[i]);
    pr.push_back(end);
  }
  // The primitive first: a case oneDNN declines leaves the builder untouched.
  const int64_t block = channel_block();
  IValue src_probe, acc_probe;
  src_probe.dtype = acc_probe.dtype = DataType::float32;
  src_probe.shape = x;
  src_probe.layout = x[1] >= 8 ? Layout::blocked : Layout::plain;
  acc_probe.shape = dst;
  acc_probe.layout = Layout::blocked;
  dnnl::memory::dims wd;
  if (group == 1) wd = {O, w[1]};
  else wd = {group, O / group, w[1]};
  wd.push_back(w[2]);
  wd.push_back(w[3]);
  const auto src_md = value_md(src_probe), acc_md = value_md(acc_probe);
  const dnnl::memory::desc w_any(wd, dt::f32, dnnl::memory::format_tag::any);
  const dnnl::memory::desc b_md({O}, dt::f32, dnnl::memory::format_tag::x);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (tail) attr.set_post_ops(tail->ops);
  const double work = static_cast<double>(shape_numel(dst)) * static_cast<double>(per_channel);
  const int kthreads = threads_for(b, work);
  ThreadScope scope(kthreads);
  dnnl::convolution_forward::primitive_desc pd;
  try {
    const auto d = dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference,
                                                   dnnl::algorithm::convolution_direct, src_md, w_any, b_md, acc_md,
                                                   st, dil, pl, pr);
    pd = dnnl::convolution_forward::primitive_desc(d, attr, cpu_engine());
  } catch (const dnnl::error& e) {
    return unsupported(p.label + " oneDNN has no float32 convolution for it: " + e.what());
  }
  // oneDNN's reference convolution (e.g. per-channel binary post-ops on a 1x1 map) is slower
  // than the direct loops and an unfused tail.
  if (std::string(pd.impl_info_str()).rfind("ref", 0) == 0) return unsupported(p.label + " oneDNN offers only its reference kernel");
  // The source as float32 (blocked when it has 8 or more channels; a channels-last source
  // goes there in one pass).
  int fsrc = -1;
  if (src_probe.layout == Layout::blocked && b.val(p.src).layout == Layout::nhwc) {
    fsrc = add_channels_last_to_blocked(b, p, x);
  } else {
    TANDEM_ASSIGN_OR_RETURN(p.src, b.require(p.src, Layout::plain));
    fsrc = add_source_to_float(b, p, x);
    if (src_probe.layout == Layout::blocked) {
      TANDEM_ASSIGN_OR_RETURN(fsrc, b.require(fsrc, Layout::blocked));
    }
  }
  // Weights and bias as float32 (exact), the weights packed in the format oneDNN chose.
  const dnnl::memory packed = pack_float_weights(p.weights, static_cast<int64_t>(p.weights.size()),
                                                 plain_md(Shape(wd.begin(), wd.end())), pd.weights_desc());
  dnnl::memory bm(b_md, cpu_engine());
  float* bias = static_cast<float*>(bm.get_data_handle());
  for (int64_t o = 0; o < O; ++o) bias[o] = p.bias.empty() ? 0.0f : static_cast<float>(p.bias[static_cast<size_t>(o)]);
  int acc = -1;
  if (tail) {  // the product with its float tail, straight into the output
    b.define(p.out, Layout::blocked);
    acc = p.out;
  } else {
    acc = b.add_temp(DataType::float32, dst, Layout::blocked);
  }
  auto k = std::make_unique<DnnlKernel>();
  k->label = p.label + " (integer product in float32)";
  k->threads = kthreads;
  attach_primitive(b, *k, dnnl::convolution_forward(pd), pd.scratchpad_desc());
  k->args.push_back({DNNL_ARG_SRC, fsrc, src_md, {}});
  k->args.push_back({DNNL_ARG_WEIGHTS, -1, pd.weights_desc(), packed});
  k->args.push_back({DNNL_ARG_BIAS, -1, b_md, bm});
  k->args.push_back({DNNL_ARG_DST, acc, acc_md, {}});
  k->reads = {fsrc};
  if (tail)
    for (const DnnlKernel::Arg& arg : tail->args) {
      k->args.push_back(arg);
      if (arg.value >= 0) k->reads.push_back(arg.value);
    }
  k->writes = {acc};
  b.add_work(work);
  if (verbose()) note(k->label + ": " + pd.impl_info_str());
  b.add_kernel(std::move(k));
  if (tail) return Status::ok();
  auto store = std::make_unique<FloatAccStoreKernel>();
  store->acc = acc;
  store->N = dst[0];
  store->O = O;
  store->S = dst[2] * dst[3];
  store->block = block;
  store->channels_last = b.val(p.out).layout == Layout::nhwc;
  add_store(b, std::move(store), acc, std::move(p), static_cast<double>(shape_numel(dst)));
  return Status::ok();
}


// A matrix product with known weights (the same for every batch) through oneDNN's float32
// matrix product of the integers: exact while every column's 255 * sum |w| stays within 2^24
// (as add_integer_conv_float). Declines, adding nothing, otherwise.
Status add_integer_matmul_float(Builder& b, IntegerProduct& p, const Shape& a, const Shape& w, const Shape& dst) {
  const size_t r = dst.size();
  const bool runtime = p.weights_value >= 0;
  if (cpu_isa_level() < 1 || !feature_enabled("QFLOAT") || (runtime && !p.weights_column_zp.empty()))
    return unsupported(p.label + " float route");
  for (size_t d = 0; d + 2 < r && !runtime; ++d)
    if (w[d] != 1 || a[d] != dst[d]) return unsupported(p.label + " batched weights");
  const int64_t K = a[r - 1], N = w[r - 1], rows = shape_numel(dst) / N;
  for (int64_t j = 0; j < N; ++j) {
    // A runtime operand minus its zero point: any value within 255 of zero.
    double bound = p.bias.empty() ? 0.0 : std::fabs(static_cast<double>(p.bias[static_cast<size_t>(j)]));
    for (int64_t k = 0; k < K; ++k)
      bound += 255.0 * (runtime ? 255.0 : std::abs(static_cast<double>(p.weights[static_cast<size_t>(k * N + j)])));
    if (bound > 16777216.0) return unsupported(p.label + " partial sums could pass 2^24");
  }
  using dt = dnnl::memory::data_type;
  // Known weights: one [K, N] matrix, the left operand's leading dims flattened into rows. A
  // runtime right operand: both with their batch dims, which oneDNN broadcasts.
  const dnnl::memory::desc src_md = runtime ? plain_md(a) : dnnl::memory::desc({rows, K}, dt::f32, dnnl::memory::format_tag::ab);
  const dnnl::memory::desc w_md = runtime ? plain_md(w) : dnnl::memory::desc({K, N}, dt::f32, dnnl::memory::format_tag::any);
  const dnnl::memory::desc dst_md = runtime ? plain_md(dst) : dnnl::memory::desc({rows, N}, dt::f32, dnnl::memory::format_tag::ab);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  const double work = static_cast<double>(rows) * static_cast<double>(K) * static_cast<double>(N);
  const int kthreads = threads_for(b, work);
  ThreadScope scope(kthreads);
  dnnl::matmul::primitive_desc pd;
  try {
    pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(src_md, w_md, dst_md), attr, cpu_engine());
  } catch (const dnnl::error& e) {
    return unsupported(p.label + " oneDNN has no float32 matrix product for it: " + e.what());
  }
  const int fa = add_source_to_float(b, p, a);
  int fw = -1;
  if (runtime) {  // the right operand minus its zero point, widened like the source
    IntegerProduct right;
    right.label = p.label + " B";
    right.src = p.weights_value;
    right.src_zp = p.weights_zp;
    if (right.src_zp.value >= 0) right.reads.push_back(right.src_zp.value);
    fw = add_source_to_float(b, right, w);
  }
  const int acc = b.add_temp(DataType::float32, dst, Layout::plain);
  auto k = std::make_unique<DnnlKernel>();
  k->label = p.label + " (integer product in float32)";
  k->threads = kthreads;
  attach_primitive(b, *k, dnnl::matmul(pd), pd.scratchpad_desc());
  k->args.push_back({DNNL_ARG_SRC, fa, src_md, {}});
  if (runtime) {
    k->args.push_back({DNNL_ARG_WEIGHTS, fw, w_md, {}});
  } else {
    k->args.push_back({DNNL_ARG_WEIGHTS, -1, pd.weights_desc(),
                       pack_float_weights(p.weights, K * N, dnnl::memory::desc({K, N}, dt::f32, dnnl::memory::format_tag::ab),
                                          pd.weights_desc())});
  }
  k->args.push_back({DNNL_ARG_DST, acc, dst_md, {}});
  k->reads = {fa};
  if (runtime) k->reads.push_back(fw);
  k->writes = {acc};
  b.add_work(work);
  if (verbose()) note(k->label + ": " + pd.impl_info_str());
  b.add_kernel(std::move(k));
  auto store = std::make_unique<PlainAccStoreKernel>();
  store->acc = acc;
  store->rows = rows;
  store->N = N;
  add_store(b, std::move(store), acc, std::move(p), static_cast<double>(rows * N));
  return Status::ok();
}

}  // namespace tandem::cpu
