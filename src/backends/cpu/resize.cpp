// resize.cpp: Resize of 4-D float tensors over the two spatial dims (of 8-bit ones: nearest
// only), modes nearest (all nearest_modes) and linear (bilinear), coordinate transformations half_pixel,
// pytorch_half_pixel, align_corners, asymmetric (the rules of kernels/resize_coordinates.h,
// shared with the reference kernel); Resize-10 and Upsample (opsets 7, 9) with their
// asymmetric coordinates and legacy nearest rule.
// Source indices and weights are tabulated at instance build; the kernel copies or blends
// rows, a channel block at a time in the blocked layout (which it keeps).
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <optional>
#include <type_traits>

#include "backends/cpu/op_family.h"
#include "backends/cpu/resize.h"
#include "core/tensor_util.h"
#include "kernels/resize_coordinates.h"

namespace tandem::cpu {

namespace {

using Axis = ResizeAxis;

class ResizeKernel final : public Kernel {
 public:
  int x = -1, out = -1;
  bool blocked = false, linear = false;
  int64_t planes = 0;  // plain: N*C; blocked: N*C/B (B = channel_block())
  int64_t ih = 0, iw = 0, oh = 0, ow = 0;
  Axis ay, ax;

  Status run(RunCtx& ctx, KernelState*) const override {
    const float* in = static_cast<const float*>(ctx.ptr[x]);
    float* o = static_cast<float*>(ctx.ptr[out]);
    const int64_t lanes = blocked ? channel_block() : 1;
    const int threads = planes * oh * ow * lanes < 32768 ? 1 : ctx.threads;
    parallel_range(threads, planes * oh, 1, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t p = t / oh, y = t % oh;
        const float* src = in + p * ih * iw * lanes;
        float* dst = o + (p * oh + y) * ow * lanes;
        if (!linear) {
          const float* row = src + ay.i0[y] * iw * lanes;
          if (lanes == 1) {
            for (int64_t xx = 0; xx < ow; ++xx) dst[xx] = row[ax.i0[xx]];
          } else {
            for (int64_t xx = 0; xx < ow; ++xx) {
              const float* s = row + ax.i0[xx] * lanes;
              for (int64_t l = 0; l < lanes; ++l) dst[xx * lanes + l] = s[l];
            }
          }
        } else {
          const float* r0 = src + ay.i0[y] * iw * lanes;
          const float* r1 = src + ay.i1[y] * iw * lanes;
          const float wy = ay.w1[y];
          for (int64_t xx = 0; xx < ow; ++xx) {
            const int64_t a = ax.i0[xx] * lanes, c = ax.i1[xx] * lanes;
            const float wx = ax.w1[xx];
            for (int64_t l = 0; l < lanes; ++l) {
              float top = r0[a + l] + (r0[c + l] - r0[a + l]) * wx;
              float bot = r1[a + l] + (r1[c + l] - r1[a + l]) * wx;
              dst[xx * lanes + l] = top + (bot - top) * wy;
            }
          }
        }
      }
    });
    return Status::ok();
  }
};

// Nearest Resize of 8-bit values (a QDQ model's, qdq_fusion.cpp): plain planes, or channels-last
// pixels of `channels` bytes copied whole.
class ByteResizeKernel final : public Kernel {
 public:
  int x = -1, out = -1;
  bool channels_last = false;
  int64_t images = 0, channels = 1;  // plain: images = N*C planes, channels 1
  int64_t ih = 0, iw = 0, oh = 0, ow = 0;
  Axis ay, ax;

  Status run(RunCtx& ctx, KernelState*) const override {
    const auto* in = static_cast<const uint8_t*>(ctx.ptr[x]);
    auto* o = static_cast<uint8_t*>(ctx.ptr[out]);
    const int64_t c = channels;
    const int threads = images * oh * ow * c < 65536 ? 1 : ctx.threads;
    parallel_range(threads, images * oh, 1, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t p = t / oh, y = t % oh;
        const uint8_t* row = in + (p * ih + ay.i0[y]) * iw * c;
        uint8_t* dst = o + (p * oh + y) * ow * c;
        if (c == 1) {
          for (int64_t xx = 0; xx < ow; ++xx) dst[xx] = row[ax.i0[xx]];
        } else {
          for (int64_t xx = 0; xx < ow; ++xx) std::memcpy(dst + xx * c, row + ax.i0[xx] * c, static_cast<size_t>(c));
        }
      }
    });
    return Status::ok();
  }
};

// Source indices (and linear weights) of every output index along one axis.
Axis make_axis(bool linear, resize::CoordMode ctm, resize::NearestMode nm, double scale, int64_t in, int64_t out) {
  Axis a;
  a.i0.resize(out);
  a.i1.resize(out);
  a.w1.resize(out);
  for (int64_t o = 0; o < out; ++o) {
    double x = resize::original_coordinate(ctm, static_cast<double>(o), scale, in, scale * static_cast<double>(in), out);
    if (!linear) {
      a.i0[o] = resize::nearest_index(nm, x, scale, in);
      continue;
    }
    x = std::clamp(x, 0.0, static_cast<double>(in - 1));
    int64_t x0 = static_cast<int64_t>(std::floor(x));
    int64_t x1 = std::min<int64_t>(x0 + 1, in - 1);
    a.i0[o] = x0;
    a.i1[o] = x1;
    a.w1[o] = static_cast<float>(x - x0);
  }
  return a;
}

// The reference kernel's linear taps of every output index along one axis.
std::vector<LinearTaps> linear_taps(resize::CoordMode ctm, double scale, int64_t in, int64_t out) {
  std::vector<LinearTaps> taps(static_cast<size_t>(out));
  for (int64_t o = 0; o < out; ++o) {
    double x =
        resize::original_coordinate(ctm, static_cast<double>(o), scale, in, scale * static_cast<double>(in), out);
    if (!std::isfinite(x)) x = 0.0;
    LinearTaps& t = taps[static_cast<size_t>(o)];
    t.count = resize::linear_taps(x, in, t.tap);
  }
  return taps;
}

// Upsample (opsets 7 and 9) and Resize before opset 11: asymmetric coordinates, the legacy
// nearest rule, scales as the second input (Upsample-7: an attribute).
bool is_legacy(const Node& n) { return n.op_type == "Upsample" || n.opset < 11; }

// What a Resize step does for this instance: shapes, scales and coordinate rules.
struct Geometry {
  Shape xs, os;
  double sy = 1, sx = 1;
  resize::CoordMode ctm = resize::CoordMode::half_pixel;
  resize::NearestMode nm = resize::NearestMode::round_prefer_floor;
  bool linear = false;
};

Result<Geometry> geometry(Builder& b, const Node& n, const std::vector<int>& inputs, int out) {
  const std::string label = n.label();
  const int x = inputs.empty() ? -1 : inputs[0];
  if (x < 0 || !b.typed(x) || !b.typed(out)) return unsupported(label + " shape unknown");
  Geometry g;
  g.xs = b.val(x).shape;
  g.os = b.val(out).shape;
  const Shape &xs = g.xs, &os = g.os;
  if (xs.size() != 4 || os.size() != 4 || xs[0] != os[0] || xs[1] != os[1] || shape_numel(xs) == 0 ||
      shape_numel(os) == 0)
    return unsupported(label + " only 4-D spatial resizes");
  // Scales: from the scales input (or Upsample-7's attribute) when known and non-empty, else
  // out / in.
  const bool legacy = is_legacy(n);
  g.sy = static_cast<double>(os[2]) / xs[2];
  g.sx = static_cast<double>(os[3]) / xs[3];
  const int scales_slot = legacy ? 1 : 2;
  std::vector<double> s;
  if (static_cast<int>(inputs.size()) > scales_slot && inputs[scales_slot] >= 0) {
    const Tensor* t = b.known(inputs[scales_slot]);
    if (!t) return unsupported(label + " scales not known");
    s = to_double_vector(*t);
  } else if (n.op_type == "Upsample" && n.has_attr("scales")) {
    for (float f : n.attr_floats("scales")) s.push_back(f);
  } else if (n.op_type == "Upsample") {
    return unsupported(label + " scales given as height_scale and width_scale");
  }
  if (s.size() == 4) {
    if (s[0] != 1.0 || s[1] != 1.0) return unsupported(label + " scales on N or C");
    g.sy = s[2];
    g.sx = s[3];
  } else if (!s.empty()) {
    return unsupported(label + " scales length");
  }
  const std::string mode = n.attr_string("mode", "nearest");
  g.linear = mode == "linear" || mode == "bilinear";
  // Upsample and Resize-10: asymmetric coordinates, and the nearest rule of those opsets.
  const std::optional<resize::CoordMode> ctm =
      legacy ? resize::CoordMode::asymmetric
             : resize::parse_coord_mode(n.attr_string("coordinate_transformation_mode", "half_pixel"));
  const std::optional<resize::NearestMode> nm =
      legacy ? resize::NearestMode::legacy
             : resize::parse_nearest_mode(n.attr_string("nearest_mode", "round_prefer_floor"));
  if (!ctm || !nm) return unsupported(label + " coordinate_transformation_mode or nearest_mode");
  g.ctm = *ctm;
  g.nm = *nm;
  return g;
}

class ResizeSpec final : public OpSpec {
 public:
  Status prepare(Builder& b, const Step& step) const override {
    const Node& n = *step.node;
    const std::string label = n.label();
    const int x = step.inputs[0], out = step.outputs[0];
    if (!b.typed(x) || !b.typed(out)) return unsupported(label + " shape unknown");
    const DataType type = b.val(x).dtype;
    const bool bytes = (type == DataType::uint8 || type == DataType::int8) && b.val(out).dtype == type;
    if (!bytes && (type != DataType::float32 || b.val(out).dtype != DataType::float32))
      return unsupported(label + " not float32 or 8-bit");
    TANDEM_ASSIGN_OR_RETURN(Geometry g, geometry(b, n, step.inputs, out));
    const Shape &xs = g.xs, &os = g.os;
    if (bytes && g.linear) {
      const bool channels_last = b.val(x).layout == Layout::nhwc;
      const ByteImages im{channels_last ? xs[0] : xs[0] * xs[1], channels_last ? xs[1] : 1, xs[2], xs[3], os[2], os[3]};
      return add_truncating_linear_resize(b, im, linear_taps(g.ctm, g.sy, xs[2], os[2]),
                                          linear_taps(g.ctm, g.sx, xs[3], os[3]), type == DataType::int8, x, out,
                                          label);
    }
    if (bytes) {
      auto k = std::make_unique<ByteResizeKernel>();
      k->channels_last = b.val(x).layout == Layout::nhwc;
      int px = x;
      if (!k->channels_last) {
        TANDEM_ASSIGN_OR_RETURN(px, b.require(x, Layout::plain));
      }
      k->images = k->channels_last ? xs[0] : xs[0] * xs[1];
      k->channels = k->channels_last ? xs[1] : 1;
      k->ih = xs[2];
      k->iw = xs[3];
      k->oh = os[2];
      k->ow = os[3];
      k->ay = make_axis(false, g.ctm, g.nm, g.sy, xs[2], os[2]);
      k->ax = make_axis(false, g.ctm, g.nm, g.sx, xs[3], os[3]);
      k->x = px;
      k->out = out;
      k->label = label;
      b.define(out, k->channels_last ? Layout::nhwc : Layout::plain);
      k->reads = {px};
      k->writes = {out};
      b.add_kernel(std::move(k));
      return Status::ok();
    }
    auto k = std::make_unique<ResizeKernel>();
    k->linear = g.linear;
    k->blocked = b.val(x).layout == Layout::blocked;
    k->planes = k->blocked ? xs[0] * round_up(xs[1], channel_block()) / channel_block() : xs[0] * xs[1];
    k->ih = xs[2];
    k->iw = xs[3];
    k->oh = os[2];
    k->ow = os[3];
    k->ay = make_axis(k->linear, g.ctm, g.nm, g.sy, xs[2], os[2]);
    k->ax = make_axis(k->linear, g.ctm, g.nm, g.sx, xs[3], os[3]);
    k->x = x;
    k->out = out;
    k->label = label;
    b.define(out, k->blocked ? Layout::blocked : Layout::plain);
    k->reads = {x};
    k->writes = {out};
    b.add_kernel(std::move(k));
    return Status::ok();
  }
};

Status supports_resize(const Node& n);

// float32 of a per-tensor constant scale and its zero point; false when they are not that.
bool byte_quant(Builder& b, int scale, int zero_point, ByteQuant* q) {
  const Tensor *s = b.known(scale), *z = b.known(zero_point);
  if (!s || !z || s->dtype() != DataType::float32 || s->numel() != 1 || z->numel() != 1) return false;
  if (z->dtype() != DataType::uint8 && z->dtype() != DataType::int8) return false;
  q->is_signed = z->dtype() == DataType::int8;
  q->scale = s->data<float>()[0];
  q->zero_point = q->is_signed ? z->data<int8_t>()[0] : z->data<uint8_t>()[0];
  return q->scale > 0.0f && std::isfinite(q->scale);
}

// A Resize step rewritten from DequantizeLinear -> Resize (linear) -> QuantizeLinear (resize.h).
class QdqLinearResizeSpec final : public OpSpec {
 public:
  Status prepare(Builder& b, const Step& step) const override {
    const Node& n = *step.node;
    const std::string label = n.label();
    TANDEM_RETURN_IF_ERROR(supports_resize(n));
    if (step.inputs.size() < 5 || step.outputs.size() != 1) return unsupported(label + " inputs");
    const size_t q = step.inputs.size() - 4;  // the four quantization parameters follow Resize's inputs
    const std::vector<int> resize_inputs(step.inputs.begin(), step.inputs.begin() + static_cast<std::ptrdiff_t>(q));
    const int x = step.inputs[0], out = step.outputs[0];
    ByteQuant in, outq;
    if (!byte_quant(b, step.inputs[q], step.inputs[q + 1], &in) ||
        !byte_quant(b, step.inputs[q + 2], step.inputs[q + 3], &outq))
      return unsupported(label + " quantization parameters are not per-tensor constants");
    if (!b.typed(x) || !b.typed(out) || b.val(x).dtype != (in.is_signed ? DataType::int8 : DataType::uint8) ||
        b.val(out).dtype != (outq.is_signed ? DataType::int8 : DataType::uint8))
      return unsupported(label + " 8-bit types");
    TANDEM_ASSIGN_OR_RETURN(Geometry g, geometry(b, n, resize_inputs, out));
    if (!g.linear) return unsupported(label + " not linear");
    const Shape &xs = g.xs, &os = g.os;
    const bool channels_last = b.val(x).layout == Layout::nhwc;
    const ByteImages im{channels_last ? xs[0] : xs[0] * xs[1], channels_last ? xs[1] : 1, xs[2], xs[3], os[2], os[3]};
    return add_requantizing_linear_resize(b, im, make_axis(true, g.ctm, g.nm, g.sy, xs[2], os[2]),
                                          make_axis(true, g.ctm, g.nm, g.sx, xs[3], os[3]), in, outq, x, out, label);
  }
};

Status supports_resize(const Node& n) {
  if (n.inputs.empty() || n.inputs[0].empty()) return unsupported(n.label() + " no input");
  const std::string mode = n.attr_string("mode", "nearest");
  if (mode != "nearest" && mode != "linear" && !(is_legacy(n) && mode == "bilinear"))
    return unsupported(n.label() + " mode '" + mode + "'");
  if (is_legacy(n)) return Status::ok();  // Upsample, Resize-10: no other attributes
  {
    // The modes the kernel's tables were checked against the reference with.
    using resize::CoordMode;
    const std::string ctm = n.attr_string("coordinate_transformation_mode", "half_pixel");
    const std::optional<CoordMode> mode = resize::parse_coord_mode(ctm);
    if (!mode || (*mode != CoordMode::half_pixel && *mode != CoordMode::pytorch_half_pixel &&
                  *mode != CoordMode::align_corners && *mode != CoordMode::asymmetric))
      return unsupported(n.label() + " coordinate_transformation_mode '" + ctm + "'");
  }
  const std::string nm = n.attr_string("nearest_mode", "round_prefer_floor");
  if (!resize::parse_nearest_mode(nm)) return unsupported(n.label() + " nearest_mode '" + nm + "'");
  if (n.attr_int("exclude_outside", 0) != 0) return unsupported(n.label() + " exclude_outside");
  if (n.attr_int("antialias", 0) != 0) return unsupported(n.label() + " antialias");
  if (n.has_attr("axes")) return unsupported(n.label() + " axes");
  if (n.attr_string("keep_aspect_ratio_policy", "stretch") != "stretch")
    return unsupported(n.label() + " keep_aspect_ratio_policy");
  return Status::ok();
}

Result<std::unique_ptr<OpSpec>> make_resize(FusionContext&, const Step&) {
  return std::unique_ptr<OpSpec>(std::make_unique<ResizeSpec>());
}

}  // namespace

std::unique_ptr<OpSpec> make_qdq_linear_resize() { return std::make_unique<QdqLinearResizeSpec>(); }

Result<NearestResize> nearest_resize(Builder& b, const Node& n, const std::vector<int>& inputs, int out) {
  if (n.attr_string("mode", "nearest") != "nearest") return unsupported(n.label() + " not nearest");
  if (!supports_resize(n).is_ok()) return unsupported(n.label() + " attributes");
  TANDEM_ASSIGN_OR_RETURN(Geometry g, geometry(b, n, inputs, out));
  NearestResize r;
  r.in = g.xs;
  r.out = g.os;
  r.rows = make_axis(false, g.ctm, g.nm, g.sy, g.xs[2], g.os[2]).i0;
  r.cols = make_axis(false, g.ctm, g.nm, g.sx, g.xs[3], g.os[3]).i0;
  return r;
}

void register_resize_ops(OpTable& t) {
  t.add("Resize", &supports_resize, &make_resize);
  t.add("Upsample", &supports_resize, &make_resize);
}

// `n` values from `from` to floats at `to`: copied, or widened from bfloat16 (exact: a bf16
// value is the top half of a float). A constant `n` of 16 becomes one vector.
template <typename T>
TANDEM_ISA_BODY void copy_lanes(const T* from, float* to, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    std::memcpy(to, from, static_cast<size_t>(n) * sizeof(float));
  } else {
    for (int64_t k = 0; k < n; ++k) to[k] = std::bit_cast<float>(static_cast<uint32_t>(from[k]) << 16);
  }
}

// A position in the elementwise walk over the virtual upsampled tensor of `g` (resize.h): plane
// t (image, and channel block where the walk is blocked), output pixel (h, w) and lane, decoded
// from an element index. The gathers below step it pixel by pixel, row by row, plane by plane.
struct UpsampledCursor {
  int64_t t = 0, h = 0, w = 0, lane = 0;
  UpsampledCursor(const NearestGather& g, int64_t at) : t(at / g.block), lane(at % g.block) {
    w = t % g.ow;
    t /= g.ow;
    h = t % g.oh;
    t /= g.oh;
  }
  // Past `run` whole pixels of the current output row (run <= ow - w), to the first lane.
  void next_pixels(const NearestGather& g, int64_t run) {
    lane = 0;
    w += run;
    if (w < g.ow) return;
    w = 0;
    if (++h < g.oh) return;
    h = 0;
    ++t;
  }
};

// The elementwise kernel's gather of an upsampled operand (resize.h).
// T: float, or uint16_t for a source held in bfloat16 (each pixel's lanes widened).
template <typename T>
TANDEM_ISA_BODY void gather_copy_typed(const NearestGather& g, const T* src, int64_t at, int64_t n, float* dst) {
  const int64_t block = g.block, plane = g.ih * g.iw * block;
  UpsampledCursor c(g, at);
  if (c.lane == 0 && n % block == 0) {  // whole pixels: the runs along each output row in one loop
    for (int64_t px = n / block; px > 0;) {
      const T* row = src + c.t * plane + g.rows[c.h] * g.iw * block;
      const int64_t run = std::min(px, g.ow - c.w);
      const int64_t* cols = g.cols.data() + c.w;
      if (block == 16)  // a 16-lane pixel: one vector
        for (int64_t k = 0; k < run; ++k, dst += 16) copy_lanes(row + cols[k] * 16, dst, 16);
      else
        for (int64_t k = 0; k < run; ++k, dst += block) copy_lanes(row + cols[k] * block, dst, block);
      px -= run;
      c.next_pixels(g, run);
    }
    return;
  }
  for (int64_t l = 0; l < n;) {
    const int64_t seg = std::min(block - c.lane, n - l);
    copy_lanes(src + c.t * plane + (g.rows[c.h] * g.iw + g.cols[c.w]) * block + c.lane, dst + l, seg);
    l += seg;
    c.lane += seg;
    if (c.lane == block) c.next_pixels(g, 1);
  }
}

// d[0, used) = (from[k] - zp) * scale (as DequantizeLinear), d[used, lanes) = 0. (Restrict: the
// bytes would otherwise alias the floats and keep the loop scalar.)
template <typename Q>
TANDEM_ISA_BODY void dequantize_lanes(const Q* __restrict from, float* __restrict d, int64_t used, int64_t lanes,
                                      int32_t zp, float scale) {
  // Whole 16- and 8-lane blocks with constant trip counts: GCC vectorizes an 8-bit loop by the
  // bytes in a register (64), which a run-time count of 16 never reaches.
  if (used == 16 && lanes == 16) {
    for (int k = 0; k < 16; ++k) d[k] = static_cast<float>(static_cast<int32_t>(from[k]) - zp) * scale;
    return;
  }
  if (used == 8 && lanes == 8) {
    for (int k = 0; k < 8; ++k) d[k] = static_cast<float>(static_cast<int32_t>(from[k]) - zp) * scale;
    return;
  }
  for (int64_t k = 0; k < used; ++k) d[k] = static_cast<float>(static_cast<int32_t>(from[k]) - zp) * scale;
  for (int64_t k = used; k < lanes; ++k) d[k] = 0.0f;
}

// The same for an 8-bit channels-last source (NearestGather::bytes): each output pixel's lanes
// of its channel block, dequantized. Q: uint8_t or int8_t.
template <typename Q>
TANDEM_ISA_BODY void gather_bytes_typed(const NearestGather& g, const Q* src, int64_t at, int64_t n, float* dst) {
  const int64_t block = g.block, blocks = (g.channels + block - 1) / block;
  UpsampledCursor c(g, at);
  for (int64_t l = 0; l < n;) {
    const int64_t img = c.t / blocks, c0 = (c.t % blocks) * block;
    const Q* row = src + (img * g.ih + g.rows[c.h]) * g.iw * g.channels + c0;
    const int64_t real = std::min(block, g.channels - c0);  // lanes holding channels
    if (c.lane == 0 && n - l >= block) {  // whole pixels along the output row
      const int64_t run = std::min((n - l) / block, g.ow - c.w);
      for (int64_t k = 0; k < run; ++k, l += block)
        dequantize_lanes(row + g.cols[c.w + k] * g.channels, dst + l, real, block, g.zero_point, g.scale);
      c.next_pixels(g, run);
      continue;
    }
    const int64_t seg = std::min(block - c.lane, n - l);
    dequantize_lanes(row + g.cols[c.w] * g.channels + c.lane, dst + l, std::max<int64_t>(std::min(seg, real - c.lane), 0),
                     seg, g.zero_point, g.scale);
    l += seg;
    c.lane += seg;
    if (c.lane == block) c.next_pixels(g, 1);
  }
}

TANDEM_ISA_BODY void gather_copy_body(const NearestGather& g, const void* src, int64_t at, int64_t n, float* dst) {
  if (g.bytes && g.is_signed) gather_bytes_typed(g, static_cast<const int8_t*>(src), at, n, dst);
  else if (g.bytes) gather_bytes_typed(g, static_cast<const uint8_t*>(src), at, n, dst);
  else if (g.bf16) gather_copy_typed(g, static_cast<const uint16_t*>(src), at, n, dst);
  else gather_copy_typed(g, static_cast<const float*>(src), at, n, dst);
}
TANDEM_ISA_DISPATCH(gather_copy, (const NearestGather& g, const void* src, int64_t at, int64_t n, float* dst),
                    (g, src, at, n, dst))

}  // namespace tandem::cpu
