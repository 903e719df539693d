// Reference kernels: optimizers of the ai.onnx.preview.training domain.
//   Adagrad, Adam, Momentum (standard and nesterov).
// Inputs are R (learning rate scalar), T (update count scalar), then the tensor groups
// (X_1..X_n, G_1..G_n, and the optimizer states); outputs are the updated X_1..X_n followed
// by the updated states, group by group. Updates are computed in double.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/registry.h"
#include "core/tensor_util.h"

namespace tandem {
namespace {

constexpr const char* kTrainingDomain = "ai.onnx.preview.training";

// The shared prologue: reads R and T and checks the groups of `per_tensor` inputs
// (X, G and the states) for n tensors.
struct OptimizerInputs {
  double r = 0.0;
  int64_t t = 0;
  int64_t n = 0;  // number of optimized tensors
};

Status read_optimizer_inputs(const KernelContext& ctx, int64_t per_tensor, OptimizerInputs* in) {
  const int64_t num = static_cast<int64_t>(ctx.num_inputs());
  if (num < 2 + per_tensor || (num - 2) % per_tensor != 0)
    return ctx.invalid("expects R, T and groups of " + std::to_string(per_tensor) + " tensors, got " +
                       std::to_string(num) + " inputs");
  in->n = (num - 2) / per_tensor;
  const Tensor& R = ctx.input(0);
  const Tensor& T = ctx.input(1);
  if (!R.defined() || !T.defined()) return ctx.invalid("requires inputs R and T");
  if (R.numel() != 1 || !is_float_type(R.dtype())) return ctx.invalid("R must be a float scalar");
  if (T.numel() != 1 || !is_integer_type(T.dtype())) return ctx.invalid("T must be an integer scalar");
  in->r = to_double_vector(R)[0];
  in->t = to_int64_vector(T)[0];
  for (int64_t i = 0; i < in->n; ++i) {
    const Tensor& X = ctx.input(2 + i);
    if (!X.defined()) return ctx.invalid("input X_" + std::to_string(i + 1) + " is missing");
    if (!is_float_type(X.dtype())) return ctx.invalid("X must be a float tensor");
    for (int64_t g = 1; g < per_tensor; ++g) {
      const Tensor& other = ctx.input(2 + g * in->n + i);
      if (!other.defined()) return ctx.invalid("input " + std::to_string(2 + g * in->n + i) + " is missing");
      if (other.dtype() != X.dtype() || other.shape() != X.shape())
        return ctx.invalid("input " + std::to_string(2 + g * in->n + i) + " does not match X_" + std::to_string(i + 1) +
                           " (shape " + shape_to_string(X.shape()) + ")");
    }
  }
  return Status::ok();
}

Tensor tensor_like(const Tensor& like, const std::vector<double>& v) {
  Tensor t(like.dtype(), like.shape());
  visit_float(like.dtype(), [&]<class T>() {
    T* p = t.data<T>();
    for (size_t i = 0; i < v.size(); ++i) p[i] = from_double<T>(v[i]);
  });
  return t;
}

// ---------------------------------------------------------------------------------------
// Adagrad: inputs R, T, X..., G..., H...; outputs X_new..., H_new...

Status adagrad_kernel(KernelContext& ctx) {
  OptimizerInputs in;
  TANDEM_RETURN_IF_ERROR(read_optimizer_inputs(ctx, 3, &in));
  const double norm = ctx.node().attr_float("norm_coefficient", 0.0f);
  const double eps = ctx.node().attr_float("epsilon", 1e-6f);
  const double decay = ctx.node().attr_float("decay_factor", 0.0f);
  const double r = in.r / (1.0 + static_cast<double>(in.t) * decay);
  for (int64_t i = 0; i < in.n; ++i) {
    const Tensor& X = ctx.input(2 + i);
    const std::vector<double> x = to_double_vector(X);
    const std::vector<double> g = to_double_vector(ctx.input(2 + in.n + i));
    const std::vector<double> h = to_double_vector(ctx.input(2 + 2 * in.n + i));
    std::vector<double> x_new(x.size()), h_new(x.size());
    for (size_t k = 0; k < x.size(); ++k) {
      const double gr = norm * x[k] + g[k];
      h_new[k] = h[k] + gr * gr;
      x_new[k] = x[k] - r * gr / (std::sqrt(h_new[k]) + eps);
    }
    if (ctx.has_output(i)) ctx.set_output(i, tensor_like(X, x_new));
    if (ctx.has_output(in.n + i)) ctx.set_output(in.n + i, tensor_like(X, h_new));
  }
  return Status::ok();
}

// ---------------------------------------------------------------------------------------
// Adam: inputs R, T, X..., G..., V..., H...; outputs X_new..., V_new..., H_new...

Status adam_kernel(KernelContext& ctx) {
  OptimizerInputs in;
  TANDEM_RETURN_IF_ERROR(read_optimizer_inputs(ctx, 4, &in));
  const double alpha = ctx.node().attr_float("alpha", 0.9f);
  const double beta = ctx.node().attr_float("beta", 0.999f);
  const double eps = ctx.node().attr_float("epsilon", 1e-6f);
  const double norm = ctx.node().attr_float("norm_coefficient", 0.0f);
  const double norm_post = ctx.node().attr_float("norm_coefficient_post", 0.0f);
  const double t = static_cast<double>(in.t);
  // Bias-corrected learning rate (no correction on the first, T = 0, update).
  const double r_adj = in.t > 0 ? in.r * std::sqrt(1.0 - std::pow(beta, t)) / (1.0 - std::pow(alpha, t)) : in.r;
  for (int64_t i = 0; i < in.n; ++i) {
    const Tensor& X = ctx.input(2 + i);
    const std::vector<double> x = to_double_vector(X);
    const std::vector<double> g = to_double_vector(ctx.input(2 + in.n + i));
    const std::vector<double> v = to_double_vector(ctx.input(2 + 2 * in.n + i));
    const std::vector<double> h = to_double_vector(ctx.input(2 + 3 * in.n + i));
    std::vector<double> x_new(x.size()), v_new(x.size()), h_new(x.size());
    for (size_t k = 0; k < x.size(); ++k) {
      const double gr = norm * x[k] + g[k];
      v_new[k] = alpha * v[k] + (1.0 - alpha) * gr;
      h_new[k] = beta * h[k] + (1.0 - beta) * gr * gr;
      const double xn = x[k] - r_adj * v_new[k] / (std::sqrt(h_new[k]) + eps);
      x_new[k] = (1.0 - norm_post) * xn;
    }
    if (ctx.has_output(i)) ctx.set_output(i, tensor_like(X, x_new));
    if (ctx.has_output(in.n + i)) ctx.set_output(in.n + i, tensor_like(X, v_new));
    if (ctx.has_output(2 * in.n + i)) ctx.set_output(2 * in.n + i, tensor_like(X, h_new));
  }
  return Status::ok();
}

// ---------------------------------------------------------------------------------------
// Momentum: inputs R, T, X..., G..., V...; outputs X_new..., V_new...

Status momentum_kernel(KernelContext& ctx) {
  OptimizerInputs in;
  TANDEM_RETURN_IF_ERROR(read_optimizer_inputs(ctx, 3, &in));
  const Node& node = ctx.node();
  for (const char* a : {"alpha", "beta", "mode", "norm_coefficient"})
    if (!node.has_attr(a)) return ctx.invalid(std::string("missing required attribute '") + a + "'");
  const double alpha = node.attr_float("alpha", 0.0f);
  const double beta = node.attr_float("beta", 0.0f);
  const double norm = node.attr_float("norm_coefficient", 0.0f);
  const std::string mode = node.attr_string("mode", "standard");
  if (mode != "standard" && mode != "nesterov") return ctx.invalid("mode must be 'standard' or 'nesterov', got '" + mode + "'");
  const bool nesterov = mode == "nesterov";
  const double beta_adj = in.t > 0 ? beta : 1.0;  // the first update takes the whole gradient
  for (int64_t i = 0; i < in.n; ++i) {
    const Tensor& X = ctx.input(2 + i);
    const std::vector<double> x = to_double_vector(X);
    const std::vector<double> g = to_double_vector(ctx.input(2 + in.n + i));
    const std::vector<double> v = to_double_vector(ctx.input(2 + 2 * in.n + i));
    std::vector<double> x_new(x.size()), v_new(x.size());
    for (size_t k = 0; k < x.size(); ++k) {
      const double gr = norm * x[k] + g[k];
      v_new[k] = alpha * v[k] + beta_adj * gr;
      x_new[k] = nesterov ? x[k] - in.r * (gr + alpha * v_new[k]) : x[k] - in.r * v_new[k];
    }
    if (ctx.has_output(i)) ctx.set_output(i, tensor_like(X, x_new));
    if (ctx.has_output(in.n + i)) ctx.set_output(in.n + i, tensor_like(X, v_new));
  }
  return Status::ok();
}

}  // namespace

void register_training_kernels(KernelTable& t) {
  t.add(kTrainingDomain, "Adagrad", &adagrad_kernel);
  t.add(kTrainingDomain, "Adam", &adam_kernel);
  t.add(kTrainingDomain, "Momentum", &momentum_kernel);
}

}  // namespace tandem
