// Reference kernels: activation ops.
//
//   Relu LeakyRelu Elu Selu Celu Sigmoid HardSigmoid HardSwish Softplus Softsign Tanh
//   ThresholdedRelu PRelu Shrink Gelu Mish
//
// Every float activation is evaluated in double and rounded once to the element type.
// Attributes are float32 in ONNX; they are widened to double exactly as stored.
// Opset-1 variants carried a `consumed_inputs` attribute, which is ignored.
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/registry.h"
#include "core/tensor_util.h"

namespace tandem {
namespace {


// double -> T. Floats round to nearest; integers truncate toward zero and saturate (NaN -> 0).
template <class T>
T store(double v) {
  if constexpr (is_int_v<T>) {
    if (std::isnan(v)) return T(0);
    if (v <= static_cast<double>(std::numeric_limits<T>::min())) return std::numeric_limits<T>::min();
    if (v >= static_cast<double>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
    return static_cast<T>(v);
  } else {
    return from_double<T>(v);
  }
}

std::string dt(DataType t) { return std::string(dtype_name(t)); }

Status bad_dtype(const KernelContext& ctx, DataType t) { return ctx.invalid("does not support dtype " + dt(t)); }

Status require_input(const KernelContext& ctx, size_t i) {
  if (!ctx.input(i).defined()) return ctx.invalid("required input " + std::to_string(i) + " is missing or not a tensor");
  return Status::ok();
}

// Applies a double -> double function to every element of a float tensor (input 0).
template <class F>
Status map_float(KernelContext& ctx, F&& f) {
  TANDEM_RETURN_IF_ERROR(require_input(ctx, 0));
  const Tensor& x = ctx.input(0);
  Tensor out(x.dtype(), x.shape());
  bool ok = visit_float(x.dtype(), [&]<class T>() {
    const T* px = x.data<T>();
    T* po = out.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) po[i] = from_double<T>(f(to_double(px[i])));
  });
  if (!ok) return bad_dtype(ctx, x.dtype());
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

double attr(const KernelContext& ctx, const char* name, double fallback) {
  return ctx.node().has_attr(name) ? static_cast<double>(ctx.node().attr_float(name, 0.0f)) : fallback;
}

// Numerically stable logistic function.
double sigmoid(double x) {
  if (x >= 0) return 1.0 / (1.0 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1.0 + e);
}

// Numerically stable log(1 + exp(x)).
double softplus(double x) {
  if (x > 0) return x + std::log1p(std::exp(-x));
  return std::log1p(std::exp(x));
}

// ---- kernels -----------------------------------------------------------------------------

// Relu also takes signed integers (opset 14).
Status relu_kernel(KernelContext& ctx) {
  TANDEM_RETURN_IF_ERROR(require_input(ctx, 0));
  const Tensor& x = ctx.input(0);
  if (x.dtype() == DataType::boolean) return bad_dtype(ctx, x.dtype());
  Tensor out(x.dtype(), x.shape());
  bool ok = visit_numeric(x.dtype(), [&]<class T>() {
    const T* px = x.data<T>();
    T* po = out.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      if constexpr (is_float_v<T>) {
        const double v = to_double(px[i]);
        po[i] = from_double<T>(v < 0 ? 0.0 : v);  // NaN stays NaN
      } else {
        if constexpr (std::is_signed_v<T>) po[i] = px[i] < T(0) ? T(0) : px[i];
        else po[i] = px[i];
      }
    }
  });
  if (!ok) return bad_dtype(ctx, x.dtype());
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

Status leaky_relu_kernel(KernelContext& ctx) {
  const double alpha = attr(ctx, "alpha", 0.01f);
  return map_float(ctx, [=](double x) { return x >= 0 ? x : alpha * x; });
}

Status elu_kernel(KernelContext& ctx) {
  const double alpha = attr(ctx, "alpha", 1.0);
  return map_float(ctx, [=](double x) { return x >= 0 ? x : alpha * std::expm1(x); });
}

Status selu_kernel(KernelContext& ctx) {
  const double alpha = attr(ctx, "alpha", 1.67326319217681884765625);
  const double gamma = attr(ctx, "gamma", 1.05070102214813232421875);
  return map_float(ctx, [=](double x) { return gamma * (x > 0 ? x : alpha * std::expm1(x)); });
}

// max(0, x) + min(0, alpha * (exp(x / alpha) - 1))
Status celu_kernel(KernelContext& ctx) {
  const double alpha = attr(ctx, "alpha", 1.0);
  if (alpha == 0) return ctx.invalid("attribute alpha must not be 0");
  return map_float(ctx, [=](double x) { return x > 0 ? x : alpha * std::expm1(x / alpha); });
}

Status sigmoid_kernel(KernelContext& ctx) { return map_float(ctx, &sigmoid); }

Status hard_sigmoid_kernel(KernelContext& ctx) {
  const double alpha = attr(ctx, "alpha", 0.2f);
  const double beta = attr(ctx, "beta", 0.5f);
  return map_float(ctx, [=](double x) { return std::fmax(0.0, std::fmin(1.0, alpha * x + beta)); });
}

// x * max(0, min(1, x / 6 + 0.5))
Status hard_swish_kernel(KernelContext& ctx) {
  return map_float(ctx, [](double x) { return x * std::fmax(0.0, std::fmin(1.0, x / 6.0 + 0.5)); });
}

Status softplus_kernel(KernelContext& ctx) { return map_float(ctx, &softplus); }

Status softsign_kernel(KernelContext& ctx) {
  return map_float(ctx, [](double x) { return x / (1.0 + std::fabs(x)); });
}

Status tanh_kernel(KernelContext& ctx) {
  return map_float(ctx, [](double x) { return std::tanh(x); });
}

Status thresholded_relu_kernel(KernelContext& ctx) {
  const double alpha = attr(ctx, "alpha", 1.0);
  return map_float(ctx, [=](double x) { return x > alpha ? x : 0.0; });
}

// approximate="none": 0.5 x (1 + erf(x / sqrt 2)); "tanh": 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
Status gelu_kernel(KernelContext& ctx) {
  const std::string approx = ctx.node().attr_string("approximate", "none");
  if (approx == "none")
    return map_float(ctx, [](double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); });
  if (approx == "tanh") {
    const double k = std::sqrt(2.0 / std::numbers::pi);
    return map_float(ctx, [=](double x) { return 0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x))); });
  }
  return ctx.invalid("attribute approximate must be 'none' or 'tanh', got '" + approx + "'");
}

// x * tanh(softplus(x))
Status mish_kernel(KernelContext& ctx) {
  return map_float(ctx, [](double x) { return x * std::tanh(softplus(x)); });
}

// Shrink: x < -lambd -> x + bias; x > lambd -> x - bias; else 0. Integer inputs are allowed.
Status shrink_kernel(KernelContext& ctx) {
  TANDEM_RETURN_IF_ERROR(require_input(ctx, 0));
  const Tensor& x = ctx.input(0);
  if (x.dtype() == DataType::boolean) return bad_dtype(ctx, x.dtype());
  const double lambd = attr(ctx, "lambd", 0.5);
  const double bias = attr(ctx, "bias", 0.0);
  Tensor out(x.dtype(), x.shape());
  bool ok = visit_numeric(x.dtype(), [&]<class T>() {
    const T* px = x.data<T>();
    T* po = out.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double v = to_double(px[i]);
      po[i] = store<T>(v < -lambd ? v + bias : (v > lambd ? v - bias : 0.0));
    }
  });
  if (!ok) return bad_dtype(ctx, x.dtype());
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

// PRelu: slope broadcasts unidirectionally to X. Before opset 7 a 1-D slope of length C
// applied per channel (dimension 1), which is how those models were exported.
Status prelu_kernel(KernelContext& ctx) {
  TANDEM_RETURN_IF_ERROR(require_input(ctx, 0));
  TANDEM_RETURN_IF_ERROR(require_input(ctx, 1));
  const Tensor& x = ctx.input(0);
  const Tensor& slope = ctx.input(1);
  if (x.dtype() != slope.dtype())
    return ctx.invalid("input dtypes differ: " + dt(x.dtype()) + " vs " + dt(slope.dtype()));
  if (x.dtype() == DataType::boolean) return bad_dtype(ctx, x.dtype());
  Shape slope_shape = slope.shape();
  if (ctx.opset() > 0 && ctx.opset() < 7 && slope.rank() == 1 && x.rank() >= 2 && slope.dim(0) == x.dim(1) &&
      slope.dim(0) != 1) {
    slope_shape = Shape(x.rank() - 1, 1);
    slope_shape[0] = slope.dim(0);
  }
  Result<Shape> b = broadcast_shapes(x.shape(), slope_shape);
  if (!b.is_ok() || b.value() != x.shape())
    return ctx.invalid("slope shape " + shape_to_string(slope.shape()) + " does not broadcast to input shape " +
                       shape_to_string(x.shape()));
  Tensor out(x.dtype(), x.shape());
  bool ok = visit_numeric(x.dtype(), [&]<class T>() {
    if constexpr (!std::is_same_v<T, bool>) {
      const T* px = x.data<T>();
      const T* ps = slope.data<T>();
      T* po = out.data<T>();
      BroadcastIterator it(x.shape(), {x.shape(), slope_shape});
      for (int64_t i = 0; i < x.numel(); ++i) {
        const T s = ps[it.offset(1)];
        if constexpr (is_float_v<T>) {
          const double v = to_double(px[i]);
          po[i] = from_double<T>(v < 0 ? to_double(s) * v : v);
        } else if constexpr (std::is_signed_v<T>) {
          po[i] = px[i] < T(0) ? static_cast<T>(static_cast<uint64_t>(s) * static_cast<uint64_t>(px[i])) : px[i];
        } else {
          po[i] = px[i];  // unsigned values are never negative
        }
        it.next();
      }
    }
  });
  if (!ok) return bad_dtype(ctx, x.dtype());
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

}  // namespace

void register_activation_kernels(KernelTable& t) {
  t.add("", "Relu", &relu_kernel);
  t.add("", "LeakyRelu", &leaky_relu_kernel);
  t.add("", "Elu", &elu_kernel);
  t.add("", "Selu", &selu_kernel);
  t.add("", "Celu", &celu_kernel);
  t.add("", "Sigmoid", &sigmoid_kernel);
  t.add("", "HardSigmoid", &hard_sigmoid_kernel);
  t.add("", "HardSwish", &hard_swish_kernel);
  t.add("", "Softplus", &softplus_kernel);
  t.add("", "Softsign", &softsign_kernel);
  t.add("", "Tanh", &tanh_kernel);
  t.add("", "ThresholdedRelu", &thresholded_relu_kernel);
  t.add("", "PRelu", &prelu_kernel);
  t.add("", "Shrink", &shrink_kernel);
  t.add("", "Gelu", &gelu_kernel);
  t.add("", "Mish", &mish_kernel);
}

}  // namespace tandem
