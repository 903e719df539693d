// normalization.cpp: BatchNormalization (inference), LayerNormalization, InstanceNormalization
// and GroupNormalization on the cpu backend.
//
// BatchNormalization: after a Conv it is folded into the weights at compile time (conv.cpp);
// standalone it becomes the elementwise program x * s + t with per-channel constants
// s = gamma / sqrt(var + eps) and t = beta - mean * s (computed in double), fused with the
// elementwise ops that follow.
//
// LayerNormalization (opset 17; also the step fusion.cpp makes of the decomposed
// ReduceMean/Sub/Pow/.../Div pattern exporters emit): X (plain layout, float32) is seen as
// [rows, len] with len = prod(shape[axis:]); each row is normalized with its mean and
// population variance, computed in two passes (mean, then the sum of squared deviations) with
// 16 float partial sums per pass combined in double, then scaled by Scale and shifted by B.
// Scale and B may be constants or runtime values whose shape, with leading 1s dropped, is a
// suffix of the normalized dims (the full normalized shape, the last dim, or a scalar): element
// i of a row then uses parameter i % numel. Rows run in parallel. The optional Mean and
// InvStdDev outputs and a stash_type other than float are declined in supports() (placement
// gives such nodes to the reference backend); other shapes or dtypes make prepare() return
// `unsupported`, and the step then replays its original nodes with the reference kernels.
//
// InstanceNormalization: the same row normalization with rows = N * C and len the spatial
// size, each row scaled and shifted by its channel's scale and B. GroupNormalization: rows =
// N * num_groups, each a group's channels; scaled and shifted per group (opset 18) or per
// channel (opset 21, an extra pass over the row while it is in cache).
#include <algorithm>
#include <cmath>

#include "backends/cpu/op_family.h"

namespace tandem::cpu {

namespace {

class BatchNormSpec final : public OpSpec {
 public:
  std::vector<float> scale, shift;  // per channel
  EwProgram post;                   // absorbed ops (operands: compile ids)

  Status prepare(Builder& b, const Step& step) const override {
    const std::string label = step.node->label();
    if (!all_float32(b, step)) return unsupported(label + " not float32");
    const int x = step.inputs[0];
    if (!b.typed(x)) return unsupported(label + " shape unknown");
    const Shape xs = b.val(x).shape;
    const int64_t C = static_cast<int64_t>(scale.size());
    if (xs.size() < 2 || xs[1] != C) return unsupported(label + " channel count");
    Shape cs(xs.size() - 1, 1);
    cs[0] = C;
    Tensor s = Tensor::from_vector<float>(cs, scale), t = Tensor::from_vector<float>(cs, shift);
    EwProgram p;
    p.operands = {x, b.add_constant(s), b.add_constant(t)};
    p.ops = {EwOp{Ew::load, 0, 0, 0}, EwOp{Ew::mul, 1, 0, 0}, EwOp{Ew::add, 2, 0, 0}};
    const int shift_by = static_cast<int>(p.operands.size());
    for (int v : post.operands) p.operands.push_back(v);
    for (EwOp op : post.ops) {
      if (op.operand >= 0) op.operand += shift_by;
      p.ops.push_back(op);
    }
    return add_elementwise(b, p, -1, step.outputs[0], label);
  }

  bool absorb(FusionContext& f, Step& self, const Step& reader, int acc_input) override {
    EwProgram p = post;
    if (!node_to_ew(f, *reader.node, reader.inputs, acc_input, &p)) return false;
    post = std::move(p);
    return true;
  }
};

Status supports_bn(const Node& n) {
  if (n.inputs.size() < 5) return unsupported(n.label() + " needs 5 inputs");
  for (size_t i = 1; i < n.outputs.size(); ++i)
    if (!n.outputs[i].empty()) return unsupported(n.label() + " training outputs");
  if (n.attr_int("training_mode", 0) != 0) return unsupported(n.label() + " training mode");
  return Status::ok();
}

Result<std::unique_ptr<OpSpec>> make_bn(FusionContext& f, const Step& st) {
  const Tensor* g = f.constant(st.inputs[1]);
  const Tensor* be = f.constant(st.inputs[2]);
  const Tensor* m = f.constant(st.inputs[3]);
  const Tensor* v = f.constant(st.inputs[4]);
  if (!g || !be || !m || !v) return std::unique_ptr<OpSpec>();  // runtime statistics: generic
  const int64_t C = g->numel();
  for (const Tensor* t : {g, be, m, v})
    if (t->dtype() != DataType::float32 || t->numel() != C) return std::unique_ptr<OpSpec>();
  auto s = std::make_unique<BatchNormSpec>();
  const double eps = st.node->attr_float("epsilon", 1e-5f);
  s->scale.resize(C);
  s->shift.resize(C);
  for (int64_t c = 0; c < C; ++c) {
    double inv = 1.0 / std::sqrt(static_cast<double>(v->data<float>()[c]) + eps);
    double sc = g->data<float>()[c] * inv;
    s->scale[c] = static_cast<float>(sc);
    s->shift[c] = static_cast<float>(be->data<float>()[c] - m->data<float>()[c] * sc);
  }
  return std::unique_ptr<OpSpec>(std::move(s));
}

// --- LayerNormalization ------------------------------------------------------------------------

// Normalizes `rows` rows of `len` floats. `scale` has `sn` elements and `bias` (or null) `bn`;
// both divide len (element i uses index i % n). Accumulation: 16 float lanes per pass (so the
// compiler vectorizes without reassociating), lanes and tail combined in double.
TANDEM_ISA_BODY void layer_norm_rows_body(const float* __restrict in, float* __restrict out, int64_t rows, int64_t len,
                                          float eps, const float* __restrict scale, int64_t sn,
                                          const float* __restrict bias, int64_t bn) {
  const double inv_len = 1.0 / static_cast<double>(len);
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = in + r * len;
    float* y = out + r * len;
    float part[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= len; i += 16)
      for (int l = 0; l < 16; ++l) part[l] += x[i + l];
    double acc = 0;
    for (int l = 0; l < 16; ++l) acc += part[l];
    for (; i < len; ++i) acc += x[i];
    const float mean = static_cast<float>(acc * inv_len);
    float sq[16] = {0};
    i = 0;
    for (; i + 16 <= len; i += 16)
      for (int l = 0; l < 16; ++l) {
        const float d = x[i + l] - mean;
        sq[l] += d * d;
      }
    double var = 0;
    for (int l = 0; l < 16; ++l) var += sq[l];
    for (; i < len; ++i) {
      const double d = static_cast<double>(x[i]) - mean;
      var += d * d;
    }
    const float inv = static_cast<float>(1.0 / std::sqrt(var * inv_len + static_cast<double>(eps)));
    if (sn == len && (!bias || bn == len)) {  // the common case: one pass
      if (bias)
        for (int64_t k = 0; k < len; ++k) y[k] = (x[k] - mean) * inv * scale[k] + bias[k];
      else
        for (int64_t k = 0; k < len; ++k) y[k] = (x[k] - mean) * inv * scale[k];
      continue;
    }
    for (int64_t k = 0; k < len; ++k) y[k] = (x[k] - mean) * inv;
    for (int64_t c = 0; c < len; c += sn)
      for (int64_t k = 0; k < sn; ++k) y[c + k] *= scale[k];
    if (bias)
      for (int64_t c = 0; c < len; c += bn)
        for (int64_t k = 0; k < bn; ++k) y[c + k] += bias[k];
  }
}
TANDEM_ISA_DISPATCH(layer_norm_rows,
                    (const float* __restrict in, float* __restrict out, int64_t rows, int64_t len, float eps,
                     const float* __restrict scale, int64_t sn, const float* __restrict bias, int64_t bn),
                    (in, out, rows, len, eps, scale, sn, bias, bn))

// Rows of `len` normalized with their mean and variance, then scaled and shifted: by parameters
// of period scale_n / bias_n along the row (LayerNormalization), or, with `channels` set, by
// row r's channel's scalars scale[r % channels] and bias[r % channels] (InstanceNormalization,
// and GroupNormalization before opset 21 with a group for a channel), or, with
// `group_channels` set too, by the parameters of the group_channels channels of row r's group,
// each over its len / group_channels elements (GroupNormalization from opset 21).
class LayerNormKernel final : public Kernel {
 public:
  int x = -1, scale = -1, bias = -1, out = -1;
  int64_t rows = 0, len = 0, scale_n = 1, bias_n = 1;
  int64_t channels = 0, group_channels = 0;
  float eps = 1e-5f;
  int threads = 1;

  Status run(RunCtx& ctx, KernelState*) const override {
    const float* in = static_cast<const float*>(ctx.ptr[x]);
    float* o = static_cast<float*>(ctx.ptr[out]);
    const float* s = static_cast<const float*>(ctx.ptr[scale]);
    const float* bb = bias >= 0 ? static_cast<const float*>(ctx.ptr[bias]) : nullptr;
    // Rows are independent; aim for rows of at least ~4K elements per task.
    const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, len));
    parallel_range(std::min(threads, ctx.threads), rows, grain, [&](int64_t b, int64_t e) {
      if (channels == 0) {
        layer_norm_rows(in + b * len, o + b * len, e - b, len, eps, s, scale_n, bb, bias_n);
        return;
      }
      if (group_channels == 0) {
        for (int64_t r = b; r < e; ++r)
          layer_norm_rows(in + r * len, o + r * len, 1, len, eps, s + r % channels, 1, bb + r % channels, 1);
        return;
      }
      static const float kOne = 1.0f, kZero = 0.0f;
      const int64_t spatial = len / group_channels;
      for (int64_t r = b; r < e; ++r) {
        float* y = o + r * len;
        layer_norm_rows(in + r * len, y, 1, len, eps, &kOne, 1, &kZero, 1);
        const int64_t c0 = (r % channels) * group_channels;
        for (int64_t j = 0; j < group_channels; ++j) {
          const float sc = s[c0 + j], sh = bb[c0 + j];
          for (int64_t i = j * spatial; i < (j + 1) * spatial; ++i) y[i] = y[i] * sc + sh;
        }
      }
    });
    return Status::ok();
  }
};

// InstanceNormalization and GroupNormalization: rows = N * groups of (C / groups) * spatial
// elements (InstanceNormalization: a group per channel); scale and bias one per group
// (InstanceNormalization, GroupNormalization at opset 18) or per channel (GroupNormalization
// from opset 21).
class GroupedNormSpec final : public OpSpec {
 public:
  Status prepare(Builder& b, const Step& step) const override {
    const Node& n = *step.node;
    const std::string label = n.label();
    if (step.inputs.size() < 3) return unsupported(label + " needs X, scale and bias");
    const int x = step.inputs[0], scale = step.inputs[1], bias = step.inputs[2], out = step.outputs[0];
    for (int v : {x, scale, bias, out})
      if (v < 0 || !b.typed(v) || b.val(v).dtype != DataType::float32) return unsupported(label + " not float32");
    const Shape xs = b.val(x).shape;
    if (xs.size() < 2 || shape_numel(xs) == 0 || b.val(out).shape != xs) return unsupported(label + " shapes");
    const bool instance = n.op_type == "InstanceNormalization";
    const int64_t groups = instance ? xs[1] : n.attr_int("num_groups", 0);
    if (groups <= 0 || xs[1] % groups != 0) return unsupported(label + " num_groups does not divide the channels");
    const bool per_channel = !instance && n.opset >= 21;
    const int64_t params = per_channel ? xs[1] : groups;
    if (shape_numel(b.val(scale).shape) != params || shape_numel(b.val(bias).shape) != params)
      return unsupported(label + " scale and bias sizes");
    auto k = std::make_unique<LayerNormKernel>();
    k->channels = groups;
    k->group_channels = per_channel ? xs[1] / groups : 0;
    k->rows = xs[0] * groups;
    k->len = shape_numel(xs) / k->rows;
    k->eps = n.attr_float("epsilon", 1e-5f);
    TANDEM_ASSIGN_OR_RETURN(k->x, b.require(x, Layout::plain));
    TANDEM_ASSIGN_OR_RETURN(k->scale, b.require(scale, Layout::plain));
    TANDEM_ASSIGN_OR_RETURN(k->bias, b.require(bias, Layout::plain));
    k->out = out;
    k->threads = threads_for(b, 4.0 * static_cast<double>(shape_numel(xs)));
    k->label = label;
    b.define(out, Layout::plain);
    k->reads = {k->x, k->scale, k->bias};
    k->writes = {out};
    b.add_kernel(std::move(k));
    return Status::ok();
  }
};

// The period of a Scale/B operand of shape `ps` over rows of X (shape `xs`) normalized from
// `axis`: its element count when `ps` without leading 1s is a suffix of xs[axis:], else 0.
int64_t param_period(const Shape& ps, const Shape& xs, int64_t axis) {
  if (ps.size() > xs.size()) return 0;
  size_t k = 0;
  while (k < ps.size() && ps[k] == 1) ++k;
  const size_t m = ps.size() - k;
  if (static_cast<int64_t>(m) > static_cast<int64_t>(xs.size()) - axis) return 0;
  int64_t n = 1;
  for (size_t j = 0; j < m; ++j) {
    if (ps[k + j] != xs[xs.size() - m + j]) return 0;
    n *= ps[k + j];
  }
  return n;
}

class LayerNormSpec final : public OpSpec {
 public:
  Status prepare(Builder& b, const Step& step) const override {
    const Node& n = *step.node;
    const std::string label = n.label();
    const int x = step.inputs.empty() ? -1 : step.inputs[0];
    const int scale = step.inputs.size() > 1 ? step.inputs[1] : -1;
    const int bias = step.inputs.size() > 2 ? step.inputs[2] : -1;
    const int out = step.outputs.empty() ? -1 : step.outputs[0];
    if (x < 0 || scale < 0 || out < 0) return unsupported(label + " needs X, Scale and Y");
    for (size_t i = 1; i < step.outputs.size(); ++i)
      if (step.outputs[i] >= 0) return unsupported(label + " Mean/InvStdDev outputs");
    for (int v : {x, scale, bias, out}) {
      if (v < 0) continue;
      if (!b.typed(v)) return unsupported(label + " shape unknown");
      if (b.val(v).dtype != DataType::float32) return unsupported(label + " not float32");
    }
    const Shape xs = b.val(x).shape;
    const int64_t rank = static_cast<int64_t>(xs.size());
    if (rank == 0 || shape_numel(xs) == 0) return unsupported(label + " scalar or empty");
    if (b.val(out).shape != xs) return unsupported(label + " output shape differs from X");
    int64_t axis = n.attr_int("axis", -1);
    if (axis < 0) axis += rank;
    if (axis < 0 || axis >= rank) return unsupported(label + " axis");
    auto k = std::make_unique<LayerNormKernel>();
    k->rows = 1;
    for (int64_t i = 0; i < axis; ++i) k->rows *= xs[i];
    k->len = shape_numel(xs) / k->rows;
    k->scale_n = param_period(b.val(scale).shape, xs, axis);
    if (k->scale_n == 0) return unsupported(label + " Scale shape " + shape_to_string(b.val(scale).shape));
    if (bias >= 0) {
      k->bias_n = param_period(b.val(bias).shape, xs, axis);
      if (k->bias_n == 0) return unsupported(label + " B shape " + shape_to_string(b.val(bias).shape));
    }
    k->eps = n.attr_float("epsilon", 1e-5f);
    TANDEM_ASSIGN_OR_RETURN(k->x, b.require(x, Layout::plain));
    TANDEM_ASSIGN_OR_RETURN(k->scale, b.require(scale, Layout::plain));
    if (bias >= 0) {
      TANDEM_ASSIGN_OR_RETURN(k->bias, b.require(bias, Layout::plain));
    }
    k->out = out;
    k->threads = threads_for(b, 4.0 * static_cast<double>(shape_numel(xs)));
    k->label = label;
    b.define(out, Layout::plain);
    k->reads = {k->x, k->scale};
    if (k->bias >= 0) k->reads.push_back(k->bias);
    k->writes = {out};
    b.add_kernel(std::move(k));
    return Status::ok();
  }
};

Status supports_ln(const Node& n) {
  if (n.inputs.size() < 2 || n.inputs[0].empty() || n.inputs[1].empty())
    return unsupported(n.label() + " needs X and Scale");
  for (size_t i = 1; i < n.outputs.size(); ++i)
    if (!n.outputs[i].empty()) return unsupported(n.label() + " Mean/InvStdDev outputs");
  if (n.attr_int("stash_type", 1) != 1) return unsupported(n.label() + " stash_type other than float");
  return Status::ok();
}

Result<std::unique_ptr<OpSpec>> make_ln(FusionContext&, const Step&) {
  return std::unique_ptr<OpSpec>(std::make_unique<LayerNormSpec>());
}

Status supports_in(const Node& n) {
  if (n.inputs.size() < 3 || n.inputs[0].empty() || n.inputs[1].empty() || n.inputs[2].empty())
    return unsupported(n.label() + " needs input, scale and B");
  return Status::ok();
}

Result<std::unique_ptr<OpSpec>> make_grouped(FusionContext&, const Step&) {
  return std::unique_ptr<OpSpec>(std::make_unique<GroupedNormSpec>());
}

}  // namespace

void register_normalization_ops(OpTable& t) {
  t.add("BatchNormalization", &supports_bn, &make_bn);
  t.add("LayerNormalization", &supports_ln, &make_ln);
  t.add("InstanceNormalization", &supports_in, &make_grouped);
  t.add("GroupNormalization", &supports_in, &make_grouped);
}

}  // namespace tandem::cpu
