#include "kernels/shape_util.h"

#include <algorithm>

namespace tandem::kernel_util {

std::string shape_string(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(v[i]);
  }
  return s + "]";
}

// Checks that `shape` has no negative dim and that a `dtype` tensor of it is not absurdly big.
Status check_alloc(const KernelContext& ctx, const Shape& shape, DataType dtype) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return ctx.invalid("output shape " + shape_string(shape) + " has a negative dimension");
    if (d != 0 && n > kMaxElements / d) return ctx.invalid("output shape " + shape_string(shape) + " is too large");
    n *= d;
  }
  int64_t elem = std::max<int64_t>(1, static_cast<int64_t>(dtype_size(dtype)));
  if (dtype == DataType::string) elem = static_cast<int64_t>(sizeof(std::string));
  if (n > kMaxBytes / elem) return ctx.invalid("output shape " + shape_string(shape) + " is too large");
  return Status::ok();
}

// The tensor in slot i, or an error naming it when it is missing.
Result<Tensor> required_input(const KernelContext& ctx, size_t i, const char* name) {
  const Tensor& t = ctx.input(i);
  if (!t.defined()) return ctx.invalid(std::string("missing required input '") + name + "'");
  return t;
}

// Reads an integer tensor (shape, axes, pads, ...) as int64 values.
Result<std::vector<int64_t>> read_ints(const KernelContext& ctx, const Tensor& t, const char* name) {
  if (!is_integer_type(t.dtype()))
    return ctx.invalid(std::string("input '") + name + "' must be an integer tensor, got " +
                       std::string(dtype_name(t.dtype())));
  if (t.rank() > 1) return ctx.invalid(std::string("input '") + name + "' must be 1-D, got rank " + std::to_string(t.rank()));
  return to_int64_vector(t);
}

// Reads a one-element integer tensor (a scalar or a 1-element 1-D tensor).
Result<int64_t> read_int_scalar(const KernelContext& ctx, const Tensor& t, const char* name) {
  if (!is_integer_type(t.dtype()))
    return ctx.invalid(std::string("input '") + name + "' must be an integer scalar, got " +
                       std::string(dtype_name(t.dtype())));
  if (t.numel() != 1) return ctx.invalid(std::string("input '") + name + "' must hold exactly one element");
  return to_int64_vector(t)[0];
}

// Normalizes a list of axes against `rank`; rejects out-of-range and repeated axes.
Result<std::vector<int64_t>> normalize_axes(const KernelContext& ctx, const std::vector<int64_t>& axes, int64_t rank) {
  std::vector<int64_t> out;
  std::vector<bool> seen(static_cast<size_t>(rank), false);
  for (int64_t a : axes) {
    if (a < -rank || a >= rank)
      return ctx.invalid("axis " + std::to_string(a) + " is out of range for rank " + std::to_string(rank));
    int64_t n = a < 0 ? a + rank : a;
    if (seen[n]) return ctx.invalid("axis " + std::to_string(a) + " is repeated in " + shape_string(axes));
    seen[n] = true;
    out.push_back(n);
  }
  return out;
}

Result<int64_t> normalize_one_axis(const KernelContext& ctx, int64_t axis, int64_t rank) {
  auto r = normalize_axis(axis, rank);
  if (!r.is_ok()) return ctx.invalid(r.status().message());
  return r.value();
}

// Same data, new shape; a deep copy so that outputs never alias inputs.
Tensor reshape_copy(const Tensor& in, Shape shape) { return in.clone().reshaped(std::move(shape)); }

int64_t pad_source_index(int64_t i, int64_t d, const std::string& mode) {
  if (i >= 0 && i < d) return i;
  if (mode == "edge") return i < 0 ? 0 : d - 1;
  if (mode == "wrap") return ((i % d) + d) % d;
  if (d == 1) return 0;
  const int64_t period = 2 * (d - 1);
  const int64_t m = ((i % period) + period) % period;
  return m < d ? m : period - m;
}

}  // namespace tandem::kernel_util
