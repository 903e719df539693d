// shape_util.h: helpers shared by the reference kernels that build tensors from shapes and
// index arithmetic (shape.cpp, generator.cpp): allocation caps, reading integer operands,
// axis normalization and element gathers. Every helper that can fail returns a Status whose
// message names the node through the KernelContext.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/kernel.h"
#include "core/tensor_util.h"

namespace tandem::kernel_util {

// Sanity caps on the size of any tensor these kernels allocate: a malformed shape must give an
// error, not an allocation failure.
constexpr int64_t kMaxElements = int64_t{1} << 31;
constexpr int64_t kMaxBytes = int64_t{1} << 33;

// "[2,3,4]"
std::string shape_string(const std::vector<int64_t>& v);
// Checks that `shape` has no negative dim and that a `dtype` tensor of it stays below the caps.
Status check_alloc(const KernelContext& ctx, const Shape& shape, DataType dtype);
// The tensor in slot i, or an error naming it when it is missing.
Result<Tensor> required_input(const KernelContext& ctx, size_t i, const char* name);
// Reads a 1-D (or scalar) integer tensor (shape, axes, pads, ...) as int64 values.
Result<std::vector<int64_t>> read_ints(const KernelContext& ctx, const Tensor& t, const char* name);
// Reads a one-element integer tensor (a scalar or a 1-element 1-D tensor).
Result<int64_t> read_int_scalar(const KernelContext& ctx, const Tensor& t, const char* name);
// Normalizes a list of axes against `rank`; rejects out-of-range and repeated axes.
Result<std::vector<int64_t>> normalize_axes(const KernelContext& ctx, const std::vector<int64_t>& axes, int64_t rank);
Result<int64_t> normalize_one_axis(const KernelContext& ctx, int64_t axis, int64_t rank);
// Same data, new shape; a deep copy so that outputs never alias inputs.
Tensor reshape_copy(const Tensor& in, Shape shape);
// Pad: maps a padded coordinate `i` (may be outside [0, d)) back into an axis of `d` > 0
// elements for a non-constant `mode` ("edge", "wrap", or "reflect": mirrored around the edges
// without repeating them, numpy's "reflect"). The cpu backend's Pad uses it too.
int64_t pad_source_index(int64_t i, int64_t d, const std::string& mode);

// Builds a tensor of `out_shape` whose element at each output coordinate is in[src(coord)].
// `src` returns an input linear index, or -1 for "use `fill`" (Pad's constant value).
// `fill` must be a tensor of in.dtype() with at least one element, or undefined (fill with zero).
template <class SrcFn>
Tensor gather_by_coord(const Tensor& in, const Shape& out_shape, SrcFn src, const Tensor& fill = Tensor()) {
  Tensor out(in.dtype(), out_shape);
  const int64_t n = out.numel();
  if (n == 0) return out;
  visit_any(in.dtype(), [&]<class T>() {
    const T* p = in.data<T>();
    T* o = out.data<T>();
    T fill_value = fill.defined() && fill.numel() > 0 ? fill.data<T>()[0] : T{};
    std::vector<int64_t> coord(out_shape.size(), 0);
    for (int64_t i = 0; i < n; ++i) {
      int64_t s = src(coord);
      o[i] = s >= 0 ? p[s] : fill_value;
      for (int64_t d = static_cast<int64_t>(coord.size()) - 1; d >= 0; --d) {
        if (++coord[d] < out_shape[d]) break;
        coord[d] = 0;
      }
    }
  });
  return out;
}

}  // namespace tandem::kernel_util
