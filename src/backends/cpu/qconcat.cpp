// qconcat.cpp: Concat of float32 values into an 8-bit value, quantized per tensor as it is
// written, so that the float32 concatenation never exists:
//   Concat -> QuantizeLinear          (constant scale and zero point)
//   Concat -> DynamicQuantizeLinear   (scale and zero point from this run's range: the range of
//                                      the concatenation is the union of its inputs' ranges,
//                                      taken from the inputs before one quantizing pass)
// Inputs that are nearest upsamplings (an absorbed Resize) are read from their sources through
// the Resize's tables. The arithmetic is the reference kernels' (int8.h).
#include <algorithm>
#include <cmath>

#include "backends/cpu/int8.h"
#include "backends/cpu/threads.h"

namespace tandem::cpu {

namespace {

constexpr int64_t kGrain = 1 << 14;

// True when every index in [0, n) appears in `table` (then a nearest upsampling through it reads
// every source element, and its range is its source's).
bool covers(const std::vector<int64_t>& table, int64_t n) {
  std::vector<bool> seen(static_cast<size_t>(n), false);
  for (int64_t i : table)
    if (i >= 0 && i < n) seen[static_cast<size_t>(i)] = true;
  return std::all_of(seen.begin(), seen.end(), [](bool b) { return b; });
}

// Along the channels of 4-D values with any blocked, channels-last or upsampled input (the
// channels-last route), the output is channels-last and each input goes into its slice of every
// pixel's channels, read blocked or, where its producer left it so, channels-last; otherwise
// plain chunks per outer index.
class QuantizedConcatKernel final : public Kernel {
 public:
  struct Part {
    int value = -1;
    int64_t size = 0;    // blocked: channels; plain: elements per outer index
    int64_t offset = 0;  // blocked: first channel in the output; plain: element offset per outer index
    bool channels_last = false;  // the channels-last route: read channels-last, not blocked
    // A nearest upsampling of `value` (in_S pixels, in_W wide; blocked or channels-last): output
    // pixel (h, w) is source pixel (rows[h], cols[w]).
    bool upsampled = false;
    int64_t in_S = 0, in_W = 0;
    std::vector<int64_t> rows, cols;
    // Dynamic: the part's elements as stored (a blocked one with its zero padding lanes), all
    // of which the concatenation holds, or 0 for an upsampling that skips source pixels (its
    // range is then taken over the pixels it reads).
    int64_t stored = 0;
  };
  // Dynamic: a piece of one part's stored elements whose range one task takes.
  struct Piece {
    int part = 0;
    int64_t begin = 0, end = 0;
  };
  std::vector<Part> parts;
  int out = -1;
  bool blocked = false;  // the channels-last route (see above)
  bool to_signed = false;
  float scale = 1.0f, zp = 0.0f;  // static
  bool dynamic = false;
  int scale_out = -1, zp_out = -1;  // dynamic: the scale and zero point values (-1: omitted)
  std::vector<Piece> pieces;        // dynamic, at most kMaxParts
  int64_t outer = 1, out_size = 0;  // plain: outer indices, output elements per outer index
  int64_t N = 1, S = 1, C = 0, W = 1;  // blocked: images, pixels, output channels, output width

  Status run(RunCtx& ctx, KernelState*) const override {
    if (!dynamic) {
      quantize(ctx, scale, zp);
      return Status::ok();
    }
    const DynamicQuantParams p = range_params(ctx);
    if (p.usable) {
      quantize(ctx, p.scale, static_cast<float>(p.zero_point));
    } else {
      auto* y = static_cast<uint8_t*>(ctx.ptr[out]);
      std::fill(y, y + (blocked ? N * S * C : outer * out_size), p.zero_point);
    }
    if (scale_out >= 0) *static_cast<float*>(ctx.ptr[scale_out]) = p.scale;
    if (zp_out >= 0) *static_cast<uint8_t*>(ctx.ptr[zp_out]) = p.zero_point;
    return Status::ok();
  }

 private:
  int threads_for_run(const RunCtx& ctx) const {
    return (blocked ? N * S * C : outer * out_size) < 4 * kGrain ? 1 : ctx.threads;
  }

  // DynamicQuantizeLinear's parameters from the union of the parts' ranges.
  DynamicQuantParams range_params(const RunCtx& ctx) const {
    float lo[kMaxParts], hi[kMaxParts];
    parallel_range(threads_for_run(ctx), static_cast<int64_t>(pieces.size()), 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const Piece& pc = pieces[static_cast<size_t>(i)];
        const auto* x = static_cast<const float*>(ctx.ptr[parts[static_cast<size_t>(pc.part)].value]);
        min_max(x + pc.begin, pc.end - pc.begin, &lo[i], &hi[i]);
      }
    });
    float x_min = 0.0f, x_max = 0.0f;
    for (size_t i = 0; i < pieces.size(); ++i) {
      x_min = std::min(x_min, lo[i]);
      x_max = std::max(x_max, hi[i]);
    }
    // Upsamplings that skip source pixels: the range of the pixels they read.
    const int64_t block = channel_block();
    for (const Part& p : parts) {
      if (p.stored > 0) continue;
      const auto* x = static_cast<const float*>(ctx.ptr[p.value]);
      const int64_t lanes = p.channels_last ? p.size : block, blocks = p.channels_last ? 1 : (p.size + block - 1) / block;
      for (int64_t img = 0; img < N; ++img)
        for (int64_t cb = 0; cb < blocks; ++cb)
          for (int64_t s = 0; s < S; ++s) {
            float l, h;
            min_max(x + ((img * blocks + cb) * p.in_S + p.rows[s / W] * p.in_W + p.cols[s % W]) * lanes, lanes, &l, &h);
            x_min = std::min(x_min, l);
            x_max = std::max(x_max, h);
          }
    }
    return dynamic_quant_params(x_min, x_max);
  }

  void quantize(const RunCtx& ctx, float q_scale, float q_zp) const {
    auto* y = static_cast<uint8_t*>(ctx.ptr[out]);
    const int threads = threads_for_run(ctx);
    if (!blocked) {
      const int64_t tasks = outer * static_cast<int64_t>(parts.size());
      parallel_range(threads, tasks, 1, [&](int64_t lo, int64_t hi) {
        for (int64_t t = lo; t < hi; ++t) {
          const Part& p = parts[static_cast<size_t>(t % static_cast<int64_t>(parts.size()))];
          const int64_t o = t / static_cast<int64_t>(parts.size());
          const float* x = static_cast<const float*>(ctx.ptr[p.value]) + o * p.size;
          uint8_t* d = y + o * out_size + p.offset;
          if (to_signed) quantize_s8(x, reinterpret_cast<int8_t*>(d), p.size, q_scale, q_zp);
          else quantize_u8(x, d, p.size, q_scale, q_zp);
        }
      });
      return;
    }
    // Chunks of pixels, every part's channel blocks in turn: the chunk's output bytes stay in
    // cache while each part writes its slice of them.
    constexpr int64_t kChunk = 256;
    const int64_t block = channel_block(), chunks = (S + kChunk - 1) / kChunk;
    parallel_range(threads, N * chunks, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi; ++t) {
        const int64_t img = t / chunks, s0 = (t % chunks) * kChunk, s1 = std::min(S, s0 + kChunk);
        for (const Part& p : parts) {
          const int64_t blocks = (p.size + block - 1) / block;
          const auto* x = static_cast<const float*>(ctx.ptr[p.value]);
          int64_t from[kChunk];  // an upsampled part: the chunk's source pixels
          const int64_t pixel = p.channels_last ? p.size : block;  // floats per source pixel
          if (p.upsampled)
            for (int64_t s = s0; s < s1; ++s) from[s - s0] = (p.rows[s / W] * p.in_W + p.cols[s % W]) * pixel;
          for (int64_t cb = 0; cb < blocks; ++cb) {
            uint8_t* dst = y + (img * S + s0) * C + p.offset + cb * block;
            const int64_t lanes = std::min(block, p.size - cb * block);
            if (p.upsampled && p.channels_last)
              quantize_rows_indexed(x + img * p.in_S * p.size + cb * block, from, s1 - s0, lanes, dst, C, to_signed,
                                    q_scale, q_zp);
            else if (p.channels_last)
              quantize_rows(x + (img * S + s0) * p.size + cb * block, p.size, s1 - s0, lanes, dst, C, to_signed, q_scale,
                            q_zp);
            else if (p.upsampled)
              quantize_rows_indexed(x + (img * blocks + cb) * p.in_S * block, from, s1 - s0, lanes, dst, C, to_signed,
                                    q_scale, q_zp);
            else
              quantize_rows(x + ((img * blocks + cb) * S + s0) * block, block, s1 - s0, lanes, dst, C, to_signed,
                            q_scale, q_zp);
          }
        }
      }
    });
  }
};

// Splits the parts' stored elements into at most kMaxParts pieces of at least 4 * kGrain
// elements each (a part smaller than that is one piece).
std::vector<QuantizedConcatKernel::Piece> range_pieces(const std::vector<QuantizedConcatKernel::Part>& parts) {
  int64_t total = 0, stored_parts = 0;
  for (const auto& p : parts)
    if (p.stored > 0) {
      total += p.stored;
      ++stored_parts;
    }
  std::vector<QuantizedConcatKernel::Piece> pieces;
  const int64_t budget = std::max<int64_t>(kMaxParts - stored_parts, 0);
  for (size_t i = 0; i < parts.size(); ++i) {
    const int64_t n = parts[i].stored;
    if (n <= 0) continue;
    // One piece per part, plus the part's share of the rest of the budget.
    const int64_t extra = total > 0 ? budget * n / total : 0;
    const int64_t count = std::clamp<int64_t>(n / (4 * kGrain), 1, 1 + extra);
    for (int64_t k = 0; k < count; ++k)
      pieces.push_back({static_cast<int>(i), n * k / count, n * (k + 1) / count});
  }
  return pieces;
}

// Builds the kernel for either form; `scale`/`zero_point` are ignored when `dynamic`.
Status add_concat_kernel(Builder& b, const std::vector<int>& inputs, int64_t axis, int out, bool dynamic, float scale,
                         int32_t zero_point, int scale_out, int zp_out, const std::string& label,
                         const std::vector<const NearestResize*>& upsampled) {
  if (!b.typed(out) || !is_8bit(b.val(out).dtype)) return unsupported(label + " output shape or type");
  if (dynamic && b.val(out).dtype != DataType::uint8) return unsupported(label + " uint8 output expected");
  if (!dynamic && (!(scale > 0.0f) || !std::isfinite(scale)))
    return unsupported(label + " y_scale is not positive and finite");
  const Shape os = b.val(out).shape;
  const int64_t r = static_cast<int64_t>(os.size());
  if (axis < 0) axis += r;
  if (axis < 0 || axis >= r) return unsupported(label + " axis");
  std::vector<int> ins;
  std::vector<const NearestResize*> ups;
  int64_t along = 0;
  bool any_blocked = false;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const int v = inputs[i];
    if (v < 0) continue;
    const NearestResize* up = i < upsampled.size() ? upsampled[i] : nullptr;
    if (!b.typed(v) || b.val(v).dtype != DataType::float32 || (up && b.val(v).shape != up->in))
      return unsupported(label + " input shape or type");
    const Shape& vs = up ? up->out : b.val(v).shape;  // what the input contributes
    if (vs.size() != os.size()) return unsupported(label + " input rank");
    for (int64_t d = 0; d < r; ++d)
      if (d != axis && vs[d] != os[d]) return unsupported(label + " input shapes do not concatenate");
    along += vs[axis];
    if (shape_numel(vs) == 0) continue;
    any_blocked = any_blocked || up || b.val(v).layout == Layout::blocked || b.val(v).layout == Layout::nhwc;
    ins.push_back(v);
    ups.push_back(up);
  }
  if (along != os[axis] || ins.empty()) return unsupported(label + " sizes do not add up");
  auto k = std::make_unique<QuantizedConcatKernel>();
  k->label = label;
  k->out = out;
  k->to_signed = b.val(out).dtype == DataType::int8;
  k->scale = scale;
  k->zp = static_cast<float>(zero_point);
  k->dynamic = dynamic;
  k->blocked = r == 4 && axis == 1 && any_blocked;
  int64_t offset = 0;
  for (size_t i = 0; i < ins.size(); ++i) {
    const NearestResize* up = ups[i];
    if (up && !k->blocked) return unsupported(label + " an upsampled input outside the blocked route");
    QuantizedConcatKernel::Part p;
    p.size = up ? up->out[axis] : b.val(ins[i]).shape[axis];
    // An upsampled input is the Resize's source, read through the tables.
    p.channels_last = k->blocked && b.val(ins[i]).layout == Layout::nhwc;
    const Layout want = p.channels_last ? Layout::nhwc : k->blocked ? Layout::blocked : Layout::plain;
    TANDEM_ASSIGN_OR_RETURN(int pv, b.require(ins[i], want));
    const Shape& stored = b.val(pv).shape;
    p.stored = want == Layout::blocked ? stored[0] * round_up(stored[1], channel_block()) * stored[2] * stored[3]
                                       : shape_numel(stored);
    if (up) {
      p.upsampled = true;
      p.in_S = up->in[2] * up->in[3];
      p.in_W = up->in[3];
      p.rows = up->rows;
      p.cols = up->cols;
      if (!covers(up->rows, up->in[2]) || !covers(up->cols, up->in[3])) p.stored = 0;
    }
    p.value = pv;
    p.offset = offset;
    if (!k->blocked)
      for (int64_t d = axis + 1; d < r; ++d) p.size *= os[d];
    offset += p.size;
    k->parts.push_back(p);
    k->reads.push_back(pv);
  }
  if (k->blocked) {
    k->N = os[0];
    k->C = os[1];
    k->S = os[2] * os[3];
    k->W = os[3];
  } else {
    for (int64_t d = 0; d < axis; ++d) k->outer *= os[d];
    k->out_size = offset;
  }
  b.define(out, k->blocked ? Layout::nhwc : Layout::plain);
  k->writes = {out};
  if (dynamic) {
    k->pieces = range_pieces(k->parts);
    if (scale_out >= 0) {
      b.define(scale_out, Layout::plain);
      k->scale_out = scale_out;
      k->writes.push_back(scale_out);
    }
    if (zp_out >= 0) {
      b.define(zp_out, Layout::plain);
      k->zp_out = zp_out;
      k->writes.push_back(zp_out);
    }
  }
  b.add_work((dynamic ? 2.0 : 1.0) * static_cast<double>(shape_numel(os)));
  b.add_kernel(std::move(k));
  return Status::ok();
}

}  // namespace

Status add_quantized_concat(Builder& b, const std::vector<int>& inputs, int64_t axis, int out, float scale,
                            int32_t zero_point, const std::string& label,
                            const std::vector<const NearestResize*>& upsampled) {
  return add_concat_kernel(b, inputs, axis, out, false, scale, zero_point, -1, -1, label, upsampled);
}

Status add_dynamic_quantized_concat(Builder& b, const std::vector<int>& inputs, int64_t axis, int out, int scale_out,
                                    int zero_point_out, const std::string& label,
                                    const std::vector<const NearestResize*>& upsampled) {
  return add_concat_kernel(b, inputs, axis, out, true, 0.0f, 0, scale_out, zero_point_out, label, upsampled);
}

}  // namespace tandem::cpu
