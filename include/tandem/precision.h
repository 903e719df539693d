// precision.h: the floating-point precision a backend may compute in.
#pragma once

#include <string_view>

#include "tandem/status.h"

namespace tandem {

// The lowest floating-point precision a backend may compute in. fp32 is exact float32
// arithmetic (the default). bf16 and fp16 let a backend run its convolutions and matrix
// products with bfloat16 or float16 operands (accumulating in float32) where the machine has
// native support; a backend that cannot honour the requested precision natively answers
// `unsupported` at compile rather than emulating it slowly. Parity sampling measures the drift
// against the float32 reference with a budget that follows the precision.
//
// int8 asks for 8-bit integer products on a float32 model: the engine (and OnnxModel::compile)
// first rewrites the model with dynamic quantization (tandem/quantize.h, QuantizeFormat::dynamic,
// per-channel int8 symmetric weights quantized once at prepare, activations quantized on every
// call by DynamicQuantizeLinear) and hands that graph to a backend that computes the integer
// products natively (the cpu backend). Ops the rewrite leaves alone run in float32. The
// reference backend refuses int8: it stays the float32 ground truth parity is judged by.
enum class Precision { fp32, fp16, bf16, int8 };

std::string_view precision_name(Precision p);  // "fp32", "fp16", "bf16", "int8"
// Parses the names above; invalid_argument otherwise.
Result<Precision> parse_precision(std::string_view text);

}  // namespace tandem
