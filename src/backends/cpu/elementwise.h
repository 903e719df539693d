// elementwise.h: the ONNX elementwise ops of the cpu backend as programs (ew_program.h):
// translating nodes (elementwise.cpp, activations in activation.cpp) and the specs that run them.
#pragma once

#include <memory>
#include <vector>

#include "backends/cpu/builder.h"
#include "backends/cpu/compiled_graph.h"
#include "backends/cpu/ew_program.h"

namespace tandem::cpu {

// The activation op of node `n` (Relu, HardSigmoid, ...), or false.
bool activation_op(const Node& n, EwOp* op);
// Appends node `n` (inputs as compile value ids) to `p`. `acc_input` is the input slot holding
// the accumulator, or -1 to start the program with a load. False when not expressible.
bool node_to_ew(const FusionContext& f, const Node& n, const std::vector<int>& inputs, int acc_input, EwProgram* p);
// True when every value read or written by the step's original nodes is float32, but for the
// values in `internal` (compile value ids the step never materializes).
bool all_float32(Builder& b, const Step& step, const std::vector<int>& internal = {});
// A spec evaluating `p` (operands: compile value ids; ops[0] is a load) into the step's output.
// `internal`: values between the step's original nodes that need not be float32 (the 8-bit
// value of a QuantizeLinear -> DequantizeLinear round trip, Ew::fake_quant_*).
std::unique_ptr<OpSpec> make_program_spec(EwProgram p, std::vector<int> internal = {});
// When `reader` is a program step that only applies unary ops to `value` (its load): appends
// those ops to `p`, and the reader's internal values (see make_program_spec) to `internal`, and
// returns true.
bool append_unary_program(const Step& reader, int value, EwProgram* p, std::vector<int>* internal);
// Spec for one elementwise node (null when the node is not expressible).
Result<std::unique_ptr<OpSpec>> make_ew_spec(FusionContext& f, const Step& step);

}  // namespace tandem::cpu
