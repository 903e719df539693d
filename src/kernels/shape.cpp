// Reference kernels: shape and data-movement ops (Shape, Reshape, Transpose, Slice, Pad, ...),
// plus Identity and Dropout. The constant producers are in generator.cpp.
//
// Most kernels here only move elements, so they dispatch with visit_any and work for every
// dtype, strings included. Each one validates shapes and index arithmetic before allocating.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/tensor_util.h"
#include "kernels/registry.h"
#include "kernels/shape_util.h"

namespace tandem {

namespace {

using namespace kernel_util;

// ---------------------------------------------------------------------------------------------
// Shape, Size

Status shape_kernel(KernelContext& ctx) {
  const Value& v = ctx.input_value(0);
  if (!v.is_tensor()) return ctx.invalid("input 'data' must be a tensor");
  const Shape& s = v.tensor.shape();
  const int64_t rank = static_cast<int64_t>(s.size());
  // Opset 15: optional [start, end) slice of the shape, negative values count from the back,
  // out-of-range values are clamped.
  int64_t start = ctx.node().attr_int("start", 0);
  int64_t end = ctx.node().has_attr("end") ? ctx.node().attr_int("end", rank) : rank;
  if (start < 0) start = std::max<int64_t>(0, start + rank);
  if (end < 0) end = std::max<int64_t>(0, end + rank);
  start = std::min(start, rank);
  end = std::min(end, rank);
  std::vector<int64_t> dims;
  for (int64_t i = start; i < end; ++i) dims.push_back(s[i]);
  ctx.set_output(0, Tensor::from_vector<int64_t>({static_cast<int64_t>(dims.size())}, dims));
  return Status::ok();
}

Status size_kernel(KernelContext& ctx) {
  const Value& v = ctx.input_value(0);
  if (!v.is_tensor()) return ctx.invalid("input 'data' must be a tensor");
  ctx.set_output(0, Tensor::scalar<int64_t>(v.tensor.numel()));
  return Status::ok();
}

// ---------------------------------------------------------------------------------------------
// Reshape, Flatten, Squeeze, Unsqueeze

Status reshape_kernel(KernelContext& ctx) {
  TANDEM_ASSIGN_OR_RETURN(Tensor data, required_input(ctx, 0, "data"));
  std::vector<int64_t> target;
  if (ctx.opset() < 5 && !ctx.has_input(1)) {
    if (!ctx.node().has_attr("shape")) return ctx.invalid("missing attribute 'shape'");
    target = ctx.node().attr_ints("shape");
  } else {
    TANDEM_ASSIGN_OR_RETURN(Tensor shape_t, required_input(ctx, 1, "shape"));
    TANDEM_ASSIGN_OR_RETURN(target, read_ints(ctx, shape_t, "shape"));
  }
  const bool allowzero = ctx.node().attr_int("allowzero", 0) != 0;
  Shape out(target.size());
  int64_t infer_at = -1;
  int64_t known = 1;
  for (size_t i = 0; i < target.size(); ++i) {
    int64_t d = target[i];
    if (d == 0 && !allowzero) {
      if (i >= data.rank())
        return ctx.invalid("shape " + shape_string(target) + " copies dim " + std::to_string(i) +
                           " (0) but the input has rank " + std::to_string(data.rank()));
      d = data.dim(i);
    } else if (d == -1) {
      if (infer_at >= 0) return ctx.invalid("shape " + shape_string(target) + " has more than one -1");
      infer_at = static_cast<int64_t>(i);
      continue;
    } else if (d < 0) {
      return ctx.invalid("shape " + shape_string(target) + " has an invalid dimension " + std::to_string(d));
    }
    out[i] = d;
    if (d != 0 && known > kMaxElements / d) return ctx.invalid("shape " + shape_string(target) + " is too large");
    known *= d;
  }
  if (infer_at >= 0) {
    if (allowzero && std::count(target.begin(), target.end(), 0) > 0)
      return ctx.invalid("shape " + shape_string(target) + " has both 0 and -1 with allowzero=1");
    if (known == 0) {
      if (data.numel() != 0)
        return ctx.invalid("cannot infer the -1 dimension of " + shape_string(target) + " for input shape " +
                           shape_string(data.shape()));
      out[infer_at] = 0;
    } else {
      if (data.numel() % known != 0)
        return ctx.invalid("cannot reshape input of shape " + shape_string(data.shape()) + " to " +
                           shape_string(target));
      out[infer_at] = data.numel() / known;
    }
  }
  if (shape_numel(out) != data.numel())
    return ctx.invalid("cannot reshape input of shape " + shape_string(data.shape()) + " (" +
                       std::to_string(data.numel()) + " elements) to " + shape_string(out));
  ctx.set_output(0, reshape_copy(data, out));
  return Status::ok();
}

Status flatten_kernel(KernelContext& ctx) {
  TANDEM_ASSIGN_OR_RETURN(Tensor data, required_input(ctx, 0, "input"));
  const int64_t rank = static_cast<int64_t>(data.rank());
  int64_t axis = ctx.node().attr_int("axis", 1);
  if (axis < -rank || axis > rank)
    return ctx.invalid("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  if (axis < 0) axis += rank;
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < rank; ++i) (i < axis ? outer : inner) *= data.dim(i);
  ctx.set_output(0, reshape_copy(data, {outer, inner}));
  return Status::ok();
}

// Axes from the attribute (opset < 13) or from the optional input 1 (opset 13+).
Result<std::vector<int64_t>> axes_attr_or_input(const KernelContext& ctx, bool* given) {
  *given = false;
  if (ctx.has_input(1)) {
    *given = true;
    return read_ints(ctx, ctx.input(1), "axes");
  }
  if (ctx.node().has_attr("axes")) {
    *given = true;
    return ctx.node().attr_ints("axes");
  }
  return std::vector<int64_t>{};
}

Status squeeze_kernel(KernelContext& ctx) {
  TANDEM_ASSIGN_OR_RETURN(Tensor data, required_input(ctx, 0, "data"));
  const int64_t rank = static_cast<int64_t>(data.rank());
  bool given = false;
  TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> axes, axes_attr_or_input(ctx, &given));
  std::vector<bool> drop(static_cast<size_t>(rank), false);
  if (!given || axes.empty()) {
    for (int64_t i = 0; i < rank; ++i) drop[i] = data.dim(i) == 1;
  } else {
    TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> norm, normalize_axes(ctx, axes, rank));
    for (int64_t a : norm) {
      if (data.dim(a) != 1)
        return ctx.invalid("cannot squeeze axis " + std::to_string(a) + " of size " + std::to_string(data.dim(a)));
      drop[a] = true;
    }
  }
  Shape out;
  for (int64_t i = 0; i < rank; ++i)
    if (!drop[i]) out.push_back(data.dim(i));
  ctx.set_output(0, reshape_copy(data, out));
  return Status::ok();
}

Status unsqueeze_kernel(KernelContext& ctx) {
  TANDEM_ASSIGN_OR_RETURN(Tensor data, required_input(ctx, 0, "data"));
  bool given = false;
  TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> axes, axes_attr_or_input(ctx, &given));
  if (!given) return ctx.invalid("missing 'axes'");
  const int64_t out_rank = static_cast<int64_t>(data.rank() + axes.size());
  TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> norm, normalize_axes(ctx, axes, out_rank));
  std::vector<bool> inserted(static_cast<size_t>(out_rank), false);
  for (int64_t a : norm) inserted[a] = true;
  Shape out;
  size_t next = 0;
  for (int64_t i = 0; i < out_rank; ++i) out.push_back(inserted[i] ? 1 : data.dim(next++));
  ctx.set_output(0, reshape_copy(data, out));
  return Status::ok();
}

// ---------------------------------------------------------------------------------------------
// Transpose, Concat, Split

Status transpose_kernel(KernelContext& ctx) {
  TANDEM_ASSIGN_OR_RETURN(Tensor data, required_input(ctx, 0, "data"));
  const int64_t rank = static_cast<int64_t>(data.rank());
  std::vector<int64_t> perm = ctx.node().attr_ints("perm");
  if (!ctx.node().has_attr("perm"))
    for (int64_t i = rank - 1; i >= 0; --i) perm.push_back(i);
  if (static_cast<int64_t>(perm.size()) != rank)
    return ctx.invalid("perm " + shape_string(perm) + " does not match input rank " + std::to_string(rank));
  TANDEM_ASSIGN_OR_RETURN(perm, normalize_axes(ctx, perm, rank));
  Shape out(rank);
  for (int64_t i = 0; i < rank; ++i) out[i] = data.dim(perm[i]);
  const std::vector<int64_t> in_strides = strides_of(data.shape());
  ctx.set_output(0, gather_by_coord(data, out, [&](const std::vector<int64_t>& c) {
                   int64_t s = 0;
                   for (int64_t i = 0; i < rank; ++i) s += c[i] * in_strides[perm[i]];
                   return s;
                 }));
  return Status::ok();
}

Status concat_kernel(KernelContext& ctx) {
  std::vector<Tensor> inputs;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i)) continue;
    if (!ctx.input(i).defined()) return ctx.invalid("input " + std::to_string(i) + " is not a tensor");
    inputs.push_back(ctx.input(i));
  }
  if (inputs.empty()) return ctx.invalid("needs at least one input");
  const Tensor& first = inputs[0];
  const int64_t rank = static_cast<int64_t>(first.rank());
  if (rank == 0) return ctx.invalid("cannot concatenate scalars");
  if (!ctx.node().has_attr("axis") && ctx.opset() >= 4) return ctx.invalid("missing attribute 'axis'");
  TANDEM_ASSIGN_OR_RETURN(int64_t axis, normalize_one_axis(ctx, ctx.node().attr_int("axis", 1), rank));
  Shape out = first.shape();
  out[axis] = 0;
  for (size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& t = inputs[k];
    if (t.dtype() != first.dtype())
      return ctx.invalid("input " + std::to_string(k) + " has dtype " + std::string(dtype_name(t.dtype())) +
                         ", expected " + std::string(dtype_name(first.dtype())));
    if (static_cast<int64_t>(t.rank()) != rank)
      return ctx.invalid("input " + std::to_string(k) + " has rank " + std::to_string(t.rank()) + ", expected " +
                         std::to_string(rank));
    for (int64_t d = 0; d < rank; ++d)
      if (d != axis && t.dim(d) != first.dim(d))
        return ctx.invalid("input " + std::to_string(k) + " has shape " + shape_string(t.shape()) +
                           ", incompatible with " + shape_string(first.shape()) + " on axis " + std::to_string(d));
    out[axis] += t.dim(axis);
  }
  TANDEM_RETURN_IF_ERROR(check_alloc(ctx, out, first.dtype()));
  Tensor result(first.dtype(), out);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= out[d];
  for (int64_t d = axis + 1; d < rank; ++d) inner *= out[d];
  const int64_t out_block = out[axis] * inner;
  visit_any(first.dtype(), [&]<class T>() {
    T* o = result.data<T>();
    int64_t offset = 0;  // position of the current input's block within an output row
    for (const Tensor& t : inputs) {
      const T* p = t.data<T>();
      const int64_t block = t.dim(axis) * inner;
      for (int64_t b = 0; b < outer; ++b)
        for (int64_t j = 0; j < block; ++j) o[b * out_block + offset + j] = p[b * block + j];
      offset += block;
    }
  });
  ctx.set_output(0, result);
  return Status::ok();
}

Status split_kernel(KernelContext& ctx) {
  TANDEM_ASSIGN_OR_RETURN(Tensor data, required_input(ctx, 0, "input"));
  const int64_t rank = static_cast<int64_t>(data.rank());
  if (rank == 0) return ctx.invalid("cannot split a scalar");
  TANDEM_ASSIGN_OR_RETURN(int64_t axis, normalize_one_axis(ctx, ctx.node().attr_int("axis", 0), rank));
  const int64_t dim = data.dim(axis);
  const int64_t num_outputs = static_cast<int64_t>(ctx.node().outputs.size());
  if (num_outputs == 0) return ctx.invalid("has no outputs");
  std::vector<int64_t> sizes;
  // The split sizes: input 1 (opset 1 and 13+) or the attribute (opset 2-12).
  if (ctx.has_input(1)) {
    TANDEM_ASSIGN_OR_RETURN(sizes, read_ints(ctx, ctx.input(1), "split"));
  } else if (ctx.node().has_attr("split")) {
    sizes = ctx.node().attr_ints("split");
  }
  if (!sizes.empty()) {
    if (static_cast<int64_t>(sizes.size()) != num_outputs)
      return ctx.invalid("split " + shape_string(sizes) + " has " + std::to_string(sizes.size()) +
                         " entries but the node has " + std::to_string(num_outputs) + " outputs");
    int64_t total = 0;
    for (int64_t s : sizes) {
      if (s < 0 || s > dim) return ctx.invalid("split " + shape_string(sizes) + " has an invalid size");
      total += s;
    }
    if (total != dim)
      return ctx.invalid("split " + shape_string(sizes) + " sums to " + std::to_string(total) + ", but axis " +
                         std::to_string(axis) + " has size " + std::to_string(dim));
  } else {
    // Equal parts. Opset 18's num_outputs allows an uneven split: ceil-sized parts, the last smaller.
    int64_t n = ctx.node().attr_int("num_outputs", num_outputs);
    if (n != num_outputs)
      return ctx.invalid("num_outputs=" + std::to_string(n) + " but the node has " + std::to_string(num_outputs) +
                         " outputs");
    if (dim % n == 0) {
      sizes.assign(static_cast<size_t>(n), dim / n);
    } else if (ctx.node().has_attr("num_outputs")) {
      const int64_t chunk = (dim + n - 1) / n;
      int64_t left = dim;
      for (int64_t i = 0; i < n; ++i) {
        sizes.push_back(std::min(chunk, left));
        left -= sizes.back();
      }
      if (sizes.back() <= 0)
        return ctx.invalid("cannot split axis of size " + std::to_string(dim) + " into " + std::to_string(n) + " parts");
    } else {
      return ctx.invalid("axis " + std::to_string(axis) + " of size " + std::to_string(dim) +
                         " does not split evenly into " + std::to_string(n) + " outputs");
    }
  }
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= data.dim(d);
  for (int64_t d = axis + 1; d < rank; ++d) inner *= data.dim(d);
  int64_t offset = 0;
  for (int64_t k = 0; k < num_outputs; ++k) {
    Shape shape = data.shape();
    shape[axis] = sizes[k];
    Tensor part(data.dtype(), shape);
    const int64_t block = sizes[k] * inner;
    visit_any(data.dtype(), [&]<class T>() {
      const T* p = data.data<T>();
      T* o = part.data<T>();
      for (int64_t b = 0; b < outer; ++b)
        for (int64_t j = 0; j < block; ++j) o[b * block + j] = p[b * dim * inner + offset + j];
    });
    offset += block;
    if (ctx.has_output(k)) ctx.set_output(k, part);
  }
  return Status::ok();
}

// ---------------------------------------------------------------------------------------------
// Slice

Status slice_kernel(KernelContext& ctx) {
  TANDEM_ASSIGN_OR_RETURN(Tensor data, required_input(ctx, 0, "data"));
  const int64_t rank = static_cast<int64_t>(data.rank());
  std::vector<int64_t> starts, ends, axes, steps;
  bool has_axes = false;
  if (ctx.opset() < 10) {
    // Opset 1-9: starts/ends/axes are attributes and steps are all 1.
    if (!ctx.node().has_attr("starts") || !ctx.node().has_attr("ends"))
      return ctx.invalid("missing attribute 'starts' or 'ends'");
    starts = ctx.node().attr_ints("starts");
    ends = ctx.node().attr_ints("ends");
    has_axes = ctx.node().has_attr("axes");
    axes = ctx.node().attr_ints("axes");
  } else {
    TANDEM_ASSIGN_OR_RETURN(Tensor st, required_input(ctx, 1, "starts"));
    TANDEM_ASSIGN_OR_RETURN(Tensor en, required_input(ctx, 2, "ends"));
    TANDEM_ASSIGN_OR_RETURN(starts, read_ints(ctx, st, "starts"));
    TANDEM_ASSIGN_OR_RETURN(ends, read_ints(ctx, en, "ends"));
    if (ctx.has_input(3)) {
      has_axes = true;
      TANDEM_ASSIGN_OR_RETURN(axes, read_ints(ctx, ctx.input(3), "axes"));
    }
    if (ctx.has_input(4)) {
      TANDEM_ASSIGN_OR_RETURN(steps, read_ints(ctx, ctx.input(4), "steps"));
    }
  }
  if (starts.size() != ends.size())
    return ctx.invalid("starts " + shape_string(starts) + " and ends " + shape_string(ends) + " differ in length");
  if (!has_axes)
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (axes.size() != starts.size() || steps.size() != starts.size())
    return ctx.invalid("starts, ends, axes and steps must have the same length");
  TANDEM_ASSIGN_OR_RETURN(axes, normalize_axes(ctx, axes, rank));

  // Per output dim: first input index and step (defaults: whole dim, step 1).
  std::vector<int64_t> first(static_cast<size_t>(rank), 0), step(static_cast<size_t>(rank), 1);
  Shape out = data.shape();
  for (size_t i = 0; i < axes.size(); ++i) {
    const int64_t a = axes[i];
    const int64_t d = data.dim(a);
    int64_t s = starts[i], e = ends[i], k = steps[i];
    if (k == 0) return ctx.invalid("steps must not be 0");
    if (k == std::numeric_limits<int64_t>::min()) k += 1;  // keeps -k representable
    if (s < 0) s += d;
    if (e < 0) e += d;
    int64_t count = 0;
    if (k > 0) {
      s = std::clamp<int64_t>(s, 0, d);
      e = std::clamp<int64_t>(e, 0, d);
      if (e > s) count = (e - s) / k + ((e - s) % k != 0);
    } else if (d > 0) {
      s = std::clamp<int64_t>(s, 0, d - 1);
      e = std::clamp<int64_t>(e, -1, d - 1);
      if (s > e) count = (s - e) / -k + ((s - e) % -k != 0);
    }
    out[a] = count;
    first[a] = s;
    step[a] = k;
  }
  const std::vector<int64_t> in_strides = strides_of(data.shape());
  ctx.set_output(0, gather_by_coord(data, out, [&](const std::vector<int64_t>& c) {
                   int64_t src = 0;
                   for (int64_t i = 0; i < rank; ++i) src += (first[i] + c[i] * step[i]) * in_strides[i];
                   return src;
                 }));
  return Status::ok();
}

// ---------------------------------------------------------------------------------------------
// Expand, Tile, Pad

Status expand_kernel(KernelContext& ctx) {
  TANDEM_ASSIGN_OR_RETURN(Tensor data, required_input(ctx, 0, "input"));
  TANDEM_ASSIGN_OR_RETURN(Tensor shape_t, required_input(ctx, 1, "shape"));
  TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> target, read_ints(ctx, shape_t, "shape"));
  for (int64_t d : target)
    if (d < 0) return ctx.invalid("shape " + shape_string(target) + " has a negative dimension");
  auto out = broadcast_shapes(data.shape(), target);
  if (!out.is_ok())
    return ctx.invalid("input shape " + shape_string(data.shape()) + " cannot expand to " + shape_string(target));
  TANDEM_RETURN_IF_ERROR(check_alloc(ctx, *out, data.dtype()));
  const std::vector<int64_t> strides = broadcast_strides(data.shape(), *out);
  ctx.set_output(0, gather_by_coord(data, *out, [&](const std::vector<int64_t>& c) {
                   int64_t src = 0;
                   for (size_t i = 0; i < c.size(); ++i) src += c[i] * strides[i];
                   return src;
                 }));
  return Status::ok();
}

Status tile_kernel(KernelContext& ctx) {
  TANDEM_ASSIGN_OR_RETURN(Tensor data, required_input(ctx, 0, "input"));
  const int64_t rank = static_cast<int64_t>(data.rank());
  std::vector<int64_t> repeats;
  if (ctx.opset() < 6 && ctx.has_input(2)) {
    // Opset 1: scalar `tiles` repeats along the scalar `axis`.
    TANDEM_ASSIGN_OR_RETURN(int64_t tiles, read_int_scalar(ctx, ctx.input(1), "tiles"));
    TANDEM_ASSIGN_OR_RETURN(int64_t axis_raw, read_int_scalar(ctx, ctx.input(2), "axis"));
    TANDEM_ASSIGN_OR_RETURN(int64_t axis, normalize_one_axis(ctx, axis_raw, rank));
    repeats.assign(static_cast<size_t>(rank), 1);
    repeats[axis] = tiles;
  } else {
    TANDEM_ASSIGN_OR_RETURN(Tensor rep, required_input(ctx, 1, "repeats"));
    TANDEM_ASSIGN_OR_RETURN(repeats, read_ints(ctx, rep, "repeats"));
  }
  if (static_cast<int64_t>(repeats.size()) != rank)
    return ctx.invalid("repeats " + shape_string(repeats) + " must have one entry per input dim (rank " +
                       std::to_string(rank) + ")");
  Shape out(rank);
  for (int64_t i = 0; i < rank; ++i) {
    if (repeats[i] < 0) return ctx.invalid("repeats " + shape_string(repeats) + " has a negative entry");
    if (data.dim(i) != 0 && repeats[i] > kMaxElements / data.dim(i))
      return ctx.invalid("repeats " + shape_string(repeats) + " make the output too large");
    out[i] = data.dim(i) * repeats[i];
  }
  TANDEM_RETURN_IF_ERROR(check_alloc(ctx, out, data.dtype()));
  const std::vector<int64_t> in_strides = strides_of(data.shape());
  ctx.set_output(0, gather_by_coord(data, out, [&](const std::vector<int64_t>& c) {
                   int64_t src = 0;
                   for (int64_t i = 0; i < rank; ++i) src += (c[i] % data.dim(i)) * in_strides[i];
                   return src;
                 }));
  return Status::ok();
}

Status pad_kernel(KernelContext& ctx) {
  TANDEM_ASSIGN_OR_RETURN(Tensor data, required_input(ctx, 0, "data"));
  const int64_t rank = static_cast<int64_t>(data.rank());
  const std::string mode = ctx.node().attr_string("mode", "constant");
  if (mode != "constant" && mode != "reflect" && mode != "edge" && mode != "wrap")
    return ctx.invalid("unknown mode '" + mode + "'");
  std::vector<int64_t> pads;
  Tensor fill;  // the constant value, as a 1-element tensor of data's dtype
  if (ctx.opset() < 11) {
    // Opset 1 calls the attribute `paddings`, opset 2-10 `pads`; the value is a float attribute.
    const char* key = ctx.node().has_attr("pads") ? "pads" : "paddings";
    if (!ctx.node().has_attr(key)) return ctx.invalid("missing attribute 'pads'");
    pads = ctx.node().attr_ints(key);
    const double value = ctx.node().attr_float("value", 0.0f);
    fill = Tensor(data.dtype(), {1});
    if (!visit_numeric(data.dtype(), [&]<class T>() { fill.data<T>()[0] = from_double<T>(value); }))
      return ctx.invalid("dtype " + std::string(dtype_name(data.dtype())) + " is not supported");
  } else {
    TANDEM_ASSIGN_OR_RETURN(Tensor pads_t, required_input(ctx, 1, "pads"));
    TANDEM_ASSIGN_OR_RETURN(pads, read_ints(ctx, pads_t, "pads"));
    if (ctx.has_input(2)) {
      const Tensor& cv = ctx.input(2);
      if (!cv.defined() || cv.dtype() != data.dtype())
        return ctx.invalid("constant_value must be a tensor of the data's dtype " + std::string(dtype_name(data.dtype())));
      if (cv.numel() > 1) return ctx.invalid("constant_value must hold one element");
      if (cv.numel() == 1) fill = cv;
    }
  }
  // Opset 18: optional axes input; pads then has 2 * len(axes) entries.
  std::vector<int64_t> axes;
  if (ctx.has_input(3)) {
    TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> raw, read_ints(ctx, ctx.input(3), "axes"));
    TANDEM_ASSIGN_OR_RETURN(axes, normalize_axes(ctx, raw, rank));
  } else {
    for (int64_t i = 0; i < rank; ++i) axes.push_back(i);
  }
  const int64_t na = static_cast<int64_t>(axes.size());
  if (static_cast<int64_t>(pads.size()) != 2 * na)
    return ctx.invalid("pads " + shape_string(pads) + " must have " + std::to_string(2 * na) + " entries");
  std::vector<int64_t> before(static_cast<size_t>(rank), 0);
  Shape out = data.shape();
  for (int64_t i = 0; i < na; ++i) {
    const int64_t a = axes[i], pb = pads[i], pe = pads[i + na];
    if (pb > kMaxElements || pb < -kMaxElements || pe > kMaxElements || pe < -kMaxElements)
      return ctx.invalid("pads " + shape_string(pads) + " are too large");
    before[a] = pb;
    out[a] = data.dim(a) + pb + pe;
    if (out[a] < 0) return ctx.invalid("pads " + shape_string(pads) + " remove more than the whole axis " + std::to_string(a));
    if (mode != "constant" && data.dim(a) == 0 && out[a] > 0)
      return ctx.invalid("cannot pad empty axis " + std::to_string(a) + " in mode '" + mode + "'");
  }
  TANDEM_RETURN_IF_ERROR(check_alloc(ctx, out, data.dtype()));
  const std::vector<int64_t> in_strides = strides_of(data.shape());
  ctx.set_output(0, gather_by_coord(
                        data, out,
                        [&](const std::vector<int64_t>& c) -> int64_t {
                          int64_t src = 0;
                          for (int64_t i = 0; i < rank; ++i) {
                            int64_t x = c[i] - before[i];
                            if (x < 0 || x >= data.dim(i)) {
                              if (mode == "constant") return -1;
                              x = pad_source_index(x, data.dim(i), mode);
                            }
                            src += x * in_strides[i];
                          }
                          return src;
                        },
                        fill));
  return Status::ok();
}

// ---------------------------------------------------------------------------------------------
// Identity

Status identity_kernel(KernelContext& ctx) {
  // Tensors, sequences and optionals all pass through unchanged (buffers are shared, never mutated).
  ctx.set_output(0, ctx.input_value(0));
  return Status::ok();
}

// ---------------------------------------------------------------------------------------------
// DepthToSpace, SpaceToDepth, Trilu

Status depth_to_space_kernel(KernelContext& ctx) {
  TANDEM_ASSIGN_OR_RETURN(Tensor data, required_input(ctx, 0, "input"));
  if (data.rank() != 4) return ctx.invalid("input must be 4-D (NCHW), got rank " + std::to_string(data.rank()));
  const int64_t b = ctx.node().attr_int("blocksize", 0);
  if (b <= 0 || b > 65536) return ctx.invalid("blocksize must be a positive integer");
  const std::string mode = ctx.node().attr_string("mode", "DCR");
  if (mode != "DCR" && mode != "CRD") return ctx.invalid("unknown mode '" + mode + "'");
  const int64_t N = data.dim(0), C = data.dim(1), H = data.dim(2), W = data.dim(3);
  if (C % (b * b) != 0)
    return ctx.invalid("channels " + std::to_string(C) + " are not divisible by blocksize^2 = " + std::to_string(b * b));
  const int64_t Co = C / (b * b);
  const Shape out{N, Co, H * b, W * b};
  const bool dcr = mode == "DCR";
  // DCR: the input channel is (i*b + j)*Co + c; CRD: c*b*b + i*b + j, for block offset (i, j).
  ctx.set_output(0, gather_by_coord(data, out, [&](const std::vector<int64_t>& x) {
                   const int64_t n = x[0], c = x[1], h = x[2] / b, i = x[2] % b, w = x[3] / b, j = x[3] % b;
                   const int64_t ci = dcr ? (i * b + j) * Co + c : c * b * b + i * b + j;
                   return ((n * C + ci) * H + h) * W + w;
                 }));
  return Status::ok();
}

Status space_to_depth_kernel(KernelContext& ctx) {
  TANDEM_ASSIGN_OR_RETURN(Tensor data, required_input(ctx, 0, "input"));
  if (data.rank() != 4) return ctx.invalid("input must be 4-D (NCHW), got rank " + std::to_string(data.rank()));
  const int64_t b = ctx.node().attr_int("blocksize", 0);
  if (b <= 0 || b > 65536) return ctx.invalid("blocksize must be a positive integer");
  const int64_t N = data.dim(0), C = data.dim(1), H = data.dim(2), W = data.dim(3);
  if (H % b != 0 || W % b != 0)
    return ctx.invalid("spatial dims " + std::to_string(H) + "x" + std::to_string(W) + " are not divisible by blocksize " +
                       std::to_string(b));
  const Shape out{N, C * b * b, H / b, W / b};
  // Output channel (i*b + j)*C + c holds input channel c at block offset (i, j).
  ctx.set_output(0, gather_by_coord(data, out, [&](const std::vector<int64_t>& x) {
                   const int64_t n = x[0], block = x[1] / C, c = x[1] % C, i = block / b, j = block % b;
                   const int64_t h = x[2] * b + i, w = x[3] * b + j;
                   return ((n * C + c) * H + h) * W + w;
                 }));
  return Status::ok();
}

Status trilu_kernel(KernelContext& ctx) {
  TANDEM_ASSIGN_OR_RETURN(Tensor data, required_input(ctx, 0, "input"));
  if (data.rank() < 2) return ctx.invalid("input must have rank >= 2, got " + std::to_string(data.rank()));
  int64_t k = 0;
  if (ctx.has_input(1)) {
    TANDEM_ASSIGN_OR_RETURN(k, read_int_scalar(ctx, ctx.input(1), "k"));
  }
  const bool upper = ctx.node().attr_int("upper", 1) != 0;
  const int64_t rows = data.dim(data.rank() - 2), cols = data.dim(data.rank() - 1);
  Tensor out = data.clone();
  const int64_t mat = rows * cols;
  const int64_t batches = mat == 0 ? 0 : data.numel() / mat;
  visit_any(data.dtype(), [&]<class T>() {
    T* o = out.data<T>();
    for (int64_t m = 0; m < batches; ++m)
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j) {
          // Upper keeps j - i >= k, lower keeps j - i <= k (j - i never overflows).
          const bool keep = upper ? (j - i >= k) : (j - i <= k);
          if (!keep) o[m * mat + i * cols + j] = T{};
        }
  });
  ctx.set_output(0, out);
  return Status::ok();
}

// ---------------------------------------------------------------------------------------------
// Dropout

Status dropout_kernel(KernelContext& ctx) {
  TANDEM_ASSIGN_OR_RETURN(Tensor data, required_input(ctx, 0, "data"));
  if (!is_float_type(data.dtype()))
    return ctx.invalid("data must be a float tensor, got " + std::string(dtype_name(data.dtype())));
  double ratio = 0.5;
  bool training = false;
  if (ctx.opset() >= 12) {
    if (ctx.has_input(1)) {
      const Tensor& r = ctx.input(1);
      if (!r.defined() || !is_float_type(r.dtype()) || r.numel() != 1) return ctx.invalid("ratio must be a float scalar");
      ratio = to_double_vector(r)[0];
    }
    if (ctx.has_input(2)) {
      const Tensor& t = ctx.input(2);
      if (!t.defined() || t.dtype() != DataType::boolean || t.numel() != 1)
        return ctx.invalid("training_mode must be a bool scalar");
      training = t.data<bool>()[0];
    }
  } else {
    // Opsets 1-11 carry the ratio as an attribute; like other inference runtimes we always run
    // them in inference mode (old models often leave is_test at its training default).
    ratio = ctx.node().attr_float("ratio", 0.5f);
  }
  if (!(ratio >= 0.0 && ratio <= 1.0)) return ctx.invalid("ratio must be in [0, 1], got " + std::to_string(ratio));
  const bool drop = training && ratio > 0.0;
  Tensor out = data.clone();
  Tensor mask(DataType::boolean, data.shape());
  bool* m = mask.data<bool>();
  for (int64_t i = 0; i < mask.numel(); ++i) m[i] = true;
  if (drop) {
    std::mt19937_64 rng;
    if (ctx.node().has_attr("seed")) {
      rng.seed(static_cast<uint64_t>(ctx.node().attr_int("seed", 0)));
    } else {
      std::random_device rd;
      rng.seed((static_cast<uint64_t>(rd()) << 32) ^ rd());
    }
    const double scale = ratio < 1.0 ? 1.0 / (1.0 - ratio) : 0.0;
    visit_float(data.dtype(), [&]<class T>() {
      T* o = out.data<T>();
      for (int64_t i = 0; i < out.numel(); ++i) {
        const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;  // uniform in [0, 1)
        m[i] = u >= ratio;
        o[i] = from_double<T>(m[i] ? to_double(o[i]) * scale : 0.0);
      }
    });
  }
  ctx.set_output(0, out);
  if (ctx.has_output(1)) {
    if (ctx.opset() < 10) {
      // Opsets 1-9 type the mask like the data.
      auto cast = cast_tensor(mask, data.dtype());
      if (!cast.is_ok()) return ctx.invalid(cast.status().message());
      ctx.set_output(1, *cast);
    } else {
      ctx.set_output(1, mask);
    }
  }
  return Status::ok();
}

}  // namespace

void register_shape_kernels(KernelTable& t) {
  t.add("", "Shape", &shape_kernel);
  t.add("", "Size", &size_kernel);
  t.add("", "Reshape", &reshape_kernel);
  t.add("", "Flatten", &flatten_kernel);
  t.add("", "Squeeze", &squeeze_kernel);
  t.add("", "Unsqueeze", &unsqueeze_kernel);
  t.add("", "Transpose", &transpose_kernel);
  t.add("", "Concat", &concat_kernel);
  t.add("", "Split", &split_kernel);
  t.add("", "Slice", &slice_kernel);
  t.add("", "Expand", &expand_kernel);
  t.add("", "Tile", &tile_kernel);
  t.add("", "Pad", &pad_kernel);
  t.add("", "Identity", &identity_kernel);
  t.add("", "DepthToSpace", &depth_to_space_kernel);
  t.add("", "SpaceToDepth", &space_to_depth_kernel);
  t.add("", "Trilu", &trilu_kernel);
  t.add("", "Dropout", &dropout_kernel);
}

}  // namespace tandem
