// requant_chain.cpp: absorbing DequantizeLinear -> elementwise -> QuantizeLinear after a
// quantized product (requant_chain.h).
#include "backends/cpu/requant_chain.h"

#include <algorithm>
#include <cmath>

#include "backends/cpu/dnnl_kernel.h"
#include "backends/cpu/elementwise.h"
#include "backends/cpu/ew_post_ops.h"
#include "backends/cpu/int8.h"
#include "backends/cpu/runtime_env.h"

namespace tandem::cpu {

bool per_tensor_params_any_width(const FusionContext& f, const Step& s, float* scale, int32_t* zp, DataType* zp_type) {
  if (s.inputs.size() != 3 || s.outputs.size() != 1) return false;
  const Tensor *st = f.constant(s.inputs[1]), *zt = f.constant(s.inputs[2]);
  if (!st || !zt || st->dtype() != DataType::float32 || st->numel() != 1 || zt->numel() != 1) return false;
  *scale = st->data<float>()[0];
  if (!(*scale > 0.0f) || !std::isfinite(*scale)) return false;
  switch (zt->dtype()) {
    case DataType::uint8: *zp = zt->data<uint8_t>()[0]; break;
    case DataType::int8: *zp = zt->data<int8_t>()[0]; break;
    case DataType::uint16: *zp = zt->data<uint16_t>()[0]; break;
    case DataType::int16: *zp = zt->data<int16_t>()[0]; break;
    default: return false;
  }
  *zp_type = zt->dtype();
  return true;
}

bool per_tensor_params(const FusionContext& f, const Step& s, float* scale, int32_t* zp, DataType* zp_type) {
  return per_tensor_params_any_width(f, s, scale, zp, zp_type) && is_8bit(*zp_type);
}

namespace {

bool plain_node(const Node& n, const char* op) {
  return n.op_type == op && canonical_domain(n.domain).empty() && n.attr_int("block_size", 0) == 0 &&
         n.attr_int("saturate", 1) == 1;
}

}  // namespace

bool RequantChain::absorb(FusionContext& f, int y_zero_point_v, const Step& reader, int acc_input) {
  if (requantized || (acc_input != 0 && !dequantized) || !feature_enabled("QCHAIN")) return false;
  const Node& n = *reader.node;
  if (!dequantized) {
    if (reader.originals.size() != 1 || !plain_node(n, "DequantizeLinear")) return false;
    const Tensor* yz = f.constant(y_zero_point_v);
    if (!yz || yz->numel() != 1 || !is_8bit(yz->dtype())) return false;
    DataType type;
    if (!per_tensor_params(f, reader, &dq_scale, &dq_zero_point, &type) || type != yz->dtype()) return false;
    y_type = yz->dtype();
    y_zero_point = y_type == DataType::uint8 ? yz->data<uint8_t>()[0] : yz->data<int8_t>()[0];
    dequantized = true;
    return true;
  }
  if (plain_node(n, "QuantizeLinear")) {
    DataType type;
    if (acc_input != 0 || reader.originals.size() != 1 || !per_tensor_params(f, reader, &z_scale, &z_zero_point, &type)) return false;
    requantized = true;
    return true;
  }
  // Elementwise ops whose other operands are constants and which oneDNN takes as post-ops (a
  // reader fused from a pattern, such as HardSwish, is offered before it absorbs its own
  // readers, so its node is the whole step).
  for (size_t k = 0; k < reader.inputs.size(); ++k)
    if (static_cast<int>(k) != acc_input && (reader.inputs[k] < 0 || !f.constant(reader.inputs[k]))) return false;
  EwProgram p = post;
  if (!node_to_ew(f, n, reader.inputs, acc_input, &p)) return false;
  for (size_t i = post.ops.size(); i < p.ops.size(); ++i)
    if (!post_op_translatable(p.ops[i])) return false;
  post = std::move(p);
  return true;
}

EwProgram RequantChain::program() const {
  EwProgram p;
  p.operands = post.operands;
  const float lo = y_type == DataType::uint8 ? 0.0f : -128.0f, hi = y_type == DataType::uint8 ? 255.0f : 127.0f;
  p.ops.push_back(EwOp{Ew::round, -1, 0, 0});
  p.ops.push_back(EwOp{Ew::clip, -1, lo - static_cast<float>(y_zero_point), hi - static_cast<float>(y_zero_point)});
  if (y_zero_point != dq_zero_point)
    p.ops.push_back(EwOp{Ew::add, -1, static_cast<float>(y_zero_point - dq_zero_point), 0});
  p.ops.push_back(EwOp{Ew::mul, -1, dq_scale, 0});
  p.ops.insert(p.ops.end(), post.ops.begin(), post.ops.end());
  if (requantized) p.ops.push_back(EwOp{Ew::div, -1, z_scale, 0});
  return p;
}

EwProgram RequantChain::fallback_program() const {
  EwProgram p = program();
  if (requantized) {
    p.ops.push_back(EwOp{Ew::round, -1, 0, 0});
    if (z_zero_point != 0) p.ops.push_back(EwOp{Ew::add, -1, static_cast<float>(z_zero_point), 0});
  }
  return p;
}

namespace {

// `p` with every operand replaced by its value as an immediate; false unless each operand is
// a float32 scalar constant.
bool with_immediates(const std::function<const Tensor*(int)>& constant, EwProgram* p) {
  for (EwOp& op : p->ops) {
    if (op.operand < 0) continue;
    const Tensor* t = constant(p->operands[static_cast<size_t>(op.operand)]);
    if (!t || t->dtype() != DataType::float32 || t->numel() != 1) return false;
    op.a = t->data<float>()[0];
    op.operand = -1;
  }
  p->operands.clear();
  return true;
}

// The program's results for every output byte of the product (of type y_type), through the
// elementwise kernel the unfused path runs: the program starts from the product's value
// relative to y_zero_point.
void evaluate_all(const EwProgram& p, DataType y_type, int32_t y_zero_point, float values[256]) {
  for (int byte = 0; byte < 256; ++byte) {
    const int32_t q = y_type == DataType::int8 ? static_cast<int8_t>(byte) : byte;
    values[byte] = static_cast<float>(q - y_zero_point);
  }
  ew_apply_pointwise(p, values, 256);
}

}  // namespace

bool RequantChain::byte_table(const std::function<const Tensor*(int)>& constant, DataType z_type,
                              uint8_t table[256]) const {
  if (!dequantized || !requantized || !is_8bit(z_type)) return false;
  EwProgram p = fallback_program();
  if (!with_immediates(constant, &p)) return false;
  const bool z_s8 = z_type == DataType::int8;
  const float lo = z_s8 ? -128.0f : 0.0f, hi = z_s8 ? 127.0f : 255.0f;
  float values[256];
  evaluate_all(p, y_type, y_zero_point, values);
  for (int byte = 0; byte < 256; ++byte) {
    const float v = values[byte];
    const float z = std::isnan(v) ? 0.0f : std::min(hi, std::max(lo, v));
    table[byte] = z_s8 ? static_cast<uint8_t>(static_cast<int8_t>(z)) : static_cast<uint8_t>(z);
  }
  return true;
}

bool RequantChain::float_table(const std::function<const Tensor*(int)>& constant, float table[256]) const {
  if (!dequantized || requantized) return false;
  EwProgram p = program();
  if (!with_immediates(constant, &p)) return false;
  evaluate_all(p, y_type, y_zero_point, table);
  return true;
}

Status add_tail_unfused(Builder& b, const FloatTail& tail, int v, int out, const std::string& label) {
  TANDEM_ASSIGN_OR_RETURN(v, b.require(v, Layout::plain));
  if (!tail.quantized) return add_elementwise(b, tail.unfused, v, out, label + " (float tail)");
  const int f = b.add_temp(DataType::float32, b.val(v).shape, b.val(v).layout);
  TANDEM_RETURN_IF_ERROR(add_elementwise(b, tail.unfused, v, f, label + " (requantized tail)"));
  b.define(out, b.val(f).layout);
  return add_reorder(b, f, out, label + " (requantized tail)");
}

FloatTail RequantChain::tail() const {
  FloatTail t;
  t.active = true;
  t.fused = program();
  t.unfused = fallback_program();
  t.quantized = requantized;
  t.zero_point = z_zero_point;
  return t;
}

FloatTail float_tail(const EwProgram& post, bool requantized, float z_scale, int32_t z_zero_point) {
  FloatTail t;
  t.active = true;
  t.fused = post;
  if (requantized) {
    // From v to z_q: v / z_scale, rounded (half to even) and offset by the zero point when
    // converted (as QuantizeLinear does; the unfused fallback spells the rounding out).
    t.fused.ops.push_back(EwOp{Ew::div, -1, z_scale, 0});
    t.quantized = true;
    t.zero_point = z_zero_point;
  }
  t.unfused = t.fused;
  if (requantized) {
    t.unfused.ops.push_back(EwOp{Ew::round, -1, 0, 0});
    if (z_zero_point != 0) t.unfused.ops.push_back(EwOp{Ew::add, -1, static_cast<float>(z_zero_point), 0});
  }
  return t;
}

}  // namespace tandem::cpu
