// Reference kernels: linear quantization.
//   QuantizeLinear, DequantizeLinear (per-tensor and per-axis; also in the com.microsoft
//   domain; 8-bit and, as opset 21 and ONNX Runtime's contrib forms allow, 16-bit integers),
//   DynamicQuantizeLinear.
// Rounding is round-half-to-even; results saturate to the range of the integer output type.
// Float32 inputs are divided in float32 (like the ONNX reference) so ties land exactly.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/quantize_util.h"
#include "kernels/registry.h"
#include "core/tensor_util.h"

namespace tandem {
namespace {

bool is_quant_type(DataType t) {
  return t == DataType::uint8 || t == DataType::int8 || t == DataType::uint16 || t == DataType::int16;
}

void quant_range(DataType t, double* lo, double* hi) {
  switch (t) {
    case DataType::int8: *lo = -128, *hi = 127; return;
    case DataType::uint16: *lo = 0, *hi = 65535; return;
    case DataType::int16: *lo = -32768, *hi = 32767; return;
    default: *lo = 0, *hi = 255; return;
  }
}

// Stores the integer-valued r (within out_t's range) as element i of y.
void store_quantized(Tensor& y, int64_t i, double r) {
  switch (y.dtype()) {
    case DataType::uint8: y.data<uint8_t>()[i] = static_cast<uint8_t>(r); return;
    case DataType::int8: y.data<int8_t>()[i] = static_cast<int8_t>(r); return;
    case DataType::uint16: y.data<uint16_t>()[i] = static_cast<uint16_t>(r); return;
    default: y.data<int16_t>()[i] = static_cast<int16_t>(r); return;
  }
}

double round_half_even_saturate(double v, double lo, double hi) {
  if (std::isnan(v)) return std::clamp(0.0, lo, hi);
  const double r = std::nearbyint(v);  // default FP environment: ties to even
  return std::clamp(r, lo, hi);
}

// Maps element index -> index into the scale/zero-point vectors: 0 for per-tensor, the
// coordinate along `axis` for per-axis.
struct ChannelMap {
  bool per_axis = false;
  int64_t inner = 1;   // product of dims after axis
  int64_t channels = 1;
  int64_t operator()(int64_t i) const { return per_axis ? (i / inner) % channels : 0; }
};

// Validates scale (and optional zero point) against x and builds the channel map.
Status plan_channels(const KernelContext& ctx, const Tensor& x, const Tensor& scale, const Tensor& zp,
                     const char* scale_name, ChannelMap* map) {
  if (!is_float_type(scale.dtype())) return ctx.invalid(std::string(scale_name) + " must be a float tensor");
  if (scale.numel() == 0) return ctx.invalid(std::string(scale_name) + " is empty");
  if (zp.defined() && zp.shape() != scale.shape() && !(zp.numel() == 1 && scale.numel() == 1))
    return ctx.invalid("zero point shape " + shape_to_string(zp.shape()) + " differs from scale shape " +
                       shape_to_string(scale.shape()));
  if (scale.numel() == 1) {  // scalar or [1]: per-tensor
    map->per_axis = false;
    return Status::ok();
  }
  if (scale.rank() != 1)
    return ctx.invalid(std::string(scale_name) + " must be a scalar or 1-D, got " + shape_to_string(scale.shape()));
  auto axis = normalize_axis(ctx.node().attr_int("axis", 1), static_cast<int64_t>(x.rank()));
  if (!axis.is_ok()) return ctx.invalid(axis.status().message());
  if (x.dim(*axis) != scale.numel())
    return ctx.invalid(std::string(scale_name) + " has " + std::to_string(scale.numel()) + " elements but x has " +
                       std::to_string(x.dim(*axis)) + " along axis " + std::to_string(*axis));
  map->per_axis = true;
  map->channels = scale.numel();
  map->inner = 1;
  for (size_t d = static_cast<size_t>(*axis) + 1; d < x.rank(); ++d) map->inner *= x.dim(d);
  return Status::ok();
}

// ---------------------------------------------------------------------------------------
// QuantizeLinear: y = saturate(round(x / y_scale) + y_zero_point)

Status quantize_linear_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& scale = ctx.input(1);
  const Tensor& zp = ctx.input(2);
  if (!x.defined() || !scale.defined()) return ctx.invalid("requires inputs x and y_scale");
  if (zp.defined() && !is_quant_type(zp.dtype()))
    return ctx.unsupported("y_zero_point dtype " + std::string(dtype_name(zp.dtype())) + " is not supported");
  if (!is_float_type(x.dtype()) && x.dtype() != DataType::int32)
    return ctx.invalid("x must be a float or int32 tensor, got " + std::string(dtype_name(x.dtype())));
  ChannelMap map;
  TANDEM_RETURN_IF_ERROR(plan_channels(ctx, x, scale, zp, "y_scale", &map));
  // Without a zero point: opset 21's output_dtype, else uint8.
  const int64_t asked = ctx.node().attr_int("output_dtype", 0);
  const DataType out_t = zp.defined() ? zp.dtype() : asked != 0 ? static_cast<DataType>(asked) : DataType::uint8;
  if (!is_quant_type(out_t)) return ctx.unsupported("output_dtype " + std::to_string(asked) + " is not supported");
  double lo, hi;
  quant_range(out_t, &lo, &hi);
  const std::vector<double> scales = to_double_vector(scale);
  const std::vector<double> zps = zp.defined() ? to_double_vector(zp) : std::vector<double>(scales.size(), 0.0);
  // Float32-or-narrower data with a float32 scale divides in float32, like the spec's reference.
  const bool float32_math = (x.dtype() == DataType::float32 || x.dtype() == DataType::float16 ||
                             x.dtype() == DataType::bfloat16) &&
                            scale.dtype() != DataType::float64;
  const std::vector<double> xs = to_double_vector(x);
  Tensor y(out_t, x.shape());
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t c = map(i);
    if (scales[c] == 0.0) return ctx.invalid("y_scale is zero");
    double q = float32_math ? static_cast<double>(static_cast<float>(xs[i]) / static_cast<float>(scales[c]))
                            : xs[i] / scales[c];
    // Round first, then add the zero point (the zero point is an integer, so this is exact).
    double r = std::isnan(q) ? 0.0 : std::nearbyint(q);
    store_quantized(y, i, round_half_even_saturate(r + zps[c], lo, hi));
  }
  ctx.set_output(0, y);
  return Status::ok();
}

// ---------------------------------------------------------------------------------------
// DequantizeLinear: y = (x - x_zero_point) * x_scale

Status dequantize_linear_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& scale = ctx.input(1);
  const Tensor& zp = ctx.input(2);
  if (!x.defined() || !scale.defined()) return ctx.invalid("requires inputs x and x_scale");
  if (!is_quant_type(x.dtype()) && x.dtype() != DataType::int32)
    return ctx.unsupported("x dtype " + std::string(dtype_name(x.dtype())) + " is not supported");
  if (zp.defined() && zp.dtype() != x.dtype()) return ctx.invalid("x_zero_point dtype differs from x");
  ChannelMap map;
  TANDEM_RETURN_IF_ERROR(plan_channels(ctx, x, scale, zp, "x_scale", &map));
  const std::vector<double> scales = to_double_vector(scale);
  const std::vector<double> zps = zp.defined() ? to_double_vector(zp) : std::vector<double>(scales.size(), 0.0);
  if (x.dtype() == DataType::int32)
    for (double z : zps)
      if (z != 0.0) return ctx.invalid("x_zero_point must be 0 for int32 input");
  const std::vector<double> xs = to_double_vector(x);
  Tensor y(scale.dtype(), x.shape());
  visit_float(scale.dtype(), [&]<class T>() {
    T* out = y.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      const int64_t c = map(i);
      out[i] = from_double<T>((xs[i] - zps[c]) * scales[c]);
    }
  });
  ctx.set_output(0, y);
  return Status::ok();
}

// ---------------------------------------------------------------------------------------
// DynamicQuantizeLinear: uint8 quantization with scale/zero point derived from the data
// range (extended to include 0). Computed in float32 like the spec's reference (quantize_util.h).

Status dynamic_quantize_linear_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (!x.defined()) return ctx.invalid("requires input x");
  if (!is_float_type(x.dtype()))
    return ctx.invalid("x must be a float tensor, got " + std::string(dtype_name(x.dtype())));
  const std::vector<double> xs = to_double_vector(x);
  const quant::DynamicParams params = quant::dynamic_params(xs);
  Tensor y(DataType::uint8, x.shape());
  uint8_t* out = y.data<uint8_t>();
  for (size_t i = 0; i < xs.size(); ++i) out[i] = quant::dynamic_quantize(xs[i], params);
  ctx.set_output(0, y);
  if (ctx.has_output(1)) ctx.set_output(1, Tensor::scalar<float>(params.scale));
  if (ctx.has_output(2)) ctx.set_output(2, Tensor::scalar<uint8_t>(params.zero_point));
  return Status::ok();
}

}  // namespace

void register_quantize_kernels(KernelTable& t) {
  t.add("", "QuantizeLinear", &quantize_linear_kernel);
  t.add("", "DequantizeLinear", &dequantize_linear_kernel);
  t.add("", "DynamicQuantizeLinear", &dynamic_quantize_linear_kernel);
  // ONNX Runtime's com.microsoft forms (QDQ models written with its contrib Q/DQ ops): the same
  // formulas, per tensor or per `axis`; 8-bit and 16-bit types.
  t.add("com.microsoft", "QuantizeLinear", &quantize_linear_kernel);
  t.add("com.microsoft", "DequantizeLinear", &dequantize_linear_kernel);
}

}  // namespace tandem
