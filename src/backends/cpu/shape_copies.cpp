// shape_copies.cpp: the data-movement ops of the cpu backend that copy through a gather map
// (the reference's src/kernels/shape.cpp has their spec; shape.cpp has the views, Transpose,
// Slice and Concat):
//   Split, Expand, Tile, DepthToSpace, SpaceToDepth: strided gathers over the plain input
//     (strided_copy.h): Split one per output, Expand and Tile with stride 0 along the repeated
//     dims, the depth/space moves as the reshape-transpose-reshape the spec defines them by.
//   Pad (constant, reflect, edge, wrap): a gather through one source-index map per dim, the
//     constant where the map says so.
//   Trilu: a copy that zeroes one side of a diagonal of the last two dims (k a constant or
//     known when the instance is built).
// Any element type of fixed size.
#include <algorithm>
#include <cstring>

#include "backends/cpu/op_family.h"
#include "backends/cpu/strided_copy.h"
#include "core/tensor_util.h"
#include "kernels/shape_util.h"

namespace tandem::cpu {

namespace {

// Both values typed, `x` of a plain-old-data type and `out` of the same: an op that copies values.
bool same_plain_type(Builder& b, int x, int out) {
  return b.typed(x) && b.typed(out) && pod(b.val(x).dtype) && b.val(out).dtype == b.val(x).dtype;
}

// Split: output k is the slice of the input along `axis` that starts where output k-1 ends, its
// size the output's inferred one (the split sizes, attribute or input, or equal parts).
class SplitSpec final : public OpSpec {
 public:
  Status prepare(Builder& b, const Step& step) const override {
    const std::string label = step.node->label();
    const int x = step.inputs[0];
    if (!b.typed(x) || !pod(b.val(x).dtype)) return unsupported(label + " shape/dtype");
    const Shape xs = b.val(x).shape;
    const int64_t r = static_cast<int64_t>(xs.size());
    int64_t axis = step.node->attr_int("axis", 0);
    if (axis < 0) axis += r;
    if (axis < 0 || axis >= r) return unsupported(label + " axis");
    int64_t total = 0;
    for (int out : step.outputs) {
      if (out < 0 || !b.typed(out) || b.val(out).dtype != b.val(x).dtype) return unsupported(label + " output shape/dtype");
      Shape os = b.val(out).shape;
      if (os.size() != xs.size() || shape_numel(os) == 0) return unsupported(label + " output shape");
      total += os[axis];
      os[axis] = xs[axis];
      if (os != xs) return unsupported(label + " output shape differs from the input off the axis");
    }
    if (total != xs[axis]) return unsupported(label + " split sizes do not add up to the axis");
    TANDEM_ASSIGN_OR_RETURN(int px, b.require(x, Layout::plain));
    const std::vector<int64_t> st = strides_of(xs);
    int64_t at = 0;
    for (int out : step.outputs) {
      const Shape os = b.val(out).shape;
      b.define(out, Layout::plain);
      TANDEM_RETURN_IF_ERROR(add_gather(b, px, out, os, st, at * st[axis], label));
      at += os[axis];
    }
    return Status::ok();
  }
};

// Expand and Tile: the output's inferred shape, read from the input with stride 0 along the
// dims it repeats (Expand: the broadcast ones; Tile: each dim d as [repeats, d]).
class RepeatSpec final : public OpSpec {
 public:
  Status prepare(Builder& b, const Step& step) const override {
    const std::string label = step.node->label();
    const int x = step.inputs[0], out = step.outputs[0];
    if (!same_plain_type(b, x, out)) return unsupported(label + " shape/dtype");
    const Shape xs = b.val(x).shape, os = b.val(out).shape;
    if (shape_numel(os) == 0 || xs.size() > os.size()) return unsupported(label + " shapes");
    const std::vector<int64_t> st = strides_of(xs);
    Shape dims;
    std::vector<int64_t> strides;
    const size_t lead = os.size() - xs.size();
    for (size_t i = 0; i < os.size(); ++i) {
      const int64_t d = i < lead ? 1 : xs[i - lead], s = i < lead ? 0 : st[i - lead];
      if (step.node->op_type == "Expand") {
        if (d != os[i] && d != 1) return unsupported(label + " input does not broadcast to the output");
        dims.push_back(os[i]);
        strides.push_back(d == os[i] ? s : 0);
      } else {
        if (d == 0 || os[i] % d != 0 || lead != 0) return unsupported(label + " output is not a whole tiling");
        dims.insert(dims.end(), {os[i] / d, d});
        strides.insert(strides.end(), {0, s});
      }
    }
    TANDEM_ASSIGN_OR_RETURN(int px, b.require(x, Layout::plain));
    b.define(out, Layout::plain);
    return add_gather(b, px, out, dims, strides, 0, label);
  }
};

// DepthToSpace (DCR and CRD) and SpaceToDepth on [N, C, H, W]: the six-dim views the spec
// reshapes to, transposed, as one gather.
class DepthSpaceSpec final : public OpSpec {
 public:
  Status prepare(Builder& b, const Step& step) const override {
    const Node& n = *step.node;
    const std::string label = n.label();
    const int x = step.inputs[0], out = step.outputs[0];
    if (!b.typed(x) || !b.typed(out) || !pod(b.val(x).dtype)) return unsupported(label + " shape/dtype");
    const Shape xs = b.val(x).shape;
    const int64_t bs = n.attr_int("blocksize", 0);
    if (xs.size() != 4 || bs < 1 || shape_numel(xs) == 0) return unsupported(label + " input or blocksize");
    const int64_t N = xs[0], C = xs[1], H = xs[2], W = xs[3];
    Shape dims;
    std::vector<int64_t> strides;
    if (n.op_type == "DepthToSpace") {
      if (C % (bs * bs) != 0) return unsupported(label + " channels");
      const int64_t c = C / (bs * bs);
      // Output [N, c, H, bs, W, bs] read from DCR's view [N, bs, bs, c, H, W] or CRD's
      // [N, c, bs, bs, H, W].
      const bool crd = n.attr_string("mode", "DCR") == "CRD";
      const std::vector<int64_t> v = strides_of(crd ? Shape{N, c, bs, bs, H, W} : Shape{N, bs, bs, c, H, W});
      dims = {N, c, H, bs, W, bs};
      strides = crd ? std::vector<int64_t>{v[0], v[1], v[4], v[2], v[5], v[3]}
                    : std::vector<int64_t>{v[0], v[3], v[4], v[1], v[5], v[2]};
    } else {
      if (H % bs != 0 || W % bs != 0) return unsupported(label + " spatial size");
      // Output [N, bs, bs, C, H/bs, W/bs] read from the view [N, C, H/bs, bs, W/bs, bs].
      const std::vector<int64_t> v = strides_of(Shape{N, C, H / bs, bs, W / bs, bs});
      dims = {N, bs, bs, C, H / bs, W / bs};
      strides = {v[0], v[3], v[5], v[1], v[2], v[4]};
    }
    if (shape_numel(dims) != shape_numel(b.val(out).shape)) return unsupported(label + " output size");
    TANDEM_ASSIGN_OR_RETURN(int px, b.require(x, Layout::plain));
    b.define(out, Layout::plain);
    return add_gather(b, px, out, dims, strides, 0, label);
  }
};

// Pad: output element (i0, ..., ir) is input (map[0][i0], ..., map[r][ir]), or the constant
// where any map holds -1. Rows of the last dim copy their in-range run whole.
class PadKernel final : public Kernel {
 public:
  int src = -1, dst = -1;
  size_t es = 4;
  Shape out;
  std::vector<int64_t> src_strides;
  std::vector<std::vector<int64_t>> maps;  // per dim, per output index: the input index or -1
  int64_t run_begin = 0, run_end = 0;      // last dim: outputs whose map is contiguous
  std::vector<uint8_t> fill;               // the constant, es bytes

  Status run(RunCtx& ctx, KernelState*) const override {
    const auto* s = static_cast<const uint8_t*>(ctx.ptr[src]);
    auto* d = static_cast<uint8_t*>(ctx.ptr[dst]);
    const size_t r = out.size();
    const int64_t inner = out[r - 1], row_bytes = inner * static_cast<int64_t>(es);
    const int64_t rows = shape_numel(out) / inner;
    const int threads = rows * row_bytes < (1 << 16) ? 1 : ctx.threads;
    const std::vector<int64_t>& last = maps[r - 1];
    parallel_range(threads, rows, 1, [&](int64_t b, int64_t e) {
      for (int64_t row = b; row < e; ++row) {
        uint8_t* dp = d + row * row_bytes;
        int64_t rem = row, off = 0;
        bool constant = false;
        for (size_t k = r - 1; k-- > 0;) {
          const int64_t m = maps[k][static_cast<size_t>(rem % out[k])];
          rem /= out[k];
          if (m < 0) constant = true;
          else off += m * src_strides[k];
        }
        for (int64_t j = 0; j < inner; ++j) {
          if (j == run_begin && run_end > run_begin && !constant) {
            std::memcpy(dp + j * static_cast<int64_t>(es), s + (off + last[static_cast<size_t>(j)] * src_strides[r - 1]) * static_cast<int64_t>(es),
                        static_cast<size_t>((run_end - run_begin) * static_cast<int64_t>(es)));
            j = run_end - 1;
            continue;
          }
          const int64_t m = last[static_cast<size_t>(j)];
          if (constant || m < 0) std::memcpy(dp + j * static_cast<int64_t>(es), fill.data(), es);
          else std::memcpy(dp + j * static_cast<int64_t>(es), s + (off + m * src_strides[r - 1]) * static_cast<int64_t>(es), es);
        }
      }
    });
    return Status::ok();
  }
};

class PadSpec final : public OpSpec {
 public:
  Status prepare(Builder& b, const Step& step) const override {
    const Node& n = *step.node;
    const std::string label = n.label();
    const int x = step.inputs[0], out = step.outputs[0];
    if (!same_plain_type(b, x, out)) return unsupported(label + " shape/dtype");
    const Shape xs = b.val(x).shape, os = b.val(out).shape;
    const int64_t r = static_cast<int64_t>(xs.size());
    const std::string mode = n.attr_string("mode", "constant");
    if (mode != "constant" && mode != "reflect" && mode != "edge" && mode != "wrap") return unsupported(label + " mode");
    auto known_ints = [&](size_t i, std::vector<int64_t>* v) {
      if (i >= step.inputs.size() || step.inputs[i] < 0) return false;
      const Tensor* t = b.known(step.inputs[i]);
      if (!t || !is_integer_type(t->dtype())) return false;
      *v = to_int64_vector(*t);
      return true;
    };
    std::vector<int64_t> pads, axes;
    auto k = std::make_unique<PadKernel>();
    k->es = elem_size(b.val(x).dtype);
    k->fill.assign(k->es, 0);
    if (n.opset < 11) {
      pads = n.attr_ints(n.has_attr("pads") ? "pads" : "paddings");
      const float value = n.attr_float("value", 0.0f);
      // The float attribute, for float32 data (bit for bit, -0 included); other types take 0.
      if (b.val(x).dtype == DataType::float32) std::memcpy(k->fill.data(), &value, sizeof value);
      else if (value != 0.0f) return unsupported(label + " constant value");
    } else {
      if (!known_ints(1, &pads)) return unsupported(label + " pads not known when the plan is built");
      if (step.inputs.size() > 2 && step.inputs[2] >= 0) {
        const Tensor* cv = b.known(step.inputs[2]);
        if (!cv || cv->dtype() != b.val(x).dtype || cv->numel() > 1) return unsupported(label + " constant_value");
        if (cv->numel() == 1) std::memcpy(k->fill.data(), cv->raw_data(), k->es);
      }
      if (step.inputs.size() > 3 && step.inputs[3] >= 0 && !known_ints(3, &axes))
        return unsupported(label + " axes not known when the plan is built");
    }
    if (axes.empty())
      for (int64_t i = 0; i < r; ++i) axes.push_back(i);
    if (r == 0 || pads.size() != 2 * axes.size() || shape_numel(os) == 0) return unsupported(label + " pads");
    std::vector<int64_t> before(static_cast<size_t>(r), 0);
    for (size_t i = 0; i < axes.size(); ++i) {
      const int64_t a = axes[i] < 0 ? axes[i] + r : axes[i];
      if (a < 0 || a >= r) return unsupported(label + " axes");
      before[static_cast<size_t>(a)] = pads[i];
    }
    for (int64_t d = 0; d < r; ++d) {
      const int64_t dim = xs[static_cast<size_t>(d)];
      if (dim == 0) return unsupported(label + " empty input");
      std::vector<int64_t> map(static_cast<size_t>(os[static_cast<size_t>(d)]));
      for (int64_t i = 0; i < os[static_cast<size_t>(d)]; ++i) {
        const int64_t at = i - before[static_cast<size_t>(d)];
        map[static_cast<size_t>(i)] = at >= 0 && at < dim ? at : mode == "constant" ? -1 : kernel_util::pad_source_index(at, dim, mode);
      }
      k->maps.push_back(std::move(map));
    }
    // The last dim's in-range run: output indices whose input indices count up from 0 or more.
    const std::vector<int64_t>& last = k->maps.back();
    for (int64_t j = 0; j < static_cast<int64_t>(last.size()); ++j) {
      if (last[static_cast<size_t>(j)] < 0 || j - before.back() != last[static_cast<size_t>(j)]) continue;
      if (k->run_end == k->run_begin) k->run_begin = j;
      k->run_end = j + 1;
    }
    TANDEM_ASSIGN_OR_RETURN(k->src, b.require(x, Layout::plain));
    b.define(out, Layout::plain);
    k->dst = out;
    k->out = os;
    k->src_strides = strides_of(xs);
    k->label = label;
    k->reads = {k->src};
    k->writes = {out};
    b.add_work(static_cast<double>(shape_numel(os)));
    b.add_kernel(std::move(k));
    return Status::ok();
  }
};

// Trilu: batches of [rows, cols] matrices copied with the elements off the kept side of
// diagonal k zeroed (upper keeps j - i >= k, lower j - i <= k).
class TriluKernel final : public Kernel {
 public:
  int in = -1, out = -1;
  int64_t batches = 1, rows = 1, cols = 1, k = 0, elem = 4;
  bool upper = true;

  Status run(RunCtx& ctx, KernelState*) const override {
    const auto* src = static_cast<const uint8_t*>(ctx.ptr[in]);
    auto* dst = static_cast<uint8_t*>(ctx.ptr[out]);
    const int threads = batches * rows * cols * elem < (1 << 16) ? 1 : ctx.threads;
    parallel_range(threads, batches * rows, 1, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t i = r % rows;
        // Kept columns: [max(0, i + k), cols) for upper, [0, min(cols, i + k + 1)) for lower.
        const int64_t lo = upper ? std::clamp<int64_t>(i + k, 0, cols) : 0;
        const int64_t hi = upper ? cols : std::clamp<int64_t>(i + k + 1, 0, cols);
        uint8_t* d = dst + r * cols * elem;
        const uint8_t* s = src + r * cols * elem;
        std::memset(d, 0, static_cast<size_t>(lo * elem));
        if (hi > lo) std::memcpy(d + lo * elem, s + lo * elem, static_cast<size_t>((hi - lo) * elem));
        std::memset(d + hi * elem, 0, static_cast<size_t>((cols - hi) * elem));
      }
    });
    return Status::ok();
  }
};

class TriluSpec final : public OpSpec {
 public:
  Status prepare(Builder& b, const Step& step) const override {
    const std::string label = step.node->label();
    const int x = step.inputs[0], out = step.outputs[0];
    if (!same_plain_type(b, x, out)) return unsupported(label + " shape/dtype");
    const Shape xs = b.val(x).shape;
    if (xs.size() < 2 || b.val(out).shape != xs || shape_numel(xs) == 0) return unsupported(label + " shape");
    auto kn = std::make_unique<TriluKernel>();
    if (step.inputs.size() > 1 && step.inputs[1] >= 0) {
      const Tensor* k = b.known(step.inputs[1]);
      if (!k || k->numel() != 1 || (k->dtype() != DataType::int64 && k->dtype() != DataType::int32))
        return unsupported(label + " k is not one integer");
      kn->k = to_int64_vector(*k)[0];
    }
    kn->upper = step.node->attr_int("upper", 1) != 0;
    kn->rows = xs[xs.size() - 2];
    kn->cols = xs.back();
    kn->batches = shape_numel(xs) / (kn->rows * kn->cols);
    kn->elem = static_cast<int64_t>(elem_size(b.val(x).dtype));
    TANDEM_ASSIGN_OR_RETURN(kn->in, b.require(x, Layout::plain));
    b.define(out, Layout::plain);
    kn->out = out;
    kn->label = label;
    kn->reads = {kn->in};
    kn->writes = {out};
    b.add_work(static_cast<double>(shape_numel(xs)));
    b.add_kernel(std::move(kn));
    return Status::ok();
  }
};

Status supports_data_input(const Node& n) {
  if (n.inputs.empty() || n.inputs[0].empty()) return unsupported(n.label() + " no data input");
  return Status::ok();
}

Result<std::unique_ptr<OpSpec>> make_split(FusionContext&, const Step&) {
  return std::unique_ptr<OpSpec>(std::make_unique<SplitSpec>());
}
Result<std::unique_ptr<OpSpec>> make_repeat(FusionContext&, const Step&) {
  return std::unique_ptr<OpSpec>(std::make_unique<RepeatSpec>());
}
Result<std::unique_ptr<OpSpec>> make_pad(FusionContext&, const Step&) {
  return std::unique_ptr<OpSpec>(std::make_unique<PadSpec>());
}
Result<std::unique_ptr<OpSpec>> make_trilu(FusionContext&, const Step&) {
  return std::unique_ptr<OpSpec>(std::make_unique<TriluSpec>());  // k is keyed (compile.cpp)
}
Result<std::unique_ptr<OpSpec>> make_depth_space(FusionContext&, const Step&) {
  return std::unique_ptr<OpSpec>(std::make_unique<DepthSpaceSpec>());
}

}  // namespace

void register_shape_copy_ops(OpTable& t) {
  t.add("Split", &supports_data_input, &make_split);
  t.add("Expand", &supports_data_input, &make_repeat);
  t.add("Tile", &supports_data_input, &make_repeat);
  t.add("DepthToSpace", &supports_data_input, &make_depth_space);
  t.add("SpaceToDepth", &supports_data_input, &make_depth_space);
  t.add("Pad", &supports_data_input, &make_pad);
  t.add("Trilu", &supports_data_input, &make_trilu);
}

}  // namespace tandem::cpu
