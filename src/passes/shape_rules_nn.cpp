// shape_rules_nn.cpp: shape rules for the neural-network ops: convolutions and pools,
// MatMul/Gemm/Einsum, normalizations, Resize, recurrent nets, losses, signal and text ops,
// detection and the training-domain optimizers. See shape_rules.h for the contract.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "graph/einsum_equation.h"
#include "graph/window_geometry.h"
#include "passes/shape_rules.h"

namespace tandem::shape_detail {

namespace {

// Attribute values beyond this are rejected (the bound of window_geometry.h).
constexpr int64_t kMaxAttr = kMaxWindowAttr;

// Output spatial dims of a sliding window (Conv and the pools) over `in`, by the rules of
// window_geometry.h. `kernel` entries < 0 are unknown kernel sizes. An unknown input dim gives
// an unknown output dim unless the window keeps the size (stride 1 and padding extent - 1).
Result<Dims> window_out(const RuleContext& ctx, const Dims& in, const std::vector<int64_t>& kernel,
                        const WindowOptions& options) {
  const size_t r = in.size();
  if (kernel.size() != r)
    return ctx.invalid("kernel_shape has " + std::to_string(kernel.size()) + " values, expected " + std::to_string(r));
  TANDEM_ASSIGN_OR_RETURN(WindowAttributes a, read_window_attributes(ctx.node(), r, options));
  Dims out(r);
  for (size_t d = 0; d < r; ++d) {
    const int64_t s = a.strides[d];
    if (a.same()) {
      out[d] = in[d].fixed() ? fixed_dim(same_output_size(in[d].value, s)) : (s == 1 ? in[d] : unknown_dim());
    } else if (kernel[d] < 0) {
      out[d] = unknown_dim();
    } else if (in[d].fixed()) {
      TANDEM_ASSIGN_OR_RETURN(WindowDim w, window_dim(ctx.node(), a, d, in[d].value, kernel[d]));
      out[d] = fixed_dim(w.out);
    } else {
      if (kernel[d] < 1 || kernel[d] > kMaxAttr)
        return ctx.invalid("kernel_shape value " + std::to_string(kernel[d]) + " is out of range");
      const bool keeps = s == 1 && a.explicit_pad_begin(d) + a.explicit_pad_end(d) == a.extent(d, kernel[d]) - 1;
      out[d] = keeps ? in[d] : unknown_dim();
    }
  }
  return out;
}

// Kernel spatial sizes from the kernel_shape attribute or the weight's dims (-1: unknown).
std::vector<int64_t> kernel_sizes(const RuleContext& ctx, size_t w, size_t r) {
  if (ctx.node().has_attr("kernel_shape")) return ctx.node().attr_ints("kernel_shape");
  std::vector<int64_t> k(r, -1);
  if (ctx.ranked(w) && ctx.rank(w) == static_cast<int64_t>(r) + 2)
    for (size_t d = 0; d < r; ++d) k[d] = ctx.dims(w)[d + 2].fixed() ? ctx.dims(w)[d + 2].value : -1;
  return k;
}

// ---- Conv family ------------------------------------------------------------------------------

Status conv_rule(RuleContext& ctx) {
  const std::string& op = ctx.node().op_type;
  const size_t x = 0, w = op == "QLinearConv" ? 3 : 1;
  DataType dt = ctx.dtype(0);
  if (op == "ConvInteger") dt = DataType::int32;
  if (op == "QLinearConv") dt = ctx.has_input(7) ? ctx.dtype(7) : DataType::uint8;
  const int64_t group = ctx.node().attr_int("group", 1);
  if (group < 1 || group > kMaxAttr) return ctx.invalid("group " + std::to_string(group) + " is out of range");
  const Dim m = ctx.ranked(w) && ctx.rank(w) >= 1 ? ctx.dims(w)[0] : unknown_dim();
  if (!ctx.ranked(x)) {
    if (ctx.ranked(w)) {
      Dims out(ctx.dims(w).size(), unknown_dim());
      if (!out.empty()) out[1 % out.size()] = m;
      ctx.set_tensor(0, dt, std::move(out));
    } else {
      ctx.set_unranked(0, dt);
    }
    return Status::ok();
  }
  const Dims& xd = ctx.dims(x);
  if (xd.size() < 3) return ctx.invalid("input has rank " + std::to_string(xd.size()) + ", expected at least 3");
  const size_t r = xd.size() - 2;
  if (ctx.ranked(w)) {
    const Dims& wd = ctx.dims(w);
    if (wd.size() != xd.size())
      return ctx.invalid("weight has rank " + std::to_string(wd.size()) + ", the input has rank " + std::to_string(xd.size()));
    if (xd[1].fixed() && wd[1].fixed() && wd[1].value <= kMaxAttr && xd[1].value != wd[1].value * group)
      return ctx.invalid("input has " + std::to_string(xd[1].value) + " channels but the weight expects " +
                         std::to_string(wd[1].value * group) + " (" + std::to_string(wd[1].value) + " per group x " +
                         std::to_string(group) + " groups)");
    if (m.fixed() && m.value % group != 0)
      return ctx.invalid("weight has " + std::to_string(m.value) + " output channels, not divisible by group " +
                         std::to_string(group));
  }
  const size_t b = op == "QLinearConv" ? 8 : 2;
  if (op != "ConvInteger" && ctx.ranked(b) && ctx.rank(b) == 1 && ctx.dims(b)[0].fixed() && m.fixed() &&
      ctx.dims(b)[0].value != m.value)
    return ctx.invalid("bias has " + std::to_string(ctx.dims(b)[0].value) + " elements, expected " + std::to_string(m.value));
  Dims in(xd.begin() + 2, xd.end());
  TANDEM_ASSIGN_OR_RETURN(Dims sp, window_out(ctx, in, kernel_sizes(ctx, w, r), WindowOptions{}));
  Dims out = {xd[0], m};
  out.insert(out.end(), sp.begin(), sp.end());
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

Status conv_transpose_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  const int64_t group = ctx.node().attr_int("group", 1);
  if (group < 1 || group > kMaxAttr) return ctx.invalid("group " + std::to_string(group) + " is out of range");
  const Dim m = ctx.ranked(1) && ctx.rank(1) >= 2 ? dim_mul(ctx.dims(1)[1], fixed_dim(group)) : unknown_dim();
  if (!ctx.ranked(0)) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  const Dims& xd = ctx.dims(0);
  if (xd.size() < 3) return ctx.invalid("input has rank " + std::to_string(xd.size()) + ", expected at least 3");
  const size_t r = xd.size() - 2;
  if (ctx.ranked(1)) {
    const Dims& wd = ctx.dims(1);
    if (wd.size() != xd.size())
      return ctx.invalid("weight has rank " + std::to_string(wd.size()) + ", the input has rank " + std::to_string(xd.size()));
    if (xd[1].fixed() && wd[0].fixed() && xd[1].value != wd[0].value)
      return ctx.invalid("input has " + std::to_string(xd[1].value) + " channels but the weight expects " +
                         std::to_string(wd[0].value));
  }
  std::vector<int64_t> kernel = kernel_sizes(ctx, 1, r);
  if (kernel.size() != r)
    return ctx.invalid("kernel_shape has " + std::to_string(kernel.size()) + " values, expected " + std::to_string(r));
  WindowOptions transposed;
  transposed.transposed = true;
  TANDEM_ASSIGN_OR_RETURN(WindowAttributes a, read_window_attributes(ctx.node(), r, transposed));
  Dims out = {xd[0], m};
  for (size_t d = 0; d < r; ++d) {
    const Dim& in = xd[d + 2];
    if (!a.output_shape.empty()) {
      out.push_back(fixed_dim(a.output_shape[d]));
    } else if (a.same()) {
      out.push_back(dim_mul(in, fixed_dim(a.strides[d])));
    } else if (kernel[d] < 0) {
      out.push_back(unknown_dim());
    } else if (in.fixed() && in.value <= kMaxAttr) {
      TANDEM_ASSIGN_OR_RETURN(WindowDim w, transposed_window_dim(ctx.node(), a, d, in.value, kernel[d]));
      out.push_back(fixed_dim(w.out));
    } else {
      const int64_t growth = a.output_padding[d] + a.extent(d, kernel[d]) - 1 - a.explicit_pad_begin(d) - a.explicit_pad_end(d);
      out.push_back(a.strides[d] == 1 && growth == 0 ? in : unknown_dim());
    }
  }
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

Status pool_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  const bool max_pool = ctx.node().op_type == "MaxPool";
  if (!ctx.ranked(0)) {
    ctx.set_unranked(0, dt);
    if (max_pool) ctx.set_unranked(1, DataType::int64);
    return Status::ok();
  }
  const Dims& xd = ctx.dims(0);
  if (xd.size() < 3) return ctx.invalid("input has rank " + std::to_string(xd.size()) + ", expected at least 3");
  if (!ctx.node().has_attr("kernel_shape")) return ctx.invalid("missing attribute 'kernel_shape'");
  Dims in(xd.begin() + 2, xd.end());
  WindowOptions pooling;
  pooling.has_ceil_mode = true;
  TANDEM_ASSIGN_OR_RETURN(Dims sp, window_out(ctx, in, ctx.node().attr_ints("kernel_shape"), pooling));
  Dims out = {xd[0], xd[1]};
  out.insert(out.end(), sp.begin(), sp.end());
  ctx.set_tensor(0, dt, out);
  if (max_pool) ctx.set_tensor(1, DataType::int64, std::move(out));
  return Status::ok();
}

Status global_pool_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  if (!ctx.ranked(0)) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  const Dims& xd = ctx.dims(0);
  if (xd.size() < 2) return ctx.invalid("input has rank " + std::to_string(xd.size()) + ", expected at least 2");
  Dims out = {xd[0], xd[1]};
  out.resize(xd.size(), fixed_dim(1));
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

Status max_unpool_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  if (ctx.has_input(2)) {
    if (auto v = ctx.ints(2)) ctx.set_tensor(0, dt, from_shape(*v));
    else if (ctx.ranked(0)) ctx.set_tensor(0, dt, Dims(ctx.dims(0).size(), unknown_dim()));
    else ctx.set_unranked(0, dt);
    return Status::ok();
  }
  if (!ctx.ranked(0) || ctx.rank(0) < 3) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  const Dims& xd = ctx.dims(0);
  const size_t r = xd.size() - 2;
  std::vector<int64_t> kernel = ctx.node().attr_ints("kernel_shape");
  if (kernel.size() != r) return ctx.invalid("kernel_shape has " + std::to_string(kernel.size()) + " values, expected " + std::to_string(r));
  TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> strides, read_window_ints(ctx.node(), "strides", r, 1, 1));
  TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> pads, read_window_ints(ctx.node(), "pads", 2 * r, 0, 0));
  Dims out = {xd[0], xd[1]};
  for (size_t d = 0; d < r; ++d) {
    const Dim& in = xd[d + 2];
    if (kernel[d] < 1 || kernel[d] > kMaxAttr) return ctx.invalid("kernel_shape value " + std::to_string(kernel[d]) + " is out of range");
    const bool ok = in.fixed() && in.value <= kMaxAttr;
    out.push_back(ok ? fixed_dim((in.value - 1) * strides[d] + kernel[d] - pads[d] - pads[d + r]) : unknown_dim());
  }
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

Status roi_align_rule(RuleContext& ctx) {
  Dim rois = ctx.ranked(1) && ctx.rank(1) == 2 ? ctx.dims(1)[0] : (ctx.ranked(2) && ctx.rank(2) == 1 ? ctx.dims(2)[0] : unknown_dim());
  Dim c = ctx.ranked(0) && ctx.rank(0) == 4 ? ctx.dims(0)[1] : unknown_dim();
  ctx.set_tensor(0, ctx.dtype(0),
                 {rois, c, fixed_dim(ctx.node().attr_int("output_height", 1)), fixed_dim(ctx.node().attr_int("output_width", 1))});
  return Status::ok();
}

Status max_roi_pool_rule(RuleContext& ctx) {
  Dim rois = ctx.ranked(1) && ctx.rank(1) == 2 ? ctx.dims(1)[0] : unknown_dim();
  Dim c = ctx.ranked(0) && ctx.rank(0) >= 2 ? ctx.dims(0)[1] : unknown_dim();
  Dims out = {rois, c};
  for (int64_t p : ctx.node().attr_ints("pooled_shape")) out.push_back(fixed_dim(p));
  ctx.set_tensor(0, ctx.dtype(0), std::move(out));
  return Status::ok();
}

Status grid_sample_rule(RuleContext& ctx) {
  if (!ctx.ranked(1) || ctx.rank(1) < 3) {
    ctx.set_unranked(0, ctx.dtype(0));
    return Status::ok();
  }
  const Dims& g = ctx.dims(1);
  Dim n = g[0], c = unknown_dim();
  if (ctx.ranked(0) && ctx.rank(0) >= 2) {
    if (!unify_dim(ctx.dims(0)[0], g[0], &n)) return ctx.invalid("input and grid batch sizes differ");
    c = ctx.dims(0)[1];
  }
  Dims out = {n, c};
  out.insert(out.end(), g.begin() + 1, g.end() - 1);
  ctx.set_tensor(0, ctx.dtype(0), std::move(out));
  return Status::ok();
}

// ---- MatMul, Gemm, Einsum, Det ------------------------------------------------------------------

Status matmul_dims(RuleContext& ctx, size_t a, size_t b, DataType dt) {
  if (!ctx.ranked(a) || !ctx.ranked(b)) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  Dims ad = ctx.dims(a), bd = ctx.dims(b);
  if (ad.empty() || bd.empty()) return ctx.invalid("inputs must not be scalars");
  const bool a1 = ad.size() == 1, b1 = bd.size() == 1;
  if (a1) ad.insert(ad.begin(), fixed_dim(1));
  if (b1) bd.push_back(fixed_dim(1));
  const Dim& ka = ad.back();
  const Dim& kb = bd[bd.size() - 2];
  if (ka.fixed() && kb.fixed() && ka.value != kb.value)
    return ctx.invalid("inner dimensions differ: " + std::to_string(ka.value) + " vs " + std::to_string(kb.value));
  Dims abatch(ad.begin(), ad.end() - 2), bbatch(bd.begin(), bd.end() - 2);
  TANDEM_ASSIGN_OR_RETURN(Dims out, broadcast(ctx, {&abatch, &bbatch}));
  if (!a1) out.push_back(ad[ad.size() - 2]);
  if (!b1) out.push_back(bd.back());
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

Status matmul_rule(RuleContext& ctx) {
  const std::string& op = ctx.node().op_type;
  if (op == "MatMulInteger") return matmul_dims(ctx, 0, 1, DataType::int32);
  if (op == "QLinearMatMul") return matmul_dims(ctx, 0, 3, ctx.has_input(7) ? ctx.dtype(7) : DataType::uint8);
  return matmul_dims(ctx, 0, 1, ctx.dtype(0));
}

Status gemm_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  const bool ta = ctx.node().attr_int("transA", 0) != 0, tb = ctx.node().attr_int("transB", 0) != 0;
  Dim m = unknown_dim(), ka = unknown_dim(), kb = unknown_dim(), n = unknown_dim();
  if (ctx.ranked(0)) {
    if (ctx.rank(0) != 2) return ctx.invalid("A has rank " + std::to_string(ctx.rank(0)) + ", expected 2");
    m = ctx.dims(0)[ta ? 1 : 0];
    ka = ctx.dims(0)[ta ? 0 : 1];
  }
  if (ctx.ranked(1)) {
    if (ctx.rank(1) != 2) return ctx.invalid("B has rank " + std::to_string(ctx.rank(1)) + ", expected 2");
    kb = ctx.dims(1)[tb ? 1 : 0];
    n = ctx.dims(1)[tb ? 0 : 1];
  }
  if (ka.fixed() && kb.fixed() && ka.value != kb.value)
    return ctx.invalid("inner dimensions differ: " + std::to_string(ka.value) + " vs " + std::to_string(kb.value));
  Dims out = {m, n};
  if (ctx.ranked(2)) {
    // C broadcasts to [M, N] (unidirectionally).
    const Dims& c = ctx.dims(2);
    if (c.size() > 2) return ctx.invalid("C has rank " + std::to_string(c.size()) + ", expected at most 2");
    for (size_t i = 0; i < c.size(); ++i) {
      Dim& o = out[2 - c.size() + i];
      if (c[i].fixed() && c[i].value != 1) {
        if (o.fixed() && o.value != c[i].value)
          return ctx.invalid("C of shape " + dims_to_string(c) + " does not broadcast to " + dims_to_string(out));
        if (!o.fixed()) o = c[i];
      }
    }
  }
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

Status einsum_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  std::vector<size_t> ranks;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.ranked(i)) {
      ctx.set_unranked(0, dt);
      return Status::ok();
    }
    ranks.push_back(ctx.rank(i));
  }
  Result<EinsumLabels> labels = einsum_labels(ctx.node().attr_string("equation", ""), ranks);
  if (!labels) return ctx.invalid(labels.status().message());
  // A subscript's dim: the same wherever it appears, except that dims of 1 broadcast (the
  // ellipsis dims, each a subscript of its own, broadcast the same way).
  std::vector<Dim> dim(static_cast<size_t>(labels->label_count));
  std::vector<bool> seen(dim.size(), false);
  for (size_t i = 0; i < ranks.size(); ++i)
    for (size_t d = 0; d < ranks[i]; ++d) {
      const Dim& x = ctx.dims(i)[d];
      const size_t l = static_cast<size_t>(labels->inputs[i][d]);
      if (!seen[l] || is_one(dim[l])) {
        if (!seen[l] || !is_one(x)) dim[l] = x;
        seen[l] = true;
        continue;
      }
      if (is_one(x)) continue;
      Dim u;
      if (!unify_dim(dim[l], x, &u))
        return ctx.invalid("a subscript of operand " + std::to_string(i) + " has sizes " + dim_to_string(dim[l]) +
                           " and " + dim_to_string(x));
      dim[l] = u;
    }
  Dims out;
  for (int l : labels->output) out.push_back(dim[static_cast<size_t>(l)]);
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

Status det_rule(RuleContext& ctx) {
  if (!ctx.ranked(0)) {
    ctx.set_unranked(0, ctx.dtype(0));
    return Status::ok();
  }
  const Dims& d = ctx.dims(0);
  if (d.size() < 2) return ctx.invalid("input has rank " + std::to_string(d.size()) + ", expected at least 2");
  ctx.set_tensor(0, ctx.dtype(0), Dims(d.begin(), d.end() - 2));
  return Status::ok();
}

// ---- normalizations --------------------------------------------------------------------------

Status batch_norm_rule(RuleContext& ctx) {
  ctx.set(0, ctx.type(0));
  Dim c = ctx.ranked(0) && ctx.rank(0) >= 2 ? ctx.dims(0)[1] : unknown_dim();
  for (size_t i = 1; i < 5; ++i) {
    if (!ctx.ranked(i) || ctx.rank(i) != 1 || !ctx.dims(i)[0].fixed() || !c.fixed()) continue;
    if (ctx.opset() >= 9 && ctx.dims(i)[0].value != c.value)
      return ctx.invalid("input " + std::to_string(i) + " has " + std::to_string(ctx.dims(i)[0].value) +
                         " elements, the input has " + std::to_string(c.value) + " channels");
  }
  const DataType stat = ctx.dtype(3) != DataType::undefined ? ctx.dtype(3) : ctx.dtype(0);
  for (size_t i = 1; i < ctx.num_outputs(); ++i) ctx.set_tensor(i, stat, {c});
  return Status::ok();
}

Status layer_norm_rule(RuleContext& ctx) {
  ctx.set(0, ctx.type(0));
  const DataType stash = static_cast<DataType>(ctx.node().attr_int("stash_type", 1));
  if (!ctx.ranked(0)) {
    for (size_t i = 1; i < ctx.num_outputs(); ++i) ctx.set_unranked(i, stash);
    return Status::ok();
  }
  TANDEM_ASSIGN_OR_RETURN(int64_t a, ctx.axis(ctx.node().attr_int("axis", -1), ctx.rank(0)));
  Dims d = ctx.dims(0);
  for (size_t i = static_cast<size_t>(a); i < d.size(); ++i) d[i] = fixed_dim(1);
  for (size_t i = 1; i < ctx.num_outputs(); ++i) ctx.set_tensor(i, stash, d);
  return Status::ok();
}

// ---- Resize, Upsample ---------------------------------------------------------------------------

Status apply_scales(RuleContext& ctx, const std::vector<double>& scales, const std::vector<int64_t>& axes) {
  Dims out = ctx.dims(0);
  if (scales.size() != axes.size())
    return ctx.invalid("scales has " + std::to_string(scales.size()) + " elements, expected " + std::to_string(axes.size()));
  for (size_t i = 0; i < axes.size(); ++i) {
    const double s = scales[i];
    if (!(s > 0.0) || !std::isfinite(s)) return ctx.invalid("scales must be positive and finite");
    Dim& d = out[axes[i]];
    const double v = std::floor(static_cast<double>(d.value) * s);
    if (d.fixed()) d = v < 1e15 ? fixed_dim(static_cast<int64_t>(v)) : unknown_dim();
    else if (s != 1.0) d = unknown_dim();
  }
  ctx.set_tensor(0, ctx.dtype(0), std::move(out));
  return Status::ok();
}

Status resize_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  if (!ctx.ranked(0)) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  const int64_t r = ctx.rank(0);
  std::vector<int64_t> axes;
  if (ctx.node().has_attr("axes")) {
    for (int64_t a : ctx.node().attr_ints("axes")) {
      TANDEM_ASSIGN_OR_RETURN(int64_t n, ctx.axis(a, r));
      axes.push_back(n);
    }
  } else {
    for (int64_t i = 0; i < r; ++i) axes.push_back(i);
  }
  const bool is_upsample = ctx.node().op_type == "Upsample";
  const size_t scales_in = is_upsample || ctx.opset() < 11 ? 1 : 2;
  const size_t sizes_in = 3;
  auto unknown_out = [&] {
    Dims out = ctx.dims(0);
    for (int64_t a : axes) out[a] = unknown_dim();
    ctx.set_tensor(0, dt, std::move(out));
    return Status::ok();
  };
  if (is_upsample && ctx.node().has_attr("scales")) {
    std::vector<double> s;
    for (float f : ctx.node().attr_floats("scales")) s.push_back(f);
    return apply_scales(ctx, s, axes);
  }
  if (is_upsample && ctx.opset() < 7) {
    std::vector<double> s = {1.0, 1.0, ctx.node().attr_float("height_scale", 1.0f), ctx.node().attr_float("width_scale", 1.0f)};
    if (r != 4) return unknown_out();
    return apply_scales(ctx, s, axes);
  }
  const int64_t nscales = ctx.has_input(scales_in) ? ctx.length_of(scales_in) : 0;
  const int64_t nsizes = !is_upsample && ctx.opset() >= 11 && ctx.has_input(sizes_in) ? ctx.length_of(sizes_in) : 0;
  if (nscales != 0 && nsizes <= 0) {
    if (auto s = ctx.floats(scales_in); s && !s->empty()) return apply_scales(ctx, *s, axes);
    return unknown_out();
  }
  if (nsizes == 0) return unknown_out();
  auto sizes = ctx.ints(sizes_in);
  if (!sizes) {
    if (const Dims* dv = ctx.dim_values(sizes_in); dv && dv->size() == axes.size() &&
                                                   ctx.node().attr_string("keep_aspect_ratio_policy", "stretch") == "stretch") {
      Dims out = ctx.dims(0);
      for (size_t i = 0; i < axes.size(); ++i) out[axes[i]] = plain_dim((*dv)[i]);
      ctx.set_tensor(0, dt, std::move(out));
      return Status::ok();
    }
    return unknown_out();
  }
  if (sizes->size() != axes.size())
    return ctx.invalid("sizes has " + std::to_string(sizes->size()) + " elements, expected " + std::to_string(axes.size()));
  const std::string policy = ctx.node().attr_string("keep_aspect_ratio_policy", "stretch");
  Dims out = ctx.dims(0);
  if (policy == "stretch") {
    for (size_t i = 0; i < axes.size(); ++i) {
      if ((*sizes)[i] < 0) return ctx.invalid("sizes must be non-negative");
      out[axes[i]] = fixed_dim((*sizes)[i]);
    }
    ctx.set_tensor(0, dt, std::move(out));
    return Status::ok();
  }
  double scale = policy == "not_larger" ? INFINITY : 0.0;
  for (size_t i = 0; i < axes.size(); ++i) {
    const Dim& d = ctx.dims(0)[axes[i]];
    if (!d.fixed()) return unknown_out();
    if (d.value == 0) continue;
    const double q = static_cast<double>((*sizes)[i]) / static_cast<double>(d.value);
    scale = policy == "not_larger" ? std::min(scale, q) : std::max(scale, q);
  }
  if (!std::isfinite(scale) || scale <= 0.0) return unknown_out();
  for (size_t i = 0; i < axes.size(); ++i) {
    const double v = scale * static_cast<double>(out[axes[i]].value) + 0.5;
    out[axes[i]] = v < 1e15 ? fixed_dim(static_cast<int64_t>(v)) : unknown_dim();
  }
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

// ---- RNN, GRU, LSTM ---------------------------------------------------------------------------------

Status rnn_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  const std::string& op = ctx.node().op_type;
  const int64_t gates = op == "LSTM" ? 4 : op == "GRU" ? 3 : 1;
  const int64_t layout = ctx.node().attr_int("layout", 0);
  Dim seq = unknown_dim(), batch = unknown_dim();
  if (ctx.ranked(0)) {
    if (ctx.rank(0) != 3) return ctx.invalid("X has rank " + std::to_string(ctx.rank(0)) + ", expected 3");
    seq = ctx.dims(0)[layout == 0 ? 0 : 1];
    batch = ctx.dims(0)[layout == 0 ? 1 : 0];
  }
  const std::string dir = ctx.node().attr_string("direction", "forward");
  Dim nd = fixed_dim(dir == "bidirectional" ? 2 : 1);
  Dim hidden = unknown_dim();
  if (ctx.node().has_attr("hidden_size")) hidden = fixed_dim(ctx.node().attr_int("hidden_size", 0));
  else if (ctx.ranked(2) && ctx.rank(2) == 3) hidden = ctx.dims(2)[2];
  else if (ctx.ranked(1) && ctx.rank(1) == 3 && ctx.dims(1)[1].fixed()) hidden = fixed_dim(ctx.dims(1)[1].value / gates);
  if (ctx.ranked(1) && ctx.rank(1) == 3) {
    const Dims& w = ctx.dims(1);
    if (w[0].fixed() && w[0].value != nd.value)
      return ctx.invalid("W has " + std::to_string(w[0].value) + " directions, expected " + std::to_string(nd.value));
    if (w[1].fixed() && hidden.fixed() && w[1].value != gates * hidden.value)
      return ctx.invalid("W has " + std::to_string(w[1].value) + " rows, expected " + std::to_string(gates * hidden.value));
    if (ctx.ranked(0) && ctx.rank(0) == 3 && w[2].fixed() && ctx.dims(0)[2].fixed() && w[2].value != ctx.dims(0)[2].value)
      return ctx.invalid("W expects input size " + std::to_string(w[2].value) + ", X has " +
                         std::to_string(ctx.dims(0)[2].value));
  }
  if (layout == 0) {
    ctx.set_tensor(0, dt, {seq, nd, batch, hidden});
    for (size_t i = 1; i < ctx.num_outputs(); ++i) ctx.set_tensor(i, dt, {nd, batch, hidden});
  } else {
    ctx.set_tensor(0, dt, {batch, seq, nd, hidden});
    for (size_t i = 1; i < ctx.num_outputs(); ++i) ctx.set_tensor(i, dt, {batch, nd, hidden});
  }
  return Status::ok();
}

// ---- losses -----------------------------------------------------------------------------------------

Status loss_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  const std::string reduction = ctx.node().attr_string("reduction", "mean");
  if (reduction != "none") ctx.set_tensor(0, dt, {});
  else if (ctx.ranked(1)) ctx.set_tensor(0, dt, ctx.dims(1));
  else if (ctx.ranked(0) && ctx.rank(0) >= 2) {
    Dims d = ctx.dims(0);
    d.erase(d.begin() + 1);
    ctx.set_tensor(0, dt, std::move(d));
  } else ctx.set_unranked(0, dt);
  if (ctx.num_outputs() > 1) ctx.set(1, ctx.type(0));
  return Status::ok();
}

// ---- signal -----------------------------------------------------------------------------------------

Status dft_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  if (!ctx.ranked(0)) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  const int64_t r = ctx.rank(0);
  if (r < 2) return ctx.invalid("input must have rank >= 2");
  std::optional<int64_t> axis = ctx.node().attr_int("axis", 1);
  if (ctx.opset() >= 20) {
    axis = -2;
    if (ctx.has_input(2)) {
      auto v = ctx.ints(2);
      axis = v && v->size() == 1 ? std::optional<int64_t>((*v)[0]) : std::nullopt;
    }
  }
  Dims d = ctx.dims(0);
  d[r - 1] = fixed_dim(2);
  if (!axis) {
    for (int64_t i = 0; i + 1 < r; ++i) d[i] = unknown_dim();
    ctx.set_tensor(0, dt, std::move(d));
    return Status::ok();
  }
  int64_t a = *axis < 0 ? *axis + r : *axis;
  if (a < 0 || a > r - 2) return ctx.invalid("axis " + std::to_string(*axis) + " is out of range for input rank " + std::to_string(r));
  Dim len = d[a];
  if (ctx.has_input(1)) {
    auto v = ctx.ints(1);
    len = v && v->size() == 1 ? fixed_dim((*v)[0]) : unknown_dim();
  }
  if (ctx.node().attr_int("onesided", 0) != 0) len = len.fixed() ? fixed_dim(len.value / 2 + 1) : unknown_dim();
  d[a] = len;
  ctx.set_tensor(0, dt, std::move(d));
  return Status::ok();
}

Status stft_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  Dim batch = unknown_dim(), frames = unknown_dim(), bins = unknown_dim();
  Dim length = ctx.ranked(0) && ctx.rank(0) == 3 ? ctx.dims(0)[1] : unknown_dim();
  if (ctx.ranked(0) && ctx.rank(0) == 3) batch = ctx.dims(0)[0];
  int64_t frame_length = -1;
  if (ctx.ranked(2) && ctx.rank(2) == 1 && ctx.dims(2)[0].fixed()) frame_length = ctx.dims(2)[0].value;
  if (auto v = ctx.ints(3); v && v->size() == 1) frame_length = (*v)[0];
  auto step = ctx.ints(1);
  if (frame_length > 0) {
    bins = fixed_dim(ctx.node().attr_int("onesided", 1) != 0 ? frame_length / 2 + 1 : frame_length);
    if (step && step->size() == 1 && (*step)[0] > 0 && length.fixed() && length.value >= frame_length)
      frames = fixed_dim((length.value - frame_length) / (*step)[0] + 1);
  }
  ctx.set_tensor(0, dt, {batch, frames, bins, fixed_dim(2)});
  return Status::ok();
}

Status window_fn_rule(RuleContext& ctx) {
  const DataType dt = static_cast<DataType>(ctx.node().attr_int("output_datatype", 1));
  auto n = ctx.ints(0);
  ctx.set_tensor(0, dt, {n && n->size() == 1 ? fixed_dim((*n)[0]) : unknown_dim()});
  return Status::ok();
}

Status mel_rule(RuleContext& ctx) {
  const DataType dt = static_cast<DataType>(ctx.node().attr_int("output_datatype", 1));
  auto bins = ctx.ints(0), dft = ctx.ints(1);
  ctx.set_tensor(0, dt,
                 {dft && dft->size() == 1 ? fixed_dim((*dft)[0] / 2 + 1) : unknown_dim(),
                  bins && bins->size() == 1 ? fixed_dim((*bins)[0]) : unknown_dim()});
  return Status::ok();
}

// ---- text, detection, training -----------------------------------------------------------------

Status string_normalizer_rule(RuleContext& ctx) {
  TypeInfo t = ctx.type(0);
  t.kind = TypeInfo::Kind::tensor;
  t.elem = DataType::string;
  if (t.has_shape && !t.dims.empty() && !ctx.node().attr_strings("stopwords").empty()) t.dims.back() = unknown_dim();
  ctx.set(0, t);
  return Status::ok();
}

Status tfidf_rule(RuleContext& ctx) {
  int64_t m = -1;
  for (int64_t v : ctx.node().attr_ints("ngram_indexes")) m = std::max(m, v);
  Dim e = m >= 0 ? fixed_dim(m + 1) : unknown_dim();
  if (ctx.ranked(0) && ctx.rank(0) == 2) ctx.set_tensor(0, DataType::float32, {ctx.dims(0)[0], e});
  else if (ctx.ranked(0) && ctx.rank(0) == 1) ctx.set_tensor(0, DataType::float32, {e});
  else ctx.set_unranked(0, DataType::float32);
  return Status::ok();
}

Status nms_rule(RuleContext& ctx) {
  ctx.set_tensor(0, DataType::int64, {unknown_dim(), fixed_dim(3)});
  return Status::ok();
}

// Adagrad (R, T, X.., G.., H..), Momentum (R, T, X.., G.., V..), Adam (R, T, X.., G.., V.., H..):
// the k-th group of outputs has the types of the matching state inputs.
Status optimizer_rule(RuleContext& ctx) {
  const std::string& op = ctx.node().op_type;
  const size_t groups = op == "Adam" ? 4 : 3;  // X, G, state(s) among the inputs
  const size_t n_in = ctx.num_inputs() >= 2 ? ctx.num_inputs() - 2 : 0;
  const size_t n = n_in / groups;
  if (n == 0 || n_in % groups != 0) return ctx.invalid("has " + std::to_string(ctx.num_inputs()) + " inputs, which do not form tensor groups");
  for (size_t o = 0; o < ctx.num_outputs(); ++o) {
    const size_t g = o / n, i = o % n;  // output group 0: X, then the states after G
    const size_t in_group = g == 0 ? 0 : g + 1;
    ctx.set(o, ctx.type(2 + in_group * n + i));
  }
  return Status::ok();
}

// Gradient (inputs: the xs, then the zs): the gradient w.r.t. xs[i] has the type of xs[i].
Status gradient_rule(RuleContext& ctx) {
  const size_t n = ctx.node().attr_strings("xs").size();
  for (size_t i = 0; i < ctx.num_outputs() && i < n; ++i) ctx.set(i, ctx.type(i));
  return Status::ok();
}

// ---- newer ops (opset 18-20) -------------------------------------------------------------------

Status center_crop_pad_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  if (!ctx.ranked(0)) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  const int64_t r = ctx.rank(0);
  std::vector<int64_t> axes = ctx.node().attr_ints("axes");
  if (axes.empty())
    for (int64_t i = 0; i < r; ++i) axes.push_back(i);
  Dims out = ctx.dims(0);
  auto shape = ctx.ints(1);
  if (shape && shape->size() != axes.size())
    return ctx.invalid("shape has " + std::to_string(shape->size()) + " entries, expected " + std::to_string(axes.size()));
  for (size_t i = 0; i < axes.size(); ++i) {
    TANDEM_ASSIGN_OR_RETURN(int64_t a, ctx.axis(axes[i], r));
    out[a] = shape ? fixed_dim((*shape)[i]) : unknown_dim();
  }
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

Status col2im_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  auto image = ctx.ints(1), block = ctx.ints(2);
  const int64_t n = image ? static_cast<int64_t>(image->size()) : ctx.length_of(1);
  if (n < 0) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  Dim batch = unknown_dim(), c = unknown_dim();
  if (ctx.ranked(0) && ctx.rank(0) == 3) {
    batch = ctx.dims(0)[0];
    int64_t prod = 1;
    for (int64_t b : block ? *block : std::vector<int64_t>{}) prod = b > 0 && prod <= kMaxAttr ? prod * b : -1;
    const Dim& cb = ctx.dims(0)[1];
    if (block && prod > 0 && cb.fixed()) {
      if (cb.value % prod != 0)
        return ctx.invalid("input dim 1 (" + std::to_string(cb.value) + ") is not divisible by the block size " + std::to_string(prod));
      c = fixed_dim(cb.value / prod);
    }
  }
  Dims out = {batch, c};
  for (int64_t i = 0; i < n; ++i) out.push_back(image ? fixed_dim((*image)[i]) : unknown_dim());
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

Status affine_grid_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  auto size = ctx.ints(1);
  const int64_t n = size ? static_cast<int64_t>(size->size()) : ctx.length_of(1);
  if (n != 4 && n != 5) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  Dims out;
  out.push_back(size ? fixed_dim((*size)[0]) : (ctx.ranked(0) && ctx.rank(0) == 3 ? ctx.dims(0)[0] : unknown_dim()));
  for (int64_t i = 2; i < n; ++i) out.push_back(size ? fixed_dim((*size)[i]) : unknown_dim());
  out.push_back(fixed_dim(n - 2));
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

Status string_split_rule(RuleContext& ctx) {
  if (!ctx.ranked(0)) {
    ctx.set_unranked(0, DataType::string);
    ctx.set_unranked(1, DataType::int64);
    return Status::ok();
  }
  Dims d = ctx.dims(0);
  ctx.set_tensor(1, DataType::int64, d);
  d.push_back(unknown_dim());
  ctx.set_tensor(0, DataType::string, std::move(d));
  return Status::ok();
}

Status regex_full_match_rule(RuleContext& ctx) {
  TypeInfo t = ctx.type(0);
  t.kind = TypeInfo::Kind::tensor;
  t.elem = DataType::boolean;
  ctx.set(0, t);
  return Status::ok();
}

Status string_concat_rule(RuleContext& ctx) {
  if (!ctx.ranked(0) || !ctx.ranked(1)) {
    ctx.set_unranked(0, DataType::string);
    return Status::ok();
  }
  TANDEM_ASSIGN_OR_RETURN(Dims out, broadcast(ctx, {&ctx.dims(0), &ctx.dims(1)}));
  ctx.set_tensor(0, DataType::string, std::move(out));
  return Status::ok();
}

Status image_decoder_rule(RuleContext& ctx) {
  ctx.set_tensor(0, DataType::uint8, {unknown_dim(), unknown_dim(), unknown_dim()});
  return Status::ok();
}

}  // namespace

void register_nn_rules(RuleTable& t) {
  t.add("", "CenterCropPad", center_crop_pad_rule);
  t.add("", "Col2Im", col2im_rule);
  t.add("", "AffineGrid", affine_grid_rule);
  t.add("", "StringSplit", string_split_rule);
  t.add("", "RegexFullMatch", regex_full_match_rule);
  t.add("", "StringConcat", string_concat_rule);
  t.add("", "ImageDecoder", image_decoder_rule);
  t.add("", "Conv", conv_rule);
  t.add("", "ConvInteger", conv_rule);
  t.add("", "QLinearConv", conv_rule);
  t.add("", "ConvTranspose", conv_transpose_rule);
  t.add("", "MaxPool", pool_rule);
  t.add("", "AveragePool", pool_rule);
  t.add("", "LpPool", pool_rule);
  t.add("", "GlobalAveragePool", global_pool_rule);
  t.add("", "GlobalMaxPool", global_pool_rule);
  t.add("", "GlobalLpPool", global_pool_rule);
  t.add("", "MaxUnpool", max_unpool_rule);
  t.add("", "RoiAlign", roi_align_rule);
  t.add("", "MaxRoiPool", max_roi_pool_rule);
  t.add("", "GridSample", grid_sample_rule);
  t.add("", "MatMul", matmul_rule);
  t.add("", "MatMulInteger", matmul_rule);
  t.add("", "QLinearMatMul", matmul_rule);
  t.add("", "Gemm", gemm_rule);
  t.add("", "Einsum", einsum_rule);
  t.add("", "Det", det_rule);
  t.add("", "BatchNormalization", batch_norm_rule);
  t.add("", "LayerNormalization", layer_norm_rule);
  t.add("", "Resize", resize_rule);
  t.add("", "Upsample", resize_rule);
  t.add("", "RNN", rnn_rule);
  t.add("", "GRU", rnn_rule);
  t.add("", "LSTM", rnn_rule);
  t.add("", "NegativeLogLikelihoodLoss", loss_rule);
  t.add("", "SoftmaxCrossEntropyLoss", loss_rule);
  t.add("", "DFT", dft_rule);
  t.add("", "STFT", stft_rule);
  t.add("", "HannWindow", window_fn_rule);
  t.add("", "HammingWindow", window_fn_rule);
  t.add("", "BlackmanWindow", window_fn_rule);
  t.add("", "MelWeightMatrix", mel_rule);
  t.add("", "StringNormalizer", string_normalizer_rule);
  t.add("", "TfIdfVectorizer", tfidf_rule);
  t.add("", "NonMaxSuppression", nms_rule);
  for (const char* op : {"Adagrad", "Momentum", "Adam"}) t.add("ai.onnx.preview.training", op, optimizer_rule);
  t.add("ai.onnx.preview.training", "Gradient", gradient_rule);
}

}  // namespace tandem::shape_detail
