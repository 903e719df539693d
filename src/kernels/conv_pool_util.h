// conv_pool_util.h: what the reference conv and pool kernels share beyond the window geometry
// (graph/window_geometry.h, which also serves shape inference and the backends): enumerating
// the input taps of one output window and checking output sizes.
//
// All functions are inline (the header is included by conv.cpp and pool.cpp only).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "graph/window_geometry.h"
#include "kernels/kernel.h"
#include "tandem/status.h"
#include "tandem/tensor.h"

namespace tandem::conv_pool {

// The window itself (pads, output sizes, auto_pad) is graph/window_geometry.h's WindowGeometry.
using Window = WindowGeometry;

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
