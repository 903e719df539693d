// Reference kernels: loss ops (NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss).
//
// Both take input/scores of shape (N, C) or (N, C, D1..Dk) and integer targets of shape (N)
// or (N, D1..Dk). Per element: loss = -input[n, target, d...] * weight[target], where weight
// defaults to 1 and targets equal to ignore_index contribute 0 with weight 0.
// reduction "none" keeps the target shape; "sum" adds everything; "mean" divides the sum by
// the total weight of the non-ignored elements. Computation is in double.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "kernels/registry.h"
#include "core/tensor_util.h"

namespace tandem {
namespace {

std::string dtype_str(DataType t) { return std::string(dtype_name(t)); }

// The shared part of both losses: `log_prob` holds the (N, C, D...) input as doubles.
// Writes the loss tensor (dtype `dtype`) to output 0.
Status nll_from_log_prob(KernelContext& ctx, const std::vector<double>& log_prob, const Shape& input_shape,
                         DataType dtype, size_t target_slot, size_t weight_slot) {
  if (!ctx.has_input(target_slot)) return ctx.invalid("missing required input 'target'");
  const Tensor& target = ctx.input(target_slot);
  if (target.dtype() != DataType::int64 && target.dtype() != DataType::int32)
    return ctx.invalid("target must be int32 or int64, got " + dtype_str(target.dtype()));
  // target shape must be input shape without the class dimension.
  Shape expected = input_shape;
  expected.erase(expected.begin() + 1);
  if (target.shape() != expected)
    return ctx.invalid("target shape " + shape_to_string(target.shape()) + " does not match input shape " +
                       shape_to_string(input_shape) + " (expected " + shape_to_string(expected) + ")");
  const int64_t batch = input_shape[0], classes = input_shape[1];
  const int64_t inner = shape_numel(Shape(input_shape.begin() + 2, input_shape.end()));

  std::vector<double> weight;
  const bool has_weight = ctx.has_input(weight_slot);
  if (has_weight) {
    const Tensor& w = ctx.input(weight_slot);
    if (!is_float_type(w.dtype())) return ctx.invalid("weight must be a float tensor, got " + dtype_str(w.dtype()));
    if (w.rank() != 1 || w.dim(0) != classes)
      return ctx.invalid("weight shape " + shape_to_string(w.shape()) + " must be [" + std::to_string(classes) + "]");
    weight = to_double_vector(w);
  }

  const bool has_ignore = ctx.node().has_attr("ignore_index");
  const int64_t ignore_index = ctx.node().attr_int("ignore_index", 0);
  const std::string reduction = ctx.node().attr_string("reduction", "mean");
  if (reduction != "none" && reduction != "sum" && reduction != "mean")
    return ctx.invalid("reduction must be none, sum or mean, got '" + reduction + "'");

  std::vector<int64_t> t = to_int64_vector(target);
  std::vector<double> loss(t.size(), 0.0);
  double loss_sum = 0.0, weight_sum = 0.0;
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t d = 0; d < inner; ++d) {
      const size_t ti = static_cast<size_t>(n * inner + d);
      const int64_t cls = t[ti];
      if (has_ignore && cls == ignore_index) continue;
      if (cls < 0 || cls >= classes)
        return ctx.invalid("target value " + std::to_string(cls) + " is out of range [0, " + std::to_string(classes) + ")");
      const double w = has_weight ? weight[static_cast<size_t>(cls)] : 1.0;
      loss[ti] = -log_prob[static_cast<size_t>((n * classes + cls) * inner + d)] * w;
      loss_sum += loss[ti];
      weight_sum += w;
    }

  if (reduction == "none") {
    ctx.set_output(0, float_tensor(dtype, target.shape(), loss));
  } else if (reduction == "sum") {
    ctx.set_output(0, float_tensor(dtype, {}, {loss_sum}));
  } else {
    // All elements ignored (or zero total weight): 0/0 is NaN, like the reference semantics.
    double mean = weight_sum == 0.0 ? std::numeric_limits<double>::quiet_NaN() : loss_sum / weight_sum;
    ctx.set_output(0, float_tensor(dtype, {}, {mean}));
  }
  return Status::ok();
}

Status check_scores(KernelContext& ctx, const char* name) {
  if (!ctx.has_input(0)) return ctx.invalid(std::string("missing required input '") + name + "'");
  const Tensor& x = ctx.input(0);
  if (!is_float_type(x.dtype()))
    return ctx.invalid(std::string(name) + " must be a float tensor, got " + dtype_str(x.dtype()));
  if (x.rank() < 2) return ctx.invalid(std::string(name) + " must have rank >= 2, got shape " + shape_to_string(x.shape()));
  return Status::ok();
}

// NegativeLogLikelihoodLoss(input, target, weight?) -> loss
Status negative_log_likelihood_loss(KernelContext& ctx) {
  TANDEM_RETURN_IF_ERROR(check_scores(ctx, "input"));
  const Tensor& x = ctx.input(0);
  return nll_from_log_prob(ctx, to_double_vector(x), x.shape(), x.dtype(), 1, 2);
}

// SoftmaxCrossEntropyLoss(scores, labels, weights?) -> output, log_prob?
// log_prob = LogSoftmax(scores) along axis 1; the loss is the NLL of log_prob.
Status softmax_cross_entropy_loss(KernelContext& ctx) {
  TANDEM_RETURN_IF_ERROR(check_scores(ctx, "scores"));
  const Tensor& x = ctx.input(0);
  const int64_t batch = x.dim(0), classes = x.dim(1);
  const int64_t inner = shape_numel(Shape(x.shape().begin() + 2, x.shape().end()));
  std::vector<double> xv = to_double_vector(x);
  std::vector<double> log_prob(xv.size());
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t d = 0; d < inner; ++d) {
      auto at = [&](int64_t c) { return static_cast<size_t>((n * classes + c) * inner + d); };
      double m = -std::numeric_limits<double>::infinity();
      for (int64_t c = 0; c < classes; ++c) m = std::max(m, xv[at(c)]);
      if (std::isinf(m)) m = 0.0;
      double sum = 0.0;
      for (int64_t c = 0; c < classes; ++c) sum += std::exp(xv[at(c)] - m);
      const double log_sum = std::log(sum);
      for (int64_t c = 0; c < classes; ++c) log_prob[at(c)] = xv[at(c)] - m - log_sum;
    }
  TANDEM_RETURN_IF_ERROR(nll_from_log_prob(ctx, log_prob, x.shape(), x.dtype(), 1, 2));
  if (ctx.has_output(1)) ctx.set_output(1, float_tensor(x.dtype(), x.shape(), log_prob));
  return Status::ok();
}

}  // namespace

void register_loss_kernels(KernelTable& t) {
  t.add("", "NegativeLogLikelihoodLoss", &negative_log_likelihood_loss);
  t.add("", "SoftmaxCrossEntropyLoss", &softmax_cross_entropy_loss);
}

}  // namespace tandem
