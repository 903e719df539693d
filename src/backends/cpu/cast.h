// cast.h: the element types the cpu backend's Cast converts between (cast.cpp).
#pragma once

#include "tandem/tensor.h"

namespace tandem::cpu {

// The element types Cast converts between on the cpu backend (float32, float16, the int32,
// int64 and bool of shape arithmetic, and the uint8 and int8 of quantized models). supports()
// and the Cast kernel agree.
bool castable(DataType t);

}  // namespace tandem::cpu
