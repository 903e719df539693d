// resize.h: what the Resize family (resize.cpp) shares with the elementwise kernel, which reads
// a nearest Resize's output straight from its input (ew_kernel.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "backends/cpu/builder.h"
#include "graph/graph.h"
#include "tandem/status.h"

namespace tandem::cpu {

// A nearest Resize (or Upsample) of a 4-D value over its two spatial dims: output pixel (h, w)
// of every image and channel is input pixel (rows[h], cols[w]), by the rules the Resize kernels
// and the reference kernel share (kernels/resize_coordinates.h).
struct NearestResize {
  Shape in, out;                  // [N, C, H, W]
  std::vector<int64_t> rows, cols;  // out[2] and out[3] source indices
};

// The tables of Resize node `n` (inputs as instance value ids, output `out`) for this instance;
// unsupported when it is not a nearest resize the cpu backend runs, or its scales are unknown.
Result<NearestResize> nearest_resize(Builder& b, const Node& n, const std::vector<int>& inputs, int out);

}  // namespace tandem::cpu
