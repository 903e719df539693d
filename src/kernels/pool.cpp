// Reference kernels: pooling. MaxPool (with Indices), AveragePool, LpPool, GlobalAveragePool,
// GlobalMaxPool, GlobalLpPool, MaxUnpool.
//
// Every pool slides a window over the spatial dims of an N x C x D1 x ... x Dk input, one
// (n, c) plane at a time; padding never contributes a value (AveragePool's count_include_pad
// only changes the divisor). Sums accumulate in double. The window geometry comes from
// graph/window_geometry.h and its taps from conv_pool_util.h, shared with the conv kernels.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/conv_pool_util.h"
#include "kernels/registry.h"
#include "core/tensor_util.h"

namespace tandem {
namespace {

using conv_pool::Tap;
using conv_pool::Window;

// The N x C x spatial layout of a pooling input.
struct PoolLayout {
  int64_t batch = 0;
  int64_t channels = 0;
  Shape spatial;
};

Result<PoolLayout> pool_layout(const KernelContext& ctx, const Tensor& x, size_t min_rank) {
  if (!x.defined()) return ctx.invalid("input X is missing");
  if (x.rank() < min_rank)
    return ctx.invalid("input has " + std::to_string(x.rank()) + " dims, expected at least " + std::to_string(min_rank) +
                       " (N x C x D...)");
  PoolLayout l;
  l.batch = x.dim(0);
  l.channels = x.dim(1);
  l.spatial.assign(x.shape().begin() + 2, x.shape().end());
  return l;
}

Shape pooled_shape(const PoolLayout& l, const std::vector<int64_t>& out_spatial) {
  Shape s{l.batch, l.channels};
  s.insert(s.end(), out_spatial.begin(), out_spatial.end());
  return s;
}

// Reads the required kernel_shape, checks it against the input rank and builds the window.
Result<Window> pool_window(const KernelContext& ctx, const Tensor& x, bool has_dilations) {
  if (!ctx.node().has_attr("kernel_shape")) return ctx.invalid("kernel_shape attribute is required");
  std::vector<int64_t> kernel = ctx.node().attr_ints("kernel_shape");
  if (x.rank() != kernel.size() + 2)
    return ctx.invalid("input has " + std::to_string(x.rank()) + " dims, expected " + std::to_string(kernel.size() + 2) +
                       " for a kernel_shape of " + std::to_string(kernel.size()) + " values");
  Shape spatial(x.shape().begin() + 2, x.shape().end());
  WindowOptions options;
  options.has_dilations = has_dilations;
  options.has_ceil_mode = true;
  return window_geometry(ctx.node(), spatial, kernel, options);
}

// a < b for any numeric element type (half types compare as float).
template <class T>
bool less(T a, T b) {
  if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) return static_cast<float>(a) < static_cast<float>(b);
  else return a < b;
}

template <class T>
T lowest_value() {
  if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) return T(-std::numeric_limits<float>::infinity());
  else if constexpr (std::numeric_limits<T>::has_infinity) return -std::numeric_limits<T>::infinity();
  else return std::numeric_limits<T>::lowest();
}

// ---- MaxPool ---------------------------------------------------------------------------------

Status max_pool_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  TANDEM_ASSIGN_OR_RETURN(PoolLayout l, pool_layout(ctx, x, 3));
  if (x.dtype() == DataType::boolean || !visit_numeric(x.dtype(), []<class T>() {}))
    return ctx.invalid("dtype " + std::string(dtype_name(x.dtype())) + " is not supported");
  TANDEM_ASSIGN_OR_RETURN(Window win, pool_window(ctx, x, true));
  const int64_t storage_order = ctx.node().attr_int("storage_order", 0);
  if (storage_order != 0 && storage_order != 1)
    return ctx.invalid("storage_order " + std::to_string(storage_order) + " must be 0 or 1");
  const Shape y_shape = pooled_shape(l, win.out);
  TANDEM_ASSIGN_OR_RETURN(int64_t y_numel, conv_pool::checked_numel(ctx, y_shape));
  (void)y_numel;
  const bool want_indices = ctx.has_output(1);
  Tensor y(x.dtype(), y_shape);
  Tensor indices(DataType::int64, want_indices ? y_shape : Shape{0});
  const int64_t in_size = shape_numel(win.in), out_size = shape_numel(win.out);
  const int64_t planes = l.batch * l.channels;
  // Column-major strides of the spatial box, for storage_order = 1.
  std::vector<int64_t> col_stride(win.rank(), 1);
  for (size_t d = 1; d < win.rank(); ++d) col_stride[d] = col_stride[d - 1] * win.in[d - 1];
  visit_numeric(x.dtype(), [&]<class T>() {
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    int64_t* ip = want_indices ? indices.data<int64_t>() : nullptr;
    std::vector<int64_t> oc(win.rank(), 0);
    std::vector<Tap> taps;
    for (int64_t p = 0; p < out_size; ++p, conv_pool::next_coord(oc, win.out)) {
      conv_pool::window_taps(win, oc, taps);
      for (int64_t plane = 0; plane < planes; ++plane) {
        const T* xplane = xp + plane * in_size;
        T best = lowest_value<T>();
        int64_t best_index = -1;
        for (const Tap& t : taps) {
          if (best_index < 0 || less(best, xplane[t.input_index])) {
            best = xplane[t.input_index];
            best_index = t.input_index;
          }
        }
        yp[plane * out_size + p] = best;
        if (ip) {
          int64_t spatial_index = best_index;
          if (storage_order == 1 && best_index >= 0) {
            int64_t rest = best_index;
            spatial_index = 0;
            for (size_t d = win.rank(); d-- > 0;) {
              spatial_index += (rest % win.in[d]) * col_stride[d];
              rest /= win.in[d];
            }
          }
          ip[plane * out_size + p] = best_index < 0 ? -1 : plane * in_size + spatial_index;
        }
      }
    }
  });
  ctx.set_output(0, y);
  if (want_indices) ctx.set_output(1, indices);
  return Status::ok();
}

// ---- AveragePool / LpPool --------------------------------------------------------------------

// Shared driver of the summing pools: each output is finish(sum of term(x) over the window's
// taps inside the input, number of those taps, number of taps inside the padded extent),
// written back in the input's float dtype.
template <class Term, class Finish>
Status sum_pool(KernelContext& ctx, bool has_dilations, Term term, Finish finish) {
  const Tensor& x = ctx.input(0);
  TANDEM_ASSIGN_OR_RETURN(PoolLayout l, pool_layout(ctx, x, 3));
  if (!is_float_type(x.dtype())) return ctx.invalid("dtype " + std::string(dtype_name(x.dtype())) + " is not a float type");
  TANDEM_ASSIGN_OR_RETURN(Window win, pool_window(ctx, x, has_dilations));
  const Shape y_shape = pooled_shape(l, win.out);
  TANDEM_ASSIGN_OR_RETURN(int64_t y_numel, conv_pool::checked_numel(ctx, y_shape));
  (void)y_numel;
  Tensor y(x.dtype(), y_shape);
  const int64_t in_size = shape_numel(win.in), out_size = shape_numel(win.out);
  const int64_t planes = l.batch * l.channels;
  const std::vector<double> xv = to_double_vector(x);
  visit_float(x.dtype(), [&]<class T>() {
    T* yp = y.data<T>();
    std::vector<int64_t> oc(win.rank(), 0);
    std::vector<Tap> taps;
    for (int64_t p = 0; p < out_size; ++p, conv_pool::next_coord(oc, win.out)) {
      const int64_t padded_count = conv_pool::window_taps(win, oc, taps);
      for (int64_t plane = 0; plane < planes; ++plane) {
        const double* xplane = xv.data() + plane * in_size;
        double sum = 0.0;
        for (const Tap& t : taps) sum += term(xplane[t.input_index]);
        yp[plane * out_size + p] = from_double<T>(finish(sum, static_cast<int64_t>(taps.size()), padded_count));
      }
    }
  });
  ctx.set_output(0, y);
  return Status::ok();
}

Status average_pool_kernel(KernelContext& ctx) {
  const bool include_pad = ctx.node().attr_int("count_include_pad", 0) != 0;
  return sum_pool(
      ctx, true, [](double v) { return v; },
      [include_pad](double sum, int64_t inside, int64_t padded) {
        const int64_t divisor = include_pad ? padded : inside;
        return divisor > 0 ? sum / static_cast<double>(divisor) : 0.0;
      });
}

// The p of LpPool/GlobalLpPool: an int since opset 2, a float in opset 1.
Result<double> lp_order(const KernelContext& ctx) {
  double p = 2.0;
  if (const Attribute* a = ctx.node().attr("p")) p = a->type == AttrType::f ? static_cast<double>(a->f) : static_cast<double>(a->i);
  if (!(p > 0.0) || !std::isfinite(p)) return ctx.invalid("p must be a positive number");
  return p;
}

Status lp_pool_kernel(KernelContext& ctx) {
  TANDEM_ASSIGN_OR_RETURN(double p, lp_order(ctx));
  return sum_pool(
      ctx, true, [p](double v) { return std::pow(std::fabs(v), p); },
      [p](double sum, int64_t, int64_t) { return std::pow(sum, 1.0 / p); });
}

// ---- Global pools ----------------------------------------------------------------------------

enum class GlobalOp { average, max, lp };

// Reduces each (n, c) plane over all spatial dims; the output keeps them as size-1 dims.
Status global_pool(KernelContext& ctx, GlobalOp op) {
  const Tensor& x = ctx.input(0);
  TANDEM_ASSIGN_OR_RETURN(PoolLayout l, pool_layout(ctx, x, 2));
  if (!is_float_type(x.dtype())) return ctx.invalid("dtype " + std::string(dtype_name(x.dtype())) + " is not a float type");
  double p = 2.0;
  if (op == GlobalOp::lp) {
    TANDEM_ASSIGN_OR_RETURN(p, lp_order(ctx));
  }
  const int64_t in_size = shape_numel(l.spatial), planes = l.batch * l.channels;
  if (in_size == 0 && planes > 0) return ctx.invalid("input has an empty spatial extent " + shape_to_string(x.shape()));
  Tensor y(x.dtype(), pooled_shape(l, std::vector<int64_t>(l.spatial.size(), 1)));
  const std::vector<double> xv = to_double_vector(x);
  visit_float(x.dtype(), [&]<class T>() {
    T* yp = y.data<T>();
    for (int64_t plane = 0; plane < planes; ++plane) {
      const double* xp = xv.data() + plane * in_size;
      double r = 0.0;
      if (op == GlobalOp::max) {
        r = xp[0];
        for (int64_t i = 1; i < in_size; ++i)
          if (xp[i] > r) r = xp[i];
      } else if (op == GlobalOp::average) {
        for (int64_t i = 0; i < in_size; ++i) r += xp[i];
        r /= static_cast<double>(in_size);
      } else {
        for (int64_t i = 0; i < in_size; ++i) r += std::pow(std::fabs(xp[i]), p);
        r = std::pow(r, 1.0 / p);
      }
      yp[plane] = from_double<T>(r);
    }
  });
  ctx.set_output(0, y);
  return Status::ok();
}

Status global_average_pool_kernel(KernelContext& ctx) { return global_pool(ctx, GlobalOp::average); }
Status global_max_pool_kernel(KernelContext& ctx) { return global_pool(ctx, GlobalOp::max); }
Status global_lp_pool_kernel(KernelContext& ctx) { return global_pool(ctx, GlobalOp::lp); }

// ---- MaxUnpool -------------------------------------------------------------------------------

// MaxUnpool(X, I, output_shape?): scatters X into zeros at the flat positions I. The indices
// address the default unpooled shape N x C x ((in - 1) * stride + kernel - pads); when
// output_shape is larger, that block sits at its origin and the extra elements stay zero.
Status max_unpool_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& ind = ctx.input(1);
  TANDEM_ASSIGN_OR_RETURN(PoolLayout l, pool_layout(ctx, x, 3));
  if (!ind.defined()) return ctx.invalid("indices input I is missing");
  if (ind.shape() != x.shape())
    return ctx.invalid("indices shape " + shape_to_string(ind.shape()) + " differs from X shape " +
                       shape_to_string(x.shape()));
  if (!is_integer_type(ind.dtype())) return ctx.invalid("indices must be an integer tensor");
  if (!ctx.node().has_attr("kernel_shape")) return ctx.invalid("kernel_shape attribute is required");
  const std::vector<int64_t> kernel = ctx.node().attr_ints("kernel_shape");
  const size_t r = l.spatial.size();
  if (kernel.size() != r)
    return ctx.invalid("kernel_shape has " + std::to_string(kernel.size()) + " values, expected " + std::to_string(r));
  for (int64_t k : kernel)
    if (k < 1 || k > kMaxWindowAttr) return ctx.invalid("kernel_shape value " + std::to_string(k) + " is out of range");
  TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> strides, read_window_ints(ctx.node(), "strides", r, 1, 1));
  TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> pads, read_window_ints(ctx.node(), "pads", 2 * r, 0, 0));
  Shape inferred{l.batch, l.channels};
  for (size_t d = 0; d < r; ++d) {
    const int64_t v = (l.spatial[d] - 1) * strides[d] + kernel[d] - pads[d] - pads[d + r];
    if (v < 0) return ctx.invalid("unpooled spatial dim " + std::to_string(d) + " would be negative (" + std::to_string(v) + ")");
    inferred.push_back(v);
  }
  Shape out = inferred;
  if (ctx.has_input(2)) {
    const Tensor& os = ctx.input(2);
    if (!is_integer_type(os.dtype()) || os.rank() != 1 || os.numel() != static_cast<int64_t>(r + 2))
      return ctx.invalid("output_shape must be a 1-D integer tensor of " + std::to_string(r + 2) + " values, got " +
                         shape_to_string(os.shape()));
    out = to_int64_vector(os);
    if (out[0] != l.batch || out[1] != l.channels)
      return ctx.invalid("output_shape " + shape_to_string(out) + " does not match the N and C of X " +
                         shape_to_string(x.shape()));
    for (size_t d = 0; d < r; ++d)
      if (out[d + 2] < inferred[d + 2] || out[d + 2] > kMaxWindowAttr)
        return ctx.invalid("output_shape " + shape_to_string(out) + " is smaller than the unpooled shape " +
                           shape_to_string(inferred) + " or too large");
  }
  TANDEM_ASSIGN_OR_RETURN(int64_t inferred_numel, conv_pool::checked_numel(ctx, inferred));
  TANDEM_ASSIGN_OR_RETURN(int64_t out_numel, conv_pool::checked_numel(ctx, out));
  (void)out_numel;
  if (!visit_numeric(x.dtype(), []<class T>() {})) return ctx.invalid("dtype " + std::string(dtype_name(x.dtype())) + " is not supported");
  const std::vector<int64_t> idx = to_int64_vector(ind);
  for (int64_t i : idx)
    if (i < 0 || i >= inferred_numel)
      return ctx.invalid("index " + std::to_string(i) + " is out of range [0, " + std::to_string(inferred_numel) + ")");
  Tensor y(x.dtype(), out);
  visit_numeric(x.dtype(), [&]<class T>() {
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    for (size_t j = 0; j < idx.size(); ++j) {
      // Decompose the index in the inferred shape, re-linearize in the output shape.
      int64_t rest = idx[j], out_index = 0, out_stride = 1;
      for (size_t d = inferred.size(); d-- > 0;) {
        out_index += (rest % inferred[d]) * out_stride;
        rest /= inferred[d];
        out_stride *= out[d];
      }
      yp[out_index] = xp[j];
    }
  });
  ctx.set_output(0, y);
  return Status::ok();
}

}  // namespace

void register_pool_kernels(KernelTable& t) {
  t.add("", "MaxPool", &max_pool_kernel);
  t.add("", "AveragePool", &average_pool_kernel);
  t.add("", "LpPool", &lp_pool_kernel);
  t.add("", "GlobalAveragePool", &global_average_pool_kernel);
  t.add("", "GlobalMaxPool", &global_max_pool_kernel);
  t.add("", "GlobalLpPool", &global_lp_pool_kernel);
  t.add("", "MaxUnpool", &max_unpool_kernel);
}

}  // namespace tandem
