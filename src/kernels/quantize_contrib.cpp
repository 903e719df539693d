// Reference kernels: the quantized operators of the com.microsoft domain, which ONNX Runtime's
// quantization tools write (QOperator form, dynamic quantization):
//   QLinearAdd, QLinearMul, QLinearSigmoid, QLinearLeakyRelu, QLinearGlobalAveragePool,
//   QLinearAveragePool, QLinearConcat, QGemm, DynamicQuantizeMatMul, MatMulIntegerToFloat.
//
// The arithmetic is the spec every faster kernel is compared with (exactly, for 8-bit outputs):
//  * an 8-bit value q with scale s and zero point z stands for the real s * (q - z); scales are
//    read as the float32 values they hold and all real arithmetic is done in double;
//  * integer products accumulate in int64 (no wrap for any realistic size);
//  * a real r leaves as saturate(round_half_to_even(r / y_scale) + y_zero_point);
//  * integer-accumulator ops (QGemm, DynamicQuantizeMatMul, MatMulIntegerToFloat) form the real
//    as acc * (product of the scales), all in double, float outputs rounded once to float32.
// Scales and zero points are per tensor (one element) except the per-column (1-D, one per
// output column) b_scale and b_zero_point of QGemm, DynamicQuantizeMatMul and
// MatMulIntegerToFloat. An omitted zero point is 0. Zero points have the type of their tensor.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor_util.h"
#include "kernels/conv_pool_util.h"
#include "kernels/quantize_util.h"
#include "kernels/registry.h"
#include "kernels/shape_util.h"

namespace tandem {
namespace {

using quant::int8_at;
using quant::is_8bit;
using quant::Range;
using quant::range_of;
using quant::round_add_saturate;
using quant::store_8bit;

// ---- parameters --------------------------------------------------------------------------------

Result<Tensor> required_8bit(const KernelContext& ctx, size_t slot, const char* name) {
  if (!ctx.has_input(slot) || !ctx.input(slot).defined()) return ctx.invalid(std::string("input ") + name + " is missing");
  const Tensor& t = ctx.input(slot);
  if (!is_8bit(t.dtype()))
    return ctx.invalid(std::string(name) + " must be uint8 or int8, got " + std::string(dtype_name(t.dtype())));
  return t;
}

// A per-tensor scale: a float tensor of one element (a scalar or [1]), finite.
Result<double> read_scale(const KernelContext& ctx, size_t slot, const char* name) {
  if (!ctx.has_input(slot) || !ctx.input(slot).defined()) return ctx.invalid(std::string("input ") + name + " is missing");
  const Tensor& t = ctx.input(slot);
  if (!is_float_type(t.dtype()))
    return ctx.invalid(std::string(name) + " must be a float tensor, got " + std::string(dtype_name(t.dtype())));
  if (t.numel() != 1 || t.rank() > 1)
    return ctx.invalid(std::string(name) + " must be a scalar, got shape " + shape_to_string(t.shape()));
  const double v = to_double_vector(t)[0];
  if (!std::isfinite(v)) return ctx.invalid(std::string(name) + " is not finite");
  return v;
}

// The scale of an output, which divides: also nonzero.
Result<double> read_output_scale(const KernelContext& ctx, size_t slot, const char* name) {
  TANDEM_ASSIGN_OR_RETURN(double v, read_scale(ctx, slot, name));
  if (v == 0.0) return ctx.invalid(std::string(name) + " is zero");
  return v;
}

// A per-tensor zero point of 8-bit type `type`; 0 when omitted.
Result<int64_t> read_zero_point(const KernelContext& ctx, size_t slot, const char* name, DataType type) {
  if (!ctx.has_input(slot)) return int64_t{0};
  const Tensor& t = ctx.input(slot);
  if (t.dtype() != type)
    return ctx.invalid(std::string(name) + " dtype " + std::string(dtype_name(t.dtype())) + " differs from " +
                       std::string(dtype_name(type)));
  if (t.numel() != 1 || t.rank() > 1)
    return ctx.invalid(std::string(name) + " must be a scalar, got shape " + shape_to_string(t.shape()));
  return int8_at(t, 0);
}

// A per-tensor or per-column parameter of an operand with `columns` output columns: one value
// per column. Omitted: `fallback`. `type` (if not undefined) is the dtype it must have.
Result<std::vector<double>> read_columns(const KernelContext& ctx, size_t slot, const char* name, int64_t columns,
                                         double fallback, DataType type = DataType::undefined) {
  const size_t n = static_cast<size_t>(columns);
  if (!ctx.has_input(slot)) return std::vector<double>(n, fallback);
  const Tensor& t = ctx.input(slot);
  if (type != DataType::undefined && t.dtype() != type)
    return ctx.invalid(std::string(name) + " dtype " + std::string(dtype_name(t.dtype())) + " differs from " +
                       std::string(dtype_name(type)));
  if (type == DataType::undefined && !is_float_type(t.dtype()))
    return ctx.invalid(std::string(name) + " must be a float tensor, got " + std::string(dtype_name(t.dtype())));
  std::vector<double> v = to_double_vector(t);
  for (double x : v)
    if (!std::isfinite(x)) return ctx.invalid(std::string(name) + " is not finite");
  if (t.rank() <= 1 && t.numel() == 1) return std::vector<double>(n, v[0]);
  if (t.rank() == 1 && t.dim(0) == columns) return v;
  return ctx.invalid(std::string(name) + " has shape " + shape_to_string(t.shape()) + ", expected a scalar or [" +
                     std::to_string(columns) + "] (one per column)");
}

// An optional float bias of one value per output column; zeros when omitted.
Result<std::vector<double>> read_bias(const KernelContext& ctx, size_t slot, int64_t columns) {
  if (!ctx.has_input(slot)) return std::vector<double>(static_cast<size_t>(columns), 0.0);
  const Tensor& t = ctx.input(slot);
  if (!is_float_type(t.dtype()))
    return ctx.invalid("bias must be a float tensor, got " + std::string(dtype_name(t.dtype())));
  if (t.rank() != 1 || t.dim(0) != columns)
    return ctx.invalid("bias has shape " + shape_to_string(t.shape()) + ", expected [" + std::to_string(columns) + "]");
  return to_double_vector(t);
}

// The channels_last attribute: 0 (N x C x D...) or 1 (N x D... x C).
Result<bool> read_channels_last(const KernelContext& ctx) {
  const int64_t v = ctx.node().attr_int("channels_last", 0);
  if (v != 0 && v != 1) return ctx.invalid("channels_last " + std::to_string(v) + " must be 0 or 1");
  return v == 1;
}

// ---- QLinearAdd, QLinearMul ----------------------------------------------------------------------
// (A, A_scale, A_zero_point?, B, B_scale, B_zero_point?, C_scale, C_zero_point?) -> C, with
// numpy broadcasting:
//   add: C = (A_scale (A - A_zp) + B_scale (B - B_zp)) / C_scale + C_zp
//   mul: C = (A_scale (A - A_zp)) (B_scale (B - B_zp)) / C_scale + C_zp

Status qlinear_binary(KernelContext& ctx, bool multiply) {
  TANDEM_ASSIGN_OR_RETURN(Tensor a, required_8bit(ctx, 0, "A"));
  TANDEM_ASSIGN_OR_RETURN(Tensor b, required_8bit(ctx, 3, "B"));
  if (b.dtype() != a.dtype())
    return ctx.invalid("A and B differ in dtype: " + std::string(dtype_name(a.dtype())) + " and " +
                       std::string(dtype_name(b.dtype())));
  TANDEM_ASSIGN_OR_RETURN(double a_scale, read_scale(ctx, 1, "A_scale"));
  TANDEM_ASSIGN_OR_RETURN(int64_t a_zp, read_zero_point(ctx, 2, "A_zero_point", a.dtype()));
  TANDEM_ASSIGN_OR_RETURN(double b_scale, read_scale(ctx, 4, "B_scale"));
  TANDEM_ASSIGN_OR_RETURN(int64_t b_zp, read_zero_point(ctx, 5, "B_zero_point", a.dtype()));
  TANDEM_ASSIGN_OR_RETURN(double c_scale, read_output_scale(ctx, 6, "C_scale"));
  TANDEM_ASSIGN_OR_RETURN(int64_t c_zp, read_zero_point(ctx, 7, "C_zero_point", a.dtype()));
  auto shape = broadcast_shapes(a.shape(), b.shape());
  if (!shape.is_ok())
    return ctx.invalid("A " + shape_to_string(a.shape()) + " and B " + shape_to_string(b.shape()) + " do not broadcast");
  TANDEM_RETURN_IF_ERROR(kernel_util::check_alloc(ctx, *shape, a.dtype()));
  Tensor c(a.dtype(), *shape);
  const Range range = range_of(a.dtype());
  BroadcastIterator it(*shape, {a.shape(), b.shape()});
  for (int64_t i = 0; i < c.numel(); ++i, it.next()) {
    const double x = a_scale * static_cast<double>(int8_at(a, it.offset(0)) - a_zp);
    const double y = b_scale * static_cast<double>(int8_at(b, it.offset(1)) - b_zp);
    store_8bit(c, i, round_add_saturate((multiply ? x * y : x + y) / c_scale, c_zp, range));
  }
  ctx.set_output(0, c);
  return Status::ok();
}

Status qlinear_add_kernel(KernelContext& ctx) { return qlinear_binary(ctx, false); }
Status qlinear_mul_kernel(KernelContext& ctx) { return qlinear_binary(ctx, true); }

// ---- QLinearSigmoid, QLinearLeakyRelu --------------------------------------------------------------
// (X, X_scale, X_zero_point?, Y_scale, Y_zero_point?) -> Y = quantize(f(dequantize(X))).

template <class F>
Status qlinear_unary(KernelContext& ctx, F f) {
  TANDEM_ASSIGN_OR_RETURN(Tensor x, required_8bit(ctx, 0, "X"));
  TANDEM_ASSIGN_OR_RETURN(double x_scale, read_scale(ctx, 1, "X_scale"));
  TANDEM_ASSIGN_OR_RETURN(int64_t x_zp, read_zero_point(ctx, 2, "X_zero_point", x.dtype()));
  TANDEM_ASSIGN_OR_RETURN(double y_scale, read_output_scale(ctx, 3, "Y_scale"));
  TANDEM_ASSIGN_OR_RETURN(int64_t y_zp, read_zero_point(ctx, 4, "Y_zero_point", x.dtype()));
  Tensor y(x.dtype(), x.shape());
  const Range range = range_of(x.dtype());
  for (int64_t i = 0; i < x.numel(); ++i) {
    const double real = x_scale * static_cast<double>(int8_at(x, i) - x_zp);
    store_8bit(y, i, round_add_saturate(f(real) / y_scale, y_zp, range));
  }
  ctx.set_output(0, y);
  return Status::ok();
}

Status qlinear_sigmoid_kernel(KernelContext& ctx) {
  return qlinear_unary(ctx, [](double v) { return 1.0 / (1.0 + std::exp(-v)); });
}

Status qlinear_leaky_relu_kernel(KernelContext& ctx) {
  const double alpha = ctx.node().attr_float("alpha", 0.01f);
  if (!std::isfinite(alpha)) return ctx.invalid("alpha is not finite");
  return qlinear_unary(ctx, [alpha](double v) { return v >= 0.0 ? v : alpha * v; });
}

// ---- pools -----------------------------------------------------------------------------------------
// Where element (n, c, spatial s) of an N x C x S (or, channels last, N x S x C) tensor lies.
struct PlaneLayout {
  int64_t channels = 0, spatial = 0;
  bool channels_last = false;
  int64_t index(int64_t n, int64_t c, int64_t s) const {
    return channels_last ? (n * spatial + s) * channels + c : (n * channels + c) * spatial + s;
  }
};

// The shape of a pooled tensor: batch, channel and the spatial dims in the layout's order.
Shape pooled_shape(int64_t batch, int64_t channels, const std::vector<int64_t>& spatial, bool channels_last) {
  Shape s{batch};
  if (!channels_last) s.push_back(channels);
  s.insert(s.end(), spatial.begin(), spatial.end());
  if (channels_last) s.push_back(channels);
  return s;
}

// (X, x_scale, x_zero_point, y_scale, y_zero_point) -> Y: the mean of each (n, c) plane over
// all spatial dims, which the output keeps as 1s.
Status qlinear_global_average_pool_kernel(KernelContext& ctx) {
  TANDEM_ASSIGN_OR_RETURN(Tensor x, required_8bit(ctx, 0, "X"));
  TANDEM_ASSIGN_OR_RETURN(bool channels_last, read_channels_last(ctx));
  TANDEM_ASSIGN_OR_RETURN(double x_scale, read_scale(ctx, 1, "x_scale"));
  TANDEM_ASSIGN_OR_RETURN(int64_t x_zp, read_zero_point(ctx, 2, "x_zero_point", x.dtype()));
  TANDEM_ASSIGN_OR_RETURN(double y_scale, read_output_scale(ctx, 3, "y_scale"));
  TANDEM_ASSIGN_OR_RETURN(int64_t y_zp, read_zero_point(ctx, 4, "y_zero_point", x.dtype()));
  if (x.rank() < 2) return ctx.invalid("X has rank " + std::to_string(x.rank()) + ", expected at least 2");
  const size_t rank = x.rank();
  PlaneLayout l;
  l.channels_last = channels_last;
  l.channels = channels_last ? x.dim(rank - 1) : x.dim(1);
  l.spatial = 1;
  for (size_t d = channels_last ? 1 : 2; d < (channels_last ? rank - 1 : rank); ++d) l.spatial *= x.dim(d);
  const int64_t batch = x.dim(0);
  if (l.spatial == 0 && batch * l.channels > 0) return ctx.invalid("X has an empty spatial extent " + shape_to_string(x.shape()));
  Tensor y(x.dtype(), pooled_shape(batch, l.channels, std::vector<int64_t>(rank - 2, 1), channels_last));
  const Range range = range_of(x.dtype());
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t c = 0; c < l.channels; ++c) {
      int64_t sum = 0;
      for (int64_t s = 0; s < l.spatial; ++s) sum += int8_at(x, l.index(n, c, s)) - x_zp;
      const double mean = x_scale * static_cast<double>(sum) / static_cast<double>(l.spatial);
      store_8bit(y, n * l.channels + c, round_add_saturate(mean / y_scale, y_zp, range));
    }
  ctx.set_output(0, y);
  return Status::ok();
}

// (X, x_scale, x_zero_point?, y_scale, y_zero_point?) -> Y: AveragePool (kernel_shape, strides,
// pads, auto_pad, ceil_mode, count_include_pad; no dilations) of the dequantized input. Padding
// holds the real 0; count_include_pad counts it in the divisor, up to the padded extent as
// AveragePool does (ONNX Runtime's QLinearAveragePool also counts the part of a ceil_mode window
// that runs past the end padding; this kernel does not).
Status qlinear_average_pool_kernel(KernelContext& ctx) {
  TANDEM_ASSIGN_OR_RETURN(Tensor x, required_8bit(ctx, 0, "X"));
  TANDEM_ASSIGN_OR_RETURN(bool channels_last, read_channels_last(ctx));
  TANDEM_ASSIGN_OR_RETURN(double x_scale, read_scale(ctx, 1, "x_scale"));
  TANDEM_ASSIGN_OR_RETURN(int64_t x_zp, read_zero_point(ctx, 2, "x_zero_point", x.dtype()));
  TANDEM_ASSIGN_OR_RETURN(double y_scale, read_output_scale(ctx, 3, "y_scale"));
  TANDEM_ASSIGN_OR_RETURN(int64_t y_zp, read_zero_point(ctx, 4, "y_zero_point", x.dtype()));
  if (!ctx.node().has_attr("kernel_shape")) return ctx.invalid("kernel_shape attribute is required");
  const std::vector<int64_t> kernel = ctx.node().attr_ints("kernel_shape");
  if (x.rank() < 3 || x.rank() != kernel.size() + 2)
    return ctx.invalid("X has " + std::to_string(x.rank()) + " dims, expected " + std::to_string(kernel.size() + 2) +
                       " (at least 3) for a kernel_shape of " + std::to_string(kernel.size()) + " values");
  const size_t rank = x.rank();
  const Shape spatial = channels_last ? Shape(x.shape().begin() + 1, x.shape().end() - 1)
                                      : Shape(x.shape().begin() + 2, x.shape().end());
  WindowOptions options;
  options.has_dilations = false;
  options.has_ceil_mode = true;
  TANDEM_ASSIGN_OR_RETURN(WindowGeometry win, window_geometry(ctx.node(), spatial, kernel, options));
  const bool include_pad = ctx.node().attr_int("count_include_pad", 0) != 0;
  const int64_t batch = x.dim(0);
  PlaneLayout in;
  in.channels_last = channels_last;
  in.channels = channels_last ? x.dim(rank - 1) : x.dim(1);
  in.spatial = shape_numel(win.in);
  PlaneLayout out = in;
  out.spatial = shape_numel(win.out);
  const Shape y_shape = pooled_shape(batch, in.channels, win.out, channels_last);
  TANDEM_ASSIGN_OR_RETURN(int64_t y_numel, conv_pool::checked_numel(ctx, y_shape));
  (void)y_numel;
  TANDEM_RETURN_IF_ERROR(kernel_util::check_alloc(ctx, y_shape, x.dtype()));
  Tensor y(x.dtype(), y_shape);
  const Range range = range_of(x.dtype());
  std::vector<int64_t> oc(win.rank(), 0);
  std::vector<conv_pool::Tap> taps;
  for (int64_t p = 0; p < out.spatial; ++p, conv_pool::next_coord(oc, win.out)) {
    const int64_t padded_count = conv_pool::window_taps(win, oc, taps);
    const int64_t divisor = include_pad ? padded_count : static_cast<int64_t>(taps.size());
    for (int64_t n = 0; n < batch; ++n)
      for (int64_t c = 0; c < in.channels; ++c) {
        int64_t sum = 0;
        for (const conv_pool::Tap& t : taps) sum += int8_at(x, in.index(n, c, t.input_index)) - x_zp;
        const double mean = divisor > 0 ? x_scale * static_cast<double>(sum) / static_cast<double>(divisor) : 0.0;
        store_8bit(y, out.index(n, c, p), round_add_saturate(mean / y_scale, y_zp, range));
      }
  }
  ctx.set_output(0, y);
  return Status::ok();
}

// ---- QLinearConcat ---------------------------------------------------------------------------------
// (Y_scale, Y_zero_point, then (tensor, scale, zero_point) per input) -> Y: the inputs,
// requantized to Y's parameters, concatenated along `axis`.

Status qlinear_concat_kernel(KernelContext& ctx) {
  const size_t n_in = ctx.num_inputs();
  if (n_in < 5 || (n_in - 2) % 3 != 0)
    return ctx.invalid("expects Y_scale, Y_zero_point and (tensor, scale, zero point) triples, got " +
                       std::to_string(n_in) + " inputs");
  TANDEM_ASSIGN_OR_RETURN(double y_scale, read_output_scale(ctx, 0, "Y_scale"));
  if (!ctx.node().has_attr("axis")) return ctx.invalid("axis attribute is required");
  const size_t count = (n_in - 2) / 3;
  std::vector<Tensor> xs;
  for (size_t i = 0; i < count; ++i) {
    const std::string name = "input " + std::to_string(i);
    TANDEM_ASSIGN_OR_RETURN(Tensor t, required_8bit(ctx, 2 + 3 * i, name.c_str()));
    xs.push_back(t);
  }
  const DataType type = ctx.has_input(1) ? ctx.input(1).dtype() : xs[0].dtype();
  TANDEM_ASSIGN_OR_RETURN(int64_t y_zp, read_zero_point(ctx, 1, "Y_zero_point", type));
  const size_t rank = xs[0].rank();
  if (rank == 0) return ctx.invalid("inputs must not be scalars");
  TANDEM_ASSIGN_OR_RETURN(int64_t axis, kernel_util::normalize_one_axis(ctx, ctx.node().attr_int("axis", 0),
                                                                        static_cast<int64_t>(rank)));
  Shape y_shape = xs[0].shape();
  y_shape[axis] = 0;
  std::vector<double> scales(count);
  std::vector<int64_t> zps(count);
  for (size_t i = 0; i < count; ++i) {
    const std::string scale_name = "scale of input " + std::to_string(i);
    const std::string zp_name = "zero point of input " + std::to_string(i);
    TANDEM_ASSIGN_OR_RETURN(scales[i], read_scale(ctx, 3 + 3 * i, scale_name.c_str()));
    if (xs[i].dtype() != type)
      return ctx.invalid("input " + std::to_string(i) + " dtype " + std::string(dtype_name(xs[i].dtype())) +
                         " differs from the output's " + std::string(dtype_name(type)));
    TANDEM_ASSIGN_OR_RETURN(zps[i], read_zero_point(ctx, 4 + 3 * i, zp_name.c_str(), type));
    bool fits = xs[i].rank() == rank;
    for (size_t d = 0; fits && d < rank; ++d) fits = static_cast<int64_t>(d) == axis || xs[i].dim(d) == xs[0].dim(d);
    if (!fits)
      return ctx.invalid("input " + std::to_string(i) + " has shape " + shape_to_string(xs[i].shape()) +
                         ", which does not fit " + shape_to_string(xs[0].shape()) + " along axis " + std::to_string(axis));
    y_shape[axis] += xs[i].dim(axis);
  }
  TANDEM_RETURN_IF_ERROR(kernel_util::check_alloc(ctx, y_shape, type));
  Tensor y(type, y_shape);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= y_shape[d];
  for (size_t d = static_cast<size_t>(axis) + 1; d < rank; ++d) inner *= y_shape[d];
  const Range range = range_of(type);
  int64_t offset = 0;  // position along the axis where input i starts
  for (size_t i = 0; i < count; ++i) {
    const int64_t len = xs[i].dim(axis);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t a = 0; a < len; ++a)
        for (int64_t k = 0; k < inner; ++k) {
          const double real = scales[i] * static_cast<double>(int8_at(xs[i], (o * len + a) * inner + k) - zps[i]);
          store_8bit(y, (o * y_shape[axis] + offset + a) * inner + k, round_add_saturate(real / y_scale, y_zp, range));
        }
    offset += len;
  }
  ctx.set_output(0, y);
  return Status::ok();
}

// ---- integer products ------------------------------------------------------------------------------

// The layout of a numpy matmul of A and B (1-D operands promoted as numpy does).
struct Product {
  Shape out_shape;
  int64_t batches = 1, M = 0, K = 0, N = 0;
  std::vector<int64_t> a_offset, b_offset;  // element offset of each batch's matrix
};

Result<Product> plan_product(const KernelContext& ctx, const Shape& a_in, const Shape& b_in) {
  if (a_in.empty() || b_in.empty()) return ctx.invalid("A and B must have rank >= 1, got scalars");
  Shape a = a_in, b = b_in;
  if (a_in.size() == 1) a.insert(a.begin(), 1);
  if (b_in.size() == 1) b.push_back(1);
  Product p;
  p.M = a[a.size() - 2];
  p.K = a.back();
  p.N = b.back();
  if (b[b.size() - 2] != p.K)
    return ctx.invalid("inner dimensions differ: A is " + shape_to_string(a_in) + ", B is " + shape_to_string(b_in));
  const Shape a_batch(a.begin(), a.end() - 2), b_batch(b.begin(), b.end() - 2);
  auto batch = broadcast_shapes(a_batch, b_batch);
  if (!batch.is_ok())
    return ctx.invalid("batch dims do not broadcast: A is " + shape_to_string(a_in) + ", B is " + shape_to_string(b_in));
  p.out_shape = *batch;
  if (a_in.size() > 1) p.out_shape.push_back(p.M);
  if (b_in.size() > 1) p.out_shape.push_back(p.N);
  TANDEM_RETURN_IF_ERROR(kernel_util::check_alloc(ctx, p.out_shape, DataType::float64));
  p.batches = shape_numel(*batch);
  BroadcastIterator it(*batch, {a_batch, b_batch});
  for (int64_t i = 0; i < p.batches; ++i, it.next()) {
    p.a_offset.push_back(it.offset(0) * p.M * p.K);
    p.b_offset.push_back(it.offset(1) * p.K * p.N);
  }
  return p;
}

// acc[batch, m, n] = sum_k (A[m, k] - a_zp) (B[k, n] - b_zp[n]), exactly (int64). A holds
// `a` (already 8-bit values, given as int64), B an 8-bit tensor.
std::vector<int64_t> integer_product(const Product& p, const std::vector<int64_t>& a, int64_t a_zp, const Tensor& b,
                                     const std::vector<double>& b_zp) {
  std::vector<int64_t> acc(static_cast<size_t>(p.batches * p.M * p.N), 0);
  for (int64_t bi = 0; bi < p.batches; ++bi)
    for (int64_t m = 0; m < p.M; ++m)
      for (int64_t n = 0; n < p.N; ++n) {
        const int64_t bz = static_cast<int64_t>(b_zp[static_cast<size_t>(n)]);
        int64_t s = 0;
        for (int64_t k = 0; k < p.K; ++k)
          s += (a[p.a_offset[bi] + m * p.K + k] - a_zp) * (int8_at(b, p.b_offset[bi] + k * p.N + n) - bz);
        acc[(bi * p.M + m) * p.N + n] = s;
      }
  return acc;
}

std::vector<int64_t> int8_values(const Tensor& t) {
  std::vector<int64_t> v(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[i] = int8_at(t, i);
  return v;
}

// Y[.., m, n] = acc * a_scale * b_scale[n] + bias[n], rounded once to `dtype`.
Tensor scaled_product(const Product& p, const std::vector<int64_t>& acc, double a_scale, const std::vector<double>& b_scale,
                      const std::vector<double>& bias, DataType dtype) {
  std::vector<double> y(acc.size());
  for (size_t i = 0; i < acc.size(); ++i) {
    const size_t n = p.N == 0 ? 0 : i % static_cast<size_t>(p.N);
    y[i] = static_cast<double>(acc[i]) * a_scale * b_scale[n] + bias[n];
  }
  return float_tensor(dtype, p.out_shape, y);
}

// (A float, B, b_scale, b_zero_point?, bias?) -> Y float: A is quantized to uint8 as
// DynamicQuantizeLinear does (per tensor, over its range extended to 0), multiplied with B as
// integers and scaled by a_scale * b_scale[n]; bias[n] is added.
Status dynamic_quantize_matmul_kernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.input(0).defined()) return ctx.invalid("input A is missing");
  const Tensor& a = ctx.input(0);
  if (a.dtype() != DataType::float32) return ctx.invalid("A must be float32, got " + std::string(dtype_name(a.dtype())));
  TANDEM_ASSIGN_OR_RETURN(Tensor b, required_8bit(ctx, 1, "B"));
  TANDEM_ASSIGN_OR_RETURN(Product p, plan_product(ctx, a.shape(), b.shape()));
  if (!ctx.has_input(2)) return ctx.invalid("input b_scale is missing");
  TANDEM_ASSIGN_OR_RETURN(std::vector<double> b_scale, read_columns(ctx, 2, "b_scale", p.N, 1.0));
  TANDEM_ASSIGN_OR_RETURN(std::vector<double> b_zp, read_columns(ctx, 3, "b_zero_point", p.N, 0.0, b.dtype()));
  TANDEM_ASSIGN_OR_RETURN(std::vector<double> bias, read_bias(ctx, 4, p.N));
  const std::vector<double> av = to_double_vector(a);
  const quant::DynamicParams params = quant::dynamic_params(av);
  std::vector<int64_t> aq(av.size());
  for (size_t i = 0; i < av.size(); ++i) aq[i] = quant::dynamic_quantize(av[i], params);
  const std::vector<int64_t> acc = integer_product(p, aq, params.zero_point, b, b_zp);
  ctx.set_output(0, scaled_product(p, acc, params.scale, b_scale, bias, DataType::float32));
  return Status::ok();
}

// (A, B, a_scale, b_scale, a_zero_point?, b_zero_point?, bias?) -> Y of a_scale's float type:
// (A - a_zp) (B - b_zp[n]) * a_scale * b_scale[n] + bias[n].
Status matmul_integer_to_float_kernel(KernelContext& ctx) {
  TANDEM_ASSIGN_OR_RETURN(Tensor a, required_8bit(ctx, 0, "A"));
  TANDEM_ASSIGN_OR_RETURN(Tensor b, required_8bit(ctx, 1, "B"));
  TANDEM_ASSIGN_OR_RETURN(Product p, plan_product(ctx, a.shape(), b.shape()));
  TANDEM_ASSIGN_OR_RETURN(double a_scale, read_scale(ctx, 2, "a_scale"));
  if (!ctx.has_input(3)) return ctx.invalid("input b_scale is missing");
  TANDEM_ASSIGN_OR_RETURN(std::vector<double> b_scale, read_columns(ctx, 3, "b_scale", p.N, 1.0));
  TANDEM_ASSIGN_OR_RETURN(int64_t a_zp, read_zero_point(ctx, 4, "a_zero_point", a.dtype()));
  TANDEM_ASSIGN_OR_RETURN(std::vector<double> b_zp, read_columns(ctx, 5, "b_zero_point", p.N, 0.0, b.dtype()));
  TANDEM_ASSIGN_OR_RETURN(std::vector<double> bias, read_bias(ctx, 6, p.N));
  const std::vector<int64_t> acc = integer_product(p, int8_values(a), a_zp, b, b_zp);
  ctx.set_output(0, scaled_product(p, acc, a_scale, b_scale, bias, ctx.input(2).dtype()));
  return Status::ok();
}

// (A, a_scale, a_zero_point, B, b_scale, b_zero_point, C?, y_scale?, y_zero_point?) -> Y:
//   acc = (op(A) - a_zp) (op(B) - b_zp[n]) + C   (C int32, broadcast to [M, N])
//   real = acc * alpha * a_scale * b_scale[n]
// Y is float32 real without y_scale and y_zero_point, else quantized to them.
Status qgemm_kernel(KernelContext& ctx) {
  TANDEM_ASSIGN_OR_RETURN(Tensor a, required_8bit(ctx, 0, "A"));
  TANDEM_ASSIGN_OR_RETURN(Tensor b, required_8bit(ctx, 3, "B"));
  if (a.rank() != 2 || b.rank() != 2)
    return ctx.invalid("A and B must be matrices, got " + shape_to_string(a.shape()) + " and " + shape_to_string(b.shape()));
  const bool trans_a = ctx.node().attr_int("transA", 0) != 0, trans_b = ctx.node().attr_int("transB", 0) != 0;
  const double alpha = ctx.node().attr_float("alpha", 1.0f);
  if (!std::isfinite(alpha)) return ctx.invalid("alpha is not finite");
  const int64_t M = trans_a ? a.dim(1) : a.dim(0), K = trans_a ? a.dim(0) : a.dim(1);
  const int64_t N = trans_b ? b.dim(0) : b.dim(1), KB = trans_b ? b.dim(1) : b.dim(0);
  if (K != KB)
    return ctx.invalid("inner dimensions differ: A is " + shape_to_string(a.shape()) + (trans_a ? " (transposed)" : "") +
                       ", B is " + shape_to_string(b.shape()) + (trans_b ? " (transposed)" : ""));
  TANDEM_ASSIGN_OR_RETURN(double a_scale, read_scale(ctx, 1, "a_scale"));
  TANDEM_ASSIGN_OR_RETURN(int64_t a_zp, read_zero_point(ctx, 2, "a_zero_point", a.dtype()));
  if (!ctx.has_input(4)) return ctx.invalid("input b_scale is missing");
  TANDEM_ASSIGN_OR_RETURN(std::vector<double> b_scale, read_columns(ctx, 4, "b_scale", N, 1.0));
  TANDEM_ASSIGN_OR_RETURN(std::vector<double> b_zp, read_columns(ctx, 5, "b_zero_point", N, 0.0, b.dtype()));
  const Shape y_shape{M, N};
  std::vector<int64_t> c_strides{0, 0};
  if (ctx.has_input(6)) {
    const Tensor& c = ctx.input(6);
    auto fit = broadcast_shapes(c.shape(), y_shape);
    if (c.dtype() != DataType::int32 || c.rank() > 2 || !fit.is_ok() || *fit != y_shape)
      return ctx.invalid("C must be int32 and broadcast to [" + std::to_string(M) + "," + std::to_string(N) + "], got " +
                         std::string(dtype_name(c.dtype())) + shape_to_string(c.shape()));
    c_strides = broadcast_strides(c.shape(), y_shape);
  }
  const bool quantized = ctx.has_input(7);
  if (ctx.has_input(7) != ctx.has_input(8))
    return ctx.invalid("y_scale and y_zero_point must be given together (both: quantized output, neither: float)");
  double y_scale = 1.0;
  int64_t y_zp = 0;
  DataType y_type = DataType::float32;
  if (quantized) {
    TANDEM_ASSIGN_OR_RETURN(y_scale, read_output_scale(ctx, 7, "y_scale"));
    y_type = ctx.input(8).dtype();
    if (!is_8bit(y_type)) return ctx.invalid("y_zero_point must be uint8 or int8, got " + std::string(dtype_name(y_type)));
    TANDEM_ASSIGN_OR_RETURN(y_zp, read_zero_point(ctx, 8, "y_zero_point", y_type));
  }
  TANDEM_RETURN_IF_ERROR(kernel_util::check_alloc(ctx, y_shape, DataType::float64));
  std::vector<double> real(static_cast<size_t>(M * N));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      const int64_t bz = static_cast<int64_t>(b_zp[n]);
      int64_t acc = 0;
      for (int64_t k = 0; k < K; ++k) {
        const int64_t av = int8_at(a, trans_a ? k * M + m : m * K + k) - a_zp;
        const int64_t bv = int8_at(b, trans_b ? n * K + k : k * N + n) - bz;
        acc += av * bv;
      }
      if (ctx.has_input(6)) acc += ctx.input(6).data<int32_t>()[m * c_strides[0] + n * c_strides[1]];
      real[m * N + n] = static_cast<double>(acc) * alpha * a_scale * b_scale[n];
    }
  if (!quantized) {
    ctx.set_output(0, float_tensor(DataType::float32, y_shape, real));
    return Status::ok();
  }
  Tensor y(y_type, y_shape);
  const Range range = range_of(y_type);
  for (int64_t i = 0; i < M * N; ++i) store_8bit(y, i, round_add_saturate(real[i] / y_scale, y_zp, range));
  ctx.set_output(0, y);
  return Status::ok();
}

}  // namespace

void register_quantize_contrib_kernels(KernelTable& t) {
  const std::string ms = "com.microsoft";
  t.add(ms, "QLinearAdd", &qlinear_add_kernel);
  t.add(ms, "QLinearMul", &qlinear_mul_kernel);
  t.add(ms, "QLinearSigmoid", &qlinear_sigmoid_kernel);
  t.add(ms, "QLinearLeakyRelu", &qlinear_leaky_relu_kernel);
  t.add(ms, "QLinearGlobalAveragePool", &qlinear_global_average_pool_kernel);
  t.add(ms, "QLinearAveragePool", &qlinear_average_pool_kernel);
  t.add(ms, "QLinearConcat", &qlinear_concat_kernel);
  t.add(ms, "QGemm", &qgemm_kernel);
  t.add(ms, "DynamicQuantizeMatMul", &dynamic_quantize_matmul_kernel);
  t.add(ms, "MatMulIntegerToFloat", &matmul_integer_to_float_kernel);
}

}  // namespace tandem
