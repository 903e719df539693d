// qconv_spec.h: the step of a quantized convolution on the cpu backend, QLinearConv or
// ConvInteger, with what it absorbs at compile (qconv_fusion.cpp) and its instance build on
// oneDNN's int8 convolutions or the backend's own integer kernels (qconv.cpp):
//   QLinearConv  -> DequantizeLinear -> elementwise ops -> [QuantizeLinear]   (requant_chain.h)
//   ConvInteger  -> Cast -> elementwise ops -> [QuantizeLinear | DynamicQuantizeLinear]
// A ConvInteger that absorbed a DynamicQuantizeLinear writes that op's three outputs (data,
// scale, zero point) in place of the float result, which then lives only inside the step
// (qconv_dynamic.h).
//
// Thread-safety: built and used on the compiling thread; immutable afterwards.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backends/cpu/builder.h"
#include "backends/cpu/compiled_graph.h"
#include "backends/cpu/ew_program.h"
#include "backends/cpu/requant_chain.h"

namespace tandem::cpu {

class QConvSpec final : public OpSpec {
 public:
  bool qlinear = false;  // QLinearConv; otherwise ConvInteger
  size_t node_inputs = 0;  // the node's own inputs (absorbed readers append theirs)
  RequantChain chain;      // QLinearConv: DequantizeLinear -> elementwise -> [QuantizeLinear]
  // ConvInteger: a Cast to float32, then elementwise ops (dynamic quantization: the product by
  // x_scale * w_scale, a bias, an activation) with constant operands, except that the first may
  // multiply by a runtime scale (one, or one per output channel).
  bool to_float = false;
  EwProgram post;
  // ConvInteger: a closing QuantizeLinear (constant per-tensor scale and zero point) after the
  // float ops: the step writes its 8-bit output (a QDQ product without output quantization,
  // whose float ops feed the next product's quantized input).
  bool requantized = false;
  float z_scale = 1;
  int32_t z_zero_point = 0;
  // ConvInteger: a closing DynamicQuantizeLinear after the float ops (dynamically quantized
  // models): the step's outputs are its data, scale and zero point, and `float_value` (the
  // float32 value it read, no longer produced by any step) is where the float result goes.
  bool dynamic = false;
  int float_value = -1;

  Status prepare(Builder& b, const Step& step) const override;
  bool absorb(FusionContext& f, Step& self, const Step& reader, int acc_input) override {
    if (qlinear) return node_inputs > 7 && chain.absorb(f, self.inputs[7], reader, acc_input);
    return absorb_float_tail(f, reader, acc_input);
  }

 private:
  bool absorb_float_tail(FusionContext& f, const Step& reader, int acc_input);
  // The product into `out` (the step's output, or `float_value` for a dynamic one, which a
  // DynamicQuantizeLinear kernel then reads as it lies, channels-last).
  // `quantized` (dynamic steps only, else null) is set when the kernel also quantized it.
  Status prepare_product(Builder& b, const Step& step, int out, bool* quantized) const;
};

}  // namespace tandem::cpu
