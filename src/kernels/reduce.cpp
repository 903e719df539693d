// Reference kernels: reduce ops (ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd,
// ReduceL1, ReduceL2, ReduceLogSum, ReduceLogSumExp, ReduceSumSquare) and the softmax family
// (Softmax, LogSoftmax, Hardmax).
//
// Reductions: the axes come from the `axes` attribute in older opsets and from the optional
// second input from opset 13 (ReduceSum) or 18 (all others); both forms are accepted whenever
// present. Empty axes reduce over every axis, unless noop_with_empty_axes is set, in which
// case the input is returned unchanged. Reducing over an empty set yields the identity of the
// reduction: 0 for sums, 1 for products, -inf (or the lowest value) for max, +inf (or the
// highest value) for min, -inf for log-sums, NaN for a float mean.
// Floating inputs accumulate in double; integer sums and products accumulate exactly with
// 64-bit wrap-around arithmetic.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/registry.h"
#include "core/tensor_util.h"

namespace tandem {
namespace {

enum class ReduceKind { sum, mean, max, min, prod, l1, l2, log_sum, log_sum_exp, sum_square };


// Offsets (in elements, relative to the first element) of every combination of coordinates
// over `dims` of a tensor with `shape`, in row-major order of those dims.
std::vector<int64_t> offsets_over(const std::vector<size_t>& dims, const Shape& shape) {
  std::vector<int64_t> strides = strides_of(shape);
  int64_t count = 1;
  for (size_t d : dims) count *= shape[d];
  std::vector<int64_t> out;
  if (count <= 0) return out;
  out.reserve(static_cast<size_t>(count));
  std::vector<int64_t> coord(dims.size(), 0);
  int64_t offset = 0;
  for (int64_t i = 0; i < count; ++i) {
    out.push_back(offset);
    for (int64_t k = static_cast<int64_t>(dims.size()) - 1; k >= 0; --k) {
      size_t d = dims[static_cast<size_t>(k)];
      coord[k]++;
      offset += strides[d];
      if (coord[k] < shape[d]) break;
      offset -= strides[d] * coord[k];
      coord[k] = 0;
    }
  }
  return out;
}

// Converts a double result to an integer type without undefined behaviour on NaN/inf/overflow.
template <class T>
T saturating_from_double(double v) {
  if constexpr (is_float_v<T> || std::is_same_v<T, bool>) {
    return from_double<T>(v);
  } else {
    if (std::isnan(v)) return T(0);
    if (v <= static_cast<double>(std::numeric_limits<T>::lowest())) return std::numeric_limits<T>::lowest();
    if (v >= static_cast<double>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
    return static_cast<T>(v);
  }
}

// Integer element as a wrap-around 64-bit value (two's complement for signed types).
template <class T>
uint64_t as_u64(T v) {
  if constexpr (std::is_signed_v<T>) return static_cast<uint64_t>(static_cast<int64_t>(v));
  else return static_cast<uint64_t>(v);
}
template <class T>
T from_u64(uint64_t v) {
  if constexpr (std::is_same_v<T, bool>) return v != 0;
  else if constexpr (std::is_signed_v<T>) return static_cast<T>(static_cast<int64_t>(v));
  else return static_cast<T>(v);
}

// Reduces the elements x[base + inner[i]] of a floating tensor, in double.
template <class T>
T reduce_floating(ReduceKind kind, const T* x, int64_t base, const std::vector<int64_t>& inner) {
  const double inf = std::numeric_limits<double>::infinity();
  const size_t n = inner.size();
  auto at = [&](size_t i) { return to_double(x[base + inner[i]]); };
  double acc = 0.0;
  switch (kind) {
    case ReduceKind::sum:
    case ReduceKind::mean:
      for (size_t i = 0; i < n; ++i) acc += at(i);
      if (kind == ReduceKind::mean) acc = n == 0 ? std::numeric_limits<double>::quiet_NaN() : acc / static_cast<double>(n);
      break;
    case ReduceKind::max:
    case ReduceKind::min: {
      bool is_max = kind == ReduceKind::max;
      acc = is_max ? -inf : inf;
      for (size_t i = 0; i < n; ++i) {
        double v = at(i);
        if (std::isnan(v)) { acc = v; break; }  // NaN propagates, like numpy
        acc = is_max ? std::max(acc, v) : std::min(acc, v);
      }
      break;
    }
    case ReduceKind::prod:
      acc = 1.0;
      for (size_t i = 0; i < n; ++i) acc *= at(i);
      break;
    case ReduceKind::l1:
      for (size_t i = 0; i < n; ++i) acc += std::fabs(at(i));
      break;
    case ReduceKind::l2:
      for (size_t i = 0; i < n; ++i) acc += at(i) * at(i);
      acc = std::sqrt(acc);
      break;
    case ReduceKind::sum_square:
      for (size_t i = 0; i < n; ++i) acc += at(i) * at(i);
      break;
    case ReduceKind::log_sum:
      for (size_t i = 0; i < n; ++i) acc += at(i);
      acc = std::log(acc);
      break;
    case ReduceKind::log_sum_exp: {
      double m = -inf;
      for (size_t i = 0; i < n; ++i) m = std::max(m, at(i));
      if (std::isinf(m)) { acc = m; break; }  // empty, all -inf, or some +inf
      for (size_t i = 0; i < n; ++i) acc += std::exp(at(i) - m);
      acc = m + std::log(acc);
      break;
    }
  }
  return from_double<T>(acc);
}

// Reduces integer (or bool) elements: exact wrap-around sums/products, double elsewhere.
template <class T>
T reduce_integer(ReduceKind kind, const T* x, int64_t base, const std::vector<int64_t>& inner) {
  const size_t n = inner.size();
  auto at = [&](size_t i) { return x[base + inner[i]]; };
  switch (kind) {
    case ReduceKind::sum: {
      uint64_t acc = 0;
      for (size_t i = 0; i < n; ++i) acc += as_u64(at(i));
      return from_u64<T>(acc);
    }
    case ReduceKind::sum_square: {
      uint64_t acc = 0;
      for (size_t i = 0; i < n; ++i) acc += as_u64(at(i)) * as_u64(at(i));
      return from_u64<T>(acc);
    }
    case ReduceKind::l1: {
      uint64_t acc = 0;
      for (size_t i = 0; i < n; ++i) {
        T v = at(i);
        uint64_t u = as_u64(v);
        if constexpr (std::is_signed_v<T>) {
          if (v < 0) u = uint64_t{0} - u;
        }
        acc += u;
      }
      return from_u64<T>(acc);
    }
    case ReduceKind::prod: {
      uint64_t acc = 1;
      for (size_t i = 0; i < n; ++i) acc *= as_u64(at(i));
      return from_u64<T>(acc);
    }
    case ReduceKind::max:
    case ReduceKind::min: {
      bool is_max = kind == ReduceKind::max;
      T acc = is_max ? std::numeric_limits<T>::lowest() : std::numeric_limits<T>::max();
      for (size_t i = 0; i < n; ++i) acc = is_max ? std::max(acc, at(i)) : std::min(acc, at(i));
      return acc;
    }
    case ReduceKind::mean: {
      if (n == 0) return T(0);
      double acc = 0.0;
      for (size_t i = 0; i < n; ++i) acc += static_cast<double>(at(i));
      return saturating_from_double<T>(acc / static_cast<double>(n));
    }
    case ReduceKind::l2:
    case ReduceKind::log_sum:
    case ReduceKind::log_sum_exp: {
      std::vector<double> as_double(n);
      for (size_t i = 0; i < n; ++i) as_double[i] = static_cast<double>(at(i));
      std::vector<int64_t> seq(n);
      for (size_t i = 0; i < n; ++i) seq[i] = static_cast<int64_t>(i);
      return saturating_from_double<T>(reduce_floating<double>(kind, as_double.data(), 0, seq));
    }
  }
  return T(0);
}

// Reads the axes of a reduce op: input 1 when present, else the `axes` attribute (empty when
// neither gives any axis).
Status read_reduce_axes(KernelContext& ctx, std::vector<int64_t>* axes) {
  axes->clear();
  if (ctx.has_input(1)) {
    const Tensor& a = ctx.input(1);
    if (a.dtype() != DataType::int64 && a.dtype() != DataType::int32)
      return ctx.invalid("axes input must be int64, got " + std::string(dtype_name(a.dtype())));
    if (a.rank() > 1) return ctx.invalid("axes input must be 1-D, got shape " + shape_to_string(a.shape()));
    *axes = to_int64_vector(a);
  } else if (ctx.node().has_attr("axes")) {
    *axes = ctx.node().attr_ints("axes");
  }
  return Status::ok();
}

Status reduce_kernel(KernelContext& ctx, ReduceKind kind) {
  if (!ctx.has_input(0)) return ctx.invalid("missing required input 'data'");
  const Tensor& x = ctx.input(0);
  const int64_t rank = static_cast<int64_t>(x.rank());
  bool keepdims = ctx.node().attr_int("keepdims", 1) != 0;
  bool noop_with_empty_axes = ctx.node().attr_int("noop_with_empty_axes", 0) != 0;

  std::vector<int64_t> axes;
  TANDEM_RETURN_IF_ERROR(read_reduce_axes(ctx, &axes));

  if (axes.empty() && noop_with_empty_axes) {
    // The output is the input, unreduced.
    if (!visit_numeric(x.dtype(), [&]<class T>() {}))
      return ctx.invalid("unsupported dtype " + std::string(dtype_name(x.dtype())));
    ctx.set_output(0, x.clone());
    return Status::ok();
  }

  std::vector<bool> reduced(static_cast<size_t>(rank), axes.empty());
  for (int64_t a : axes) {
    auto norm = normalize_axis(a, rank);
    if (!norm.is_ok()) return ctx.invalid("axes: " + norm.status().message());
    reduced[static_cast<size_t>(*norm)] = true;
  }

  std::vector<size_t> kept_dims, reduced_dims;
  Shape out_shape;
  for (int64_t d = 0; d < rank; ++d) {
    if (reduced[d]) {
      reduced_dims.push_back(static_cast<size_t>(d));
      if (keepdims) out_shape.push_back(1);
    } else {
      kept_dims.push_back(static_cast<size_t>(d));
      out_shape.push_back(x.dim(d));
    }
  }

  // An empty input may still declare a huge output (shape [0, 2^40, 2^40] reduced over axis 0).
  int64_t out_numel = 1;
  for (int64_t d : out_shape)
    if (__builtin_mul_overflow(out_numel, d, &out_numel))
      return ctx.invalid("output shape " + shape_to_string(out_shape) + " is too large");

  // base[j]: input offset of output j's first element; inner: offsets of its reduced elements.
  std::vector<int64_t> base = offsets_over(kept_dims, x.shape());
  std::vector<int64_t> inner = offsets_over(reduced_dims, x.shape());

  Tensor out(x.dtype(), out_shape);
  bool ok = visit_numeric(x.dtype(), [&]<class T>() {
    const T* px = x.data<T>();
    T* po = out.data<T>();
    for (size_t j = 0; j < base.size(); ++j) {
      if constexpr (is_float_v<T>) po[j] = reduce_floating<T>(kind, px, base[j], inner);
      else po[j] = reduce_integer<T>(kind, px, base[j], inner);
    }
  });
  if (!ok) return ctx.invalid("unsupported dtype " + std::string(dtype_name(x.dtype())));
  ctx.set_output(0, out);
  return Status::ok();
}

Status reduce_sum(KernelContext& ctx) { return reduce_kernel(ctx, ReduceKind::sum); }
Status reduce_mean(KernelContext& ctx) { return reduce_kernel(ctx, ReduceKind::mean); }
Status reduce_max(KernelContext& ctx) { return reduce_kernel(ctx, ReduceKind::max); }
Status reduce_min(KernelContext& ctx) { return reduce_kernel(ctx, ReduceKind::min); }
Status reduce_prod(KernelContext& ctx) { return reduce_kernel(ctx, ReduceKind::prod); }
Status reduce_l1(KernelContext& ctx) { return reduce_kernel(ctx, ReduceKind::l1); }
Status reduce_l2(KernelContext& ctx) { return reduce_kernel(ctx, ReduceKind::l2); }
Status reduce_log_sum(KernelContext& ctx) { return reduce_kernel(ctx, ReduceKind::log_sum); }
Status reduce_log_sum_exp(KernelContext& ctx) { return reduce_kernel(ctx, ReduceKind::log_sum_exp); }
Status reduce_sum_square(KernelContext& ctx) { return reduce_kernel(ctx, ReduceKind::sum_square); }

// --- Softmax, LogSoftmax, Hardmax ------------------------------------------------------------

enum class SoftmaxKind { softmax, log_softmax, hardmax };

// Before opset 13 the input is coerced to 2-D [prod(shape[:axis]), prod(shape[axis:])] and
// the op works on each row (default axis 1). From opset 13 it works along the single `axis`
// (default -1).
Status softmax_kernel(KernelContext& ctx, SoftmaxKind kind) {
  if (!ctx.has_input(0)) return ctx.invalid("missing required input 'input'");
  const Tensor& x = ctx.input(0);
  const int64_t rank = static_cast<int64_t>(x.rank());
  const bool legacy = ctx.opset() > 0 && ctx.opset() < 13;
  int64_t axis_attr = ctx.node().attr_int("axis", legacy ? 1 : -1);
  if (rank == 0) return ctx.invalid("input must have rank >= 1");
  auto axis_r = normalize_axis(axis_attr, rank);
  if (!axis_r.is_ok()) return ctx.invalid(axis_r.status().message());
  const int64_t axis = *axis_r;

  int64_t outer = 1, n = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x.dim(d);
  if (legacy) {
    for (int64_t d = axis; d < rank; ++d) n *= x.dim(d);
  } else {
    n = x.dim(axis);
    for (int64_t d = axis + 1; d < rank; ++d) inner *= x.dim(d);
  }

  Tensor out(x.dtype(), x.shape());
  bool ok = visit_float(x.dtype(), [&]<class T>() {
    const T* px = x.data<T>();
    T* po = out.data<T>();
    std::vector<double> row(static_cast<size_t>(n));
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t k = 0; k < inner; ++k) {
        const int64_t start = o * n * inner + k;
        for (int64_t i = 0; i < n; ++i) row[i] = to_double(px[start + i * inner]);
        if (kind == SoftmaxKind::hardmax) {
          int64_t best = 0;
          for (int64_t i = 1; i < n; ++i)
            if (row[i] > row[best]) best = i;  // first occurrence of the maximum wins
          for (int64_t i = 0; i < n; ++i) po[start + i * inner] = from_double<T>(i == best ? 1.0 : 0.0);
          continue;
        }
        double m = -std::numeric_limits<double>::infinity();
        for (int64_t i = 0; i < n; ++i) m = std::max(m, row[i]);
        if (std::isinf(m)) m = 0.0;  // all -inf (or +inf present): avoid inf - inf here
        double sum = 0.0;
        for (int64_t i = 0; i < n; ++i) sum += std::exp(row[i] - m);
        for (int64_t i = 0; i < n; ++i) {
          double v = kind == SoftmaxKind::softmax ? std::exp(row[i] - m) / sum : row[i] - m - std::log(sum);
          po[start + i * inner] = from_double<T>(v);
        }
      }
    }
  });
  if (!ok) return ctx.invalid("input must be a float tensor, got " + std::string(dtype_name(x.dtype())));
  ctx.set_output(0, out);
  return Status::ok();
}

Status softmax(KernelContext& ctx) { return softmax_kernel(ctx, SoftmaxKind::softmax); }
Status log_softmax(KernelContext& ctx) { return softmax_kernel(ctx, SoftmaxKind::log_softmax); }
Status hardmax(KernelContext& ctx) { return softmax_kernel(ctx, SoftmaxKind::hardmax); }

}  // namespace

void register_reduce_kernels(KernelTable& t) {
  t.add("", "ReduceSum", &reduce_sum);
  t.add("", "ReduceMean", &reduce_mean);
  t.add("", "ReduceMax", &reduce_max);
  t.add("", "ReduceMin", &reduce_min);
  t.add("", "ReduceProd", &reduce_prod);
  t.add("", "ReduceL1", &reduce_l1);
  t.add("", "ReduceL2", &reduce_l2);
  t.add("", "ReduceLogSum", &reduce_log_sum);
  t.add("", "ReduceLogSumExp", &reduce_log_sum_exp);
  t.add("", "ReduceSumSquare", &reduce_sum_square);
  t.add("", "Softmax", &softmax);
  t.add("", "LogSoftmax", &log_softmax);
  t.add("", "Hardmax", &hardmax);
}

}  // namespace tandem
