// cast.cpp: Cast on the cpu backend: a view between equal types, float16 <-> float32 with the
// vector conversion instructions, and the other pairs of castable types (float32, float16,
// int32, int64, bool, uint8, int8) element by element; and the narrowing of float32 values to
// bfloat16 for precision=bf16 (cast.h).
#include "backends/cpu/cast.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <limits>
#include <cstring>
#include <type_traits>
#include <vector>

#include "backends/cpu/op_family.h"
#include "backends/cpu/runtime_env.h"

namespace tandem::cpu {

namespace {

// float16 <-> float32, n elements. AVX-512 and F16C convert 16 and 8 lanes per instruction
// with round-to-nearest-even (the scalar tail and the baseline use Float16, which rounds the
// same way).
__attribute__((target("avx512f"))) void half_to_float_avx512(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i))));
  for (; i < n; ++i) dst[i] = static_cast<float>(Float16{std::bit_cast<Float16>(src[i])});
}
__attribute__((target("avx512f"))) void float_to_half_avx512(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i),
                        _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  for (; i < n; ++i) dst[i] = Float16(src[i]).bits;
}
__attribute__((target("avx2,f16c"))) void half_to_float_f16c(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  for (; i < n; ++i) dst[i] = static_cast<float>(Float16{std::bit_cast<Float16>(src[i])});
}
__attribute__((target("avx2,f16c"))) void float_to_half_f16c(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i) dst[i] = Float16(src[i]).bits;
}
void half_to_float_scalar(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(std::bit_cast<Float16>(src[i]));
}
void float_to_half_scalar(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = Float16(src[i]).bits;
}

// Converts between float16 and float32 into a new arena value.
class ConvertKernel final : public Kernel {
 public:
  int src = -1, dst = -1;
  int64_t n = 0;
  bool widen = true;  // float16 -> float32; otherwise float32 -> float16

  Status run(RunCtx& ctx, KernelState*) const override {
    static const int isa = cpu_isa_level();
    const auto* s = ctx.ptr[src];
    auto* d = ctx.ptr[dst];
    const int threads = n < (1 << 16) ? 1 : ctx.threads;
    parallel_range(threads, n, 1 << 14, [&](int64_t b, int64_t e) {
      if (widen) {
        const auto* in = static_cast<const uint16_t*>(s) + b;
        float* out = static_cast<float*>(d) + b;
        if (isa >= 2) half_to_float_avx512(in, out, e - b);
        else if (isa >= 1) half_to_float_f16c(in, out, e - b);
        else half_to_float_scalar(in, out, e - b);
      } else {
        const float* in = static_cast<const float*>(s) + b;
        auto* out = static_cast<uint16_t*>(d) + b;
        if (isa >= 2) float_to_half_avx512(in, out, e - b);
        else if (isa >= 1) float_to_half_f16c(in, out, e - b);
        else float_to_half_scalar(in, out, e - b);
      }
    });
    return Status::ok();
  }
};

// float32 -> bfloat16, n elements, rounding to nearest even (vcvtne2ps2bf16, as oneDNN's
// reorders do on this ISA). Called only where has_native_bf16().
__attribute__((target("avx512f,avx512bf16"))) void float_to_bf16_avx512(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512bh two = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16), _mm512_loadu_ps(src + i));
    _mm512_storeu_si512(dst + i, reinterpret_cast<__m512i>(two));
  }
  if (i < n) {
    const int64_t left = n - i;
    const __mmask16 lo = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
    const __mmask16 hi = left > 16 ? __mmask16((1u << (left - 16)) - 1) : __mmask16(0);
    const __m512bh two = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, src + i + 16), _mm512_maskz_loadu_ps(lo, src + i));
    _mm512_mask_storeu_epi16(dst + i, (__mmask32(hi) << 16) | lo, reinterpret_cast<__m512i>(two));
  }
}

// Narrows a float32 value to its bfloat16 copy of the same shape and layout. The blocked
// layout's padded channels are written as zeros whatever the source holds there: a bf16
// convolution reads them (against zero weights), so they must not hold a NaN.
class Bf16NarrowKernel final : public Kernel {
 public:
  int src = -1, dst = -1;
  int64_t n = 0;  // physical elements
  // Blocked with C % block != 0: `images` x `blocks` block rows of `pixels` x `block` lanes;
  // lanes from `valid` on in each image's last block are padding.
  int64_t images = 0, blocks = 0, pixels = 0, block = 0, valid = 0;
  int threads = 1;  // at most; the run's team may be smaller

  Status run(RunCtx& ctx, KernelState*) const override {
    narrow(static_cast<const float*>(ctx.ptr[src]), static_cast<uint16_t*>(ctx.ptr[dst]), std::min(threads, ctx.threads));
    return Status::ok();
  }
  void narrow(const float* in, uint16_t* out, int threads) const {
    parallel_range(threads, n, 1 << 14, [&](int64_t b, int64_t e) { float_to_bf16_avx512(in + b, out + b, e - b); });
    if (valid == 0) return;
    for (int64_t i = 0; i < images; ++i) {
      uint16_t* last = out + ((i * blocks + blocks - 1) * pixels) * block;
      for (int64_t p = 0; p < pixels; ++p) std::fill(last + p * block + valid, last + (p + 1) * block, uint16_t{0});
    }
  }
};

template <class T>
float as_float(T v) { return static_cast<float>(v); }

// One element of ONNX Cast between castable types. Float to integer truncates toward zero; to
// the 8-bit types it goes through int64 and wraps, NaN giving 0, as the reference kernel does
// (the spec leaves out-of-range values undefined).
template <class To, class From>
To cast_element(From v) {
  if constexpr (std::is_same_v<To, From>) return v;
  else if constexpr ((std::is_same_v<To, uint8_t> || std::is_same_v<To, int8_t>) && !std::is_same_v<From, bool>) {
    if constexpr (std::is_integral_v<From>) {
      return static_cast<To>(v);
    } else {
      const double d = static_cast<double>(static_cast<float>(v));
      if (std::isnan(d)) return To(0);
      if constexpr (std::is_unsigned_v<To>) {
        if (d >= 18446744073709551616.0 || d <= -9223372036854775808.0) return To(0);
        return d < 0 ? static_cast<To>(static_cast<int64_t>(d)) : static_cast<To>(static_cast<uint64_t>(d));
      }
      if (d >= 9223372036854775808.0 || d < -9223372036854775808.0) return static_cast<To>(INT64_MIN);
      return static_cast<To>(static_cast<int64_t>(d));
    }
  }
  else if constexpr (std::is_same_v<To, Float16>) return Float16(as_float(v));
  else if constexpr (std::is_same_v<From, Float16>) return cast_element<To>(static_cast<float>(v));
  else if constexpr (std::is_same_v<To, bool>) return v != From{};
  else return static_cast<To>(v);
}

template <class F>
void visit_castable(DataType t, F&& f) {
  switch (t) {
    case DataType::float32: f.template operator()<float>(); break;
    case DataType::float16: f.template operator()<Float16>(); break;
    case DataType::int32: f.template operator()<int32_t>(); break;
    case DataType::int64: f.template operator()<int64_t>(); break;
    case DataType::uint8: f.template operator()<uint8_t>(); break;
    case DataType::int8: f.template operator()<int8_t>(); break;
    default: f.template operator()<bool>(); break;
  }
}

// Casts between castable types other than float16 <-> float32 (small shape tensors, mostly).
class CastKernel final : public Kernel {
 public:
  int src = -1, dst = -1;
  int64_t n = 0;
  DataType from = DataType::undefined, to = DataType::undefined;

  Status run(RunCtx& ctx, KernelState*) const override {
    const void* s = ctx.ptr[src];
    void* d = ctx.ptr[dst];
    visit_castable(from, [&]<class F>() {
      visit_castable(to, [&]<class T>() {
        const F* in = static_cast<const F*>(s);
        T* out = static_cast<T*>(d);
        for (int64_t i = 0; i < n; ++i) out[i] = cast_element<T>(in[i]);
      });
    });
    return Status::ok();
  }
};

// Cast between equal types is a view; float16 <-> float32 converts with vector instructions,
// the other castable pairs with CastKernel. supports() declines every other pair.
class CastSpec final : public OpSpec {
 public:
  Status prepare(Builder& b, const Step& step) const override {
    int x = step.inputs[0], out = step.outputs[0];
    if (!b.typed(x) || !b.typed(out) || !pod(b.val(x).dtype)) return unsupported(step.node->label() + " cast of unknown type");
    const DataType from = b.val(x).dtype, to = b.val(out).dtype;
    TANDEM_ASSIGN_OR_RETURN(int px, b.require(x, Layout::plain));
    if (from == to) {
      b.define_alias(out, px, 0);
      return Status::ok();
    }
    if (!castable(from) || !castable(to))
      return unsupported(step.node->label() + " Cast from " + std::string(dtype_name(from)) + " to " +
                         std::string(dtype_name(to)));
    const bool widen = from == DataType::float16 && to == DataType::float32;
    b.define(out, Layout::plain);
    if (!widen && !(from == DataType::float32 && to == DataType::float16)) {
      auto k = std::make_unique<CastKernel>();
      k->src = px;
      k->dst = out;
      k->n = shape_numel(b.val(x).shape);
      k->from = from;
      k->to = to;
      k->reads = {px};
      k->writes = {out};
      k->label = step.node->label();
      b.add_kernel(std::move(k));
      return Status::ok();
    }
    auto k = std::make_unique<ConvertKernel>();
    k->src = px;
    k->dst = out;
    k->n = shape_numel(b.val(x).shape);
    k->widen = widen;
    k->reads = {px};
    k->writes = {out};
    k->label = step.node->label();
    b.add_work(static_cast<double>(k->n));
    b.add_kernel(std::move(k));
    return Status::ok();
  }
};

Status supports_cast(const Node& n) {
  if (n.inputs.empty() || n.inputs[0].empty()) return unsupported(n.label() + " no data input");
  return Status::ok();
}

Result<std::unique_ptr<OpSpec>> make_cast(FusionContext&, const Step&) {
  return std::unique_ptr<OpSpec>(std::make_unique<CastSpec>());
}

}  // namespace

void narrow_to_bf16(const float* src, uint16_t* dst, int64_t n) { float_to_bf16_avx512(src, dst, n); }

namespace {

TANDEM_TARGET_AVX512 void bf16_to_float_avx512(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i)));
    _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16)));
  }
  for (; i < n; ++i) {
    const uint32_t bits = static_cast<uint32_t>(src[i]) << 16;
    std::memcpy(dst + i, &bits, sizeof bits);
  }
}

}  // namespace

void widen_from_bf16(const uint16_t* src, float* dst, int64_t n) { bf16_to_float_avx512(src, dst, n); }

bool narrows_to_bf16_natively(const IValue& from, Layout to) {
  static const bool enabled = feature_enabled("BF16_NARROWING");
  return enabled && has_native_bf16() && from.dtype == DataType::float32 && from.layout == to &&
         (to != Layout::blocked || from.shape.size() == 4);
}

namespace {
std::unique_ptr<Bf16NarrowKernel> make_narrowing(const IValue& from) {
  auto k = std::make_unique<Bf16NarrowKernel>();
  k->n = Builder::physical_bytes(DataType::float32, from.shape, from.layout) / static_cast<int64_t>(sizeof(float));
  if (from.layout == Layout::blocked) {
    const int64_t C = from.shape[1];
    k->block = channel_block();
    k->blocks = (C + k->block - 1) / k->block;
    k->images = from.shape[0];
    k->pixels = from.shape[2] * from.shape[3];
    k->valid = C % k->block;
  }
  return k;
}
}  // namespace

Status add_bf16_narrowing(Builder& b, int src, int dst, const std::string& label) {
  const IValue& from = b.val(src);
  if (!narrows_to_bf16_natively(from, b.val(dst).layout) || b.val(dst).dtype != DataType::bfloat16 ||
      b.val(dst).shape != from.shape)
    return unsupported(label + ": no native narrowing to bfloat16 here");
  auto k = make_narrowing(from);
  k->src = src;
  k->dst = dst;
  k->threads = threads_for(b, static_cast<double>(k->n));
  k->reads = {src};
  k->writes = {dst};
  k->label = label;
  b.add_kernel(std::move(k));
  return Status::ok();
}

double time_bf16_narrowing_ms(const IValue& from) {
  if (!narrows_to_bf16_natively(from, from.layout)) return std::numeric_limits<double>::infinity();
  auto k = make_narrowing(from);
  std::vector<float> in(static_cast<size_t>(k->n), 0.0115f);
  std::vector<uint16_t> out(static_cast<size_t>(k->n));
  const int threads = team_for_work(omp_get_max_threads(), static_cast<double>(k->n));
  k->narrow(in.data(), out.data(), threads);  // warm-up: first touches
  double best = std::numeric_limits<double>::infinity();
  for (int i = 0; i < 2; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    k->narrow(in.data(), out.data(), threads);
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

bool castable(DataType t) {
  return t == DataType::float32 || t == DataType::float16 || t == DataType::int32 || t == DataType::int64 ||
         t == DataType::boolean || t == DataType::uint8 || t == DataType::int8;
}

void register_cast_ops(OpTable& t) { t.add("Cast", &supports_cast, &make_cast); }

}  // namespace tandem::cpu
