// normalization.cpp: BatchNormalization (inference) on the cpu backend.
// After a Conv it is folded into the weights at compile time (conv.cpp); standalone it becomes
// the elementwise program x * s + t with per-channel constants s = gamma / sqrt(var + eps) and
// t = beta - mean * s (computed in double), fused with the elementwise ops that follow.
#include <cmath>

#include "backends/cpu/cpu_ops.h"

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

}  // namespace

void register_normalization_ops(OpTable& t) { t.add("BatchNormalization", &supports_bn, &make_bn); }

}  // namespace tandem::cpu
