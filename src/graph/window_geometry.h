// window_geometry.h: the ONNX sliding-window rules of Conv, ConvTranspose and the pooling ops
// (MaxPool, AveragePool, LpPool), written once for shape inference, the reference kernels and
// every backend.
//
// A window slides over the spatial dims of an N x C x D1 x ... x Dk input. Per spatial dim d it
// has a kernel size k, a stride s, a dilation (extent = (k - 1) * dilation + 1) and a padding at
// the beginning and at the end. The attributes decide the padding and the output size:
//
//   Forward (Conv and the pools):
//     NOTSET:   pads as given; out = floor((in + pad_begin + pad_end - extent) / s) + 1
//     VALID:    the same with zero pads
//     SAME_*:   out = ceil(in / s); the total padding (out - 1) * s + extent - in (at least 0) is
//               split in halves, the odd element at the end (SAME_UPPER) or at the beginning
//               (SAME_LOWER)
//     ceil_mode (pools, NOTSET and VALID): out = ceil(span / s) + 1, and a last window that would
//               start inside the end padding is dropped
//   Transposed (ConvTranspose): the full output has s * (in - 1) + output_padding + extent
//     elements along a dim.
//     output_shape or SAME_*: out = output_shape, or in * s; the padding total = full - out is
//               split as for SAME (the larger half at the end for SAME_UPPER, at the beginning
//               otherwise); a negative total (out larger than full) is a negative end padding,
//               whose extra outputs hold no contribution of the input
//     NOTSET:   out = full - pad_begin - pad_end
//     VALID:    out = full, no padding
//
// Attribute values outside [minimum, kMaxWindowAttr] are rejected so that window arithmetic
// never overflows int64. Errors are invalid_argument statuses whose message starts with the
// node label ("[Conv 'stem'] strides has 3 values, expected 2"). Units: elements.
//
// Everything here is a pure function of its arguments: thread-safe, no state.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "tandem/status.h"
#include "tandem/tensor.h"

namespace tandem {

// The largest value a window attribute (kernel size, stride, dilation, pad, output size) may
// take, and the largest number of taps a kernel may have.
inline constexpr int64_t kMaxWindowAttr = int64_t{1} << 31;

enum class AutoPad : uint8_t { notset, same_upper, same_lower, valid };

// What a node's op reads besides strides, pads and auto_pad.
struct WindowOptions {
  bool has_dilations = true;  // false: the op has no dilations attribute (all 1)
  bool has_ceil_mode = false; // the pools: read ceil_mode
  bool transposed = false;    // ConvTranspose: read output_padding and output_shape
};

// The window attributes of one node, read and range-checked for `rank` spatial dims.
struct WindowAttributes {
  AutoPad auto_pad = AutoPad::notset;
  std::vector<int64_t> strides;         // rank values in [1, kMaxWindowAttr]
  std::vector<int64_t> dilations;       // rank values in [1, kMaxWindowAttr]
  std::vector<int64_t> pads;            // 2 * rank values in [0, kMaxWindowAttr]: begins, then ends
  bool ceil_mode = false;
  std::vector<int64_t> output_padding;  // rank values in [0, kMaxWindowAttr] (zeros unless transposed)
  std::vector<int64_t> output_shape;    // transposed: the requested spatial output size, or empty

  size_t rank() const { return strides.size(); }
  bool same() const { return auto_pad == AutoPad::same_upper || auto_pad == AutoPad::same_lower; }
  // The padding the attributes give explicitly (NOTSET only; 0 otherwise).
  int64_t explicit_pad_begin(size_t d) const { return auto_pad == AutoPad::notset ? pads[d] : 0; }
  int64_t explicit_pad_end(size_t d) const { return auto_pad == AutoPad::notset ? pads[d + rank()] : 0; }
  int64_t extent(size_t d, int64_t kernel) const { return (kernel - 1) * dilations[d] + 1; }
};

// The auto_pad attribute (NOTSET when absent or empty).
Result<AutoPad> read_auto_pad(const Node& node);

// An ints attribute of `n` values in [min_value, kMaxWindowAttr]; `fallback` repeated when absent.
Result<std::vector<int64_t>> read_window_ints(const Node& node, const std::string& name, size_t n, int64_t fallback,
                                              int64_t min_value);

// Reads strides, dilations, pads, auto_pad (and, per `options`, ceil_mode, output_padding and
// output_shape) for `rank` spatial dims. An output_shape of rank + 2 values (N, C included, as
// some exporters write it) keeps its spatial tail.
Result<WindowAttributes> read_window_attributes(const Node& node, size_t rank, const WindowOptions& options);

// Checks the kernel sizes: `rank` of them, each in [1, kMaxWindowAttr], with at most
// kMaxWindowAttr taps in all.
Status check_kernel_shape(const Node& node, const std::vector<int64_t>& kernel, size_t rank);

// The output size of a SAME_* window along a dim (it does not depend on the kernel).
inline int64_t same_output_size(int64_t in, int64_t stride) { return in >= 0 ? (in + stride - 1) / stride : -((-in) / stride); }

// One spatial dim of a window.
struct WindowDim {
  int64_t out = 0;        // output size
  int64_t pad_begin = 0;  // padding before the input (forward) or cropped at the start (transposed)
  int64_t pad_end = 0;    // padding after the input, or cropped at the end (negative: appended)
};

// Forward window (Conv, pools) along dim `d` for an input of size `in` and a kernel of size
// `kernel` (>= 1). Fails when the padded input is smaller than the window extent.
Result<WindowDim> window_dim(const Node& node, const WindowAttributes& a, size_t d, int64_t in, int64_t kernel);

// Transposed window (ConvTranspose) along dim `d`. Fails when explicit pads exceed the full size.
Result<WindowDim> transposed_window_dim(const Node& node, const WindowAttributes& a, size_t d, int64_t in,
                                        int64_t kernel);

// The complete geometry of a window over known spatial dims.
struct WindowGeometry {
  std::vector<int64_t> in;         // input spatial dims
  std::vector<int64_t> out;        // output spatial dims
  std::vector<int64_t> kernel;     // kernel size per dim
  std::vector<int64_t> strides;
  std::vector<int64_t> dilations;
  std::vector<int64_t> pad_begin;
  std::vector<int64_t> pad_end;

  size_t rank() const { return in.size(); }
  int64_t extent(size_t d) const { return (kernel[d] - 1) * dilations[d] + 1; }
};

// Reads the node's window attributes and computes every dim (forward, or transposed when
// options.transposed) for `in_spatial` and `kernel` (checked with check_kernel_shape).
Result<WindowGeometry> window_geometry(const Node& node, const Shape& in_spatial, const std::vector<int64_t>& kernel,
                                       const WindowOptions& options);

}  // namespace tandem
