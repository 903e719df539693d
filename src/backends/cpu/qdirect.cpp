// qdirect.cpp: the backend's own integer convolution and matrix product (int8.h:
// IntegerProduct), for the quantized products oneDNN cannot run exactly. Direct loops over
// plain layouts, int32 accumulation that wraps like the reference kernel's, output channels (or
// rows) in parallel, and the reference requantization (integer_store.h). Products whose partial
// sums provably stay exact in float32 run instead as oneDNN's float32 products of the integers
// (qfloat.cpp), tried first.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "backends/cpu/int8.h"
#include "backends/cpu/integer_store.h"
#include "backends/cpu/op_family.h"
#include "backends/cpu/runtime_env.h"

namespace tandem::cpu {

namespace {

// Reads element i of an 8-bit source.
inline int32_t load8(const void* p, bool is_signed, int64_t i) {
  return is_signed ? static_cast<const int8_t*>(p)[i] : static_cast<const uint8_t*>(p)[i];
}

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

// AVX-512: Store's 8-bit requantization of n accumulators (output elements i0.., channels m0..:
// a per-tensor multiplier or one per column) eight at a time in double, the same arithmetic.
// False (nothing written) for other outputs and ISAs, which take Store one by one.
TANDEM_TARGET_AVX512 void store_row8_avx512(const Store& st, void* out, int64_t i0, int64_t m0, const uint32_t* acc,
                                            int64_t n) {
  const bool u8 = st.type == DataType::uint8;
  const __m512d lo = _mm512_set1_pd(u8 ? 0.0 : -128.0), hi = _mm512_set1_pd(u8 ? 255.0 : 127.0);
  const __m512d zp = _mm512_set1_pd(static_cast<double>(st.zp));
  for (int64_t j = 0; j < n; j += 8) {
    const __mmask8 m = static_cast<__mmask8>(n - j >= 8 ? 0xFF : (1u << (n - j)) - 1u);
    const __m512d a = _mm512_cvtepi32_pd(_mm256_maskz_loadu_epi32(m, acc + j));
    const __m512d mult = st.count == 1 ? _mm512_set1_pd(static_cast<double>(st.multipliers[0]))
                                       : _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, st.multipliers + m0 + j));
    __m512d q = _mm512_add_pd(_mm512_roundscale_pd(_mm512_mul_pd(a, mult), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), zp);
    q = _mm512_min_pd(_mm512_max_pd(q, lo), hi);  // max returns lo for a NaN q, as Store does
    const __m128i bytes = _mm256_cvtepi32_epi8(_mm512_cvtpd_epi32(q));
    _mm_mask_storeu_epi8(static_cast<uint8_t*>(out) + i0 + j, m, bytes);
  }
}

void store_row(const Store& st, void* out, int64_t i0, int64_t m0, const uint32_t* acc, int64_t n) {
  static const bool avx512 = cpu_isa_level() >= 2;
  if (avx512 && st.multipliers && (st.type == DataType::uint8 || st.type == DataType::int8)) {
    store_row8_avx512(st, out, i0, m0, acc, n);
    return;
  }
  for (int64_t j = 0; j < n; ++j) st(out, i0 + j, m0 + j, static_cast<int32_t>(acc[j]));
}

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
            store_row(st, y, bm * Ncols + j0, j0, acc, nj);
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

}  // namespace

Status add_integer_conv(Builder& b, IntegerProduct p, const Shape& x, const Shape& w, const Shape& dst,
                        const std::vector<int64_t>& strides, const std::vector<int64_t>& dilations,
                        const std::vector<int64_t>& pads_begin, int64_t group) {
  const size_t sd = x.size() - 2;
  if (sd < 1 || sd > 3 || w.size() != x.size() || dst.size() != x.size() || strides.size() != sd ||
      dilations.size() != sd || pads_begin.size() != sd)
    return unsupported(p.label + " convolution geometry");
  {
    Status fast = add_integer_conv_float(b, p, x, w, dst, strides, dilations, pads_begin, group, nullptr);
    if (fast.is_ok() || fast.code() != StatusCode::unsupported) return fast;
    if (verbose()) note(fast.message());
  }
  // The direct loops read and write plain values: channels-last ones are converted.
  TANDEM_ASSIGN_OR_RETURN(p.src, b.require(p.src, Layout::plain));
  int channels_last_out = -1;
  if (b.val(p.out).layout != Layout::plain) {
    channels_last_out = p.out;
    p.out = b.add_temp(b.val(p.out).dtype, dst, Layout::plain);
  }
  const int plain_out = p.out;
  const std::string label = p.label;
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
  if (channels_last_out >= 0) return add_reorder(b, plain_out, channels_last_out, label + " (to channels-last)");
  return Status::ok();
}

Status add_integer_matmul(Builder& b, IntegerProduct p, const Shape& a, const Shape& w, const Shape& dst) {
  const size_t r = dst.size();
  if (r < 2 || a.size() != r || w.size() != r) return unsupported(p.label + " product shapes");
  {
    Status fast = add_integer_matmul_float(b, p, a, w, dst);
    if (fast.is_ok() || fast.code() != StatusCode::unsupported) return fast;
    if (verbose()) note(fast.message());
  }
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
