// fusion.h: the rewriting and fusion of a compiled graph's steps (fusion.cpp): decomposed
// patterns become one op (HardSwish, x*Sigmoid(x)), and specs absorb their single reader
// (Conv absorbs BatchNormalization, per-channel affine ops and activations, ...). A fused step
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
// read by nothing else, become one elementwise step on the float values (qdq_fusion.cpp);
// returns how many.
int fuse_qdq_round_trips(CompiledGraph& g);

}  // namespace tandem::cpu
