// strided_copy.h: the cpu backend's strided gather, which the data-movement ops (shape.cpp,
// shape_copies.cpp) build on: a plain, contiguous output read from its source with one stride per
// output dim (elements; 0 repeats the source along that dim) from a start offset.
#pragma once

#include <string>
#include <vector>

#include "backends/cpu/builder.h"

namespace tandem::cpu {

// Adds a kernel that fills `out` (already defined, plain; `dims` elements, row-major) with
// src[offset + sum_i index_i * strides[i]]. Size-1 dims are dropped and contiguous ones merged;
// more than 8 dims left after that is `unsupported`. Runs in parallel over rows when large.
Status add_gather(Builder& b, int src, int out, Shape dims, std::vector<int64_t> strides, int64_t offset,
                  const std::string& label);

}  // namespace tandem::cpu
