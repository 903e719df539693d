// conv_pool_util.h: the sliding-window geometry shared by the reference conv and pool kernels:
// reading kernel/stride/dilation/pad attributes, resolving auto_pad, computing the output
// spatial size once, and enumerating the input taps of one output window.
//
// All functions are inline (the header is included by conv.cpp and pool.cpp only).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kernels/kernel.h"
#include "tandem/status.h"
#include "tandem/tensor.h"

namespace tandem::conv_pool {

// Attribute values beyond this are rejected, so that window arithmetic never overflows int64.
inline constexpr int64_t kMaxWindowAttr = int64_t{1} << 31;

enum class AutoPad { notset, same_upper, same_lower, valid };

// Floor / ceil division for a positive divisor, correct for negative numerators.
inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
inline int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

inline Result<AutoPad> read_auto_pad(const KernelContext& ctx) {
  const std::string s = ctx.node().attr_string("auto_pad", "NOTSET");
  if (s == "NOTSET" || s.empty()) return AutoPad::notset;
  if (s == "SAME_UPPER") return AutoPad::same_upper;
  if (s == "SAME_LOWER") return AutoPad::same_lower;
  if (s == "VALID") return AutoPad::valid;
  return ctx.invalid("auto_pad '" + s + "' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID");
}

// Reads an ints attribute that must have `n` values in [min_value, kMaxWindowAttr]; `fallback`
// fills it when absent.
inline Result<std::vector<int64_t>> read_window_attr(const KernelContext& ctx, const std::string& name,
                                                     size_t n, int64_t fallback, int64_t min_value) {
  if (!ctx.node().has_attr(name)) return std::vector<int64_t>(n, fallback);
  std::vector<int64_t> v = ctx.node().attr_ints(name);
  if (v.size() != n)
    return ctx.invalid(name + " has " + std::to_string(v.size()) + " values, expected " + std::to_string(n));
  for (int64_t x : v)
    if (x < min_value || x > kMaxWindowAttr)
      return ctx.invalid(name + " value " + std::to_string(x) + " is out of range [" + std::to_string(min_value) +
                         ", " + std::to_string(kMaxWindowAttr) + "]");
  return v;
}

// The geometry of an N-d sliding window over the spatial dims of an input.
struct Window {
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

// Reads strides, dilations, pads and auto_pad for `kernel` sliding over `in_spatial`, and
// computes the output spatial size (the formula of Conv and of the pooling ops):
//   NOTSET: out = floor_or_ceil((in + pad_begin + pad_end - extent) / stride) + 1
//   VALID:  the same with zero pads
//   SAME_*: out = ceil(in / stride), pads = (out - 1) * stride + extent - in, the odd one at the
//           end (SAME_UPPER) or at the beginning (SAME_LOWER)
// With ceil_mode, a last window that would start inside the end padding is dropped.
// `has_dilations` is false for ops without a dilations attribute (always 1).
inline Result<Window> make_window(const KernelContext& ctx, const Shape& in_spatial, std::vector<int64_t> kernel,
                                  bool ceil_mode, bool has_dilations = true) {
  const size_t r = in_spatial.size();
  Window w;
  w.in = in_spatial;
  w.kernel = std::move(kernel);
  if (w.kernel.size() != r)
    return ctx.invalid("kernel_shape has " + std::to_string(w.kernel.size()) + " values, expected " +
                       std::to_string(r));
  int64_t taps = 1;
  for (int64_t k : w.kernel) {
    if (k < 1 || k > kMaxWindowAttr) return ctx.invalid("kernel_shape value " + std::to_string(k) + " is out of range");
    taps *= k;
    if (taps > kMaxWindowAttr) return ctx.invalid("kernel_shape has more than 2^31 taps");
  }
  TANDEM_ASSIGN_OR_RETURN(w.strides, read_window_attr(ctx, "strides", r, 1, 1));
  if (has_dilations) {
    TANDEM_ASSIGN_OR_RETURN(w.dilations, read_window_attr(ctx, "dilations", r, 1, 1));
  } else {
    w.dilations.assign(r, 1);
  }
  TANDEM_ASSIGN_OR_RETURN(AutoPad auto_pad, read_auto_pad(ctx));
  TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> pads, read_window_attr(ctx, "pads", 2 * r, 0, 0));
  w.out.assign(r, 0);
  w.pad_begin.assign(r, 0);
  w.pad_end.assign(r, 0);
  for (size_t d = 0; d < r; ++d) {
    const int64_t in = w.in[d], s = w.strides[d], ext = w.extent(d);
    if (auto_pad == AutoPad::same_upper || auto_pad == AutoPad::same_lower) {
      w.out[d] = ceil_div(in, s);
      const int64_t total = std::max<int64_t>(0, (w.out[d] - 1) * s + ext - in);
      const int64_t small = total / 2, large = total - total / 2;
      w.pad_begin[d] = auto_pad == AutoPad::same_upper ? small : large;
      w.pad_end[d] = auto_pad == AutoPad::same_upper ? large : small;
      continue;
    }
    if (auto_pad == AutoPad::notset) {
      w.pad_begin[d] = pads[d];
      w.pad_end[d] = pads[d + r];
    }
    const int64_t span = in + w.pad_begin[d] + w.pad_end[d] - ext;
    if (span < 0)
      return ctx.invalid("spatial dim " + std::to_string(d) + " of size " + std::to_string(in) + " (padded " +
                         std::to_string(in + w.pad_begin[d] + w.pad_end[d]) +
                         ") is smaller than the window extent " + std::to_string(ext));
    if (ceil_mode) {
      w.out[d] = ceil_div(span, s) + 1;
      // The last window must start inside the input or the begin padding.
      if ((w.out[d] - 1) * s >= in + w.pad_begin[d]) --w.out[d];
    } else {
      w.out[d] = span / s + 1;
    }
  }
  return w;
}

// Advances `coord` through the row-major box `dims`; false after the last coordinate.
inline bool next_coord(std::vector<int64_t>& coord, const std::vector<int64_t>& dims) {
  for (size_t d = coord.size(); d-- > 0;) {
    if (++coord[d] < dims[d]) return true;
    coord[d] = 0;
  }
  return false;
}

// One kernel tap of a window that lands inside the input.
struct Tap {
  int64_t kernel_index;  // row-major index into the kernel box
  int64_t input_index;   // row-major index into the input spatial box
};

// Lists the taps of the window at output coordinate `out_coord` that fall inside the input
// (into `taps`, cleared first). Returns how many taps fall inside the padded input
// [-pad_begin, in + pad_end) (the divisor of AveragePool with count_include_pad).
inline int64_t window_taps(const Window& w, const std::vector<int64_t>& out_coord, std::vector<Tap>& taps) {
  taps.clear();
  const size_t r = w.rank();
  int64_t padded_count = 1;
  for (size_t d = 0; d < r; ++d) {
    const int64_t start = out_coord[d] * w.strides[d] - w.pad_begin[d];
    int64_t n = 0;
    for (int64_t k = 0; k < w.kernel[d]; ++k) {
      const int64_t pos = start + k * w.dilations[d];
      if (pos >= -w.pad_begin[d] && pos < w.in[d] + w.pad_end[d]) ++n;
    }
    padded_count *= n;
  }
  std::vector<int64_t> k(r, 0);
  int64_t kernel_index = 0;
  do {
    int64_t input_index = 0;
    bool inside = true;
    for (size_t d = 0; d < r && inside; ++d) {
      const int64_t pos = out_coord[d] * w.strides[d] - w.pad_begin[d] + k[d] * w.dilations[d];
      if (pos < 0 || pos >= w.in[d]) inside = false;
      input_index = input_index * w.in[d] + pos;
    }
    if (inside) taps.push_back({kernel_index, input_index});
    ++kernel_index;
  } while (next_coord(k, w.kernel));
  return padded_count;
}

// Product of dims, or an error when it overflows int64.
inline Result<int64_t> checked_numel(const KernelContext& ctx, const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return ctx.invalid("negative dimension in shape " + shape_to_string(shape));
    if (d != 0 && n > INT64_MAX / d) return ctx.invalid("shape " + shape_to_string(shape) + " is too large");
    n *= d;
  }
  return n;
}

}  // namespace tandem::conv_pool
