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
enum class Precision { fp32, fp16, bf16 };

std::string_view precision_name(Precision p);  // "fp32", "fp16", "bf16"
// Parses the names above; invalid_argument otherwise.
Result<Precision> parse_precision(std::string_view text);

}  // namespace tandem
