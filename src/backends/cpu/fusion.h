// fusion.h: the rewriting and fusion of a compiled graph's steps (fusion.cpp): decomposed
// patterns become one op (HardSwish, x*Sigmoid(x)), and specs absorb their single reader
// (Conv absorbs BatchNormalization, per-channel affine ops and activations, ...), and readers
// absorb their single producer (an elementwise step reads a DequantizeLinear's bytes or a
// nearest Resize's source, OpSpec::absorb_producer). A fused step
// remembers the original nodes it stands for. Runs once per compile, single-threaded.
#pragma once

#include "backends/cpu/compiled_graph.h"

namespace tandem::cpu {

// Rewrites and fuses the steps of `g`.
void fuse_steps(CompiledGraph& g);

// QDQ-format products (DequantizeLinear -> Conv/MatMul with dequantized constant weights ->
// QuantizeLinear) become QLinearConv/QLinearMatMul steps (qdq_fusion.cpp); returns how many.
int fuse_qdq_products(CompiledGraph& g);

// QuantizeLinear -> DequantizeLinear pairs with the same per-tensor constants, the 8-bit value
// read by nothing else, become one elementwise step on the float values (qdq_round_trips.cpp);
// returns how many.
int fuse_qdq_round_trips(CompiledGraph& g);

// A Shape step needs only its input's shape. Where it reads a DequantizeLinear's output (in ONNX
// Runtime's QDQ format every reader of a quantized tensor reads its DequantizeLinear, the Shape
// that sizes an upsampling to the map it joins included), it is made to read the
// DequantizeLinear's input instead, of the same shape: the DequantizeLinear can then go with
// the quantized op that reads it, and no float32 tensor is made for the Shape alone
// (qdq_format.cpp; fuse_qdq_products runs it first).
void qdq_shapes_read_the_bytes(CompiledGraph& g);

// True when `n` is a QuantizeLinear or DequantizeLinear (`op`; default or com.microsoft domain)
// with its three inputs and one output, no block size, saturating.
bool plain_quant_node(const Node& n, const char* op);

// A live single-node QuantizeLinear or DequantizeLinear step (`op`, default domain, no block
// size, saturating) whose scale is a positive finite float32 constant and whose zero point is a
// uint8 or int8 constant, both per tensor: its data input (the float32 input of a
// QuantizeLinear, the 8-bit input of a DequantizeLinear) and parameters.
struct PerTensorQuant {
  int data = -1;  // value id
  float scale = 1.0f;
  int32_t zero_point = 0;
  DataType type = DataType::uint8;  // the 8-bit side's type
};
bool per_tensor_quant_step(const FusionContext& f, const Step& s, const char* op, PerTensorQuant* q);

}  // namespace tandem::cpu
