// Reference kernels: indexing ops.
//
// Gather, GatherElements, GatherND, Scatter, ScatterElements, ScatterND, Compress, NonZero,
// Unique, TopK, ArgMax, ArgMin, ReverseSequence, CumSum.
//
// Most data-movement kernels here work in two steps: first compute, for every output element,
// the (bounds-checked) linear index of the input element it copies; then copy with one
// dtype-generic loop. Every index read from a tensor is normalized (negative values count from
// the end) and checked against its dimension before it is used, so no kernel ever reads or
// writes out of bounds.
#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/registry.h"
#include "core/tensor_util.h"

namespace tandem {
namespace {

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------


// Product of dims with overflow and negative-dim checks.
bool checked_numel(const Shape& shape, int64_t* out) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(n, d, &n)) return false;
  }
  *out = n;
  return true;
}

// Product of shape[begin, end). 0 when any of those dims is 0; saturates instead of
// overflowing (only possible when a dim outside the range is 0, so nothing is iterated).
int64_t product(const Shape& shape, size_t begin, size_t end) {
  end = std::min(end, shape.size());
  for (size_t i = begin; i < end; ++i)
    if (shape[i] <= 0) return 0;
  int64_t n = 1;
  for (size_t i = begin; i < end; ++i)
    if (__builtin_mul_overflow(n, shape[i], &n)) return std::numeric_limits<int64_t>::max();
  return n;
}

std::string dims_str(const Shape& s) { return shape_to_string(s); }

// Normalizes an axis attribute/input against `rank`, with the node label in the message.
Status norm_axis(const KernelContext& ctx, int64_t axis, int64_t rank, int64_t* out) {
  Result<int64_t> r = normalize_axis(axis, rank);
  if (!r.is_ok()) return ctx.invalid(r.status().message());
  *out = r.value();
  return Status::ok();
}

// Maps idx into [0, dim) counting negative values from the end; false when out of range.
bool normalize_index(int64_t* idx, int64_t dim) {
  int64_t v = *idx;
  if (v < 0) v += dim;
  if (v < 0 || v >= dim) return false;
  *idx = v;
  return true;
}

Status index_out_of_range(const KernelContext& ctx, const char* what, int64_t idx, int64_t dim) {
  return ctx.invalid(std::string(what) + " value " + std::to_string(idx) + " is out of range for a dimension of size " +
                     std::to_string(dim));
}

// Reads an integer index tensor (int32/int64, or any other integer type) as int64 values.
Status read_indices(const KernelContext& ctx, const Tensor& t, const char* what, std::vector<int64_t>* out) {
  if (!t.defined()) return ctx.invalid(std::string("missing required input '") + what + "'");
  if (!is_integer_type(t.dtype()))
    return ctx.invalid(std::string("'") + what + "' must be an integer tensor, got " + std::string(dtype_name(t.dtype())));
  *out = to_int64_vector(t);
  return Status::ok();
}

// Whether dtype is one the copy helpers can move (everything but undefined).
bool is_copyable(DataType dt) {
  return visit_any(dt, []<class T>() {});
}

Status require_copyable(const KernelContext& ctx, const Tensor& t, const char* what) {
  if (!t.defined()) return ctx.invalid(std::string("missing required input '") + what + "'");
  if (!is_copyable(t.dtype()))
    return ctx.unsupported(std::string("'") + what + "' has unsupported dtype " + std::string(dtype_name(t.dtype())));
  return Status::ok();
}

// A new tensor of `shape` whose element i is src[map[i]] (map already bounds-checked).
Tensor gather_by_map(const Tensor& src, const Shape& shape, const std::vector<int64_t>& map) {
  Tensor out(src.dtype(), shape);
  visit_any(src.dtype(), [&]<class T>() {
    const T* in = src.data<T>();
    T* o = out.data<T>();
    for (size_t i = 0; i < map.size(); ++i) o[i] = in[map[i]];
  });
  return out;
}

// Total order used by sorting ops: NaN compares greater than every number and equal to NaN.
// Returns -1, 0 or 1. Integers and strings compare natively (no precision loss via double).
template <class T>
int compare_values(const T& a, const T& b) {
  if constexpr (is_float_v<T>) {
    double x = to_double(a), y = to_double(b);
    bool nx = std::isnan(x), ny = std::isnan(y);
    if (nx || ny) return nx == ny ? 0 : (nx ? 1 : -1);
    return x < y ? -1 : (y < x ? 1 : 0);
  } else {
    return a < b ? -1 : (b < a ? 1 : 0);
  }
}

template <class T>
bool is_nan_value(const T& v) {
  if constexpr (is_float_v<T>) return std::isnan(to_double(v));
  else return false;
}

// Reduction modes of ScatterElements / ScatterND.
enum class Reduction { none, add, mul, max, min };

Status parse_reduction(const KernelContext& ctx, const Tensor& data, Reduction* out) {
  std::string r = ctx.node().attr_string("reduction", "none");
  if (r == "none") *out = Reduction::none;
  else if (r == "add") *out = Reduction::add;
  else if (r == "mul") *out = Reduction::mul;
  else if (r == "max") *out = Reduction::max;
  else if (r == "min") *out = Reduction::min;
  else return ctx.invalid("unknown reduction '" + r + "'");
  if (*out != Reduction::none) {
    bool numeric = visit_numeric(data.dtype(), []<class T>() {});
    if (!numeric)
      return ctx.invalid("reduction '" + r + "' is not defined for dtype " + std::string(dtype_name(data.dtype())));
  }
  return Status::ok();
}

// Combines an existing value with an update. Integer arithmetic wraps (computed in uint64) so
// overflow is defined; floats compute in double and round once; bools use or/and.
template <class T>
T reduce_pair(const T& cur, const T& upd, Reduction r) {
  if constexpr (std::is_same_v<T, std::string> || is_complex_v<T>) {
    return upd;  // only Reduction::none reaches here for these dtypes
  } else if constexpr (std::is_same_v<T, bool>) {
    switch (r) {
      case Reduction::add: case Reduction::max: return cur || upd;
      case Reduction::mul: case Reduction::min: return cur && upd;
      default: return upd;
    }
  } else if constexpr (is_float_v<T>) {
    double a = to_double(cur), b = to_double(upd);
    switch (r) {
      case Reduction::add: return from_double<T>(a + b);
      case Reduction::mul: return from_double<T>(a * b);
      case Reduction::max: return (std::isnan(a) || std::isnan(b)) ? from_double<T>(NAN) : (b > a ? upd : cur);
      case Reduction::min: return (std::isnan(a) || std::isnan(b)) ? from_double<T>(NAN) : (b < a ? upd : cur);
      default: return upd;
    }
  } else {
    switch (r) {
      case Reduction::add: return static_cast<T>(static_cast<uint64_t>(cur) + static_cast<uint64_t>(upd));
      case Reduction::mul: return static_cast<T>(static_cast<uint64_t>(cur) * static_cast<uint64_t>(upd));
      case Reduction::max: return upd > cur ? upd : cur;
      case Reduction::min: return upd < cur ? upd : cur;
      default: return upd;
    }
  }
}

// out[dst[i]] = reduce(out[dst[i]], updates[i]) for every i, in order.
void scatter_by_map(Tensor* out, const Tensor& updates, const std::vector<int64_t>& dst, Reduction r) {
  visit_any(out->dtype(), [&]<class T>() {
    T* o = out->data<T>();
    const T* u = updates.data<T>();
    for (size_t i = 0; i < dst.size(); ++i) o[dst[i]] = reduce_pair<T>(o[dst[i]], u[i], r);
  });
}

// Advances a row-major coordinate within `shape`; false after the last one.
bool next_coord(std::vector<int64_t>* coord, const Shape& shape) {
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    if (++(*coord)[d] < shape[d]) return true;
    (*coord)[d] = 0;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Gather
// ---------------------------------------------------------------------------------------------

// out[a_0..a_{axis-1}, j..., b...] = data[a..., indices[j...], b...]
Status gather_kernel(KernelContext& ctx) {
  const Tensor& data = ctx.input(0);
  TANDEM_RETURN_IF_ERROR(require_copyable(ctx, data, "data"));
  std::vector<int64_t> idx;
  TANDEM_RETURN_IF_ERROR(read_indices(ctx, ctx.input(1), "indices", &idx));
  const Tensor& indices = ctx.input(1);
  const int64_t rank = static_cast<int64_t>(data.rank());
  if (rank < 1) return ctx.invalid("data must have rank >= 1");
  int64_t axis = 0;
  TANDEM_RETURN_IF_ERROR(norm_axis(ctx, ctx.node().attr_int("axis", 0), rank, &axis));
  const int64_t dim = data.dim(axis);
  for (int64_t& v : idx) {
    int64_t raw = v;
    if (!normalize_index(&v, dim)) return index_out_of_range(ctx, "indices", raw, dim);
  }
  Shape out_shape(data.shape().begin(), data.shape().begin() + axis);
  out_shape.insert(out_shape.end(), indices.shape().begin(), indices.shape().end());
  out_shape.insert(out_shape.end(), data.shape().begin() + axis + 1, data.shape().end());
  int64_t out_numel = 0;
  if (!checked_numel(out_shape, &out_numel)) return ctx.invalid("output shape " + dims_str(out_shape) + " is too large");

  const int64_t outer = product(data.shape(), 0, axis);
  const int64_t inner = product(data.shape(), axis + 1, data.rank());
  const int64_t n_idx = static_cast<int64_t>(idx.size());
  std::vector<int64_t> map;
  map.reserve(static_cast<size_t>(out_numel));
  for (int64_t o = 0; o < outer && out_numel > 0; ++o)
    for (int64_t j = 0; j < n_idx; ++j)
      for (int64_t i = 0; i < inner; ++i) map.push_back((o * dim + idx[j]) * inner + i);
  ctx.set_output(0, gather_by_map(data, out_shape, map));
  return Status::ok();
}

// ---------------------------------------------------------------------------------------------
// GatherElements / ScatterElements: indices has data's rank; each index replaces the `axis`
// coordinate of its own position.
// ---------------------------------------------------------------------------------------------

// For each element of `indices`, the linear offset into `data` it addresses. Checks ranks,
// shapes (indices.dim(d) <= data.dim(d) off the axis) and every index value.
Status element_offsets(const KernelContext& ctx, const Tensor& data, const Tensor& indices, int64_t* axis_out,
                       std::vector<int64_t>* offsets) {
  std::vector<int64_t> idx;
  TANDEM_RETURN_IF_ERROR(read_indices(ctx, indices, "indices", &idx));
  const int64_t rank = static_cast<int64_t>(data.rank());
  if (rank < 1) return ctx.invalid("data must have rank >= 1");
  if (indices.rank() != data.rank())
    return ctx.invalid("indices rank " + std::to_string(indices.rank()) + " differs from data rank " +
                       std::to_string(data.rank()));
  int64_t axis = 0;
  TANDEM_RETURN_IF_ERROR(norm_axis(ctx, ctx.node().attr_int("axis", 0), rank, &axis));
  for (int64_t d = 0; d < rank; ++d) {
    if (d != axis && indices.dim(d) > data.dim(d))
      return ctx.invalid("indices shape " + dims_str(indices.shape()) + " exceeds data shape " +
                         dims_str(data.shape()) + " at dimension " + std::to_string(d));
  }
  const std::vector<int64_t> strides = strides_of(data.shape());
  const int64_t dim = data.dim(axis);
  offsets->clear();
  offsets->reserve(idx.size());
  if (idx.empty()) {
    *axis_out = axis;
    return Status::ok();
  }
  std::vector<int64_t> coord(rank, 0);
  size_t k = 0;
  do {
    int64_t v = idx[k];
    if (!normalize_index(&v, dim)) return index_out_of_range(ctx, "indices", idx[k], dim);
    int64_t off = 0;
    for (int64_t d = 0; d < rank; ++d) off += (d == axis ? v : coord[d]) * strides[d];
    offsets->push_back(off);
    ++k;
  } while (next_coord(&coord, indices.shape()));
  *axis_out = axis;
  return Status::ok();
}

Status gather_elements_kernel(KernelContext& ctx) {
  const Tensor& data = ctx.input(0);
  TANDEM_RETURN_IF_ERROR(require_copyable(ctx, data, "data"));
  int64_t axis = 0;
  std::vector<int64_t> offsets;
  TANDEM_RETURN_IF_ERROR(element_offsets(ctx, data, ctx.input(1), &axis, &offsets));
  ctx.set_output(0, gather_by_map(data, ctx.input(1).shape(), offsets));
  return Status::ok();
}

// ScatterElements (and its deprecated alias Scatter, which has no reduction attribute).
Status scatter_elements_kernel(KernelContext& ctx) {
  const Tensor& data = ctx.input(0);
  const Tensor& updates = ctx.input(2);
  TANDEM_RETURN_IF_ERROR(require_copyable(ctx, data, "data"));
  if (!updates.defined()) return ctx.invalid("missing required input 'updates'");
  if (updates.dtype() != data.dtype())
    return ctx.invalid("updates dtype " + std::string(dtype_name(updates.dtype())) + " differs from data dtype " +
                       std::string(dtype_name(data.dtype())));
  if (ctx.input(1).defined() && updates.shape() != ctx.input(1).shape())
    return ctx.invalid("updates shape " + dims_str(updates.shape()) + " differs from indices shape " +
                       dims_str(ctx.input(1).shape()));
  Reduction red = Reduction::none;
  TANDEM_RETURN_IF_ERROR(parse_reduction(ctx, data, &red));
  int64_t axis = 0;
  std::vector<int64_t> offsets;
  TANDEM_RETURN_IF_ERROR(element_offsets(ctx, data, ctx.input(1), &axis, &offsets));
  Tensor out = data.clone();
  scatter_by_map(&out, updates, offsets, red);
  ctx.set_output(0, out);
  return Status::ok();
}

// ---------------------------------------------------------------------------------------------
// GatherND / ScatterND: the last dim of indices holds k-tuples addressing data's leading dims
// (after `batch_dims` shared batch dims, GatherND only).
// ---------------------------------------------------------------------------------------------

// For every k-tuple of `indices` (in row-major order), the linear offset of the addressed
// slice in data. `batch_dims` leading dims are shared between data and indices.
Status tuple_offsets(const KernelContext& ctx, const Tensor& data, const Tensor& indices, int64_t batch_dims,
                     int64_t* k_out, std::vector<int64_t>* offsets) {
  std::vector<int64_t> idx;
  TANDEM_RETURN_IF_ERROR(read_indices(ctx, indices, "indices", &idx));
  const int64_t r = static_cast<int64_t>(data.rank());
  const int64_t q = static_cast<int64_t>(indices.rank());
  if (r < 1) return ctx.invalid("data must have rank >= 1");
  if (q < 1) return ctx.invalid("indices must have rank >= 1");
  if (batch_dims < 0 || batch_dims >= q || batch_dims >= r)
    return ctx.invalid("batch_dims " + std::to_string(batch_dims) + " must be in [0, min(rank(data), rank(indices)))");
  for (int64_t d = 0; d < batch_dims; ++d) {
    if (data.dim(d) != indices.dim(d))
      return ctx.invalid("batch dimension " + std::to_string(d) + " differs: data " + dims_str(data.shape()) +
                         ", indices " + dims_str(indices.shape()));
  }
  const int64_t k = indices.dim(q - 1);
  if (k < 0 || k > r - batch_dims)
    return ctx.invalid("indices last dimension " + std::to_string(k) + " exceeds rank(data) - batch_dims = " +
                       std::to_string(r - batch_dims));
  const std::vector<int64_t> strides = strides_of(data.shape());
  const int64_t batch_count = product(indices.shape(), 0, batch_dims);
  const int64_t per_batch = product(indices.shape(), batch_dims, q - 1);
  const int64_t data_batch_stride = product(data.shape(), batch_dims, r);
  offsets->clear();
  offsets->reserve(static_cast<size_t>(batch_count * per_batch));
  size_t pos = 0;
  for (int64_t b = 0; b < batch_count; ++b) {
    for (int64_t t = 0; t < per_batch; ++t) {
      int64_t off = b * data_batch_stride;
      for (int64_t j = 0; j < k; ++j, ++pos) {
        int64_t v = idx[pos];
        const int64_t dim = data.dim(batch_dims + j);
        if (!normalize_index(&v, dim)) return index_out_of_range(ctx, "indices", idx[pos], dim);
        off += v * strides[batch_dims + j];
      }
      offsets->push_back(off);
    }
  }
  *k_out = k;
  return Status::ok();
}

Status gather_nd_kernel(KernelContext& ctx) {
  const Tensor& data = ctx.input(0);
  const Tensor& indices = ctx.input(1);
  TANDEM_RETURN_IF_ERROR(require_copyable(ctx, data, "data"));
  const int64_t batch_dims = ctx.node().attr_int("batch_dims", 0);
  int64_t k = 0;
  std::vector<int64_t> offsets;
  TANDEM_RETURN_IF_ERROR(tuple_offsets(ctx, data, indices, batch_dims, &k, &offsets));
  Shape out_shape(indices.shape().begin(), indices.shape().end() - 1);
  out_shape.insert(out_shape.end(), data.shape().begin() + batch_dims + k, data.shape().end());
  int64_t out_numel = 0;
  if (!checked_numel(out_shape, &out_numel)) return ctx.invalid("output shape " + dims_str(out_shape) + " is too large");
  const int64_t slice = product(data.shape(), batch_dims + k, data.rank());
  std::vector<int64_t> map;
  map.reserve(static_cast<size_t>(out_numel));
  for (size_t t = 0; t < offsets.size() && out_numel > 0; ++t)
    for (int64_t i = 0; i < slice; ++i) map.push_back(offsets[t] + i);
  ctx.set_output(0, gather_by_map(data, out_shape, map));
  return Status::ok();
}

Status scatter_nd_kernel(KernelContext& ctx) {
  const Tensor& data = ctx.input(0);
  const Tensor& indices = ctx.input(1);
  const Tensor& updates = ctx.input(2);
  TANDEM_RETURN_IF_ERROR(require_copyable(ctx, data, "data"));
  if (!updates.defined()) return ctx.invalid("missing required input 'updates'");
  if (updates.dtype() != data.dtype())
    return ctx.invalid("updates dtype " + std::string(dtype_name(updates.dtype())) + " differs from data dtype " +
                       std::string(dtype_name(data.dtype())));
  Reduction red = Reduction::none;
  TANDEM_RETURN_IF_ERROR(parse_reduction(ctx, data, &red));
  int64_t k = 0;
  std::vector<int64_t> offsets;
  TANDEM_RETURN_IF_ERROR(tuple_offsets(ctx, data, indices, 0, &k, &offsets));
  Shape expected(indices.shape().begin(), indices.shape().end() - 1);
  expected.insert(expected.end(), data.shape().begin() + k, data.shape().end());
  if (updates.shape() != expected)
    return ctx.invalid("updates shape " + dims_str(updates.shape()) + " must be " + dims_str(expected));
  const int64_t slice = product(data.shape(), k, data.rank());
  std::vector<int64_t> dst;
  dst.reserve(static_cast<size_t>(updates.numel()));
  for (size_t t = 0; t < offsets.size() && updates.numel() > 0; ++t)
    for (int64_t i = 0; i < slice; ++i) dst.push_back(offsets[t] + i);
  Tensor out = data.clone();
  scatter_by_map(&out, updates, dst, red);
  ctx.set_output(0, out);
  return Status::ok();
}

// ---------------------------------------------------------------------------------------------
// Compress, NonZero
// ---------------------------------------------------------------------------------------------

// Reads a condition/mask tensor as bools (bool, or nonzero for numeric dtypes).
Status read_mask(const KernelContext& ctx, const Tensor& t, std::vector<bool>* out) {
  if (!t.defined()) return ctx.invalid("missing required input 'condition'");
  out->assign(static_cast<size_t>(t.numel()), false);
  bool ok = visit_numeric(t.dtype(), [&]<class T>() {
    const T* p = t.data<T>();
    for (int64_t i = 0; i < t.numel(); ++i) (*out)[i] = to_double(p[i]) != 0.0;
  });
  if (!ok) return ctx.invalid("condition must be a bool tensor, got " + std::string(dtype_name(t.dtype())));
  return Status::ok();
}

// Like numpy.compress: keeps the slices along `axis` (or elements of the flattened input)
// whose condition is true; condition entries past the end must be false.
Status compress_kernel(KernelContext& ctx) {
  const Tensor& input = ctx.input(0);
  TANDEM_RETURN_IF_ERROR(require_copyable(ctx, input, "input"));
  const Tensor& condition = ctx.input(1);
  std::vector<bool> cond;
  TANDEM_RETURN_IF_ERROR(read_mask(ctx, condition, &cond));
  if (condition.rank() != 1) return ctx.invalid("condition must be 1-D, got shape " + dims_str(condition.shape()));
  const bool has_axis = ctx.node().has_attr("axis");
  int64_t axis = 0;
  Shape shape = input.shape();
  if (has_axis) {
    TANDEM_RETURN_IF_ERROR(norm_axis(ctx, ctx.node().attr_int("axis", 0), static_cast<int64_t>(input.rank()), &axis));
  } else {
    shape = {input.numel()};
  }
  const int64_t dim = shape[axis];
  std::vector<int64_t> kept;
  for (size_t i = 0; i < cond.size(); ++i) {
    if (!cond[i]) continue;
    if (static_cast<int64_t>(i) >= dim)
      return ctx.invalid("condition is true at index " + std::to_string(i) + ", beyond the axis size " +
                         std::to_string(dim));
    kept.push_back(static_cast<int64_t>(i));
  }
  const int64_t outer = product(shape, 0, axis);
  const int64_t inner = product(shape, axis + 1, shape.size());
  Shape out_shape = shape;
  out_shape[axis] = static_cast<int64_t>(kept.size());
  int64_t out_numel = 0;
  if (!checked_numel(out_shape, &out_numel)) return ctx.invalid("output shape " + dims_str(out_shape) + " is too large");
  std::vector<int64_t> map;
  for (int64_t o = 0; o < outer && out_numel > 0; ++o)
    for (int64_t j : kept)
      for (int64_t i = 0; i < inner; ++i) map.push_back((o * dim + j) * inner + i);
  ctx.set_output(0, gather_by_map(input, out_shape, map));
  return Status::ok();
}

// Indices of nonzero elements, shape [rank, nnz] in row-major order. A scalar is treated
// as a 1-element vector (like numpy), giving shape [1, nnz].
Status nonzero_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (!x.defined()) return ctx.invalid("missing required input 'X'");
  std::vector<bool> nz(static_cast<size_t>(x.numel()), false);
  bool ok = visit_any(x.dtype(), [&]<class T>() {
    const T* p = x.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      if constexpr (std::is_same_v<T, std::string>) nz[i] = !p[i].empty();
      else if constexpr (is_complex_v<T>) nz[i] = p[i] != T(0);
      else nz[i] = to_double(p[i]) != 0.0;
    }
  });
  if (!ok) return ctx.unsupported("unsupported dtype " + std::string(dtype_name(x.dtype())));
  const Shape shape = x.rank() == 0 ? Shape{1} : x.shape();
  const int64_t rank = static_cast<int64_t>(shape.size());
  const int64_t nnz = std::count(nz.begin(), nz.end(), true);
  Tensor out(DataType::int64, {rank, nnz});
  int64_t* o = out.data<int64_t>();
  if (x.numel() > 0) {
    std::vector<int64_t> coord(rank, 0);
    int64_t col = 0;
    size_t i = 0;
    do {
      if (nz[i]) {
        for (int64_t d = 0; d < rank; ++d) o[d * nnz + col] = coord[d];
        ++col;
      }
      ++i;
    } while (next_coord(&coord, shape));
  }
  ctx.set_output(0, out);
  return Status::ok();
}

// ---------------------------------------------------------------------------------------------
// Unique
// ---------------------------------------------------------------------------------------------

// The input is viewed as [outer, n, inner]; item j is the slice {(o, j, i)} (with no axis,
// outer = inner = 1 and each item is one element). Items compare lexicographically over
// (o, i) in row-major order, like numpy.unique with an axis.
template <class T>
void unique_items(const Tensor& x, int64_t outer, int64_t n, int64_t inner, bool sorted, std::vector<int64_t>* y_items,
                  std::vector<int64_t>* first, std::vector<int64_t>* inverse, std::vector<int64_t>* counts) {
  const T* p = x.data<T>();
  auto cmp_items = [&](int64_t a, int64_t b) {
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        int c = compare_values<T>(p[(o * n + a) * inner + i], p[(o * n + b) * inner + i]);
        if (c != 0) return c;
      }
    return 0;
  };
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return cmp_items(a, b) < 0; });
  // Groups of equal items in sorted order; group g starts at its lowest (first) item index.
  std::vector<int64_t> group_of(static_cast<size_t>(n));
  std::vector<int64_t> group_first, group_count;
  for (size_t s = 0; s < order.size(); ++s) {
    if (s == 0 || cmp_items(order[s - 1], order[s]) != 0) {
      group_first.push_back(order[s]);
      group_count.push_back(0);
    }
    group_of[order[s]] = static_cast<int64_t>(group_first.size()) - 1;
    group_count.back()++;
  }
  const size_t u = group_first.size();
  // Output position of each group: sorted order, or order of first occurrence.
  std::vector<int64_t> group_order(u);
  std::iota(group_order.begin(), group_order.end(), 0);
  if (!sorted)
    std::sort(group_order.begin(), group_order.end(),
              [&](int64_t a, int64_t b) { return group_first[a] < group_first[b]; });
  std::vector<int64_t> position(u);
  for (size_t k = 0; k < u; ++k) position[group_order[k]] = static_cast<int64_t>(k);
  y_items->clear();
  first->clear();
  counts->clear();
  for (size_t k = 0; k < u; ++k) {
    y_items->push_back(group_first[group_order[k]]);
    first->push_back(group_first[group_order[k]]);
    counts->push_back(group_count[group_order[k]]);
  }
  inverse->assign(static_cast<size_t>(n), 0);
  for (int64_t j = 0; j < n; ++j) (*inverse)[j] = position[group_of[j]];
}

Status unique_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (!x.defined()) return ctx.invalid("missing required input 'X'");
  const bool sorted = ctx.node().attr_int("sorted", 1) != 0;
  Shape shape = {x.numel()};
  int64_t axis = 0;
  if (ctx.node().has_attr("axis")) {
    shape = x.shape();
    TANDEM_RETURN_IF_ERROR(norm_axis(ctx, ctx.node().attr_int("axis", 0), static_cast<int64_t>(x.rank()), &axis));
  }
  const int64_t outer = product(shape, 0, axis);
  const int64_t n = shape[axis];
  const int64_t inner = product(shape, axis + 1, shape.size());
  std::vector<int64_t> y_items, first, inverse, counts;
  bool ok = false;
  if (x.dtype() == DataType::string) {
    unique_items<std::string>(x, outer, n, inner, sorted, &y_items, &first, &inverse, &counts);
    ok = true;
  } else {
    ok = visit_numeric(x.dtype(), [&]<class T>() {
      unique_items<T>(x, outer, n, inner, sorted, &y_items, &first, &inverse, &counts);
    });
  }
  if (!ok) return ctx.unsupported("unsupported dtype " + std::string(dtype_name(x.dtype())));
  const int64_t u = static_cast<int64_t>(y_items.size());
  Shape y_shape = shape;
  y_shape[axis] = u;
  std::vector<int64_t> map;
  for (int64_t o = 0; o < outer && x.numel() > 0; ++o)
    for (int64_t j : y_items)
      for (int64_t i = 0; i < inner; ++i) map.push_back((o * n + j) * inner + i);
  ctx.set_output(0, gather_by_map(x, y_shape, map));
  ctx.set_output(1, Tensor::from_vector<int64_t>({u}, first));
  ctx.set_output(2, Tensor::from_vector<int64_t>({n}, inverse));
  ctx.set_output(3, Tensor::from_vector<int64_t>({u}, counts));
  return Status::ok();
}

// ---------------------------------------------------------------------------------------------
// TopK, ArgMax, ArgMin
// ---------------------------------------------------------------------------------------------

// Reads k: the attribute before opset 10, a 1-element int64 input from opset 10 on.
Status read_k(const KernelContext& ctx, int64_t* k) {
  if (ctx.has_input(1)) {
    const Tensor& kt = ctx.input(1);
    if (!kt.defined() || !is_integer_type(kt.dtype())) return ctx.invalid("K must be an int64 tensor");
    if (kt.numel() != 1 || kt.rank() > 1) return ctx.invalid("K must hold exactly one value, got shape " + dims_str(kt.shape()));
    *k = to_int64_vector(kt)[0];
    return Status::ok();
  }
  if (ctx.node().has_attr("k")) {
    *k = ctx.node().attr_int("k", 0);
    return Status::ok();
  }
  return ctx.invalid(ctx.opset() >= 10 ? "missing required input 'K'" : "missing required attribute 'k'");
}

// Top k along an axis; ties keep the lower index first. NaN ranks above every number.
Status topk_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (!x.defined()) return ctx.invalid("missing required input 'X'");
  const int64_t rank = static_cast<int64_t>(x.rank());
  if (rank < 1) return ctx.invalid("X must have rank >= 1");
  int64_t axis = 0;
  TANDEM_RETURN_IF_ERROR(norm_axis(ctx, ctx.node().attr_int("axis", -1), rank, &axis));
  int64_t k = 0;
  TANDEM_RETURN_IF_ERROR(read_k(ctx, &k));
  const int64_t n = x.dim(axis);
  if (k < 0 || k > n)
    return ctx.invalid("k = " + std::to_string(k) + " is out of range for an axis of size " + std::to_string(n));
  const bool largest = ctx.node().attr_int("largest", 1) != 0;
  // sorted = 0 leaves the order unspecified; returning sorted results satisfies it.
  const int64_t outer = product(x.shape(), 0, axis);
  const int64_t inner = product(x.shape(), axis + 1, x.rank());
  Shape out_shape = x.shape();
  out_shape[axis] = k;
  Tensor indices(DataType::int64, out_shape);
  int64_t* ind = indices.data<int64_t>();
  std::vector<int64_t> map(static_cast<size_t>(indices.numel()));
  const int64_t rows = indices.numel() > 0 ? outer : 0;
  bool ok = visit_numeric(x.dtype(), [&]<class T>() {
    const T* p = x.data<T>();
    std::vector<int64_t> order(static_cast<size_t>(rows > 0 ? n : 0));
    for (int64_t o = 0; o < rows; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        auto at = [&](int64_t j) { return p[(o * n + j) * inner + i]; };
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
          int c = compare_values<T>(at(a), at(b));
          return largest ? c > 0 : c < 0;
        });
        for (int64_t j = 0; j < k; ++j) {
          const int64_t pos = (o * k + j) * inner + i;
          ind[pos] = order[j];
          map[pos] = (o * n + order[j]) * inner + i;
        }
      }
  });
  if (!ok) return ctx.unsupported("unsupported dtype " + std::string(dtype_name(x.dtype())));
  ctx.set_output(0, gather_by_map(x, out_shape, map));
  ctx.set_output(1, indices);
  return Status::ok();
}

// ArgMax / ArgMin. NaN wins over every number (like numpy); select_last_index picks the last
// of equal extremes instead of the first.
Status arg_extreme(KernelContext& ctx, bool is_max) {
  const Tensor& x = ctx.input(0);
  if (!x.defined()) return ctx.invalid("missing required input 'data'");
  const int64_t rank = static_cast<int64_t>(x.rank());
  if (rank < 1) return ctx.invalid("data must have rank >= 1");
  int64_t axis = 0;
  TANDEM_RETURN_IF_ERROR(norm_axis(ctx, ctx.node().attr_int("axis", 0), rank, &axis));
  const bool keepdims = ctx.node().attr_int("keepdims", 1) != 0;
  const bool last = ctx.node().attr_int("select_last_index", 0) != 0;
  const int64_t n = x.dim(axis);
  const int64_t outer = product(x.shape(), 0, axis);
  const int64_t inner = product(x.shape(), axis + 1, x.rank());
  Shape out_shape = x.shape();
  if (keepdims) out_shape[axis] = 1;
  else out_shape.erase(out_shape.begin() + axis);
  int64_t out_numel = 0;
  if (!checked_numel(out_shape, &out_numel)) return ctx.invalid("output shape " + dims_str(out_shape) + " is too large");
  if (n == 0 && out_numel > 0) return ctx.invalid("cannot reduce an axis of size 0");
  Tensor out(DataType::int64, out_shape);
  int64_t* o_ptr = out.data<int64_t>();
  const int64_t rows = out_numel > 0 ? outer : 0;
  bool ok = visit_numeric(x.dtype(), [&]<class T>() {
    const T* p = x.data<T>();
    for (int64_t o = 0; o < rows; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        auto at = [&](int64_t j) { return p[(o * n + j) * inner + i]; };
        int64_t best = 0;
        for (int64_t j = 1; j < n; ++j) {
          const T v = at(j), b = at(best);
          int c;  // > 0 when v is a strictly better candidate than b
          if (is_nan_value(v) || is_nan_value(b)) c = is_nan_value(v) ? (is_nan_value(b) ? 0 : 1) : -1;
          else c = is_max ? compare_values<T>(v, b) : compare_values<T>(b, v);
          if (c > 0 || (c == 0 && last)) best = j;
        }
        o_ptr[o * inner + i] = best;
      }
  });
  if (!ok) return ctx.unsupported("unsupported dtype " + std::string(dtype_name(x.dtype())));
  ctx.set_output(0, out);
  return Status::ok();
}

Status argmax_kernel(KernelContext& ctx) { return arg_extreme(ctx, true); }
Status argmin_kernel(KernelContext& ctx) { return arg_extreme(ctx, false); }

// ---------------------------------------------------------------------------------------------
// ReverseSequence, CumSum
// ---------------------------------------------------------------------------------------------

// Reverses the first sequence_lens[b] entries along time_axis of every batch slice b.
Status reverse_sequence_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  TANDEM_RETURN_IF_ERROR(require_copyable(ctx, x, "input"));
  std::vector<int64_t> lens;
  TANDEM_RETURN_IF_ERROR(read_indices(ctx, ctx.input(1), "sequence_lens", &lens));
  const int64_t rank = static_cast<int64_t>(x.rank());
  if (rank < 2) return ctx.invalid("input must have rank >= 2");
  int64_t batch_axis = 0, time_axis = 0;
  TANDEM_RETURN_IF_ERROR(norm_axis(ctx, ctx.node().attr_int("batch_axis", 1), rank, &batch_axis));
  TANDEM_RETURN_IF_ERROR(norm_axis(ctx, ctx.node().attr_int("time_axis", 0), rank, &time_axis));
  if (batch_axis == time_axis) return ctx.invalid("batch_axis and time_axis must differ");
  const int64_t batch = x.dim(batch_axis), time = x.dim(time_axis);
  if (ctx.input(1).rank() != 1 || static_cast<int64_t>(lens.size()) != batch)
    return ctx.invalid("sequence_lens shape " + dims_str(ctx.input(1).shape()) + " must be [" + std::to_string(batch) + "]");
  for (int64_t len : lens)
    if (len < 0 || len > time)
      return ctx.invalid("sequence_lens value " + std::to_string(len) + " is out of range [0, " + std::to_string(time) + "]");
  const std::vector<int64_t> strides = strides_of(x.shape());
  std::vector<int64_t> map;
  map.reserve(static_cast<size_t>(x.numel()));
  if (x.numel() > 0) {
    std::vector<int64_t> coord(rank, 0);
    int64_t linear = 0;
    do {
      const int64_t t = coord[time_axis], len = lens[coord[batch_axis]];
      const int64_t src_t = t < len ? len - 1 - t : t;
      map.push_back(linear + (src_t - t) * strides[time_axis]);
      ++linear;
    } while (next_coord(&coord, x.shape()));
  }
  ctx.set_output(0, gather_by_map(x, x.shape(), map));
  return Status::ok();
}

// Running sum along an axis. Floats accumulate in double; integers accumulate with wrapping
// 64-bit arithmetic (exact for int64).
Status cumsum_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (!x.defined()) return ctx.invalid("missing required input 'x'");
  const Tensor& axis_t = ctx.input(1);
  if (!axis_t.defined()) return ctx.invalid("missing required input 'axis'");
  if (!is_integer_type(axis_t.dtype())) return ctx.invalid("axis must be an int32 or int64 tensor");
  if (axis_t.numel() != 1 || axis_t.rank() > 1)
    return ctx.invalid("axis must be a scalar, got shape " + dims_str(axis_t.shape()));
  const int64_t rank = static_cast<int64_t>(x.rank());
  if (rank < 1) return ctx.invalid("x must have rank >= 1");
  int64_t axis = 0;
  TANDEM_RETURN_IF_ERROR(norm_axis(ctx, to_int64_vector(axis_t)[0], rank, &axis));
  const bool exclusive = ctx.node().attr_int("exclusive", 0) != 0;
  const bool reverse = ctx.node().attr_int("reverse", 0) != 0;
  const int64_t n = x.dim(axis);
  const int64_t outer = product(x.shape(), 0, axis);
  const int64_t inner = product(x.shape(), axis + 1, x.rank());
  Tensor out(x.dtype(), x.shape());
  bool ok = false;
  if (x.dtype() != DataType::boolean) {
    ok = visit_numeric(x.dtype(), [&]<class T>() {
      const T* p = x.data<T>();
      T* q = out.data<T>();
      using Acc = std::conditional_t<is_float_v<T>, double, uint64_t>;
      const int64_t rows = x.numel() > 0 ? outer : 0;
      for (int64_t o = 0; o < rows; ++o)
        for (int64_t i = 0; i < inner; ++i) {
          Acc acc = 0;
          for (int64_t s = 0; s < n; ++s) {
            const int64_t j = reverse ? n - 1 - s : s;
            const int64_t pos = (o * n + j) * inner + i;
            Acc v;
            if constexpr (is_float_v<T>) v = to_double(p[pos]);
            else v = static_cast<uint64_t>(p[pos]);
            if (!exclusive) acc += v;
            if constexpr (is_float_v<T>) q[pos] = from_double<T>(acc);
            else q[pos] = static_cast<T>(acc);
            if (exclusive) acc += v;
          }
        }
    });
  }
  if (!ok) return ctx.unsupported("unsupported dtype " + std::string(dtype_name(x.dtype())));
  ctx.set_output(0, out);
  return Status::ok();
}

}  // namespace

void register_indexing_kernels(KernelTable& t) {
  t.add("", "Gather", &gather_kernel);
  t.add("", "GatherElements", &gather_elements_kernel);
  t.add("", "GatherND", &gather_nd_kernel);
  t.add("", "Scatter", &scatter_elements_kernel);
  t.add("", "ScatterElements", &scatter_elements_kernel);
  t.add("", "ScatterND", &scatter_nd_kernel);
  t.add("", "Compress", &compress_kernel);
  t.add("", "NonZero", &nonzero_kernel);
  t.add("", "Unique", &unique_kernel);
  t.add("", "TopK", &topk_kernel);
  t.add("", "ArgMax", &argmax_kernel);
  t.add("", "ArgMin", &argmin_kernel);
  t.add("", "ReverseSequence", &reverse_sequence_kernel);
  t.add("", "CumSum", &cumsum_kernel);
}

}  // namespace tandem
