// quantize.cpp: QuantizeLinear, DequantizeLinear and DynamicQuantizeLinear on the cpu backend:
// kernels over plain-layout data (and blocked float32 to channels-last bytes), calling the
// vectorized conversions of qrows.cpp (int8.h), whose arithmetic is the reference kernels'.
//   QuantizeLinear      y = saturate(round_half_even(x / scale) + zero_point), float32 -> uint8/int8/uint16/int16
//   DequantizeLinear    y = (x - zero_point) * scale, uint8/int8/uint16/int16/int32 -> float32
//   DynamicQuantizeLinear  scale = (max(x, 0) - min(x, 0)) / 255, zero_point = saturate(round(-min / scale)),
//                       y as QuantizeLinear to uint8
// Per-tensor and per-axis scales and zero points, known when the instance is built or read at
// each run (DynamicQuantizeLinear computes its own).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "backends/cpu/int8.h"
#include "backends/cpu/op_family.h"
#include "backends/cpu/qtable.h"

namespace tandem::cpu {

namespace {


constexpr int64_t kGrain = 1 << 14;

// The parameters of one kernel: `channels` scales (and zero points) over `outer` x channels x
// `inner` elements (per-tensor: one channel). Parameters known at build time are stored here;
// runtime ones are read from their values at each run.
struct Channels {
  int64_t outer = 1, channels = 1, inner = 1;
  std::vector<float> scales;
  std::vector<int32_t> zero_points;
  int scale_value = -1, zp_value = -1;  // runtime parameters (instance value ids)
  DataType zp_type = DataType::uint8;

  float scale(const RunCtx& ctx, int64_t ch) const {
    if (scale_value < 0) return scales[ch];
    return static_cast<const float*>(ctx.ptr[scale_value])[channels == 1 ? 0 : ch];
  }
  int32_t zero_point(const RunCtx& ctx, int64_t ch) const {
    if (zp_value < 0) return zero_points[ch];
    const int64_t i = channels == 1 ? 0 : ch;
    const void* p = ctx.ptr[zp_value];
    switch (zp_type) {
      case DataType::uint8: return static_cast<const uint8_t*>(p)[i];
      case DataType::int8: return static_cast<const int8_t*>(p)[i];
      case DataType::uint16: return static_cast<const uint16_t*>(p)[i];
      case DataType::int16: return static_cast<const int16_t*>(p)[i];
      default: return static_cast<const int32_t*>(p)[i];
    }
  }
};

// Runs `fn(offset, count, channel)` over the blocks of `c` in parallel.
template <class F>
void for_blocks(const Channels& c, int threads, F&& fn) {
  const int64_t blocks = c.outer * c.channels;
  if (blocks == 1) {
    const int64_t n = c.inner;
    parallel_range(n < 4 * kGrain ? 1 : threads, n, kGrain, [&](int64_t b, int64_t e) { fn(b, e - b, 0); });
    return;
  }
  const int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(c.inner, 1));
  parallel_range(blocks * c.inner < 4 * kGrain ? 1 : threads, blocks, grain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) fn(i * c.inner, c.inner, i % c.channels);
  });
}

// QuantizeLinear into 16 bits (rarer than 8: a lone one; pairs become Ew::fake_quant_*): the
// reference's arithmetic, one value at a time.
template <class T>
void quantize_wide(const float* x, T* y, int64_t n, float scale, float zp) {
  constexpr float lo = std::is_signed_v<T> ? -32768.0f : 0.0f, hi = std::is_signed_v<T> ? 32767.0f : 65535.0f;
  for (int64_t i = 0; i < n; ++i) {
    const float q = x[i] / scale;
    const float r = q == q ? __builtin_rintf(q) + zp : zp;  // beyond 2^24 it saturates either way
    y[i] = static_cast<T>(r < lo ? lo : r > hi ? hi : r);
  }
}
// DequantizeLinear from 16 bits: x - zp is exact in float32, and its float32 product with the
// scale the reference's double product rounded once.
template <class T>
void dequantize_wide(const T* x, float* y, int64_t n, float scale, int32_t zp) {
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(static_cast<int32_t>(x[i]) - zp) * scale;
}

class QuantizeKernel final : public Kernel {
 public:
  int src = -1, dst = -1;
  DataType to = DataType::uint8;
  Channels c;
  Status run(RunCtx& ctx, KernelState*) const override {
    const auto* x = static_cast<const float*>(ctx.ptr[src]);
    void* y = ctx.ptr[dst];
    for (int64_t ch = 0; ch < c.channels; ++ch)
      if (!(c.scale(ctx, ch) != 0.0f)) return invalid_argument(label + " y_scale is zero or NaN");
    for_blocks(c, ctx.threads, [&](int64_t at, int64_t n, int64_t ch) {
      const float zp = static_cast<float>(c.zero_point(ctx, ch)), s = c.scale(ctx, ch);
      switch (to) {
        case DataType::int8: quantize_s8(x + at, static_cast<int8_t*>(y) + at, n, s, zp); return;
        case DataType::uint16: quantize_wide(x + at, static_cast<uint16_t*>(y) + at, n, s, zp); return;
        case DataType::int16: quantize_wide(x + at, static_cast<int16_t*>(y) + at, n, s, zp); return;
        default: quantize_u8(x + at, static_cast<uint8_t*>(y) + at, n, s, zp); return;
      }
    });
    return Status::ok();
  }
};

class DequantizeKernel final : public Kernel {
 public:
  int src = -1, dst = -1;
  DataType from = DataType::uint8;
  Channels c;
  Status run(RunCtx& ctx, KernelState*) const override {
    const void* x = ctx.ptr[src];
    auto* y = static_cast<float*>(ctx.ptr[dst]);
    if (from == DataType::int32)
      for (int64_t ch = 0; ch < c.channels; ++ch)
        if (c.zero_point(ctx, ch) != 0) return invalid_argument(label + " int32 data needs a zero point of 0");
    for_blocks(c, ctx.threads, [&](int64_t at, int64_t n, int64_t ch) {
      const float s = c.scale(ctx, ch);
      const int32_t zp = c.zero_point(ctx, ch);
      switch (from) {
        case DataType::uint8: dequantize_u8(static_cast<const uint8_t*>(x) + at, y + at, n, s, zp); return;
        case DataType::int8: dequantize_s8(static_cast<const int8_t*>(x) + at, y + at, n, s, zp); return;
        case DataType::uint16: dequantize_wide(static_cast<const uint16_t*>(x) + at, y + at, n, s, zp); return;
        case DataType::int16: dequantize_wide(static_cast<const int16_t*>(x) + at, y + at, n, s, zp); return;
        default: dequantize_s32(static_cast<const int32_t*>(x) + at, y + at, n, s, zp); return;
      }
    });
    return Status::ok();
  }
};

// QuantizeLinear with known per-tensor parameters of a blocked float32 value, or of a plain one
// of at most 4 channels (planar_to_channels_last_quantizes), that only integer convolutions read:
// channels-last output, the layout their routes read, with no reorder.
class ChannelsLastQuantizeKernel final : public Kernel {
 public:
  int src = -1, dst = -1;
  bool to_signed = false, planar = false;  // planar: a plain source, else a blocked one
  float scale = 1.0f, zp = 0.0f;
  int64_t N = 1, C = 1, S = 1;
  Status run(RunCtx& ctx, KernelState*) const override {
    const int threads = N * C * S < 4 * kGrain ? 1 : ctx.threads;
    const auto* x = static_cast<const float*>(ctx.ptr[src]);
    if (planar) quantize_planar_to_channels_last(threads, x, ctx.ptr[dst], to_signed, N, C, S, scale, zp);
    else quantize_blocked(threads, x, ctx.ptr[dst], to_signed, N, C, S, channel_block(), scale, zp, C, 0);
    return Status::ok();
  }
};

// Channels of a Quantize/DequantizeLinear node for data of `shape`; fills `reads` with the
// runtime parameters.
Result<Channels> read_channels(Builder& b, const Step& step, const Shape& shape, std::vector<int>* reads) {
  const Node& n = *step.node;
  const std::string label = n.label();
  Channels c;
  c.inner = shape_numel(shape);
  const int scale = step.inputs[1];
  const int zp = step.inputs.size() > 2 ? step.inputs[2] : -1;
  if (!b.typed(scale)) return unsupported(label + " scale shape unknown");
  const Shape scale_shape = b.val(scale).shape;
  if (shape_numel(scale_shape) != 1) {
    const int64_t rank = static_cast<int64_t>(shape.size());
    int64_t axis = n.attr_int("axis", 1);
    if (axis < 0) axis += rank;
    if (axis < 0 || axis >= rank) return unsupported(label + " axis out of range");
    if (scale_shape.size() != 1 || scale_shape[0] != shape[axis]) return unsupported(label + " scale shape");
    c.channels = shape[axis];
    c.outer = 1;
    c.inner = 1;
    for (int64_t d = 0; d < axis; ++d) c.outer *= shape[d];
    for (int64_t d = axis + 1; d < rank; ++d) c.inner *= shape[d];
  }
  if (b.known(scale)) {
    TANDEM_ASSIGN_OR_RETURN(c.scales, known_scales(b, scale, c.channels, label + " scale"));
  } else {
    TANDEM_ASSIGN_OR_RETURN(c.scale_value, b.require(scale, Layout::plain));
    reads->push_back(c.scale_value);
  }
  if (zp < 0 || b.val(zp).kind == IValue::Kind::none || b.known(zp)) {
    TANDEM_ASSIGN_OR_RETURN(c.zero_points, known_zero_points(b, zp, c.channels, label + " zero point"));
  } else {
    if (!b.typed(zp) || shape_numel(b.val(zp).shape) != shape_numel(scale_shape))
      return unsupported(label + " zero point shape differs from the scale's");
    TANDEM_ASSIGN_OR_RETURN(c.zp_value, b.require(zp, Layout::plain));
    c.zp_type = b.val(zp).dtype;
    reads->push_back(c.zp_value);
  }
  return c;
}

class QuantizeSpec final : public OpSpec {
 public:
  bool dequantize = false;
  Status prepare(Builder& b, const Step& step) const override {
    const std::string label = step.node->label();
    if (step.node->attr_int("block_size", 0) != 0) return unsupported(label + " blocked quantization");
    const int x = step.inputs[0], out = step.outputs[0];
    if (!b.typed(x) || !b.typed(out)) return unsupported(label + " shape unknown");
    const Shape shape = b.val(x).shape;
    std::vector<int> reads;
    TANDEM_ASSIGN_OR_RETURN(Channels c, read_channels(b, step, shape, &reads));
    // 8-bit channels-last data (a quantized convolution's output) with known per-tensor
    // parameters: the loop below run once on every byte value gives a table, whose kernel also
    // writes the layout float readers take (no byte reorder first).
    const DataType from = b.val(x).dtype;
    if (dequantize && is_8bit(from) && b.val(x).layout == Layout::nhwc && shape.size() == 4 && c.channels == 1 &&
        reads.empty()) {
      float table[256];
      if (from == DataType::uint8) dequantize_u8(all_bytes(), table, 256, c.scales[0], c.zero_points[0]);
      else dequantize_s8(reinterpret_cast<const int8_t*>(all_bytes()), table, 256, c.scales[0], c.zero_points[0]);
      return add_byte_to_float(b, x, out, table, label + " (table)");
    }
    // A blocked float32 value with known per-tensor parameters that only integer convolutions
    // and DequantizeLinear read: quantized straight into channels-last values, the layout the
    // convolutions take and the one a DequantizeLinear's table (above) turns back into blocked
    // floats. A quantize/dequantize pair on a float path (QDQ models write one before every
    // Resize of the neck) thus keeps the float path blocked, with no reorder to plain before it
    // and back after it. Likewise a plain image of a few channels (a network's input).
    const Layout in_layout = b.val(x).layout;
    const bool planar = in_layout == Layout::plain && shape.size() == 4 && planar_to_channels_last_quantizes(shape[1]);
    if (!dequantize && (in_layout == Layout::blocked || planar) && shape.size() == 4 && c.channels == 1 &&
        reads.empty() && is_8bit(b.val(out).dtype) &&
        only_read_by(b, out, {"ConvInteger", "QLinearConv", "DequantizeLinear"})) {
      if (!(c.scales[0] != 0.0f)) return unsupported(label + " y_scale is zero or NaN");
      auto k = std::make_unique<ChannelsLastQuantizeKernel>();
      k->src = x;
      k->dst = out;
      k->to_signed = b.val(out).dtype == DataType::int8;
      k->scale = c.scales[0];
      k->zp = static_cast<float>(c.zero_points[0]);
      k->N = shape[0];
      k->C = shape[1];
      k->S = shape[2] * shape[3];
      k->planar = planar;
      k->reads = {x};
      k->writes = {out};
      k->label = label;
      b.define(out, Layout::nhwc);
      b.add_work(static_cast<double>(shape_numel(shape)));
      b.add_kernel(std::move(k));
      return Status::ok();
    }
    TANDEM_ASSIGN_OR_RETURN(int px, b.require(x, Layout::plain));
    reads.push_back(px);
    b.define(out, Layout::plain);
    std::unique_ptr<Kernel> k;
    if (dequantize) {
      auto d = std::make_unique<DequantizeKernel>();
      d->src = px;
      d->dst = out;
      d->from = b.val(px).dtype;
      d->c = std::move(c);
      k = std::move(d);
    } else {
      auto q = std::make_unique<QuantizeKernel>();
      q->src = px;
      q->dst = out;
      q->to = b.val(out).dtype;
      q->c = std::move(c);
      k = std::move(q);
    }
    b.add_work(static_cast<double>(shape_numel(shape)));
    k->reads = std::move(reads);
    k->writes = {out};
    k->label = label;
    b.add_kernel(std::move(k));
    return Status::ok();
  }
};

class DynamicQuantizeKernel final : public Kernel {
 public:
  int src = -1, dst = -1, scale_out = -1, zp_out = -1;
  int range = -1;  // src's range as its producer recorded it (Builder::range_of), or -1
  int64_t n = 0;  // elements of src as stored (a blocked source: with its zero padding)
  // y channels-last [N, S, C] from a blocked source [N, C, S] (block > 0) or a plain one of at
  // most 4 channels (planar); else y as src lies.
  int64_t block = 0, N = 1, C = 1, S = 1;
  bool planar = false;
  Status run(RunCtx& ctx, KernelState*) const override {
    const auto* x = static_cast<const float*>(ctx.ptr[src]);
    auto* y = static_cast<uint8_t*>(ctx.ptr[dst]);
    const int threads = n < 4 * kGrain ? 1 : ctx.threads;
    float lo[kMaxParts], hi[kMaxParts];
    DynamicQuantParams p;
    if (range < 0 && block == 0 && !planar) {
      // One parallel region: each part's range, then each part quantizes its own elements
      // (still in its core's caches) with the parameters of all of them.
      parallel_two_passes(
          threads, n, 4 * kGrain, [&](int part, int64_t b, int64_t e) { min_max(x + b, e - b, &lo[part], &hi[part]); },
          [&](int part, int parts, int64_t b, int64_t e) {
            const DynamicQuantParams q = params(lo, hi, parts);
            if (!q.usable) std::fill(y + b, y + e, q.zero_point);
            else quantize_u8(x + b, y + b, e - b, q.scale, static_cast<float>(q.zero_point));
            if (part == 0) p = q;
          });
    } else {
      if (range >= 0) {  // known: one pass
        const auto* r = static_cast<const float*>(ctx.ptr[range]);
        p = dynamic_quant_params(r[0], r[1]);
      } else {
        const int64_t parts = std::clamp<int64_t>(n / (4 * kGrain), 1, kMaxParts);
        parallel_range(threads, parts, 1, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) min_max(x + n * i / parts, n * (i + 1) / parts - n * i / parts, &lo[i], &hi[i]);
        });
        p = params(lo, hi, parts);
      }
      const float zp = static_cast<float>(p.zero_point);
      if (!p.usable) std::fill(y, y + (block > 0 ? N * C * S : n), p.zero_point);
      else if (block > 0) quantize_blocked(threads, x, y, false, N, C, S, block, p.scale, zp, C, 0);
      else if (planar) quantize_planar_to_channels_last(threads, x, y, false, N, C, S, p.scale, zp);
      else parallel_range(threads, n, kGrain, [&](int64_t b, int64_t e) { quantize_u8(x + b, y + b, e - b, p.scale, zp); });
    }
    if (scale_out >= 0) *static_cast<float*>(ctx.ptr[scale_out]) = p.scale;
    if (zp_out >= 0) *static_cast<uint8_t*>(ctx.ptr[zp_out]) = p.zero_point;
    return Status::ok();
  }

 private:
  // The parameters from the parts' ranges.
  static DynamicQuantParams params(const float* lo, const float* hi, int64_t parts) {
    float x_min = 0.0f, x_max = 0.0f;
    for (int64_t i = 0; i < parts; ++i) {
      x_min = std::min(x_min, lo[i]);
      x_max = std::max(x_max, hi[i]);
    }
    return dynamic_quant_params(x_min, x_max);
  }
};

class DynamicQuantizeSpec final : public OpSpec {
 public:
  bool reads_channels_last_floats(int) const override { return true; }
  Status prepare(Builder& b, const Step& step) const override {
    return add_dynamic_quantize_step(b, step.inputs[0], step.outputs, step.node->label());
  }
};

}  // namespace

DynamicQuantParams dynamic_quant_params(float lo, float hi) {
  DynamicQuantParams p;
  p.scale = (hi - lo) / 255.0f;
  p.usable = p.scale != 0.0f && std::isfinite(p.scale);
  if (p.usable) {
    const float inter = 0.0f - lo / p.scale;
    p.zero_point = static_cast<uint8_t>(std::clamp(std::nearbyint(static_cast<double>(inter)), 0.0, 255.0));
  }
  return p;
}

Status add_dynamic_quantize_step(Builder& b, int x, const std::vector<int>& outputs, const std::string& label) {
  if (!b.typed(x)) return unsupported(label + " shape unknown");
  for (int o : outputs)
    if (o >= 0 && !b.typed(o)) return unsupported(label + " output shape unknown");
  // Per-tensor, so any dense layout will do when only convolutions read y: a channels-last
  // input (a quantized convolution's float tail) is quantized as it lies, and a blocked one
  // (a float convolution's output) is written channels-last, the layout their 8-bit routes
  // read. The padding of a blocked input is zeros, which the range includes anyway.
  const bool conv_readers =
      !outputs.empty() && outputs[0] >= 0 && only_read_by(b, outputs[0], {"ConvInteger", "QLinearConv"});
  // (And a plain image of a few channels, a network's input, is written channels-last as it is
  // quantized.)
  const Layout in_layout = b.val(x).layout;
  const Shape xs = b.val(x).shape;
  const bool from_blocked = conv_readers && in_layout == Layout::blocked && xs.size() == 4;
  const bool planar =
      conv_readers && in_layout == Layout::plain && xs.size() == 4 && planar_to_channels_last_quantizes(xs[1]);
  const Layout l =
      conv_readers && (in_layout == Layout::nhwc || from_blocked || planar) ? Layout::nhwc : Layout::plain;
  TANDEM_ASSIGN_OR_RETURN(int px, b.require(x, from_blocked ? Layout::blocked : planar ? Layout::plain : l));
  auto k = std::make_unique<DynamicQuantizeKernel>();
  k->src = px;
  k->n = shape_numel(xs);
  if (from_blocked || planar) {
    k->block = from_blocked ? channel_block() : 0;
    k->planar = planar;
    k->N = xs[0];
    k->C = xs[1];
    k->S = xs[2] * xs[3];
    if (from_blocked) k->n = xs[0] * round_up(xs[1], k->block) * k->S;
  }
  k->reads = {px};
  if ((k->range = b.range_of(x)) >= 0) k->reads.push_back(k->range);
  int* slots[3] = {&k->dst, &k->scale_out, &k->zp_out};
  for (size_t i = 0; i < outputs.size() && i < 3; ++i) {
    const int o = outputs[i];
    if (o < 0) continue;
    b.define(o, i == 0 ? l : Layout::plain);
    *slots[i] = o;
    k->writes.push_back(o);
  }
  if (k->dst < 0) {  // y omitted: quantize into a temporary
    k->dst = b.add_temp(DataType::uint8, b.val(x).shape, Layout::plain);
    k->writes.push_back(k->dst);
  }
  k->label = k->range >= 0 ? label + " (range from the producer)" : label;
  b.add_work((k->range >= 0 ? 1.0 : 2.0) * static_cast<double>(k->n));
  b.add_kernel(std::move(k));
  return Status::ok();
}

Result<int> add_dequantized(Builder& b, int bytes, float scale, int32_t zero_point, const std::string& label) {
  if (!b.typed(bytes) || !is_8bit(b.val(bytes).dtype)) return unsupported(label + " 8-bit input expected");
  TANDEM_ASSIGN_OR_RETURN(int px, b.require(bytes, Layout::plain));
  const Shape shape = b.val(px).shape;
  auto k = std::make_unique<DequantizeKernel>();
  k->src = px;
  k->from = b.val(px).dtype;
  k->c.inner = shape_numel(shape);
  k->c.scales = {scale};
  k->c.zero_points = {zero_point};
  k->dst = b.add_temp(DataType::float32, shape, Layout::plain);
  k->reads = {px};
  k->writes = {k->dst};
  k->label = label;
  const int dst = k->dst;
  b.add_work(static_cast<double>(shape_numel(shape)));
  b.add_kernel(std::move(k));
  return dst;
}

Status add_dynamic_quantize(Builder& b, int src, const std::string& label, int* y, int* scale, int* zero_point) {
  if (!b.typed(src) || b.val(src).dtype != DataType::float32) return unsupported(label + " float32 input expected");
  TANDEM_ASSIGN_OR_RETURN(int px, b.require(src, Layout::plain));
  auto k = std::make_unique<DynamicQuantizeKernel>();
  k->src = px;
  k->n = shape_numel(b.val(px).shape);
  k->reads = {px};
  k->dst = *y = b.add_temp(DataType::uint8, b.val(px).shape, Layout::plain);
  k->scale_out = *scale = b.add_temp(DataType::float32, {}, Layout::plain);
  k->zp_out = *zero_point = b.add_temp(DataType::uint8, {}, Layout::plain);
  k->writes = {k->dst, k->scale_out, k->zp_out};
  k->label = label + " (quantize A)";
  b.add_work(2.0 * static_cast<double>(k->n));
  b.add_kernel(std::move(k));
  return Status::ok();
}

namespace {

Status supports_quantize(const Node& n) {
  if (n.inputs.size() < 2 || n.inputs[0].empty() || n.inputs[1].empty()) return unsupported(n.label() + " missing input");
  if (n.attr_int("block_size", 0) != 0) return unsupported(n.label() + " blocked quantization (block_size)");
  return Status::ok();
}

Status supports_dynamic_quantize(const Node& n) {
  if (n.inputs.empty() || n.inputs[0].empty()) return unsupported(n.label() + " missing input");
  return Status::ok();
}

Result<std::unique_ptr<OpSpec>> make_quantize(FusionContext&, const Step& st) {
  auto s = std::make_unique<QuantizeSpec>();
  s->dequantize = st.node->op_type == "DequantizeLinear";
  return std::unique_ptr<OpSpec>(std::move(s));
}

Result<std::unique_ptr<OpSpec>> make_dynamic_quantize(FusionContext&, const Step&) {
  return std::unique_ptr<OpSpec>(std::make_unique<DynamicQuantizeSpec>());
}

}  // namespace

void register_quantize_ops(OpTable& t) {
  t.add("QuantizeLinear", &supports_quantize, &make_quantize);
  t.add("DequantizeLinear", &supports_quantize, &make_quantize);
  // ONNX Runtime's contrib forms: the same ops (its tool writes them for 16-bit types).
  t.add_microsoft("QuantizeLinear", &supports_quantize, &make_quantize);
  t.add_microsoft("DequantizeLinear", &supports_quantize, &make_quantize);
  t.add("DynamicQuantizeLinear", &supports_dynamic_quantize, &make_dynamic_quantize);
}

}  // namespace tandem::cpu
