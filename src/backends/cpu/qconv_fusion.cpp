// qconv_fusion.cpp: what a quantized convolution step absorbs at compile (qconv_spec.h) and
// the registration of QLinearConv and ConvInteger: ConvInteger's Cast to float32, the
// elementwise ops after it (post-ops of its primitive), and a closing QuantizeLinear or
// DynamicQuantizeLinear; QLinearConv's chain (requant_chain.h).
#include "backends/cpu/int8.h"
#include "backends/cpu/op_family.h"
#include "backends/cpu/qconv_spec.h"
#include "graph/window_geometry.h"

namespace tandem::cpu {

bool QConvSpec::absorb_float_tail(FusionContext& f, const Step& reader, int acc_input) {
  const Node& n = *reader.node;
  if (requantized || dynamic || !feature_enabled("QCHAIN") || !canonical_domain(n.domain).empty()) return false;
  // A DynamicQuantizeLinear of the float result (TANDEM_CPU_QDYNAMIC=0 at compile: not absorbed). Its
  // input stays a value of the graph, which only this step now writes (`float_value`).
  if (to_float && n.op_type == "DynamicQuantizeLinear") {
    if (acc_input != 0 || reader.originals.size() != 1 || !feature_enabled_now("QDYNAMIC")) return false;
    dynamic = true;
    float_value = reader.inputs[0];
    return true;
  }
  if (to_float && n.op_type == "QuantizeLinear") {
    DataType type;
    if (acc_input != 0 || reader.originals.size() != 1 || n.attr_int("block_size", 0) != 0 ||
        n.attr_int("saturate", 1) != 1 || !per_tensor_params(f, reader, &z_scale, &z_zero_point, &type))
      return false;
    requantized = true;
    return true;
  }
  if (!to_float) {
    if (n.op_type != "Cast" || acc_input != 0 || reader.originals.size() != 1 ||
        n.attr_int("to", 0) != static_cast<int64_t>(DataType::float32))
      return false;
    to_float = true;
    return true;
  }
  EwProgram p = post;
  if (!node_to_ew(f, n, reader.inputs, acc_input, &p)) return false;
  for (size_t i = post.ops.size(); i < p.ops.size(); ++i) {
    const EwOp& op = p.ops[i];
    if (!post_op_translatable(op)) return false;
    const bool runtime = op.operand >= 0 && !f.constant(p.operands[static_cast<size_t>(op.operand)]);
    if (runtime && !(i == 0 && op.code == Ew::mul)) return false;
  }
  post = std::move(p);
  return true;
}


namespace {

Status supports_qconv(const Node& n) {
  if (!read_auto_pad(n)) return unsupported(n.label() + " auto_pad '" + n.attr_string("auto_pad", "NOTSET") + "'");
  const size_t w = n.op_type == "QLinearConv" ? 3 : 1;
  if (n.inputs.size() <= w || n.inputs[0].empty() || n.inputs[w].empty())
    return unsupported(n.label() + " missing input or weight");
  if (n.op_type == "QLinearConv")
    for (size_t i : {1, 2, 4, 6})
      if (n.inputs.size() <= i || n.inputs[i].empty()) return unsupported(n.label() + " missing input " + std::to_string(i));
  return Status::ok();
}

Result<std::unique_ptr<OpSpec>> make_qconv(FusionContext&, const Step& st) {
  auto s = std::make_unique<QConvSpec>();
  s->qlinear = st.node->op_type == "QLinearConv";
  s->node_inputs = st.inputs.size();
  return std::unique_ptr<OpSpec>(std::move(s));
}

}  // namespace

std::unique_ptr<OpSpec> make_conv_integer_to_float(const Step& step, EwProgram post) {
  auto s = std::make_unique<QConvSpec>();
  s->node_inputs = step.inputs.size();
  s->to_float = true;
  s->post = std::move(post);
  return s;
}

void register_qconv_ops(OpTable& t) {
  t.add("QLinearConv", &supports_qconv, &make_qconv);
  t.add("ConvInteger", &supports_qconv, &make_qconv);
}

}  // namespace tandem::cpu
