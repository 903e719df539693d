// shape.cpp: data-movement ops of the cpu backend.
//   Views (no copy, plain layout): Reshape Flatten Squeeze Unsqueeze Identity Dropout(inference).
//   Copies: Transpose, Slice (strided gathers, strided_copy.h), Concat (plain, or blocked along
//     channels when the channel counts allow block copies; quantized, it may read nearest
//     Resizes from their sources). Split, Expand, Tile, DepthToSpace, SpaceToDepth, Pad and
//     Trilu are in shape_copies.cpp.
//   Build-time only: Shape, Constant, Range and ConstantOfShape (their values are known once
//     input shapes and keyed input values are; the instance's shape inference computes them).
// Any element type with a fixed size works for views and copies. Cast is in cast.cpp.

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <type_traits>

#include "backends/cpu/concat_lanes.h"
#include "backends/cpu/fusion.h"
#include "backends/cpu/int8.h"
#include "backends/cpu/op_family.h"
#include "backends/cpu/resize.h"
#include "backends/cpu/strided_copy.h"
#include "core/tensor_util.h"

namespace tandem::cpu {

namespace {

constexpr int kMaxCopyDims = 8;

// A 4-byte element of any type, read and written without type-based alias assumptions (a
// per-element memcpy would keep the loop below from vectorizing).
typedef uint32_t __attribute__((may_alias)) Word32;

// dst (contiguous, `dims`) <- src with `src_strides` (elements), element size `es`.
class GatherKernel final : public Kernel {
 public:
  int src = -1, dst = -1;
  int nd = 0;
  size_t es = 4;
  int64_t src_offset = 0;  // elements
  std::array<int64_t, kMaxCopyDims> dims{}, sstr{};

  Status run(RunCtx& ctx, KernelState*) const override {
    const auto* s = static_cast<const uint8_t*>(ctx.ptr[src]) + src_offset * static_cast<int64_t>(es);
    auto* d = static_cast<uint8_t*>(ctx.ptr[dst]);
    const int64_t inner = dims[nd - 1];
    const int64_t istride = sstr[nd - 1];
    int64_t outer = 1;
    for (int i = 0; i < nd - 1; ++i) outer *= dims[i];
    const int64_t total = outer * inner;
    const int threads = total * static_cast<int64_t>(es) < (1 << 16) ? 1 : ctx.threads;
    // The source offset (elements) of index o over the dims before `below`, row-major.
    auto offset_of = [&](int64_t o, int below) {
      int64_t off = 0;
      for (int i = below - 1; i >= 0; --i) {
        off += (o % dims[i]) * sstr[i];
        o /= dims[i];
      }
      return off;
    };
    // A short last dim under a longer one (DepthToSpace's [.., W, blocksize]): the last two dims
    // are copied together, so that a row's offset is found once per W * inner elements.
    if (nd >= 2 && inner <= 8 && dims[nd - 2] >= 8 && es == 4) {
      const int64_t rows = dims[nd - 2], rstride = sstr[nd - 2], outer2 = outer / rows;
      parallel_range(threads, outer2, 1, [&](int64_t b, int64_t e) {
        for (int64_t o = b; o < e; ++o) {
          const auto* sp = reinterpret_cast<const Word32*>(s) + offset_of(o, nd - 2);
          auto* dp = reinterpret_cast<Word32*>(d) + o * rows * inner;
          for (int64_t j = 0; j < inner; ++j)
            for (int64_t r = 0; r < rows; ++r) dp[r * inner + j] = sp[r * rstride + j * istride];
        }
      });
      return Status::ok();
    }
    parallel_range(threads, outer, 1, [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) {
        const uint8_t* sp = s + offset_of(o, nd - 1) * static_cast<int64_t>(es);
        uint8_t* dp = d + o * inner * static_cast<int64_t>(es);
        if (istride == 1) {
          std::memcpy(dp, sp, static_cast<size_t>(inner) * es);
        } else if (es == 4) {
          auto* df = reinterpret_cast<uint32_t*>(dp);
          for (int64_t i = 0; i < inner; ++i) std::memcpy(df + i, sp + i * istride * 4, 4);
        } else {
          for (int64_t i = 0; i < inner; ++i) std::memcpy(dp + i * es, sp + i * istride * static_cast<int64_t>(es), es);
        }
      }
    });
    return Status::ok();
  }
};

}  // namespace

Status add_gather(Builder& b, int src, int out, Shape dims, std::vector<int64_t> strides, int64_t offset,
                  const std::string& label) {
  // Drop size-1 dims, merge contiguous ones.
  std::vector<int64_t> d, s;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == 1) continue;
    if (!d.empty() && s.back() == strides[i] * dims[i]) {
      d.back() *= dims[i];
      s.back() = strides[i];
    } else {
      d.push_back(dims[i]);
      s.push_back(strides[i]);
    }
  }
  if (d.empty()) {
    d.push_back(1);
    s.push_back(1);
  }
  if (d.size() > kMaxCopyDims) return unsupported(label + " too many dims");
  auto k = std::make_unique<GatherKernel>();
  k->src = src;
  k->dst = out;
  k->nd = static_cast<int>(d.size());
  k->es = elem_size(b.val(src).dtype);
  k->src_offset = offset;
  for (size_t i = 0; i < d.size(); ++i) {
    k->dims[i] = d[i];
    k->sstr[i] = s[i];
  }
  k->label = label;
  k->reads = {src};
  k->writes = {out};
  b.add_kernel(std::move(k));
  return Status::ok();
}

namespace {

// Views: the output aliases the (plain) input.
class ViewSpec final : public OpSpec {
 public:
  Status prepare(Builder& b, const Step& step) const override {
    const std::string label = step.node->label();
    int x = step.inputs[0], out = step.outputs[0];
    if (!b.typed(x) || !b.typed(out)) return unsupported(label + " shape unknown");
    if (b.val(x).dtype != b.val(out).dtype || !pod(b.val(x).dtype)) return unsupported(label + " dtype");
    if (shape_numel(b.val(x).shape) != shape_numel(b.val(out).shape)) return unsupported(label + " element count");
    TANDEM_ASSIGN_OR_RETURN(int px, b.require(x, Layout::plain));
    b.define_alias(out, px, 0);
    return Status::ok();
  }
};

class TransposeSpec final : public OpSpec {
 public:
  Status prepare(Builder& b, const Step& step) const override {
    const std::string label = step.node->label();
    int x = step.inputs[0], out = step.outputs[0];
    if (!b.typed(x) || !b.typed(out) || !pod(b.val(x).dtype)) return unsupported(label + " shape/dtype");
    const Shape xs = b.val(x).shape;
    const size_t r = xs.size();
    std::vector<int64_t> perm = step.node->attr_ints("perm");
    if (perm.empty())
      for (size_t i = 0; i < r; ++i) perm.push_back(static_cast<int64_t>(r - 1 - i));
    if (perm.size() != r) return unsupported(label + " perm length");
    TANDEM_ASSIGN_OR_RETURN(int px, b.require(x, Layout::plain));
    std::vector<int64_t> st = strides_of(xs);
    Shape dims;
    std::vector<int64_t> strides;
    for (int64_t p : perm) {
      if (p < 0 || p >= static_cast<int64_t>(r)) return unsupported(label + " perm value");
      dims.push_back(xs[p]);
      strides.push_back(st[p]);
    }
    if (dims != b.val(out).shape) return unsupported(label + " shape mismatch");
    b.define(out, Layout::plain);
    return add_gather(b, px, out, dims, strides, 0, label);
  }
};

class SliceSpec final : public OpSpec {
 public:
  Status prepare(Builder& b, const Step& step) const override {
    const Node& n = *step.node;
    const std::string label = n.label();
    int x = step.inputs[0], out = step.outputs[0];
    if (!b.typed(x) || !b.typed(out) || !pod(b.val(x).dtype)) return unsupported(label + " shape/dtype");
    const Shape xs = b.val(x).shape;
    const int64_t r = static_cast<int64_t>(xs.size());
    std::vector<int64_t> starts, ends, axes, steps;
    if (n.opset < 10) {
      starts = n.attr_ints("starts");
      ends = n.attr_ints("ends");
      axes = n.attr_ints("axes");
    } else {
      auto get = [&](size_t i, std::vector<int64_t>* v) {
        if (i >= step.inputs.size() || step.inputs[i] < 0) return true;
        const Tensor* t = b.known(step.inputs[i]);
        if (!t || !is_integer_type(t->dtype())) return false;
        *v = to_int64_vector(*t);
        return true;
      };
      if (!get(1, &starts) || !get(2, &ends) || !get(3, &axes) || !get(4, &steps))
        return unsupported(label + " starts/ends/axes/steps not known");
    }
    if (axes.empty())
      for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
    if (steps.empty()) steps.assign(starts.size(), 1);
    if (starts.size() != ends.size() || axes.size() != starts.size() || steps.size() != starts.size())
      return unsupported(label + " parameter lengths");
    std::vector<int64_t> begin(r, 0), step_v(r, 1);
    Shape dims = xs;
    for (size_t i = 0; i < axes.size(); ++i) {
      int64_t a = axes[i] < 0 ? axes[i] + r : axes[i];
      if (a < 0 || a >= r || steps[i] == 0) return unsupported(label + " axis/step");
      const int64_t d = xs[a], s = steps[i];
      int64_t st = starts[i], en = ends[i];
      if (st < 0) st += d;
      if (en < 0) en += d;
      int64_t count;
      if (s > 0) {
        st = std::clamp<int64_t>(st, 0, d);
        en = std::clamp<int64_t>(en, 0, d);
        count = en > st ? (en - st + s - 1) / s : 0;
      } else {
        st = std::clamp<int64_t>(st, 0, d - 1);
        en = std::clamp<int64_t>(en, -1, d - 1);
        count = st > en ? (st - en - s - 1) / (-s) : 0;
      }
      begin[a] = st;
      step_v[a] = s;
      dims[a] = count;
    }
    if (dims != b.val(out).shape) return unsupported(label + " shape mismatch with inference");
    if (shape_numel(dims) == 0) return unsupported(label + " empty output");
    TANDEM_ASSIGN_OR_RETURN(int px, b.require(x, Layout::plain));
    std::vector<int64_t> st = strides_of(xs), strides(r);
    int64_t offset = 0;
    for (int64_t i = 0; i < r; ++i) {
      offset += begin[i] * st[i];
      strides[i] = st[i] * step_v[i];
    }
    b.define(out, Layout::plain);
    return add_gather(b, px, out, dims, strides, offset, label);
  }
};

// Concat: plain copies of each input's chunk per outer index; blocked block copies along
// channels when every input but the last has a whole number of channel blocks.
class ConcatKernel final : public Kernel {
 public:
  int out = -1;
  int64_t outer = 1, out_chunk = 0;  // bytes per outer index in the output
  std::vector<int> ins;
  std::vector<int64_t> chunk, offset;  // bytes per outer index / byte offset in the output chunk

  Status run(RunCtx& ctx, KernelState*) const override {
    auto* d = static_cast<uint8_t*>(ctx.ptr[out]);
    const int64_t total = outer * out_chunk;
    const int threads = total < (1 << 17) ? 1 : ctx.threads;
    parallel_range(threads, outer * static_cast<int64_t>(ins.size()), 1, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t o = t / static_cast<int64_t>(ins.size());
        const size_t i = static_cast<size_t>(t % static_cast<int64_t>(ins.size()));
        const auto* s = static_cast<const uint8_t*>(ctx.ptr[ins[i]]);
        std::memcpy(d + o * out_chunk + offset[i], s + o * chunk[i], static_cast<size_t>(chunk[i]));
      }
    });
    return Status::ok();
  }
};

class ConcatSpec final : public OpSpec {
 public:
  // A QuantizeLinear (per-tensor constants) or a DynamicQuantizeLinear reading the
  // concatenation: the inputs are quantized into their places of the 8-bit output, and the
  // float32 concatenation is never written.
  bool absorb(FusionContext& f, Step& self, const Step& reader, int acc_input) override {
    if (quantized_ || acc_input != 0) return false;
    const Node& n = *reader.node;
    PerTensorQuant q;
    if (n.op_type == "DynamicQuantizeLinear" && canonical_domain(n.domain).empty() && reader.originals.size() == 1 &&
        feature_enabled("QCONCAT")) {
      dynamic_ = true;
    } else if (!per_tensor_quant_step(f, reader, "QuantizeLinear", &q)) {
      return false;
    }
    quantized_ = true;
    const int64_t axis = self.node->attr_int("axis", 0);
    channel_axis_ = axis == 1 || axis == -3;
    data_inputs_.assign(self.inputs.begin(), self.inputs.end());
    scale_ = q.scale;
    zero_point_ = q.zero_point;
    return true;
  }
  // Along channels: a nearest Resize (constant scales or sizes) whose output only this step
  // reads is read from its source through its tables (its output is never written): quantized,
  // or float32 on the blocked path (add_lane_concat). TANDEM_CPU_RESIZE_INTO_CONCAT=0 keeps
  // float32 ones apart.
  bool absorb_producer(FusionContext& f, Step& self, const Step& producer, int value) override {
    const Node* n = producer.node;
    if (!quantized_ && (!feature_enabled("RESIZE_INTO_CONCAT") || !float_path_blocked())) return false;
    if (!quantized_ && data_inputs_.empty()) data_inputs_ = self.inputs;  // the order, before any is replaced
    if (std::find(data_inputs_.begin(), data_inputs_.end(), value) == data_inputs_.end()) return false;
    const int64_t axis = self.node->attr_int("axis", 0);
    if (axis != 1 && axis != -3) return false;
    if (!n || producer.dead || producer.originals.size() != 1 || !producer.spec ||
        !canonical_domain(n->domain).empty() || (n->op_type != "Resize" && n->op_type != "Upsample") ||
        n->attr_string("mode", "nearest") != "nearest" || producer.inputs.empty() || producer.outputs.size() != 1)
      return false;
    bool four_d = false;  // scales or sizes for 4 dims
    for (size_t i = 1; i < producer.inputs.size(); ++i) {
      const Tensor* c = producer.inputs[i] >= 0 ? f.constant(producer.inputs[i]) : nullptr;
      if (producer.inputs[i] >= 0 && !c) return false;
      four_d = four_d || (c && i >= (n->op_type == "Upsample" ? 1u : 2u) && c->numel() == 4);
    }
    if (!four_d) return false;
    resized_.push_back(Resized{value, n, producer.inputs});
    return true;
  }
  // Quantized along channels: a channels-last input goes into its slice of each pixel as it lies.
  bool reads_channels_last_floats(int) const override { return quantized_ && channel_axis_; }
  Status prepare(Builder& b, const Step& step) const override {
    const std::string label = step.node->label();
    if (quantized_) {
      std::vector<int> ins = data_inputs_;
      std::vector<NearestResize> tables;
      tables.reserve(resized_.size());
      std::vector<const NearestResize*> upsampled(ins.size(), nullptr);
      for (const Resized& r : resized_) {
        TANDEM_ASSIGN_OR_RETURN(NearestResize t, nearest_resize(b, *r.node, r.inputs, r.value));
        tables.push_back(std::move(t));
        for (size_t i = 0; i < ins.size(); ++i)
          if (ins[i] == r.value) {
            ins[i] = r.inputs[0];
            upsampled[i] = &tables.back();
          }
      }
      const int64_t axis = step.node->attr_int("axis", 0);
      if (dynamic_) {
        auto output = [&](size_t i) { return i < step.outputs.size() ? step.outputs[i] : -1; };
        return add_dynamic_quantized_concat(b, ins, axis, output(0), output(1), output(2),
                                            label + " (dynamically quantized)", upsampled);
      }
      return add_quantized_concat(b, ins, axis, step.outputs[0], scale_, zero_point_, label + " (quantized)",
                                  upsampled);
    }
    int out = step.outputs[0];
    if (!b.typed(out) || !pod(b.val(out).dtype)) return unsupported(label + " shape/dtype");
    const Shape os = b.val(out).shape;
    if (!resized_.empty()) return prepare_upsampled(b, step, out, label);
    const int64_t r = static_cast<int64_t>(os.size());
    int64_t axis = step.node->attr_int("axis", 0);
    if (axis < 0) axis += r;
    if (axis < 0 || axis >= r) return unsupported(label + " axis");
    std::vector<int> ins;
    for (int v : step.inputs) {
      if (v < 0) continue;
      if (!b.typed(v) || b.val(v).dtype != b.val(out).dtype) return unsupported(label + " input shape/dtype");
      if (shape_numel(b.val(v).shape) == 0) continue;
      ins.push_back(v);
    }
    if (ins.empty()) return unsupported(label + " no data");
    // Blocked along channels? (when any input is blocked; the others are converted)
    bool blocked = r == 4 && axis == 1 && b.val(out).dtype == DataType::float32;
    bool any_blocked = false, aligned = true;
    for (size_t i = 0; i < ins.size() && blocked; ++i) {
      const IValue& iv = b.val(ins[i]);
      if (iv.shape.size() != 4) {
        blocked = false;
        break;
      }
      if (iv.layout == Layout::blocked) any_blocked = true;
      if (i + 1 < ins.size() && iv.shape[1] % channel_block() != 0) aligned = false;
    }
    blocked = blocked && any_blocked;
    if (blocked) {
      for (int& v : ins) {
        TANDEM_ASSIGN_OR_RETURN(v, b.require(v, Layout::blocked));
      }
    }
    // Lane gathers where channel counts are not multiples of the block, and for a bf16 hand-off.
    const bool bf16_out = blocked && b.may_hand_off_bf16() && b.readers_take_bf16(out);
    if (blocked && (!aligned || bf16_out)) return add_lane_concat(b, ins, out, os, bf16_out, label);
    auto k = std::make_unique<ConcatKernel>();
    k->label = label;
    k->out = out;
    const int64_t es = static_cast<int64_t>(elem_size(b.val(out).dtype));
    if (blocked) {
      b.define(out, Layout::blocked);
      const int64_t hw = os[2] * os[3];
      k->outer = os[0];
      k->out_chunk = round_up(os[1], channel_block()) * hw * es;
      int64_t off = 0;
      for (int v : ins) {
        int64_t c = round_up(b.val(v).shape[1], channel_block()) * hw * es;
        k->ins.push_back(v);
        k->chunk.push_back(c);
        k->offset.push_back(off);
        off += c;
      }
    } else {
      b.define(out, Layout::plain);
      int64_t outer = 1, inner = 1;
      for (int64_t i = 0; i < axis; ++i) outer *= os[i];
      for (int64_t i = axis + 1; i < r; ++i) inner *= os[i];
      k->outer = outer;
      k->out_chunk = os[axis] * inner * es;
      int64_t off = 0;
      for (int v : ins) {
        TANDEM_ASSIGN_OR_RETURN(int pv, b.require(v, Layout::plain));
        int64_t c = b.val(pv).shape[axis] * inner * es;
        k->ins.push_back(pv);
        k->chunk.push_back(c);
        k->offset.push_back(off);
        off += c;
      }
      if (off != k->out_chunk) return unsupported(label + " sizes do not add up");
    }
    k->reads = k->ins;
    k->writes = {out};
    b.add_kernel(std::move(k));
    return Status::ok();
  }

 private:
  // Float32 along channels with absorbed nearest Resizes: every input blocked, the resized ones
  // read from their sources (add_lane_concat).
  Status prepare_upsampled(Builder& b, const Step& step, int out, const std::string& label) const {
    const Shape os = b.val(out).shape;
    const int64_t axis = step.node->attr_int("axis", 0);
    if (os.size() != 4 || (axis != 1 && axis != -3) || b.val(out).dtype != DataType::float32 || !float_path_blocked())
      return unsupported(label + " upsampled inputs outside a float32 channel concatenation");
    std::vector<NearestResize> tables;
    tables.reserve(resized_.size());
    std::vector<int> ins;
    std::vector<const NearestResize*> upsampled;
    for (int v : data_inputs_) {
      if (v < 0) continue;
      const NearestResize* up = nullptr;
      for (const Resized& r : resized_)
        if (r.value == v) {
          TANDEM_ASSIGN_OR_RETURN(NearestResize t, nearest_resize(b, *r.node, r.inputs, r.value));
          tables.push_back(std::move(t));
          up = &tables.back();
          v = r.inputs[0];
          break;
        }
      if (!b.typed(v) || b.val(v).dtype != DataType::float32 || b.val(v).shape.size() != 4)
        return unsupported(label + " input shape/dtype");
      TANDEM_ASSIGN_OR_RETURN(int bv, b.require(v, Layout::blocked));
      ins.push_back(bv);
      upsampled.push_back(up);
    }
    const bool bf16_out = b.may_hand_off_bf16() && b.readers_take_bf16(out);
    return add_lane_concat(b, ins, out, os, bf16_out, label + " (upsampled input)", upsampled);
  }

  bool quantized_ = false;
  bool dynamic_ = false;  // quantized by an absorbed DynamicQuantizeLinear (outputs y, scale, zero point)
  bool channel_axis_ = false;  // quantized along axis 1 of a 4-D value (1 or -3)
  std::vector<int> data_inputs_;  // the Concat's inputs (value ids) in order, when quantized or resizes are absorbed
  struct Resized {                // absorbed nearest Resize steps; `value` is their output
    int value = -1;
    const Node* node = nullptr;   // owned by the plan
    std::vector<int> inputs;
  };
  std::vector<Resized> resized_;
  float scale_ = 1.0f;
  int32_t zero_point_ = 0;
};

Status supports_any(const Node&) { return Status::ok(); }

Status supports_view(const Node& n) {
  if (n.inputs.empty() || n.inputs[0].empty()) return unsupported(n.label() + " no data input");
  if (n.op_type == "Dropout") {
    if (n.outputs.size() > 1 && !n.outputs[1].empty()) return unsupported(n.label() + " Dropout mask output");
    if (n.attr_int("training_mode", 0) != 0) return unsupported(n.label() + " training mode");
  }
  return Status::ok();
}

Status supports_one_input(const Node& n) {
  if (n.inputs.empty() || n.inputs[0].empty()) return unsupported(n.label() + " no data input");
  return Status::ok();
}

Result<std::unique_ptr<OpSpec>> make_view(FusionContext&, const Step& st) {
  if (st.node->op_type == "Dropout" && st.node->opset >= 12 && st.inputs.size() > 2 && st.inputs[2] >= 0)
    return std::unique_ptr<OpSpec>();  // training_mode input: generic
  return std::unique_ptr<OpSpec>(std::make_unique<ViewSpec>());
}
Result<std::unique_ptr<OpSpec>> make_transpose(FusionContext&, const Step&) {
  return std::unique_ptr<OpSpec>(std::make_unique<TransposeSpec>());
}
Result<std::unique_ptr<OpSpec>> make_slice(FusionContext&, const Step&) {
  return std::unique_ptr<OpSpec>(std::make_unique<SliceSpec>());
}
Result<std::unique_ptr<OpSpec>> make_concat(FusionContext&, const Step&) {
  return std::unique_ptr<OpSpec>(std::make_unique<ConcatSpec>());
}
// Shape, Constant, Range, ConstantOfShape: known at build time; no kernel of their own.
Result<std::unique_ptr<OpSpec>> make_none(FusionContext&, const Step&) { return std::unique_ptr<OpSpec>(); }

}  // namespace

void register_shape_ops(OpTable& t) {
  for (const char* op : {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"})
    t.add(op, &supports_view, &make_view);
  t.add("Transpose", &supports_one_input, &make_transpose);
  t.add("Slice", &supports_one_input, &make_slice);
  t.add("Concat", &supports_any, &make_concat);
  t.add("Shape", &supports_one_input, &make_none);
  t.add("Constant", &supports_any, &make_none);
  t.add("Range", &supports_any, &make_none);
  t.add("ConstantOfShape", &supports_one_input, &make_none);
}

}  // namespace tandem::cpu
