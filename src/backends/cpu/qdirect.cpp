// qdirect.cpp: the backend's own integer convolution and matrix product (int8.h:
// IntegerProduct), for the quantized products oneDNN cannot run exactly. Direct loops over
// plain layouts, int32 accumulation that wraps like the reference kernel's, output channels (or
// rows) in parallel, and the reference requantization. A 2-D convolution whose partial sums
// provably stay exact in float32 runs instead as oneDNN's float32 convolution of the integers
// (add_integer_conv_float).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "backends/cpu/int8.h"
#include "backends/cpu/op_family.h"
#include "backends/cpu/runtime_env.h"

namespace tandem::cpu {

namespace {

// Reads element i of an 8-bit source.
inline int32_t load8(const void* p, bool is_signed, int64_t i) {
  return is_signed ? static_cast<const int8_t*>(p)[i] : static_cast<const uint8_t*>(p)[i];
}

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

// One row of a product with a runtime right operand, nj columns:
// acc[j] = sum_k (a[k] - azp) * (w[k * stride + j] - zp[j]), wrapping in 32 bits. Typed
// pointers and a column zero point per column keep the inner loop branch-free, so that each
// ISA variant vectorizes it.
template <class A, class W>
TANDEM_ISA_BODY void row_product_body(const A* a, int32_t azp, const W* w, int64_t K, int64_t stride, int64_t nj,
                                      const int32_t* zp, uint32_t* acc) {
  for (int64_t j = 0; j < nj; ++j) acc[j] = 0;
  for (int64_t k = 0; k < K; ++k) {
    const uint32_t av = static_cast<uint32_t>(static_cast<int32_t>(a[k]) - azp);
    const W* wr = w + k * stride;
    for (int64_t j = 0; j < nj; ++j) acc[j] += av * static_cast<uint32_t>(static_cast<int32_t>(wr[j]) - zp[j]);
  }
}
#define TANDEM_ROW_PRODUCT(name, A, W)                                                                        \
  TANDEM_ISA_BODY void name##_body(const A* a, int32_t azp, const W* w, int64_t K, int64_t stride, int64_t nj, \
                                   const int32_t* zp, uint32_t* acc) {                                       \
    row_product_body<A, W>(a, azp, w, K, stride, nj, zp, acc);                                               \
  }                                                                                                           \
  TANDEM_ISA_DISPATCH(name,                                                                                   \
                      (const A* a, int32_t azp, const W* w, int64_t K, int64_t stride, int64_t nj,            \
                       const int32_t* zp, uint32_t* acc),                                                     \
                      (a, azp, w, K, stride, nj, zp, acc))
TANDEM_ROW_PRODUCT(row_product_uu, uint8_t, uint8_t)
TANDEM_ROW_PRODUCT(row_product_us, uint8_t, int8_t)
TANDEM_ROW_PRODUCT(row_product_su, int8_t, uint8_t)
TANDEM_ROW_PRODUCT(row_product_ss, int8_t, int8_t)
#undef TANDEM_ROW_PRODUCT

// The same with AVX-512 intrinsics: 16 columns per vector and a masked last vector, so that
// short rows (attention products have 15 or 40 columns) stay vectorized; masked loads never
// touch bytes past the row. nj <= 256.
TANDEM_TARGET_AVX512 void row_product_avx512(const uint8_t* a, bool a_signed, int32_t azp, const uint8_t* w,
                                             bool w_signed, int64_t K, int64_t stride, int64_t nj, const int32_t* zp,
                                             uint32_t* acc) {
  const int64_t blocks = (nj + 15) / 16;
  const __mmask16 tail = static_cast<__mmask16>((1u << (nj - (blocks - 1) * 16)) - 1u);
  __m512i sums[16], zps[16];
  for (int64_t b = 0; b < blocks; ++b) {
    const __mmask16 m = b == blocks - 1 ? tail : static_cast<__mmask16>(0xFFFF);
    sums[b] = _mm512_setzero_si512();
    zps[b] = _mm512_maskz_loadu_epi32(m, zp + 16 * b);
  }
  for (int64_t k = 0; k < K; ++k) {
    const int32_t ak = a_signed ? static_cast<int8_t>(a[k]) : a[k];
    const __m512i av = _mm512_set1_epi32(ak - azp);
    const uint8_t* wr = w + k * stride;
    for (int64_t b = 0; b < blocks; ++b) {
      const __mmask16 m = b == blocks - 1 ? tail : static_cast<__mmask16>(0xFFFF);
      const __m128i bytes = _mm_maskz_loadu_epi8(m, wr + 16 * b);
      // (zero-masked forms: the unmasked ones start from a register GCC calls uninitialized)
      const __m512i wv =
          w_signed ? _mm512_maskz_cvtepi8_epi32(0xFFFF, bytes) : _mm512_maskz_cvtepu8_epi32(0xFFFF, bytes);
      sums[b] = _mm512_add_epi32(sums[b], _mm512_mullo_epi32(_mm512_sub_epi32(wv, zps[b]), av));
    }
  }
  for (int64_t b = 0; b < blocks; ++b) {
    const __mmask16 m = b == blocks - 1 ? tail : static_cast<__mmask16>(0xFFFF);
    _mm512_mask_storeu_epi32(acc + 16 * b, m, sums[b]);
  }
}

void row_product(const void* a, bool a_signed, int32_t azp, const void* w, bool w_signed, int64_t K, int64_t stride,
                 int64_t nj, const int32_t* zp, uint32_t* acc) {
  static const int level = cpu_isa_level();
  if (level >= 2 && nj > 0 && nj <= 256) {
    row_product_avx512(static_cast<const uint8_t*>(a), a_signed, azp, static_cast<const uint8_t*>(w), w_signed, K,
                       stride, nj, zp, acc);
    return;
  }
  if (!a_signed && !w_signed)
    row_product_uu(static_cast<const uint8_t*>(a), azp, static_cast<const uint8_t*>(w), K, stride, nj, zp, acc);
  else if (!a_signed)
    row_product_us(static_cast<const uint8_t*>(a), azp, static_cast<const int8_t*>(w), K, stride, nj, zp, acc);
  else if (!w_signed)
    row_product_su(static_cast<const int8_t*>(a), azp, static_cast<const uint8_t*>(w), K, stride, nj, zp, acc);
  else
    row_product_ss(static_cast<const int8_t*>(a), azp, static_cast<const int8_t*>(w), K, stride, nj, zp, acc);
}

int32_t wrap_add(int32_t a, int64_t b) { return static_cast<int32_t>(static_cast<uint32_t>(a) + static_cast<uint32_t>(b)); }

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

class IntegerConvKernel final : public IntegerKernelBase {
 public:
  // Everything padded to 3 spatial dims (leading 1s).
  int64_t N = 1, C = 1, O = 1, G = 1;
  int64_t in[3] = {1, 1, 1}, k[3] = {1, 1, 1}, out[3] = {1, 1, 1};
  int64_t stride[3] = {1, 1, 1}, dil[3] = {1, 1, 1}, pad[3] = {0, 0, 0};

  Status run(RunCtx& ctx, KernelState*) const override {
    const void* x = ctx.ptr[p.src];
    void* y = ctx.ptr[p.out];
    const int32_t xzp = p.src_zp.read(ctx);
    const Store st = store(ctx);
    const int64_t Cg = C / G, Og = O / G, in_size = in[0] * in[1] * in[2], out_size = out[0] * out[1] * out[2];
    const int64_t k_size = k[0] * k[1] * k[2];
    const int64_t work = N * O * out_size * Cg * k_size;
    parallel_range(work < (1 << 20) ? 1 : ctx.threads, N * O, 1, [&](int64_t b, int64_t e) {
      for (int64_t no = b; no < e; ++no) {
        const int64_t n = no / O, m = no % O, g = m / Og;
        const int32_t* wm = p.weights.data() + m * Cg * k_size;
        const int32_t bias = p.bias.empty() ? 0 : p.bias[static_cast<size_t>(m)];
        // A row of up to kRow outputs at a time: for each tap, the outputs whose input is inside
        // the image form one range, walked without bounds checks (and vectorizable).
        constexpr int64_t kRow = 256;
        uint32_t acc[kRow];  // wrapping int32 sums
        const int64_t s2 = stride[2], d2 = dil[2], p2 = pad[2];
        for (int64_t od = 0; od < out[0]; ++od)
          for (int64_t oh = 0; oh < out[1]; ++oh)
            for (int64_t ow0 = 0; ow0 < out[2]; ow0 += kRow) {
              const int64_t nw = std::min(kRow, out[2] - ow0);
              for (int64_t j = 0; j < nw; ++j) acc[j] = static_cast<uint32_t>(bias);
              for (int64_t c = 0; c < Cg; ++c) {
                const int64_t xc = (n * C + g * Cg + c) * in_size;
                const int32_t* wc = wm + c * k_size;
                for (int64_t kd = 0; kd < k[0]; ++kd) {
                  const int64_t id = od * stride[0] - pad[0] + kd * dil[0];
                  if (id < 0 || id >= in[0]) continue;
                  for (int64_t kh = 0; kh < k[1]; ++kh) {
                    const int64_t ih = oh * stride[1] - pad[1] + kh * dil[1];
                    if (ih < 0 || ih >= in[1]) continue;
                    const int64_t row = xc + (id * in[1] + ih) * in[2];
                    for (int64_t kw = 0; kw < k[2]; ++kw) {
                      const int32_t wv = wc[(kd * k[1] + kh) * k[2] + kw];
                      if (wv == 0) continue;
                      // iw = ow * s2 - t lies in [0, in[2]) for ow in [lo, hi).
                      const int64_t t = p2 - kw * d2;
                      const int64_t lo = std::max(ow0, t > 0 ? (t + s2 - 1) / s2 : int64_t{0});
                      const int64_t hi = std::min(ow0 + nw, in[2] + t > 0 ? (in[2] + t + s2 - 1) / s2 : int64_t{0});
                      const uint32_t uw = static_cast<uint32_t>(wv);
                      if (src_signed) {
                        const int8_t* xs = static_cast<const int8_t*>(x) + row;
                        for (int64_t ow = lo; ow < hi; ++ow)
                          acc[ow - ow0] += static_cast<uint32_t>(xs[ow * s2 - t] - xzp) * uw;
                      } else {
                        const uint8_t* xs = static_cast<const uint8_t*>(x) + row;
                        for (int64_t ow = lo; ow < hi; ++ow)
                          acc[ow - ow0] += static_cast<uint32_t>(xs[ow * s2 - t] - xzp) * uw;
                      }
                    }
                  }
                }
              }
              const int64_t at = no * out_size + (od * out[1] + oh) * out[2] + ow0;
              for (int64_t j = 0; j < nw; ++j) st(y, at + j, m, static_cast<int32_t>(acc[j]));
            }
      }
    });
    return Status::ok();
  }
};

class IntegerMatMulKernel final : public IntegerKernelBase {
 public:
  int64_t M = 1, K = 1, Ncols = 1;
  bool weights_signed = false;  // a runtime right operand's type
  std::vector<int64_t> a_offsets, b_offsets;  // per output batch: element offsets of the operands

  Status run(RunCtx& ctx, KernelState*) const override {
    const void* a = ctx.ptr[p.src];
    void* y = ctx.ptr[p.out];
    const int32_t azp = p.src_zp.read(ctx);
    const Store st = store(ctx);
    const int64_t batches = static_cast<int64_t>(a_offsets.size());
    const int64_t work = batches * M * K * Ncols;
    if (p.weights_value >= 0) {
      const void* w = ctx.ptr[p.weights_value];
      const int32_t wzp = p.weights_zp.read(ctx);
      const int32_t* column_zp = p.weights_column_zp.empty() ? nullptr : p.weights_column_zp.data();
      parallel_range(work < (1 << 20) ? 1 : ctx.threads, batches * M, 1, [&](int64_t b, int64_t e) {
        // Row i of the product, kRow columns at a time: acc[j] += (a[i,k] - azp) * (w[k,j] - zp[j]).
        constexpr int64_t kRow = 256;
        alignas(64) uint32_t acc[kRow];  // wrapping int32 sums
        alignas(64) int32_t zp[kRow];
        for (int64_t bm = b; bm < e; ++bm) {
          const int64_t batch = bm / M, i = bm % M;
          const int64_t arow = a_offsets[static_cast<size_t>(batch)] + i * K;
          const int64_t wb = b_offsets[static_cast<size_t>(batch)];
          for (int64_t j0 = 0; j0 < Ncols; j0 += kRow) {
            const int64_t nj = std::min(kRow, Ncols - j0);
            for (int64_t j = 0; j < nj; ++j) zp[j] = column_zp ? column_zp[j0 + j] : wzp;
            // (8-bit data: element offsets are byte offsets)
            row_product(static_cast<const uint8_t*>(a) + arow, src_signed, azp, static_cast<const uint8_t*>(w) + wb + j0,
                        weights_signed, K, Ncols, nj, zp, acc);
            for (int64_t j = 0; j < nj; ++j) st(y, bm * Ncols + j0 + j, j0 + j, static_cast<int32_t>(acc[j]));
          }
        }
      });
      return Status::ok();
    }
    parallel_range(work < (1 << 20) ? 1 : ctx.threads, batches * M, 1, [&](int64_t b, int64_t e) {
      for (int64_t bm = b; bm < e; ++bm) {
        const int64_t batch = bm / M, i = bm % M;
        const int64_t arow = a_offsets[static_cast<size_t>(batch)] + i * K;
        const int32_t* wb = p.weights.data() + b_offsets[static_cast<size_t>(batch)];
        for (int64_t j = 0; j < Ncols; ++j) {
          int32_t acc = 0;
          for (int64_t kk = 0; kk < K; ++kk)
            acc = wrap_add(acc, static_cast<int64_t>(load8(a, src_signed, arow + kk) - azp) * wb[kk * Ncols + j]);
          st(y, bm * Ncols + j, j, acc);
        }
      }
    });
    return Status::ok();
  }
};

void finish(Builder& b, IntegerKernelBase& k, IntegerProduct&& p, double work) {
  k.src_signed = b.val(p.src).dtype == DataType::int8;
  k.out_type = b.val(p.out).dtype;
  k.label = p.label + " (own integer kernel)";
  k.reads = p.reads;
  k.reads.push_back(p.src);
  if (p.scales >= 0) k.reads.push_back(p.scales);
  k.writes = {p.out};
  k.p = std::move(p);
  b.add_work(work);
  if (verbose()) note(k.label);
}

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

  Status run(RunCtx& ctx, KernelState*) const override {
    const float* a = static_cast<const float*>(ctx.ptr[acc]);
    void* y = ctx.ptr[p.out];
    const Store st = store(ctx);
    const int64_t blocks = (O + block - 1) / block;
    constexpr int64_t kChunk = 1024;
    const int64_t chunks = (S + kChunk - 1) / kChunk;
    parallel_range(N * O * S < (1 << 16) ? 1 : ctx.threads, N * blocks * chunks, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi; ++t) {
        const int64_t c = t % chunks, ob = (t / chunks) % blocks, n = t / chunks / blocks;
        const int64_t s0 = c * kChunk, s1 = std::min(S, s0 + kChunk), lanes = std::min(block, O - ob * block);
        const float* src = a + (n * blocks + ob) * S * block;
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
          continue;
        }
        for (int64_t s = s0; s < s1; ++s)
          for (int64_t l = 0; l < lanes; ++l)
            st(y, row + l * S + s, ob * block + l, static_cast<int32_t>(src[s * block + l]));
      }
    });
    return Status::ok();
  }
};

// A 2-D integer convolution through float32 arithmetic: the source minus its zero point and the
// weights minus theirs are small integers, exact in float32, and so is every partial sum while
// |bias[o]| + 255 * sum |w[o]| stays at or below 2^24, whatever order the sums take. oneDNN's
// float32 convolution on the blocked layout (the fast kernels of every ISA path) then yields the
// exact int32 products, which FloatAccStoreKernel writes out. Declines (adding nothing) when the
// bound or the geometry does not hold.
Status add_integer_conv_float(Builder& b, IntegerProduct& p, const Shape& x, const Shape& w, const Shape& dst,
                              const std::vector<int64_t>& strides, const std::vector<int64_t>& dilations,
                              const std::vector<int64_t>& pads_begin, int64_t group) {
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
  // The source as float32 (blocked when it has 8 or more channels).
  const int fplain = b.add_temp(DataType::float32, x, Layout::plain);
  auto tf = std::make_unique<ToFloatKernel>();
  tf->label = p.label + " (to float32)";
  tf->src = p.src;
  tf->dst = fplain;
  tf->src_signed = b.val(p.src).dtype == DataType::int8;
  tf->zp = p.src_zp;
  tf->n = shape_numel(x);
  tf->reads = p.reads;
  tf->reads.push_back(p.src);
  tf->writes = {fplain};
  b.add_work(static_cast<double>(tf->n));
  b.add_kernel(std::move(tf));
  int fsrc = fplain;
  if (src_probe.layout == Layout::blocked) {
    TANDEM_ASSIGN_OR_RETURN(fsrc, b.require(fplain, Layout::blocked));
  }
  // Weights and bias as float32 (exact), packed in the format oneDNN chose.
  std::vector<float> wf(p.weights.begin(), p.weights.end());
  dnnl::memory packed(pd.weights_desc(), cpu_engine());
  {
    dnnl::memory plain(plain_md(Shape(wd.begin(), wd.end())), cpu_engine(), wf.data());
    dnnl::stream s(cpu_engine());
    dnnl::reorder(plain, packed).execute(s, plain, packed);
    s.wait();
  }
  dnnl::memory bm(b_md, cpu_engine());
  float* bias = static_cast<float*>(bm.get_data_handle());
  for (int64_t o = 0; o < O; ++o) bias[o] = p.bias.empty() ? 0.0f : static_cast<float>(p.bias[static_cast<size_t>(o)]);
  const int acc = b.add_temp(DataType::float32, dst, Layout::blocked);
  auto k = std::make_unique<DnnlKernel>();
  k->label = p.label + " (integer product in float32)";
  k->threads = kthreads;
  attach_primitive(b, *k, dnnl::convolution_forward(pd), pd.scratchpad_desc());
  k->args.push_back({DNNL_ARG_SRC, fsrc, src_md, {}});
  k->args.push_back({DNNL_ARG_WEIGHTS, -1, pd.weights_desc(), packed});
  k->args.push_back({DNNL_ARG_BIAS, -1, b_md, bm});
  k->args.push_back({DNNL_ARG_DST, acc, acc_md, {}});
  k->reads = {fsrc};
  k->writes = {acc};
  b.add_work(work);
  if (verbose()) note(k->label + ": " + pd.impl_info_str());
  b.add_kernel(std::move(k));
  auto store = std::make_unique<FloatAccStoreKernel>();
  store->acc = acc;
  store->N = dst[0];
  store->O = O;
  store->S = dst[2] * dst[3];
  store->block = block;
  store->out_type = b.val(p.out).dtype;
  store->label = p.label + " (store)";
  store->reads = p.reads;
  store->reads.push_back(acc);
  if (p.scales >= 0) store->reads.push_back(p.scales);
  store->writes = {p.out};
  store->p = std::move(p);
  b.add_work(static_cast<double>(shape_numel(dst)));
  b.add_kernel(std::move(store));
  return Status::ok();
}

}  // namespace

Status add_integer_conv(Builder& b, IntegerProduct p, const Shape& x, const Shape& w, const Shape& dst,
                        const std::vector<int64_t>& strides, const std::vector<int64_t>& dilations,
                        const std::vector<int64_t>& pads_begin, int64_t group) {
  const size_t sd = x.size() - 2;
  if (sd < 1 || sd > 3 || w.size() != x.size() || dst.size() != x.size() || strides.size() != sd ||
      dilations.size() != sd || pads_begin.size() != sd)
    return unsupported(p.label + " convolution geometry");
  {
    Status fast = add_integer_conv_float(b, p, x, w, dst, strides, dilations, pads_begin, group);
    if (fast.is_ok() || fast.code() != StatusCode::unsupported) return fast;
    if (verbose()) note(fast.message());
  }
  auto k = std::make_unique<IntegerConvKernel>();
  k->N = x[0];
  k->C = x[1];
  k->O = w[0];
  k->G = group;
  const size_t lead = 3 - sd;
  for (size_t i = 0; i < sd; ++i) {
    k->in[lead + i] = x[2 + i];
    k->k[lead + i] = w[2 + i];
    k->out[lead + i] = dst[2 + i];
    k->stride[lead + i] = strides[i];
    k->dil[lead + i] = dilations[i];
    k->pad[lead + i] = pads_begin[i];
  }
  const double work = static_cast<double>(shape_numel(dst)) * static_cast<double>(shape_numel(w) / w[0]);
  finish(b, *k, std::move(p), work);
  b.add_kernel(std::move(k));
  return Status::ok();
}

Status add_integer_matmul(Builder& b, IntegerProduct p, const Shape& a, const Shape& w, const Shape& dst) {
  const size_t r = dst.size();
  if (r < 2 || a.size() != r || w.size() != r) return unsupported(p.label + " product shapes");
  auto k = std::make_unique<IntegerMatMulKernel>();
  k->M = a[r - 2];
  k->K = a[r - 1];
  k->Ncols = w[r - 1];
  // Offsets of each output batch in the operands (size-1 dims broadcast).
  const int64_t batches = shape_numel(dst) / (k->M * k->Ncols);
  for (int64_t bi = 0; bi < batches; ++bi) {
    int64_t rest = bi, ao = 0, wo = 0, astride = k->M * k->K, wstride = k->K * k->Ncols;
    for (size_t d = r - 2; d-- > 0;) {
      const int64_t idx = rest % dst[d];
      rest /= dst[d];
      if (a[d] != 1) ao += idx * astride;
      if (w[d] != 1) wo += idx * wstride;
      astride *= a[d];
      wstride *= w[d];
    }
    k->a_offsets.push_back(ao);
    k->b_offsets.push_back(wo);
  }
  const double work = static_cast<double>(shape_numel(dst)) * static_cast<double>(k->K);
  if (p.weights_value >= 0) {
    k->weights_signed = b.val(p.weights_value).dtype == DataType::int8;
    p.reads.push_back(p.weights_value);
  }
  finish(b, *k, std::move(p), work);
  b.add_kernel(std::move(k));
  return Status::ok();
}

}  // namespace tandem::cpu
