// Reference kernels that make tensors from attributes and small operands rather than from an
// input's elements: Constant, ConstantOfShape, Range, EyeLike and OneHot.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "kernels/registry.h"
#include "kernels/shape_util.h"

namespace tandem {

namespace {

using namespace kernel_util;

Status constant_kernel(KernelContext& ctx) {
  const Node& n = ctx.node();
  if (const Attribute* a = n.attr("value")) {
    if (!a->t.defined()) return ctx.invalid("attribute 'value' holds no tensor");
    ctx.set_output(0, a->t.clone());
  } else if (n.has_attr("sparse_value")) {
    return ctx.unsupported("sparse_value is not supported");
  } else if (const Attribute* a = n.attr("value_float")) {
    ctx.set_output(0, Tensor::scalar<float>(a->f));
  } else if (const Attribute* a = n.attr("value_floats")) {
    ctx.set_output(0, Tensor::from_vector<float>({static_cast<int64_t>(a->floats.size())}, a->floats));
  } else if (const Attribute* a = n.attr("value_int")) {
    ctx.set_output(0, Tensor::scalar<int64_t>(a->i));
  } else if (const Attribute* a = n.attr("value_ints")) {
    ctx.set_output(0, Tensor::from_vector<int64_t>({static_cast<int64_t>(a->ints.size())}, a->ints));
  } else if (const Attribute* a = n.attr("value_string")) {
    ctx.set_output(0, Tensor::scalar<std::string>(a->s));
  } else if (const Attribute* a = n.attr("value_strings")) {
    ctx.set_output(0, Tensor::from_vector<std::string>({static_cast<int64_t>(a->strings.size())}, a->strings));
  } else {
    return ctx.invalid("has none of the value attributes");
  }
  return Status::ok();
}

Status constant_of_shape_kernel(KernelContext& ctx) {
  TANDEM_ASSIGN_OR_RETURN(Tensor shape_t, required_input(ctx, 0, "input"));
  TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> shape, read_ints(ctx, shape_t, "input"));
  Tensor value = Tensor::from_vector<float>({1}, {0.0f});
  if (const Attribute* a = ctx.node().attr("value")) {
    if (!a->t.defined() || a->t.numel() != 1) return ctx.invalid("attribute 'value' must be a one-element tensor");
    value = a->t;
  }
  TANDEM_RETURN_IF_ERROR(check_alloc(ctx, shape, value.dtype()));
  Tensor out(value.dtype(), shape);
  if (!visit_any(value.dtype(), [&]<class T>() {
        const T v = value.data<T>()[0];
        T* o = out.data<T>();
        for (int64_t i = 0; i < out.numel(); ++i) o[i] = v;
      }))
    return ctx.invalid("unsupported value dtype " + std::string(dtype_name(value.dtype())));
  ctx.set_output(0, out);
  return Status::ok();
}

Status range_kernel(KernelContext& ctx) {
  TANDEM_ASSIGN_OR_RETURN(Tensor start_t, required_input(ctx, 0, "start"));
  TANDEM_ASSIGN_OR_RETURN(Tensor limit_t, required_input(ctx, 1, "limit"));
  TANDEM_ASSIGN_OR_RETURN(Tensor delta_t, required_input(ctx, 2, "delta"));
  const DataType dt = start_t.dtype();
  if (limit_t.dtype() != dt || delta_t.dtype() != dt) return ctx.invalid("start, limit and delta must share one dtype");
  if (start_t.numel() != 1 || limit_t.numel() != 1 || delta_t.numel() != 1)
    return ctx.invalid("start, limit and delta must be scalars");
  if (dt == DataType::boolean || (!is_float_type(dt) && !is_integer_type(dt)))
    return ctx.invalid("unsupported dtype " + std::string(dtype_name(dt)));
  int64_t count = 0;
  if (is_float_type(dt)) {
    const double start = to_double_vector(start_t)[0], limit = to_double_vector(limit_t)[0],
                 delta = to_double_vector(delta_t)[0];
    if (delta == 0 || !std::isfinite(start) || !std::isfinite(limit) || !std::isfinite(delta))
      return ctx.invalid("start, limit and delta must be finite and delta nonzero");
    const double n = std::ceil((limit - start) / delta);
    if (n > static_cast<double>(kMaxElements)) return ctx.invalid("range has too many elements");
    count = n > 0 ? static_cast<int64_t>(n) : 0;
    TANDEM_RETURN_IF_ERROR(check_alloc(ctx, {count}, dt));
    Tensor out(dt, {count});
    visit_float(dt, [&]<class T>() {
      T* o = out.data<T>();
      for (int64_t i = 0; i < count; ++i) o[i] = from_double<T>(start + static_cast<double>(i) * delta);
    });
    ctx.set_output(0, out);
    return Status::ok();
  }
  // Integers: exact arithmetic in 128 bits so that no intermediate overflows.
  const __int128 start = to_int64_vector(start_t)[0], limit = to_int64_vector(limit_t)[0],
                 delta = to_int64_vector(delta_t)[0];
  if (dt == DataType::uint64) return ctx.invalid("unsupported dtype uint64");
  if (delta == 0) return ctx.invalid("delta must be nonzero");
  const __int128 span = limit - start;
  __int128 n = 0;
  if ((span > 0 && delta > 0) || (span < 0 && delta < 0)) {
    const __int128 a = span > 0 ? span : -span, b = delta > 0 ? delta : -delta;
    n = a / b + (a % b != 0);
  }
  if (n > kMaxElements) return ctx.invalid("range has too many elements");
  count = static_cast<int64_t>(n);
  TANDEM_RETURN_IF_ERROR(check_alloc(ctx, {count}, dt));
  Tensor out(dt, {count});
  visit_numeric(dt, [&]<class T>() {
    T* o = out.data<T>();
    for (int64_t i = 0; i < count; ++i) o[i] = static_cast<T>(static_cast<int64_t>(start + i * delta));
  });
  ctx.set_output(0, out);
  return Status::ok();
}

Status eye_like_kernel(KernelContext& ctx) {
  TANDEM_ASSIGN_OR_RETURN(Tensor data, required_input(ctx, 0, "input"));
  if (data.rank() != 2) return ctx.invalid("input must be 2-D, got rank " + std::to_string(data.rank()));
  DataType dt = data.dtype();
  if (ctx.node().has_attr("dtype")) dt = static_cast<DataType>(ctx.node().attr_int("dtype", 1));
  const int64_t k = ctx.node().attr_int("k", 0);
  const int64_t rows = data.dim(0), cols = data.dim(1);
  Tensor out;
  bool ok = visit_numeric(dt, [&]<class T>() {
    out = Tensor(dt, {rows, cols});
    T* o = out.data<T>();
    for (int64_t i = 0; i < rows; ++i) {
      // Column i + k, computed without overflow for extreme k.
      if (k >= cols || k <= -rows) break;
      const int64_t j = i + k;
      if (j >= 0 && j < cols) o[i * cols + j] = from_double<T>(1.0);
    }
  });
  if (!ok) return ctx.invalid("unsupported output dtype " + std::string(dtype_name(dt)));
  ctx.set_output(0, out);
  return Status::ok();
}

Status one_hot_kernel(KernelContext& ctx) {
  TANDEM_ASSIGN_OR_RETURN(Tensor indices, required_input(ctx, 0, "indices"));
  TANDEM_ASSIGN_OR_RETURN(Tensor depth_t, required_input(ctx, 1, "depth"));
  TANDEM_ASSIGN_OR_RETURN(Tensor values, required_input(ctx, 2, "values"));
  if (depth_t.numel() != 1 || depth_t.dtype() == DataType::string) return ctx.invalid("depth must be a numeric scalar");
  if (values.numel() != 2) return ctx.invalid("values must hold exactly two elements [off, on]");
  if (indices.dtype() == DataType::string) return ctx.invalid("indices must be numeric");
  const double depth_d = to_double_vector(depth_t)[0];
  if (!(depth_d >= 0) || depth_d > static_cast<double>(kMaxElements)) return ctx.invalid("depth must be a nonnegative number");
  const int64_t depth = static_cast<int64_t>(depth_d);
  const int64_t out_rank = static_cast<int64_t>(indices.rank()) + 1;
  TANDEM_ASSIGN_OR_RETURN(int64_t axis, normalize_one_axis(ctx, ctx.node().attr_int("axis", -1), out_rank));
  Shape out_shape = indices.shape();
  out_shape.insert(out_shape.begin() + axis, depth);
  TANDEM_RETURN_IF_ERROR(check_alloc(ctx, out_shape, values.dtype()));
  // Indices may be floats: truncate them, and treat non-finite ones as "no class".
  std::vector<int64_t> idx;
  if (is_float_type(indices.dtype())) {
    for (double v : to_double_vector(indices))
      idx.push_back(std::isfinite(v) && std::abs(v) < 9.0e18 ? static_cast<int64_t>(v) : std::numeric_limits<int64_t>::max());
  } else {
    idx = to_int64_vector(indices);
  }
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= out_shape[d];
  for (int64_t d = axis + 1; d < out_rank; ++d) inner *= out_shape[d];
  Tensor out(values.dtype(), out_shape);
  if (!visit_any(values.dtype(), [&]<class T>() {
        const T off = values.data<T>()[0], on = values.data<T>()[1];
        T* o = out.data<T>();
        for (int64_t i = 0; i < out.numel(); ++i) o[i] = off;
        // indices position (b, j) maps to output (b, class, j); negative indices count from depth.
        for (int64_t b = 0; b < outer; ++b)
          for (int64_t j = 0; j < inner; ++j) {
            int64_t c = idx[b * inner + j];
            if (c < 0 && c >= -depth) c += depth;
            if (c >= 0 && c < depth) o[(b * depth + c) * inner + j] = on;
          }
      }))
    return ctx.invalid("unsupported values dtype " + std::string(dtype_name(values.dtype())));
  ctx.set_output(0, out);
  return Status::ok();
}

}  // namespace

void register_generator_kernels(KernelTable& t) {
  t.add("", "Constant", &constant_kernel);
  t.add("", "ConstantOfShape", &constant_of_shape_kernel);
  t.add("", "Range", &range_kernel);
  t.add("", "EyeLike", &eye_like_kernel);
  t.add("", "OneHot", &one_hot_kernel);
}

}  // namespace tandem
