// resize.h: what the Resize family (resize.cpp, and its 8-bit linear kernels in resize_bytes.cpp)
// shares with the steps that read a nearest Resize's output straight from its input (the
// elementwise kernel, ew_kernel.cpp; the channel Concats, concat_lanes.cpp and qconcat.cpp) and
// with the QDQ fusion (qdq_fusion.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backends/cpu/builder.h"
#include "graph/graph.h"
#include "kernels/resize_coordinates.h"
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

// The float kernel's tables along one axis: output index o reads input indices i0[o] and i1[o]
// with weight w1[o] on i1 (linear: the coordinate clamped into the axis, i1 = i0 + 1 clamped);
// nearest reads i0 only.
struct ResizeAxis {
  std::vector<int64_t> i0, i1;
  std::vector<float> w1;
};

// --- 8-bit linear Resize (resize_bytes.cpp) ---
// Pixels of `lanes` bytes: plain [N, C, H, W] is N * C images of 1 lane, channels-last N
// images of C lanes; each image `ih` x `iw` in, `oh` x `ow` out.
struct ByteImages {
  int64_t images = 0, lanes = 1, ih = 0, iw = 0, oh = 0, ow = 0;
};
// The taps of each output row or column (resize::linear_taps).
struct LinearTaps {
  resize::Tap tap[2];
  int count = 0;
};
// One 8-bit value's type and per-tensor quantization: real = (q - zero_point) * scale.
struct ByteQuant {
  bool is_signed = false;
  float scale = 1.0f;
  int32_t zero_point = 0;
};

// Resize's own arithmetic on 8-bit data (a QOperator model's uint8 Resize in mode linear): each
// output is the reference kernel's sum over its taps in double (rows' taps outer, columns'
// inner, each weight the product of the two), converted as the reference converts it
// (truncated toward zero): the same bytes. Reads `x`, defines `out` in x's layout.
Status add_truncating_linear_resize(Builder& b, const ByteImages& g, std::vector<LinearTaps> rows,
                                    std::vector<LinearTaps> cols, bool is_signed, int x, int out,
                                    const std::string& label);

// DequantizeLinear -> Resize (linear) -> QuantizeLinear on 8-bit data (a QDQ model's): the input
// rows an output row reads are dequantized as DequantizeLinear does, blended with the float
// kernel's tables and formula (ResizeAxis), and the row quantized as QuantizeLinear does: the
// bytes the three steps give apart, without their float32 tensors.
Status add_requantizing_linear_resize(Builder& b, const ByteImages& g, ResizeAxis rows, ResizeAxis cols, ByteQuant in,
                                      ByteQuant out_quant, int x, int out, const std::string& label);

// The op spec of a Resize step that qdq_fusion rewrote from DequantizeLinear -> Resize (linear)
// -> QuantizeLinear: inputs X (8-bit), roi, scales, sizes (as Resize), then x_scale,
// x_zero_point, y_scale, y_zero_point (per-tensor constants).
std::unique_ptr<OpSpec> make_qdq_linear_resize();

// Copies `n` consecutive elements of the virtual upsampled tensor (contiguous in the walk's
// layout) from element `at` on into `dst`, a source pixel's lanes at a time (vectorized for the
// running CPU's ISA).
void gather_copy(const NearestGather& g, const void* src, int64_t at, int64_t n, float* dst);

}  // namespace tandem::cpu
