// fp16_lowering.h: float16 segments computed in float32 (fp16_lowering.cpp).
#pragma once

#include <map>
#include <string>

#include "graph/graph.h"
#include "tandem/status.h"

namespace tandem::cpu {

// The cpu backend computes float16 models in float32. This rewrites the plan's own copy of a
// segment graph (`types`: inference's element types of its values) so that every inner value is
// float32: float16 initializers and Constant/ConstantOfShape values are widened once, here at
// compile; Casts to float16 become Casts to float32; float16 graph inputs are read through an entry
// Cast to float32 and float16 graph outputs written through an exit Cast to float16 (inputs and
// outputs keep their dtype at the API); Casts that became float32 -> float32 are dropped.
// Intermediate float16 roundings are not reproduced (results are at least as accurate as float16
// arithmetic). Returns the number of values widened (0: the graph had no float16 and is unchanged).
Result<int> widen_half_precision(Graph& g, const std::map<std::string, TypeInfo>& types);

}  // namespace tandem::cpu
