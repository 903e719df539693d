// requant_chain.h: what a quantized product (QLinearConv) absorbs after its quantized output,
// so that quantized networks whose activations run in float between two quantized layers
// (QDQ and QOperator models) compute each layer in one oneDNN primitive:
//
//   product -> y_q -> DequantizeLinear -> elementwise ops with constant operands
//                                             -> [QuantizeLinear -> z_q]
//
// The fused step computes, from the product's requantized value v = acc * x_scale *
// w_scale / y_scale (before rounding), the float program
//
//   round(v); clip to the y type's range minus y_zero_point; + (y_zero_point - dq_zero_point);
//   * dq_scale; the absorbed elementwise ops; [/ z_scale]
//
// and, with a closing QuantizeLinear, writes z_q = saturate(round(.) + z_zero_point) (oneDNN's
// destination zero point and conversion), otherwise the float result. Each step is the one the
// separate nodes take, in float32: the intermediate y_q is rounded and saturated exactly as
// the product would have written it. The one difference from running the nodes one by one:
// oneDNN adds the destination zero point before the final rounding, so a value within a float32
// rounding of a half-integer may land one unit apart (docs/cpu-backend.md, Exactness).
//
// Conditions (checked while absorbing, at compile): the product's y_zero_point and the
// DequantizeLinear's and QuantizeLinear's scales and zero points are per-tensor constants; the
// elementwise ops read only constants besides the chain (scalars or per-channel), and each
// translates into a oneDNN post-op. When oneDNN declines the fused primitive at instance
// build, the product writes v in float32 and the program runs in the backend's elementwise
// kernel, followed by a saturating conversion.
//
// Thread-safety: built and used on the compiling thread; immutable afterwards.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "backends/cpu/builder.h"
#include "backends/cpu/compiled_graph.h"
#include "backends/cpu/ew_program.h"
#include "tandem/tensor.h"

namespace tandem::cpu {

// The scale and zero point of QuantizeLinear / DequantizeLinear step `s` when both are per-tensor
// constants (a finite scale > 0, an 8-bit zero point, whose type goes to *zp_type).
bool per_tensor_params(const FusionContext& f, const Step& s, float* scale, int32_t* zp, DataType* zp_type);
// The same with a 16-bit zero point allowed too (a QuantizeLinear -> DequantizeLinear round trip
// of 16-bit activations, which stays float).
bool per_tensor_params_any_width(const FusionContext& f, const Step& s, float* scale, int32_t* zp, DataType* zp_type);

// What runs on a quantized product's float value v after it, where readers were absorbed
// (QLinearConv's chain: v = acc * x_scale * w_scale / y_scale before rounding; ConvInteger's
// tail: v = acc).
struct FloatTail {
  bool active = false;
  EwProgram fused;    // as post-ops, from v
  EwProgram unfused;  // in the elementwise kernel, from v
  bool quantized = false;  // the result is converted to the output's 8-bit type
  int32_t zero_point = 0;  // added by the conversion (fused: oneDNN's destination zero point)
};

struct RequantChain {
  bool dequantized = false;  // a DequantizeLinear of the product's output was absorbed
  DataType y_type = DataType::uint8;  // the product's own output type
  int32_t y_zero_point = 0;
  float dq_scale = 1;
  int32_t dq_zero_point = 0;
  EwProgram post;  // the absorbed float elementwise ops (operands: compile value ids)
  bool requantized = false;  // a closing QuantizeLinear was absorbed
  float z_scale = 1;
  int32_t z_zero_point = 0;

  // The OpSpec::absorb protocol for a product whose own y_zero_point is value `y_zero_point_v`.
  bool absorb(FusionContext& f, int y_zero_point_v, const Step& reader, int acc_input);
  // The float program described above (ending before the final rounding); operands as `post`.
  EwProgram program() const;
  // The program that also rounds and adds z_zero_point (for the unfused fallback, which
  // converts its result with saturation).
  EwProgram fallback_program() const;
  // The chain as the tail after the product (active).
  FloatTail tail() const;
  // A chain that ends quantized and whose ops read only scalars is a function of the product's
  // 8-bit output y_q alone. Then the product can write y_q as a plain QLinearConv would, and a
  // byte table maps it to z_q: exact (each entry is the unfused program's result for that
  // byte, saturated into `z_type`), and far cheaper than a long chain of post-ops.
  // `constant` returns an operand's known tensor (or null). Fills table[byte] (the byte as
  // stored) and returns true; false when the chain does not qualify.
  bool byte_table(const std::function<const Tensor*(int)>& constant, DataType z_type, uint8_t table[256]) const;
  // The same for a chain that ends in float: table[byte] is the chain's float32 result.
  bool float_table(const std::function<const Tensor*(int)>& constant, float table[256]) const;
};

// ConvInteger's float tail: the Cast's float ops `post`, then, when `requantized` by a closing
// QuantizeLinear (z_scale, z_zero_point), the division by its scale, with the rounding and the
// zero point spelled out in the unfused program.
FloatTail float_tail(const EwProgram& post, bool requantized, float z_scale, int32_t z_zero_point);

// The unfused tail: `v` (float32) through the program in the elementwise kernel, then, for a
// quantized output, a saturating conversion into `out`.
Status add_tail_unfused(Builder& b, const FloatTail& tail, int v, int out, const std::string& label);

}  // namespace tandem::cpu
