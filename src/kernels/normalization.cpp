// Reference kernels: normalization ops (BatchNormalization, InstanceNormalization,
// GroupNormalization, LayerNormalization, LRN, MeanVarianceNormalization, LpNormalization).
// Everything is computed in double from the inputs and rounded once into the output dtype.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/registry.h"
#include "core/tensor_util.h"

namespace tandem {
namespace {

std::string dtype_str(DataType t) { return std::string(dtype_name(t)); }

// Checks that input `i` is present and a float tensor.
Status require_float_input(KernelContext& ctx, size_t i, const char* name) {
  if (!ctx.has_input(i)) return ctx.invalid(std::string("missing required input '") + name + "'");
  if (!is_float_type(ctx.input(i).dtype()))
    return ctx.invalid(std::string("input '") + name + "' must be a float tensor, got " + dtype_str(ctx.input(i).dtype()));
  return Status::ok();
}

// Checks that a per-channel parameter has exactly `count` elements.
Status require_numel(KernelContext& ctx, size_t i, const char* name, int64_t count) {
  const Tensor& t = ctx.input(i);
  if (t.numel() != count)
    return ctx.invalid(std::string("input '") + name + "' has shape " + shape_to_string(t.shape()) + ", expected " +
                       std::to_string(count) + " elements");
  return Status::ok();
}

// --- BatchNormalization ------------------------------------------------------------------------
//
// Inputs X (N, C, D1..Dn), scale, B, input_mean, input_var; per channel C (or, for the legacy
// spatial=0 mode of opsets < 9, per element of C x D1..Dn).
// Inference: Y = (X - input_mean) / sqrt(input_var + eps) * scale + B.
// Training (training_mode=1 from opset 14; before 14, when more than one output is requested):
// the batch statistics (population variance) normalize X, and the running statistics are
//   running_mean = input_mean * momentum + batch_mean * (1 - momentum)   (same for var).
// Outputs from opset 14: Y, running_mean, running_var. Before 14: Y, mean, var, saved_mean,
// saved_var (saved_* are the batch mean and batch variance).
Status batch_normalization(KernelContext& ctx) {
  TANDEM_RETURN_IF_ERROR(require_float_input(ctx, 0, "X"));
  TANDEM_RETURN_IF_ERROR(require_float_input(ctx, 1, "scale"));
  TANDEM_RETURN_IF_ERROR(require_float_input(ctx, 2, "B"));
  TANDEM_RETURN_IF_ERROR(require_float_input(ctx, 3, "input_mean"));
  TANDEM_RETURN_IF_ERROR(require_float_input(ctx, 4, "input_var"));
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) return ctx.invalid("X must have rank >= 2, got shape " + shape_to_string(x.shape()));
  const int64_t opset = ctx.opset();
  const int64_t batch = x.dim(0), channels = x.dim(1);
  const int64_t spatial_size = shape_numel(Shape(x.shape().begin() + 2, x.shape().end()));
  const bool per_element = opset > 0 && opset < 9 && ctx.node().attr_int("spatial", 1) == 0;
  const int64_t params = per_element ? channels * spatial_size : channels;
  TANDEM_RETURN_IF_ERROR(require_numel(ctx, 1, "scale", params));
  TANDEM_RETURN_IF_ERROR(require_numel(ctx, 2, "B", params));
  TANDEM_RETURN_IF_ERROR(require_numel(ctx, 3, "input_mean", params));
  TANDEM_RETURN_IF_ERROR(require_numel(ctx, 4, "input_var", params));

  const double eps = ctx.node().attr_float("epsilon", 1e-5f);
  const double momentum = ctx.node().attr_float("momentum", 0.9f);
  bool training;
  if (opset == 0 || opset >= 14) {
    training = ctx.node().attr_int("training_mode", 0) != 0;
  } else {
    training = false;
    for (size_t i = 1; i < 5; ++i) training = training || ctx.has_output(i);
  }

  std::vector<double> xv = to_double_vector(x);
  std::vector<double> scale = to_double_vector(ctx.input(1));
  std::vector<double> bias = to_double_vector(ctx.input(2));
  std::vector<double> mean = to_double_vector(ctx.input(3));
  std::vector<double> var = to_double_vector(ctx.input(4));

  // Parameter index of element (n, c, s).
  auto param_of = [&](int64_t c, int64_t s) { return per_element ? c * spatial_size + s : c; };
  auto x_index = [&](int64_t n, int64_t c, int64_t s) { return (n * channels + c) * spatial_size + s; };

  std::vector<double> batch_mean(static_cast<size_t>(params), 0.0), batch_var(static_cast<size_t>(params), 0.0);
  if (training) {
    std::vector<double> count(static_cast<size_t>(params), 0.0);
    for (int64_t n = 0; n < batch; ++n)
      for (int64_t c = 0; c < channels; ++c)
        for (int64_t s = 0; s < spatial_size; ++s) {
          batch_mean[param_of(c, s)] += xv[x_index(n, c, s)];
          count[param_of(c, s)] += 1.0;
        }
    for (int64_t p = 0; p < params; ++p) batch_mean[p] /= count[p];
    for (int64_t n = 0; n < batch; ++n)
      for (int64_t c = 0; c < channels; ++c)
        for (int64_t s = 0; s < spatial_size; ++s) {
          double d = xv[x_index(n, c, s)] - batch_mean[param_of(c, s)];
          batch_var[param_of(c, s)] += d * d;
        }
    for (int64_t p = 0; p < params; ++p) batch_var[p] /= count[p];
  }
  const std::vector<double>& use_mean = training ? batch_mean : mean;
  const std::vector<double>& use_var = training ? batch_var : var;

  std::vector<double> y(xv.size());
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t s = 0; s < spatial_size; ++s) {
        int64_t p = param_of(c, s), i = x_index(n, c, s);
        y[i] = (xv[i] - use_mean[p]) / std::sqrt(use_var[p] + eps) * scale[p] + bias[p];
      }
  ctx.set_output(0, float_tensor(x.dtype(), x.shape(), y));

  if (training) {
    std::vector<double> running_mean(mean.size()), running_var(var.size());
    for (int64_t p = 0; p < params; ++p) {
      running_mean[p] = mean[p] * momentum + batch_mean[p] * (1.0 - momentum);
      running_var[p] = var[p] * momentum + batch_var[p] * (1.0 - momentum);
    }
    const Tensor& m = ctx.input(3);
    const Tensor& v = ctx.input(4);
    if (ctx.has_output(1)) ctx.set_output(1, float_tensor(m.dtype(), m.shape(), running_mean));
    if (ctx.has_output(2)) ctx.set_output(2, float_tensor(v.dtype(), v.shape(), running_var));
    if (ctx.has_output(3)) ctx.set_output(3, float_tensor(m.dtype(), m.shape(), batch_mean));
    if (ctx.has_output(4)) ctx.set_output(4, float_tensor(v.dtype(), v.shape(), batch_var));
  }
  return Status::ok();
}

// --- InstanceNormalization, GroupNormalization ---------------------------------------------------
//
// InstanceNormalization: y = scale[c] * (x - mean) / sqrt(var + eps) + B[c], with mean/var over
// the spatial dimensions of each (n, c).
// GroupNormalization: the channels of X [N, C, ...] split into num_groups groups of
// C / num_groups; each (n, group) is normalized with its mean and population variance, then
// scaled and shifted: by one value per group at opset 18 (scale and bias [num_groups]), per
// channel from opset 21 ([C]). stash_type (opset 21) names the precision of the first stage;
// this kernel computes in double.

// Normalizes each (n, group) of X [N, C, ...] (`groups` groups of C / groups channels) with its
// mean and population variance, then scales and shifts it by inputs 1 and 2: one value per
// group, or per channel with `per_channel`. Shared by InstanceNormalization (a group per
// channel) and GroupNormalization.
Tensor normalize_groups(KernelContext& ctx, int64_t groups, bool per_channel) {
  const Tensor& x = ctx.input(0);
  const int64_t batch = x.dim(0), channels = x.dim(1);
  const int64_t spatial = shape_numel(Shape(x.shape().begin() + 2, x.shape().end()));
  const int64_t group_channels = channels / groups, len = group_channels * spatial;
  const double eps = ctx.node().attr_float("epsilon", 1e-5f);
  std::vector<double> xv = to_double_vector(x), y(xv.size());
  const std::vector<double> scale = to_double_vector(ctx.input(1)), bias = to_double_vector(ctx.input(2));
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t start = (n * groups + g) * len;
      double mean = 0.0, var = 0.0;
      for (int64_t i = 0; i < len; ++i) mean += xv[start + i];
      mean /= static_cast<double>(len);
      for (int64_t i = 0; i < len; ++i) var += (xv[start + i] - mean) * (xv[start + i] - mean);
      var /= static_cast<double>(len);
      const double inv_std = 1.0 / std::sqrt(var + eps);
      for (int64_t i = 0; i < len; ++i) {
        const int64_t p = per_channel ? g * group_channels + i / spatial : g;
        y[start + i] = (xv[start + i] - mean) * inv_std * scale[p] + bias[p];
      }
    }
  return float_tensor(x.dtype(), x.shape(), y);
}

Status instance_normalization(KernelContext& ctx) {
  TANDEM_RETURN_IF_ERROR(require_float_input(ctx, 0, "input"));
  TANDEM_RETURN_IF_ERROR(require_float_input(ctx, 1, "scale"));
  TANDEM_RETURN_IF_ERROR(require_float_input(ctx, 2, "B"));
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) return ctx.invalid("input must have rank >= 2, got shape " + shape_to_string(x.shape()));
  TANDEM_RETURN_IF_ERROR(require_numel(ctx, 1, "scale", x.dim(1)));
  TANDEM_RETURN_IF_ERROR(require_numel(ctx, 2, "B", x.dim(1)));
  ctx.set_output(0, normalize_groups(ctx, x.dim(1), false));
  return Status::ok();
}

Status group_normalization(KernelContext& ctx) {
  TANDEM_RETURN_IF_ERROR(require_float_input(ctx, 0, "X"));
  TANDEM_RETURN_IF_ERROR(require_float_input(ctx, 1, "scale"));
  TANDEM_RETURN_IF_ERROR(require_float_input(ctx, 2, "bias"));
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) return ctx.invalid("X must have rank >= 2, got shape " + shape_to_string(x.shape()));
  const int64_t channels = x.dim(1);
  const int64_t groups = ctx.node().attr_int("num_groups", 0);
  if (groups <= 0 || channels % groups != 0)
    return ctx.invalid("num_groups " + std::to_string(groups) + " does not divide the " + std::to_string(channels) +
                       " channels");
  const bool per_channel = ctx.opset() >= 21;
  TANDEM_RETURN_IF_ERROR(require_numel(ctx, 1, "scale", per_channel ? channels : groups));
  TANDEM_RETURN_IF_ERROR(require_numel(ctx, 2, "bias", per_channel ? channels : groups));
  ctx.set_output(0, normalize_groups(ctx, groups, per_channel));
  return Status::ok();
}

// --- LayerNormalization ------------------------------------------------------------------------
//
// X is viewed as [outer, inner] with outer = prod(shape[:axis]); each row is normalized with
// its mean and population variance, then multiplied by Scale and shifted by B (both broadcast
// unidirectionally to X). Optional outputs Mean and InvStdDev have shape
// shape[:axis] + [1] * (rank - axis) and the stash_type dtype (float32 by default).
Status layer_normalization(KernelContext& ctx) {
  TANDEM_RETURN_IF_ERROR(require_float_input(ctx, 0, "X"));
  TANDEM_RETURN_IF_ERROR(require_float_input(ctx, 1, "Scale"));
  const Tensor& x = ctx.input(0);
  const Tensor& scale = ctx.input(1);
  const bool has_bias = ctx.has_input(2);
  if (has_bias) TANDEM_RETURN_IF_ERROR(require_float_input(ctx, 2, "B"));
  const int64_t rank = static_cast<int64_t>(x.rank());
  if (rank == 0) return ctx.invalid("X must have rank >= 1");
  auto axis_r = normalize_axis(ctx.node().attr_int("axis", -1), rank);
  if (!axis_r.is_ok()) return ctx.invalid(axis_r.status().message());
  const int64_t axis = *axis_r;
  const double eps = ctx.node().attr_float("epsilon", 1e-5f);
  const DataType stash = static_cast<DataType>(ctx.node().attr_int("stash_type", 1));
  if (!is_float_type(stash)) return ctx.invalid("stash_type must be a float type");

  // Scale and B must broadcast unidirectionally to X.
  std::vector<Shape> shapes{x.shape(), scale.shape()};
  if (has_bias) shapes.push_back(ctx.input(2).shape());
  for (size_t k = 1; k < shapes.size(); ++k) {
    const Shape& s = shapes[k];
    bool ok = s.size() <= x.rank();
    for (size_t i = 0; ok && i < s.size(); ++i) {
      int64_t xd = x.dim(x.rank() - s.size() + i);
      ok = s[i] == 1 || s[i] == xd;
    }
    if (!ok)
      return ctx.invalid(std::string(k == 1 ? "Scale" : "B") + " shape " + shape_to_string(s) +
                         " does not broadcast to X shape " + shape_to_string(x.shape()));
  }

  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x.dim(d);
  for (int64_t d = axis; d < rank; ++d) inner *= x.dim(d);

  std::vector<double> xv = to_double_vector(x);
  std::vector<double> sv = to_double_vector(scale);
  std::vector<double> bv = has_bias ? to_double_vector(ctx.input(2)) : std::vector<double>{};
  std::vector<double> y(xv.size()), means(static_cast<size_t>(outer)), inv_stds(static_cast<size_t>(outer));
  BroadcastIterator it(x.shape(), shapes);
  for (int64_t o = 0; o < outer; ++o) {
    const int64_t start = o * inner;
    double mean = 0.0, var = 0.0;
    for (int64_t i = 0; i < inner; ++i) mean += xv[start + i];
    mean /= static_cast<double>(inner);
    for (int64_t i = 0; i < inner; ++i) var += (xv[start + i] - mean) * (xv[start + i] - mean);
    var /= static_cast<double>(inner);
    const double inv_std = 1.0 / std::sqrt(var + eps);
    means[o] = mean;
    inv_stds[o] = inv_std;
    for (int64_t i = 0; i < inner; ++i, it.next()) {
      double v = (xv[start + i] - mean) * inv_std * sv[it.offset(1)];
      if (has_bias) v += bv[it.offset(2)];
      y[start + i] = v;
    }
  }
  ctx.set_output(0, float_tensor(x.dtype(), x.shape(), y));
  Shape stat_shape(x.shape().begin(), x.shape().begin() + axis);
  stat_shape.resize(static_cast<size_t>(rank), 1);
  if (ctx.has_output(1)) ctx.set_output(1, float_tensor(stash, stat_shape, means));
  if (ctx.has_output(2)) ctx.set_output(2, float_tensor(stash, stat_shape, inv_stds));
  return Status::ok();
}

// --- LRN ---------------------------------------------------------------------------------------
//
// square_sum[n, c, ...] = sum of x[n, i, ...]^2 for i in
//   [max(0, c - floor((size - 1) / 2)), min(C - 1, c + ceil((size - 1) / 2))]
// y = x / (bias + alpha / size * square_sum) ^ beta
Status lrn(KernelContext& ctx) {
  TANDEM_RETURN_IF_ERROR(require_float_input(ctx, 0, "X"));
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) return ctx.invalid("X must have rank >= 2, got shape " + shape_to_string(x.shape()));
  if (!ctx.node().has_attr("size")) return ctx.invalid("missing required attribute 'size'");
  const int64_t size = ctx.node().attr_int("size", 1);
  if (size <= 0) return ctx.invalid("size must be positive, got " + std::to_string(size));
  const double alpha = ctx.node().attr_float("alpha", 1e-4f);
  const double beta = ctx.node().attr_float("beta", 0.75f);
  const double bias = ctx.node().attr_float("bias", 1.0f);
  const int64_t batch = x.dim(0), channels = x.dim(1);
  const int64_t spatial_size = shape_numel(Shape(x.shape().begin() + 2, x.shape().end()));
  const int64_t before = (size - 1) / 2, after = size / 2;  // floor and ceil of (size - 1) / 2

  std::vector<double> xv = to_double_vector(x);
  std::vector<double> y(xv.size());
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t s = 0; s < spatial_size; ++s) {
        const int64_t lo = std::max<int64_t>(0, c - before), hi = std::min<int64_t>(channels - 1, c + after);
        double square_sum = 0.0;
        for (int64_t i = lo; i <= hi; ++i) {
          double v = xv[(n * channels + i) * spatial_size + s];
          square_sum += v * v;
        }
        const int64_t idx = (n * channels + c) * spatial_size + s;
        y[idx] = xv[idx] / std::pow(bias + alpha / static_cast<double>(size) * square_sum, beta);
      }
  ctx.set_output(0, float_tensor(x.dtype(), x.shape(), y));
  return Status::ok();
}

// --- MeanVarianceNormalization -----------------------------------------------------------------
//
// Y = (X - mean) / (sqrt(var) + 1e-9) with mean and population variance over `axes`
// (default [0, 2, 3]); the 1e-9 matches the ONNX function definition.
Status mean_variance_normalization(KernelContext& ctx) {
  TANDEM_RETURN_IF_ERROR(require_float_input(ctx, 0, "X"));
  const Tensor& x = ctx.input(0);
  const int64_t rank = static_cast<int64_t>(x.rank());
  std::vector<int64_t> axes = ctx.node().attr_ints("axes", {0, 2, 3});
  std::vector<bool> reduced(static_cast<size_t>(rank), false);
  for (int64_t a : axes) {
    auto norm = normalize_axis(a, rank);
    if (!norm.is_ok()) return ctx.invalid("axes: " + norm.status().message());
    reduced[static_cast<size_t>(*norm)] = true;
  }
  // Statistics live in a keepdims-shaped tensor; each X element maps to one of them.
  Shape stat_shape = x.shape();
  for (int64_t d = 0; d < rank; ++d)
    if (reduced[d]) stat_shape[d] = 1;
  const int64_t stat_count = shape_numel(stat_shape);
  std::vector<double> xv = to_double_vector(x);
  std::vector<int64_t> stat_index(xv.size());
  {
    BroadcastIterator it(x.shape(), {stat_shape});
    for (size_t i = 0; i < xv.size(); ++i, it.next()) stat_index[i] = it.offset(0);
  }
  std::vector<double> sum(static_cast<size_t>(stat_count), 0.0), count(static_cast<size_t>(stat_count), 0.0);
  for (size_t i = 0; i < xv.size(); ++i) {
    sum[stat_index[i]] += xv[i];
    count[stat_index[i]] += 1.0;
  }
  std::vector<double> mean(sum.size()), var(sum.size(), 0.0);
  for (size_t k = 0; k < sum.size(); ++k) mean[k] = sum[k] / count[k];
  for (size_t i = 0; i < xv.size(); ++i) {
    double d = xv[i] - mean[stat_index[i]];
    var[stat_index[i]] += d * d;
  }
  for (size_t k = 0; k < var.size(); ++k) var[k] /= count[k];
  std::vector<double> y(xv.size());
  for (size_t i = 0; i < xv.size(); ++i) {
    int64_t k = stat_index[i];
    y[i] = (xv[i] - mean[k]) / (std::sqrt(var[k]) + 1e-9);
  }
  ctx.set_output(0, float_tensor(x.dtype(), x.shape(), y));
  return Status::ok();
}

// --- LpNormalization -----------------------------------------------------------------------------
//
// Y = X / ||X||_p along `axis` (default -1), p 1 or 2 (default 2). A zero norm divides zero by
// zero, as the ONNX reference evaluator does (NaN).
Status lp_normalization(KernelContext& ctx) {
  TANDEM_RETURN_IF_ERROR(require_float_input(ctx, 0, "input"));
  const Tensor& x = ctx.input(0);
  const int64_t rank = static_cast<int64_t>(x.rank());
  if (rank < 1) return ctx.invalid("input must have rank >= 1");
  auto axis = normalize_axis(ctx.node().attr_int("axis", -1), rank);
  if (!axis.is_ok()) return ctx.invalid("axis: " + axis.status().message());
  const int64_t p = ctx.node().attr_int("p", 2);
  if (p != 1 && p != 2) return ctx.invalid("p must be 1 or 2, got " + std::to_string(p));
  const Shape& shape = x.shape();
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < *axis; ++d) outer *= shape[d];
  for (int64_t d = *axis + 1; d < rank; ++d) inner *= shape[d];
  const int64_t n = shape[*axis];
  std::vector<double> xv = to_double_vector(x), y(xv.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      auto at = [&](int64_t j) { return static_cast<size_t>((o * n + j) * inner + i); };
      double norm = 0;
      for (int64_t j = 0; j < n; ++j) norm += p == 1 ? std::fabs(xv[at(j)]) : xv[at(j)] * xv[at(j)];
      if (p == 2) norm = std::sqrt(norm);
      for (int64_t j = 0; j < n; ++j) y[at(j)] = xv[at(j)] / norm;
    }
  ctx.set_output(0, float_tensor(x.dtype(), shape, y));
  return Status::ok();
}

}  // namespace

void register_normalization_kernels(KernelTable& t) {
  t.add("", "BatchNormalization", &batch_normalization);
  t.add("", "InstanceNormalization", &instance_normalization);
  t.add("", "GroupNormalization", &group_normalization);
  t.add("", "LayerNormalization", &layer_normalization);
  t.add("", "LRN", &lrn);
  t.add("", "MeanVarianceNormalization", &mean_variance_normalization);
  t.add("", "LpNormalization", &lp_normalization);
}

}  // namespace tandem
