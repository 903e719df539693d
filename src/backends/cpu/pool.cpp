// pool.cpp: MaxPool (float32, uint8, int8) and AveragePool on oneDNN (pooling_v2: dilations,
// ceil_mode as extra end padding, auto_pad), GlobalAveragePool and GlobalMaxPool as the
// backend's own reductions over the spatial dims (plain or blocked layout; the output keeps the
// input's layout).
#include <algorithm>
#include <cfloat>

#include <immintrin.h>

#include "backends/cpu/op_family.h"
#include "graph/window_geometry.h"

namespace tandem::cpu {

namespace {

using dt = dnnl::memory::data_type;

class PoolSpec final : public OpSpec {
 public:
  bool max = true;
  Status prepare(Builder& b, const Step& step) const override {
    const Node& n = *step.node;
    const std::string label = n.label();
    int x = step.inputs[0];
    const int out = step.outputs[0];
    if (!b.typed(x) || !b.typed(out)) return unsupported(label + " shape unknown");
    // MaxPool also on 8-bit values (QOperator models, and QDQ ones through qdq_fusion.cpp).
    const DataType type = b.val(x).dtype;
    const bool bytes = max && (type == DataType::uint8 || type == DataType::int8) && b.val(out).dtype == type;
    if (!bytes && !all_float32(b, step)) return unsupported(label + " not float32");
    const Shape xs = b.val(x).shape;
    if (xs.size() < 3 || xs.size() > 5 || shape_numel(xs) == 0) return unsupported(label + " rank");
    const std::vector<int64_t> kernel = n.attr_ints("kernel_shape");
    WindowOptions pooling;
    pooling.has_ceil_mode = true;
    Result<WindowGeometry> win = window_geometry(n, Shape(xs.begin() + 2, xs.end()), kernel, pooling);
    if (!win) return unsupported(win.status().message());
    const std::vector<int64_t>& strides = win->strides;
    const std::vector<int64_t>& dil = win->dilations;
    Shape dst = {xs[0], xs[1]};
    std::vector<int64_t> pl(kernel.size()), pr(kernel.size());
    for (size_t i = 0; i < kernel.size(); ++i) {
      const int64_t o = win->out[i];
      if (o <= 0) return unsupported(label + " empty output");
      dst.push_back(o);
      // oneDNN takes the end padding that makes exactly `o` windows (ceil_mode's partial window
      // included), never negative.
      pl[i] = win->pad_begin[i];
      pr[i] = std::max<int64_t>(0, (o - 1) * strides[i] + win->extent(i) - xs[2 + i] - pl[i]);
    }
    if (dst != b.val(out).shape) return unsupported(label + " output shape differs from inference");
    // A plain 2-D float input of 8 or more channels is pooled blocked, as convolutions take it:
    // oneDNN's only kernel for plain NCHW is a scalar one (10 times slower than the reorder
    // and the vector kernel together on a 1x200x2x96 max pool).
    if (xs.size() == 4 && xs[1] >= 8 && b.val(x).layout == Layout::plain && b.val(x).dtype == DataType::float32 &&
        float_path_blocked()) {
      TANDEM_ASSIGN_OR_RETURN(x, b.require(x, Layout::blocked));
    }
    // Plain bytes likewise go channels-last (oneDNN's 8-bit kernel for plain NCHW is its
    // reference loop).
    if (bytes && xs.size() == 4 && xs[1] >= 8 && b.val(x).layout == Layout::plain) {
      TANDEM_ASSIGN_OR_RETURN(x, b.require(x, Layout::nhwc));
    }
    const Layout l = b.val(x).layout;
    b.define(out, l);
    dnnl::algorithm alg = dnnl::algorithm::pooling_max;
    if (!max)
      alg = n.attr_int("count_include_pad", 0) ? dnnl::algorithm::pooling_avg_include_padding
                                               : dnnl::algorithm::pooling_avg_exclude_padding;
    auto smd = value_md(b.val(x)), dmd = value_md(b.val(out));
    dnnl::memory::dims st(strides.begin(), strides.end()), ker(kernel.begin(), kernel.end());
    dnnl::memory::dims dl, pad_l(pl.begin(), pl.end()), pad_r(pr.begin(), pr.end());
    for (int64_t d : dil) dl.push_back(d - 1);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    double work = static_cast<double>(shape_numel(dst));
    for (int64_t kk : kernel) work *= static_cast<double>(kk);
    const int kthreads = threads_for(b, work);
    ThreadScope scope(kthreads);
    auto d = dnnl::pooling_v2_forward::desc(dnnl::prop_kind::forward_inference, alg, smd, dmd, st, ker, dl, pad_l, pad_r);
    auto pd = dnnl::pooling_v2_forward::primitive_desc(d, attr, cpu_engine());
    auto k = std::make_unique<DnnlKernel>();
    k->label = label;
    k->threads = kthreads;
    attach_primitive(b, *k, dnnl::pooling_v2_forward(pd), pd.scratchpad_desc());
    k->args.push_back({DNNL_ARG_SRC, x, smd, {}});
    k->args.push_back({DNNL_ARG_DST, out, dmd, {}});
    k->reads = {x};
    k->writes = {out};
    b.add_kernel(std::move(k));
    return Status::ok();
  }
};

// Sum or max of `spatial` rows of L lanes into out[0, L): four partial results, so that four
// vector additions are in flight instead of one chain of dependent ones (a 144x56x56 mean took
// 63 us at one thread with one chain).
template <int L>
__attribute__((always_inline)) inline void reduce_rows(const float* p, int64_t spatial, bool max, float* out) {
  float part[4][L];
  for (int k = 0; k < 4; ++k)
    for (int l = 0; l < L; ++l) part[k][l] = max ? -FLT_MAX : 0.0f;
  int64_t s = 0;
  if (max) {
    for (; s + 4 <= spatial; s += 4)
      for (int k = 0; k < 4; ++k)
        for (int l = 0; l < L; ++l) part[k][l] = std::max(part[k][l], p[(s + k) * L + l]);
    for (; s < spatial; ++s)
      for (int l = 0; l < L; ++l) part[0][l] = std::max(part[0][l], p[s * L + l]);
    for (int l = 0; l < L; ++l) out[l] = std::max(std::max(part[0][l], part[1][l]), std::max(part[2][l], part[3][l]));
  } else {
    for (; s + 4 <= spatial; s += 4)
      for (int k = 0; k < 4; ++k)
        for (int l = 0; l < L; ++l) part[k][l] += p[(s + k) * L + l];
    for (; s < spatial; ++s)
      for (int l = 0; l < L; ++l) part[0][l] += p[s * L + l];
    for (int l = 0; l < L; ++l) out[l] = (part[0][l] + part[1][l]) + (part[2][l] + part[3][l]);
  }
}

// Mean or max over the spatial dims, one channel block (`lanes` = channel_block()) at a time.
TANDEM_ISA_BODY void global_blocked_body(const float* in, float* o, int64_t b, int64_t e, int64_t spatial, bool max,
                                         int64_t lanes) {
  if (lanes == 16 || lanes == 8) {
    const float inv = 1.0f / static_cast<float>(spatial);
    for (int64_t r = b; r < e; ++r) {
      float* out = o + r * lanes;
      if (lanes == 16) reduce_rows<16>(in + r * spatial * 16, spatial, max, out);
      else reduce_rows<8>(in + r * spatial * 8, spatial, max, out);
      if (!max)
        for (int64_t l = 0; l < lanes; ++l) out[l] *= inv;
    }
    return;
  }
  for (int64_t r = b; r < e; ++r) {
    const float* p = in + r * spatial * lanes;
    float acc[kMaxBlock];
    for (int64_t l = 0; l < lanes; ++l) acc[l] = max ? -FLT_MAX : 0.0f;
    if (max) {
      for (int64_t s = 0; s < spatial; ++s)
        for (int64_t l = 0; l < lanes; ++l) acc[l] = std::max(acc[l], p[s * lanes + l]);
    } else {
      for (int64_t s = 0; s < spatial; ++s)
        for (int64_t l = 0; l < lanes; ++l) acc[l] += p[s * lanes + l];
      const float inv = 1.0f / static_cast<float>(spatial);
      for (int64_t l = 0; l < lanes; ++l) acc[l] *= inv;
    }
    for (int64_t l = 0; l < lanes; ++l) o[r * lanes + l] = acc[l];
  }
}
TANDEM_ISA_DISPATCH(global_blocked,
                    (const float* in, float* o, int64_t b, int64_t e, int64_t spatial, bool max, int64_t lanes),
                    (in, o, b, e, spatial, max, lanes))

// Mean or max over the spatial dims of 16-lane channel blocks [b, e) held in bfloat16 (a
// hand-off; only on AVX-512): each pixel's 16 values widened exactly (bf16 is the top half of a
// float), four partial sums or maxima in flight.
TANDEM_TARGET_AVX512 inline __m512 widen(const uint16_t* p) {
  return _mm512_castsi512_ps(
      _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
}

TANDEM_TARGET_AVX512 void global_blocked_bf16(const uint16_t* in, float* o, int64_t b, int64_t e, int64_t spatial,
                                              bool max) {
  for (int64_t r = b; r < e; ++r) {
    const uint16_t* p = in + r * spatial * 16;
    const __m512 init = max ? _mm512_set1_ps(-FLT_MAX) : _mm512_setzero_ps();
    __m512 a0 = init, a1 = init, a2 = init, a3 = init;
    int64_t s = 0;
    for (; s + 4 <= spatial; s += 4) {
      const __m512 v0 = widen(p + s * 16), v1 = widen(p + s * 16 + 16), v2 = widen(p + s * 16 + 32),
                   v3 = widen(p + s * 16 + 48);
      if (max) {
        a0 = _mm512_max_ps(a0, v0), a1 = _mm512_max_ps(a1, v1), a2 = _mm512_max_ps(a2, v2), a3 = _mm512_max_ps(a3, v3);
      } else {
        a0 = _mm512_add_ps(a0, v0), a1 = _mm512_add_ps(a1, v1), a2 = _mm512_add_ps(a2, v2), a3 = _mm512_add_ps(a3, v3);
      }
    }
    for (; s < spatial; ++s) a0 = max ? _mm512_max_ps(a0, widen(p + s * 16)) : _mm512_add_ps(a0, widen(p + s * 16));
    __m512 res = max ? _mm512_max_ps(_mm512_max_ps(a0, a1), _mm512_max_ps(a2, a3))
                     : _mm512_mul_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                                     _mm512_set1_ps(1.0f / static_cast<float>(spatial)));
    _mm512_storeu_ps(o + r * 16, res);
  }
}

// Mean or max over the spatial dims of rows [b, e) (plain layout).
TANDEM_ISA_BODY void global_plain_body(const float* in, float* o, int64_t b, int64_t e, int64_t spatial, bool max) {
  for (int64_t r = b; r < e; ++r) {
    const float* p = in + r * spatial;
    if (max) {
      float m = -FLT_MAX;
      for (int64_t s = 0; s < spatial; ++s) m = std::max(m, p[s]);
      o[r] = m;
    } else {
      float part[16] = {0};
      int64_t s = 0;
      for (; s + 16 <= spatial; s += 16)
        for (int l = 0; l < 16; ++l) part[l] += p[s + l];
      double acc = 0;
      for (int l = 0; l < 16; ++l) acc += part[l];
      for (; s < spatial; ++s) acc += p[s];
      o[r] = static_cast<float>(acc / static_cast<double>(spatial));
    }
  }
}
TANDEM_ISA_DISPATCH(global_plain, (const float* in, float* o, int64_t b, int64_t e, int64_t spatial, bool max),
                    (in, o, b, e, spatial, max))

// Max, or sum times `scale`, over `spatial` pixels of channels [c0, c1) of channels-last data
// (`channels` per pixel) into o[c0..c1).
TANDEM_ISA_BODY void global_channels_last_body(const float* in, float* o, int64_t c0, int64_t c1, int64_t channels,
                                               int64_t spatial, bool max, float scale) {
  constexpr int64_t kSpan = 256;  // channels summed at once (a 1 KiB accumulator)
  for (int64_t c = c0; c < c1; c += kSpan) {
    const int64_t n = std::min(kSpan, c1 - c);
    float acc[kSpan];
    const float* p = in + c;
    for (int64_t l = 0; l < n; ++l) acc[l] = p[l];
    for (int64_t s = 1; s < spatial; ++s) {
      const float* q = p + s * channels;
      if (max)
        for (int64_t l = 0; l < n; ++l) acc[l] = std::max(acc[l], q[l]);
      else
        for (int64_t l = 0; l < n; ++l) acc[l] += q[l];
    }
    for (int64_t l = 0; l < n; ++l) o[c + l] = max ? acc[l] : acc[l] * scale;
  }
}
TANDEM_ISA_DISPATCH(global_channels_last,
                    (const float* in, float* o, int64_t c0, int64_t c1, int64_t channels, int64_t spatial, bool max,
                     float scale),
                    (in, o, c0, c1, channels, spatial, max, scale))

// Channels-last images of few channels are summed by runs of pixels, not by groups of channels:
// threads taking channel groups would each read a part of every pixel's cache lines. The runs
// are fixed by the size alone (at most kPixelRuns, each at least kMinRunPixels), so the sums
// are the same for any team; their partial rows are combined in order.
constexpr int64_t kPixelRuns = 4, kMinRunPixels = 1024, kMaxRunChannels = 256;

class GlobalPoolKernel final : public Kernel {
 public:
  int x = -1, out = -1;
  bool max = false, blocked = false, channels_last = false;
  bool bf16_in = false;  // blocked in 16 lanes, held in bfloat16 (a hand-off)
  // plain: N*C rows of `spatial`; blocked: N*C/B rows of spatial*B; channels-last: N images of
  // `spatial` pixels of `channels`.
  int64_t rows = 0, spatial = 0, channels = 0;

  Status run(RunCtx& ctx, KernelState*) const override {
    const float* in = static_cast<const float*>(ctx.ptr[x]);
    float* o = static_cast<float*>(ctx.ptr[out]);
    // Work: pixels times channel blocks (channels-last counted as blocked), elements (plain).
    const int64_t vectors = channels_last ? rows * spatial * ((channels + 15) / 16) : rows * spatial;
    const int threads = vectors < 32768 ? 1 : ctx.threads;
    const int64_t sp = spatial;
    const bool mx = max;
    const int64_t lanes = channel_block();
    const int64_t runs = std::min(kPixelRuns, sp / kMinRunPixels);
    if (channels_last && channels <= kMaxRunChannels && runs > 1) {
      const int64_t C = channels;
      float part[kPixelRuns][kMaxRunChannels];
      for (int64_t img = 0; img < rows; ++img) {
        const float* image = in + img * sp * C;
        parallel_range(threads, runs, 1, [&](int64_t b, int64_t e) {
          for (int64_t r = b; r < e; ++r) {
            const int64_t p0 = sp * r / runs, p1 = sp * (r + 1) / runs;
            global_channels_last(image + p0 * C, part[r], 0, C, C, p1 - p0, mx, 1.0f);
          }
        });
        const float inv = 1.0f / static_cast<float>(sp);
        for (int64_t c = 0; c < C; ++c) {
          float v = part[0][c];
          for (int64_t r = 1; r < runs; ++r) v = mx ? std::max(v, part[r][c]) : v + part[r][c];
          o[img * C + c] = mx ? v : v * inv;
        }
      }
    } else if (channels_last) {
      // Tasks of 16 channels of one image; a thread takes a run of them, one span per image.
      const int64_t C = channels, groups = (C + 15) / 16;
      parallel_range(threads, rows * groups, 1, [&](int64_t b, int64_t e) {
        while (b < e) {
          const int64_t img = b / groups, last = std::min(e, (img + 1) * groups);
          global_channels_last(in + img * sp * C, o + img * C, (b % groups) * 16,
                               std::min(C, (last - img * groups) * 16), C, sp, mx, 1.0f / static_cast<float>(sp));
          b = last;
        }
      });
    } else if (bf16_in) {
      const auto* in16 = static_cast<const uint16_t*>(ctx.ptr[x]);
      parallel_range(threads, rows, 1, [&](int64_t b, int64_t e) { global_blocked_bf16(in16, o, b, e, sp, mx); });
    } else if (blocked) {
      parallel_range(threads, rows, 1, [&](int64_t b, int64_t e) { global_blocked(in, o, b, e, sp, mx, lanes); });
    } else {
      parallel_range(threads, rows, 1, [&](int64_t b, int64_t e) { global_plain(in, o, b, e, sp, mx); });
    }
    return Status::ok();
  }
};

class GlobalPoolSpec final : public OpSpec {
 public:
  bool max = false;
  bool reads_channels_last_floats(int) const override { return feature_enabled("NHWC_FLOATS"); }
  // A 4-D source held in bfloat16 (blocked in 16 lanes) is widened as it is summed.
  bool reads_bf16_source(const Builder& b, int value) const override {
    return b.val(value).shape.size() == 4 && feature_enabled_now("BF16_HANDOFF");
  }
  Status prepare(Builder& b, const Step& step) const override {
    const std::string label = step.node->label();
    if (!all_float32(b, step)) return unsupported(label + " not float32");
    const int x = step.inputs[0], out = step.outputs[0];
    if (!b.typed(x) || !b.typed(out)) return unsupported(label + " shape unknown");
    const Shape xs = b.val(x).shape;
    if (xs.size() < 3 || shape_numel(xs) == 0) return unsupported(label + " rank");
    auto k = std::make_unique<GlobalPoolKernel>();
    k->label = label;
    k->max = max;
    k->x = x;
    k->out = out;
    int64_t spatial = 1;
    for (size_t i = 2; i < xs.size(); ++i) spatial *= xs[i];
    k->spatial = spatial;
    if (b.val(x).handed_off) {
      if (b.val(x).layout != Layout::blocked || channel_block() != 16)
        return internal_error(label + " a bfloat16 source outside 16-lane blocks");
      k->blocked = k->bf16_in = true;
      k->rows = xs[0] * round_up(xs[1], channel_block()) / channel_block();
      b.define(out, Layout::blocked);
    } else if (b.val(x).layout == Layout::blocked) {
      k->blocked = true;
      k->rows = xs[0] * round_up(xs[1], channel_block()) / channel_block();
      b.define(out, Layout::blocked);
    } else if (b.val(x).layout == Layout::nhwc) {
      // [N, C, 1, 1]: the same floats in either layout; plain for its readers.
      k->channels_last = true;
      k->rows = xs[0];
      k->channels = xs[1];
      b.define(out, Layout::plain);
    } else {
      k->rows = xs[0] * xs[1];
      b.define(out, Layout::plain);
    }
    k->reads = {x};
    k->writes = {out};
    b.add_kernel(std::move(k));
    return Status::ok();
  }
};

Status supports_pool(const Node& n) {
  if (n.inputs.empty() || n.inputs[0].empty()) return unsupported(n.label() + " no input");
  if (n.outputs.size() > 1 && !n.outputs[1].empty()) return unsupported(n.label() + " MaxPool Indices output");
  const Result<AutoPad> auto_pad = read_auto_pad(n);
  if (!auto_pad) return unsupported(n.label() + " auto_pad '" + n.attr_string("auto_pad", "NOTSET") + "'");
  if (n.attr_ints("kernel_shape").empty()) return unsupported(n.label() + " no kernel_shape");
  if (n.op_type == "AveragePool") {
    if (n.attr_int("ceil_mode", 0) && n.attr_int("count_include_pad", 0))
      return unsupported(n.label() + " ceil_mode with count_include_pad");
    if (*auto_pad != AutoPad::notset && n.attr_int("count_include_pad", 0))
      return unsupported(n.label() + " auto_pad with count_include_pad");
  }
  if (*auto_pad == AutoPad::valid && n.attr_int("ceil_mode", 0)) return unsupported(n.label() + " VALID with ceil_mode");
  return Status::ok();
}

Status supports_global(const Node& n) {
  if (n.inputs.empty() || n.inputs[0].empty()) return unsupported(n.label() + " no input");
  return Status::ok();
}

Result<std::unique_ptr<OpSpec>> make_pool(FusionContext&, const Step& st) {
  auto s = std::make_unique<PoolSpec>();
  s->max = st.node->op_type == "MaxPool";
  return std::unique_ptr<OpSpec>(std::move(s));
}

Result<std::unique_ptr<OpSpec>> make_global(FusionContext&, const Step& st) {
  auto s = std::make_unique<GlobalPoolSpec>();
  s->max = st.node->op_type == "GlobalMaxPool";
  return std::unique_ptr<OpSpec>(std::move(s));
}

}  // namespace

void register_pool_ops(OpTable& t) {
  t.add("MaxPool", &supports_pool, &make_pool);
  t.add("AveragePool", &supports_pool, &make_pool);
  t.add("GlobalAveragePool", &supports_global, &make_global);
  t.add("GlobalMaxPool", &supports_global, &make_global);
}

}  // namespace tandem::cpu
