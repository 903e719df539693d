// resize.h: what the Resize family (resize.cpp) shares with the steps that read a nearest
// Resize's output straight from its input (the elementwise kernel, ew_kernel.cpp; the channel
// Concats, concat_lanes.cpp and qconcat.cpp).
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

// A nearest Resize's source read in place of its output by the elementwise kernel: `block`
// lanes per pixel (a blocked source: the channel block; channels-last: the channels; plain: 1),
// `ih` x `iw` pixels per plane, index tables over the `oh` x `ow` output.
struct NearestGather {
  int64_t block = 1, ih = 0, iw = 0, oh = 0, ow = 0;
  std::vector<int64_t> rows, cols;
  bool bf16 = false;  // the source is held in bfloat16 (a hand-off: blocked in 16 lanes), widened
  // An 8-bit source, channels-last with `channels` per pixel whatever the walk's layout (block
  // 16 or 8: channel blocks; the channels: channels-last; 1: plain), dequantized as
  // (q - zero_point) * scale like DequantizeLinear; a block's lanes past the channels are 0.
  bool bytes = false, is_signed = false;
  int64_t channels = 0;
  float scale = 1.0f;
  int32_t zero_point = 0;
};

// Copies `n` consecutive elements of the virtual upsampled tensor (contiguous in the walk's
// layout) from element `at` on into `dst`, a source pixel's lanes at a time (vectorized for the
// running CPU's ISA).
void gather_copy(const NearestGather& g, const void* src, int64_t at, int64_t n, float* dst);

}  // namespace tandem::cpu
