// shape_rules_movement.cpp: shape rules for data movement: Reshape, Flatten, Transpose,
// Squeeze/Unsqueeze, Concat, Split, Slice, the Gather family, Expand, Tile, Pad, Compress,
// NonZero, Unique, OneHot, DepthToSpace/SpaceToDepth and EyeLike.
// See shape_rules.h for the contract of a rule.
#include "passes/shape_rules.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "core/tensor_util.h"

namespace tandem::shape_detail {

namespace {

// ---- Reshape, Flatten, Transpose, Squeeze, Unsqueeze ---------------------------------------------

// Resolves the -1 entry of a Reshape: element count of `in` divided by the product of the other
// output dims, cancelling matching symbols.
Result<Dim> infer_minus_one(const RuleContext& ctx, const Dims& in, const Dims& out, size_t skip) {
  int64_t in_fixed = 1, out_fixed = 1;
  std::multiset<std::string> in_sym, out_sym;
  bool unknown = false;
  auto acc = [&](const Dim& d, int64_t& f, std::multiset<std::string>& sym) {
    if (d.fixed()) {
      if (d.value != 0 && f > kDimLimit / d.value) unknown = true;
      else f *= d.value;
    } else if (!d.symbol.empty()) sym.insert(d.symbol);
    else unknown = true;
  };
  for (const Dim& d : in) acc(d, in_fixed, in_sym);
  for (size_t i = 0; i < out.size(); ++i)
    if (i != skip) acc(out[i], out_fixed, out_sym);
  if (unknown) return unknown_dim();
  for (auto it = out_sym.begin(); it != out_sym.end();) {
    auto m = in_sym.find(*it);
    if (m == in_sym.end()) return unknown_dim();
    in_sym.erase(m);
    it = out_sym.erase(it);
  }
  if (out_fixed == 0) {
    if (in_fixed == 0 && in_sym.empty()) return unknown_dim();
    return ctx.invalid("cannot infer -1 with a zero-sized dimension in the target shape");
  }
  if (in_fixed % out_fixed != 0) {
    if (!in_sym.empty()) return unknown_dim();
    return ctx.invalid("cannot reshape " + dims_to_string(in) + " to " + dims_to_string(out) + ": " +
                       std::to_string(in_fixed) + " elements are not divisible by " + std::to_string(out_fixed));
  }
  if (in_sym.empty()) return fixed_dim(in_fixed / out_fixed);
  if (in_sym.size() == 1 && in_fixed == out_fixed) return symbol_dim(*in_sym.begin());
  return unknown_dim();
}

// Element-count check of a Reshape without -1 when both sides are comparable.
Status check_reshape_count(const RuleContext& ctx, const Dims& in, const Dims& out) {
  int64_t a = 1, b = 1;
  std::multiset<std::string> sa, sb;
  for (const Dim& d : in) {
    if (d.fixed()) a = d.value != 0 && a > kDimLimit / d.value ? -1 : a * d.value;
    else if (!d.symbol.empty()) sa.insert(d.symbol);
    else return Status::ok();
    if (a < 0) return Status::ok();
  }
  for (const Dim& d : out) {
    if (d.fixed()) b = d.value != 0 && b > kDimLimit / d.value ? -1 : b * d.value;
    else if (!d.symbol.empty()) sb.insert(d.symbol);
    else return Status::ok();
    if (b < 0) return Status::ok();
  }
  if (sa != sb) return Status::ok();
  if (a != b)
    return ctx.invalid("cannot reshape " + dims_to_string(in) + " (" + std::to_string(a) + " elements) to " +
                       dims_to_string(out) + " (" + std::to_string(b) + " elements)");
  return Status::ok();
}

Status reshape_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  std::optional<Dims> target;
  if (ctx.opset() < 5 || !ctx.has_input(1)) {
    if (ctx.node().has_attr("shape")) {
      target = Dims();
      for (int64_t x : ctx.node().attr_ints("shape")) target->push_back(int_dim(x));
    }
  } else {
    target = shape_operand(ctx, 1);
  }
  if (!target) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  const bool allowzero = ctx.node().attr_int("allowzero", 0) != 0;
  const Dims* in = ranked_dims(ctx, 0);
  Dims out = *target;
  int minus_one = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    int64_t neg = 0;
    if (literal_negative(out[i], &neg)) {
      if (neg != -1) return ctx.invalid("shape entry " + std::to_string(neg) + " is invalid");
      if (minus_one >= 0) return ctx.invalid("shape has more than one -1");
      minus_one = static_cast<int>(i);
      out[i] = unknown_dim();
    } else if (out[i].value == 0 && !allowzero) {
      if (in && i >= in->size())
        return ctx.invalid("shape entry " + std::to_string(i) + " is 0 (copy) but the input has rank " +
                           std::to_string(in->size()));
      out[i] = in ? (*in)[i] : unknown_dim();
    }
  }
  if (minus_one >= 0) {
    if (in) {
      TANDEM_ASSIGN_OR_RETURN(out[minus_one], infer_minus_one(ctx, *in, out, static_cast<size_t>(minus_one)));
    }
  } else if (in) {
    TANDEM_RETURN_IF_ERROR(check_reshape_count(ctx, *in, out));
  }
  if (const Dims* dv = ctx.dim_values(0); dv && out.size() <= 1 && all_fixed(out) &&
                                          shape_numel(to_shape(out)) == static_cast<int64_t>(dv->size()))
    ctx.set_dimvals(0, *dv);
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

Status flatten_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  if (!ctx.ranked(0)) {
    ctx.set_tensor(0, dt, {unknown_dim(), unknown_dim()});
    return Status::ok();
  }
  const int64_t r = ctx.rank(0);
  int64_t a = ctx.node().attr_int("axis", 1);
  if (a < -r || a > r) return ctx.invalid("axis " + std::to_string(a) + " is out of range for rank " + std::to_string(r));
  if (a < 0) a += r;
  const Dims& d = ctx.dims(0);
  ctx.set_tensor(0, dt, {dims_product(d, 0, a), dims_product(d, a, d.size())});
  return Status::ok();
}

Status transpose_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  if (!ctx.ranked(0)) {
    if (ctx.node().has_attr("perm")) ctx.set_tensor(0, dt, Dims(ctx.node().attr_ints("perm").size(), unknown_dim()));
    else ctx.set_unranked(0, dt);
    return Status::ok();
  }
  const Dims& d = ctx.dims(0);
  const int64_t r = ctx.rank(0);
  std::vector<int64_t> perm = ctx.node().attr_ints("perm");
  if (!ctx.node().has_attr("perm"))
    for (int64_t i = r - 1; i >= 0; --i) perm.push_back(i);
  if (static_cast<int64_t>(perm.size()) != r)
    return ctx.invalid("perm has " + std::to_string(perm.size()) + " entries, the input has rank " + std::to_string(r));
  std::vector<bool> seen(r, false);
  Dims out;
  for (int64_t p : perm) {
    TANDEM_ASSIGN_OR_RETURN(int64_t q, ctx.axis(p, r, "perm entry"));
    if (seen[q]) return ctx.invalid("perm repeats axis " + std::to_string(q));
    seen[q] = true;
    out.push_back(d[q]);
  }
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

Status squeeze_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  auto axes = ctx.ints_attr_or_input("axes", 1);
  if (!ctx.ranked(0) || !axes) {
    const int64_t n = ctx.node().has_attr("axes") ? -1 : ctx.length_of(1);
    if (ctx.ranked(0) && n > 0 && n <= ctx.rank(0)) ctx.set_tensor(0, dt, Dims(static_cast<size_t>(ctx.rank(0) - n), unknown_dim()));
    else ctx.set_unranked(0, dt);
    return Status::ok();
  }
  const Dims& d = ctx.dims(0);
  const int64_t r = ctx.rank(0);
  Dims out;
  if (axes->empty()) {
    if (!all_fixed(d)) {
      // Which unknown dims are 1 is not known; only fixed non-1 dims certainly stay.
      ctx.set_unranked(0, dt);
      return Status::ok();
    }
    for (const Dim& x : d)
      if (x.value != 1) out.push_back(x);
  } else {
    TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> ax, norm_axes(ctx, *axes, r));
    for (int64_t a : ax)
      if (d[a].fixed() && d[a].value != 1)
        return ctx.invalid("cannot squeeze axis " + std::to_string(a) + " of size " + std::to_string(d[a].value));
    for (int64_t i = 0; i < r; ++i)
      if (std::find(ax.begin(), ax.end(), i) == ax.end()) out.push_back(d[i]);
  }
  if (ctx.dim_values(0)) ctx.set_dimvals(0, *ctx.dim_values(0));
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

Status unsqueeze_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  auto axes = ctx.ints_attr_or_input("axes", 1);
  if (!ctx.ranked(0) || !axes) {
    // Unknown axes: the output rank is still known when their count is.
    const int64_t n = ctx.node().has_attr("axes") ? -1 : ctx.length_of(1);
    if (ctx.ranked(0) && n >= 0) ctx.set_tensor(0, dt, Dims(static_cast<size_t>(ctx.rank(0) + n), unknown_dim()));
    else ctx.set_unranked(0, dt);
    return Status::ok();
  }
  const Dims& d = ctx.dims(0);
  const int64_t r = ctx.rank(0) + static_cast<int64_t>(axes->size());
  TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> ax, norm_axes(ctx, *axes, r));
  Dims out;
  size_t k = 0;
  for (int64_t i = 0; i < r; ++i) {
    if (std::find(ax.begin(), ax.end(), i) != ax.end()) out.push_back(fixed_dim(1));
    else out.push_back(d[k++]);
  }
  if (ctx.dim_values(0)) ctx.set_dimvals(0, *ctx.dim_values(0));
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

// ---- Concat, Split, Slice --------------------------------------------------------------------------

Status concat_rule(RuleContext& ctx) {
  DataType dt = DataType::undefined;
  const Dims* first = nullptr;
  bool all_ranked = true;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i)) continue;
    if (dt == DataType::undefined) dt = ctx.dtype(i);
    if (!ctx.ranked(i)) all_ranked = false;
    else if (!first) first = &ctx.dims(i);
  }
  if (!first) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  const int64_t r = static_cast<int64_t>(first->size());
  TANDEM_ASSIGN_OR_RETURN(int64_t axis, ctx.axis(ctx.node().attr_int("axis", 0), r));
  Dims out = *first;
  out[axis] = fixed_dim(0);
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.ranked(i)) continue;
    const Dims& d = ctx.dims(i);
    if (static_cast<int64_t>(d.size()) != r)
      return ctx.invalid("input " + std::to_string(i) + " has rank " + std::to_string(d.size()) + ", input 0 has rank " +
                         std::to_string(r));
    for (int64_t k = 0; k < r; ++k) {
      if (k == axis) {
        out[k] = dim_add(out[k], d[k]);
        continue;
      }
      Dim u;
      if (!unify_dim(out[k], d[k], &u))
        return ctx.invalid("input " + std::to_string(i) + " has shape " + dims_to_string(d) + ", which differs from " +
                           dims_to_string(out) + " outside axis " + std::to_string(axis));
      out[k] = u;
    }
  }
  if (!all_ranked) out[axis] = unknown_dim();
  // Traced shape values concatenate.
  if (r == 1 && all_ranked) {
    Dims vals;
    bool ok = true;
    for (size_t i = 0; i < ctx.num_inputs() && ok; ++i) {
      if (!ctx.has_input(i)) continue;
      const Dims* dv = ctx.dim_values(i);
      if (!dv) ok = false;
      else vals.insert(vals.end(), dv->begin(), dv->end());
    }
    if (ok) ctx.set_dimvals(0, std::move(vals));
  }
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

Status split_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  const size_t n = ctx.num_outputs();
  if (!ctx.ranked(0)) {
    for (size_t i = 0; i < n; ++i) ctx.set_unranked(i, dt);
    return Status::ok();
  }
  const Dims& d = ctx.dims(0);
  TANDEM_ASSIGN_OR_RETURN(int64_t axis, ctx.axis(ctx.node().attr_int("axis", 0), ctx.rank(0)));
  std::optional<std::vector<int64_t>> sizes = ctx.ints_attr_or_input("split", 1);
  std::vector<Dim> parts(n, unknown_dim());
  if (sizes && !sizes->empty()) {
    if (sizes->size() != n)
      return ctx.invalid("split has " + std::to_string(sizes->size()) + " entries but the node has " +
                         std::to_string(n) + " outputs");
    int64_t sum = 0;
    for (int64_t s : *sizes) {
      if (s < 0 || s > kDimLimit) return ctx.invalid("split has an out-of-range entry " + std::to_string(s));
      sum = std::min(sum + s, kDimLimit);
    }
    if (d[axis].fixed() && sum != d[axis].value)
      return ctx.invalid("split sizes sum to " + std::to_string(sum) + " but axis " + std::to_string(axis) + " has size " +
                         std::to_string(d[axis].value));
    for (size_t i = 0; i < n; ++i) parts[i] = fixed_dim((*sizes)[i]);
  } else if (sizes && d[axis].fixed()) {
    const int64_t total = d[axis].value;
    const int64_t k = static_cast<int64_t>(n);
    if (ctx.node().has_attr("num_outputs")) {
      const int64_t chunk = (total + k - 1) / k;
      for (int64_t i = 0; i < k; ++i) parts[i] = fixed_dim(std::max<int64_t>(0, std::min(chunk, total - i * chunk)));
    } else {
      if (total % k != 0)
        return ctx.invalid("axis " + std::to_string(axis) + " of size " + std::to_string(total) +
                           " does not split evenly into " + std::to_string(k) + " outputs");
      for (int64_t i = 0; i < k; ++i) parts[i] = fixed_dim(total / k);
    }
  } else if (sizes && n == 1) {
    parts[0] = d[axis];
  }
  for (size_t i = 0; i < n; ++i) {
    Dims o = d;
    o[axis] = parts[i];
    ctx.set_tensor(i, dt, std::move(o));
  }
  // Traced values split too.
  if (const Dims* dv = ctx.dim_values(0); dv && d.size() == 1 && std::all_of(parts.begin(), parts.end(), [](const Dim& p) { return p.fixed(); })) {
    size_t off = 0;
    for (size_t i = 0; i < n && off + parts[i].value <= dv->size(); ++i) {
      ctx.set_dimvals(i, Dims(dv->begin() + off, dv->begin() + off + parts[i].value));
      off += parts[i].value;
    }
  }
  return Status::ok();
}

// ONNX slice arithmetic on one axis of a fixed size.
int64_t slice_length(int64_t dim, int64_t start, int64_t end, int64_t step, int64_t* first) {
  if (start < 0) start += dim;
  if (end < 0) end += dim;
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, dim);
    end = std::clamp<int64_t>(end, 0, dim);
    *first = start;
    return end > start ? (end - start + step - 1) / step : 0;
  }
  start = std::clamp<int64_t>(start, 0, dim - 1);
  end = std::clamp<int64_t>(end, -1, dim - 1);
  *first = start;
  return start > end ? (start - end + (-step) - 1) / (-step) : 0;
}

Status slice_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  if (!ctx.ranked(0)) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  const Dims& d = ctx.dims(0);
  const int64_t r = ctx.rank(0);
  std::optional<std::vector<int64_t>> starts, ends, axes, steps;
  if (ctx.opset() < 10) {
    starts = ctx.node().attr_ints("starts");
    ends = ctx.node().attr_ints("ends");
    axes = ctx.node().attr_ints("axes");
    steps = std::vector<int64_t>{};
  } else {
    starts = ctx.ints(1);
    ends = ctx.ints(2);
    axes = ctx.has_input(3) ? ctx.ints(3) : std::vector<int64_t>{};
    steps = ctx.has_input(4) ? ctx.ints(4) : std::vector<int64_t>{};
  }
  Dims out = d;
  if (!starts || !ends || !steps) {
    if (axes && !axes->empty()) {
      TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> ax, norm_axes(ctx, *axes, r));
      for (int64_t a : ax) out[a] = unknown_dim();
    } else {
      for (Dim& x : out) x = unknown_dim();
    }
    ctx.set_tensor(0, dt, std::move(out));
    return Status::ok();
  }
  if (starts->size() != ends->size())
    return ctx.invalid("starts has " + std::to_string(starts->size()) + " entries, ends " + std::to_string(ends->size()));
  std::vector<int64_t> ax_raw = *axes;
  if (!axes->empty() && axes->size() != starts->size())
    return ctx.invalid("axes has " + std::to_string(axes->size()) + " entries, starts " + std::to_string(starts->size()));
  if (axes->empty())
    for (size_t i = 0; i < starts->size(); ++i) ax_raw.push_back(static_cast<int64_t>(i));
  if (!steps->empty() && steps->size() != starts->size())
    return ctx.invalid("steps has " + std::to_string(steps->size()) + " entries, starts " + std::to_string(starts->size()));
  TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> ax, norm_axes(ctx, ax_raw, r));
  const int64_t big = std::numeric_limits<int32_t>::max();
  std::vector<int64_t> firsts(ax.size(), 0), stepv(ax.size(), 1);
  for (size_t i = 0; i < ax.size(); ++i) {
    const int64_t st = steps->empty() ? 1 : std::max<int64_t>((*steps)[i], -kDimLimit);
    if (st == 0) return ctx.invalid("step is 0");
    stepv[i] = st;
    const int64_t s = (*starts)[i], e = (*ends)[i];
    const Dim& dim = d[ax[i]];
    if (dim.fixed()) {
      out[ax[i]] = fixed_dim(slice_length(dim.value, s, e, st, &firsts[i]));
    } else if (st == 1 && s == 0 && e >= big) {
      out[ax[i]] = dim;  // the whole axis
    } else if (st == -1 && s >= big && e <= -big) {
      out[ax[i]] = dim;  // the whole axis, reversed
    } else {
      out[ax[i]] = unknown_dim();
    }
  }
  if (const Dims* dv = ctx.dim_values(0); dv && r == 1 && out[0].fixed() && !ax.empty()) {
    Dims vals;
    for (int64_t k = 0; k < out[0].value; ++k) {
      int64_t idx = firsts[0] + k * stepv[0];
      if (idx < 0 || idx >= static_cast<int64_t>(dv->size())) break;
      vals.push_back((*dv)[idx]);
    }
    if (static_cast<int64_t>(vals.size()) == out[0].value) ctx.set_dimvals(0, std::move(vals));
  }
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

// ---- Gather family, Scatter, Expand, Tile, Pad ------------------------------------------------

Status gather_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  if (!ctx.ranked(0) || !ctx.ranked(1)) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  const Dims& d = ctx.dims(0);
  TANDEM_ASSIGN_OR_RETURN(int64_t axis, ctx.axis(ctx.node().attr_int("axis", 0), ctx.rank(0)));
  Dims out(d.begin(), d.begin() + axis);
  out.insert(out.end(), ctx.dims(1).begin(), ctx.dims(1).end());
  out.insert(out.end(), d.begin() + axis + 1, d.end());
  auto idx = ctx.ints(1);
  if (idx && d[axis].fixed()) {
    for (int64_t i : *idx)
      if (i < -d[axis].value || i >= d[axis].value)
        return ctx.invalid("index " + std::to_string(i) + " is out of range for axis " + std::to_string(axis) +
                           " of size " + std::to_string(d[axis].value));
  }
  if (const Dims* dv = ctx.dim_values(0); dv && idx && d.size() == 1 && ctx.rank(1) <= 1) {
    Dims vals;
    const int64_t n = static_cast<int64_t>(dv->size());
    for (int64_t i : *idx) {
      int64_t j = i < 0 ? i + n : i;
      if (j < 0 || j >= n) break;
      vals.push_back((*dv)[j]);
    }
    if (vals.size() == idx->size()) ctx.set_dimvals(0, std::move(vals));
  }
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

Status gather_elements_rule(RuleContext& ctx) {
  TypeInfo t = ctx.type(1);
  t.kind = TypeInfo::Kind::tensor;
  t.elem = ctx.dtype(0);
  if (ctx.ranked(0) && ctx.ranked(1) && ctx.rank(0) != ctx.rank(1))
    return ctx.invalid("indices have rank " + std::to_string(ctx.rank(1)) + ", data rank " + std::to_string(ctx.rank(0)));
  ctx.set(0, t);
  return Status::ok();
}

Status gather_nd_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  if (!ctx.ranked(0) || !ctx.ranked(1) || ctx.rank(1) == 0 || !ctx.dims(1).back().fixed()) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  const int64_t b = ctx.node().attr_int("batch_dims", 0);
  const Dims& d = ctx.dims(0);
  const Dims& id = ctx.dims(1);
  const int64_t last = id.back().value;
  if (b < 0 || b > ctx.rank(0)) return ctx.invalid("batch_dims " + std::to_string(b) + " is out of range");
  if (b + last > ctx.rank(0))
    return ctx.invalid("indices last dim " + std::to_string(last) + " + batch_dims " + std::to_string(b) +
                       " exceeds the data rank " + std::to_string(ctx.rank(0)));
  Dims out(id.begin(), id.end() - 1);
  out.insert(out.end(), d.begin() + b + last, d.end());
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

Status expand_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  auto target = shape_operand(ctx, 1);
  if (!target || !ctx.ranked(0)) {
    if (target) ctx.set_tensor(0, dt, Dims(target->size(), unknown_dim()));
    else ctx.set_unranked(0, dt);
    return Status::ok();
  }
  for (const Dim& d : *target)
    if (int64_t neg = 0; literal_negative(d, &neg))
      return ctx.invalid("shape has a negative dimension " + std::to_string(neg));
  TANDEM_ASSIGN_OR_RETURN(Dims out, broadcast(ctx, {&ctx.dims(0), &*target}));
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

Status tile_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  if (!ctx.ranked(0)) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  Dims out = ctx.dims(0);
  auto reps = ctx.ints(1);
  if (!reps) {
    for (Dim& x : out) x = x.value == 0 ? x : unknown_dim();
  } else {
    if (static_cast<int64_t>(reps->size()) != ctx.rank(0))
      return ctx.invalid("repeats has " + std::to_string(reps->size()) + " entries, the input has rank " +
                         std::to_string(ctx.rank(0)));
    for (size_t i = 0; i < out.size(); ++i) {
      if ((*reps)[i] < 0) return ctx.invalid("repeats has a negative entry");
      out[i] = dim_mul(out[i], fixed_dim((*reps)[i]));
    }
  }
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

Status pad_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  if (!ctx.ranked(0)) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  const int64_t r = ctx.rank(0);
  std::optional<std::vector<int64_t>> pads;
  if (ctx.opset() < 11) pads = ctx.node().attr_ints(ctx.node().has_attr("pads") ? "pads" : "paddings");
  else pads = ctx.ints(1);
  std::optional<std::vector<int64_t>> axes = std::vector<int64_t>{};
  if (ctx.opset() >= 18 && ctx.has_input(3)) axes = ctx.ints(3);
  Dims out = ctx.dims(0);
  if (!pads || !axes) {
    for (Dim& x : out) x = unknown_dim();
    if (axes && !axes->empty()) {
      out = ctx.dims(0);
      TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> ax, norm_axes(ctx, *axes, r));
      for (int64_t a : ax) out[a] = unknown_dim();
    }
    ctx.set_tensor(0, dt, std::move(out));
    return Status::ok();
  }
  std::vector<int64_t> ax = *axes;
  if (ax.empty())
    for (int64_t i = 0; i < r; ++i) ax.push_back(i);
  else {
    TANDEM_ASSIGN_OR_RETURN(ax, norm_axes(ctx, ax, r));
  }
  const size_t k = ax.size();
  if (pads->size() != 2 * k)
    return ctx.invalid("pads has " + std::to_string(pads->size()) + " entries, expected " + std::to_string(2 * k));
  for (int64_t p : *pads)
    if (p < -kDimLimit / 2 || p > kDimLimit / 2) return ctx.invalid("pads entry " + std::to_string(p) + " is out of range");
  for (size_t i = 0; i < k; ++i) {
    const int64_t total = (*pads)[i] + (*pads)[i + k];
    Dim& x = out[ax[i]];
    if (x.fixed()) {
      if (x.value + total < 0) return ctx.invalid("pads make axis " + std::to_string(ax[i]) + " negative");
      x = fixed_dim(x.value + total);
    } else if (total != 0) {
      x = unknown_dim();
    }
  }
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

// ---- misc data movement -------------------------------------------------------------------------

Status compress_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  if (!ctx.node().has_attr("axis")) {
    ctx.set_tensor(0, dt, {unknown_dim()});
    return Status::ok();
  }
  if (!ctx.ranked(0)) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  TANDEM_ASSIGN_OR_RETURN(int64_t a, ctx.axis(ctx.node().attr_int("axis", 0), ctx.rank(0)));
  Dims out = ctx.dims(0);
  out[a] = unknown_dim();
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

Status nonzero_rule(RuleContext& ctx) {
  ctx.set_tensor(0, DataType::int64, {ctx.ranked(0) ? fixed_dim(ctx.rank(0)) : unknown_dim(), unknown_dim()});
  return Status::ok();
}

Status unique_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  if (ctx.node().has_attr("axis") && ctx.ranked(0)) {
    TANDEM_ASSIGN_OR_RETURN(int64_t a, ctx.axis(ctx.node().attr_int("axis", 0), ctx.rank(0)));
    Dims y = ctx.dims(0);
    y[a] = unknown_dim();
    ctx.set_tensor(0, dt, std::move(y));
    ctx.set_tensor(2, DataType::int64, {ctx.dims(0)[a]});
  } else {
    ctx.set_tensor(0, dt, {unknown_dim()});
    Dim n = ctx.ranked(0) ? dims_product(ctx.dims(0), 0, ctx.dims(0).size()) : unknown_dim();
    ctx.set_tensor(2, DataType::int64, {ctx.node().has_attr("axis") ? unknown_dim() : n});
  }
  ctx.set_tensor(1, DataType::int64, {unknown_dim()});
  ctx.set_tensor(3, DataType::int64, {unknown_dim()});
  return Status::ok();
}

Status onehot_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(2);
  if (!ctx.ranked(0)) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  const int64_t r = ctx.rank(0) + 1;
  TANDEM_ASSIGN_OR_RETURN(int64_t a, ctx.axis(ctx.node().attr_int("axis", -1), r));
  Dim depth = unknown_dim();
  if (auto v = ctx.floats(1); v && v->size() == 1 && (*v)[0] >= 0 && (*v)[0] < 1e15) depth = fixed_dim(static_cast<int64_t>((*v)[0]));
  Dims out = ctx.dims(0);
  out.insert(out.begin() + a, depth);
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

Status depth_space_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  if (!ctx.ranked(0)) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  if (ctx.rank(0) != 4) return ctx.invalid("input has rank " + std::to_string(ctx.rank(0)) + ", expected 4");
  const int64_t b = ctx.node().attr_int("blocksize", 0);
  if (b <= 0) return ctx.invalid("blocksize must be positive");
  Dims d = ctx.dims(0);
  const bool to_space = ctx.node().op_type == "DepthToSpace";
  const Dim bb = fixed_dim(b * b), bd = fixed_dim(b);
  auto divide = [&](const Dim& x, int64_t by, const char* what) -> Result<Dim> {
    if (!x.fixed()) return unknown_dim();
    if (x.value % by != 0)
      return ctx.invalid(std::string(what) + " " + std::to_string(x.value) + " is not divisible by " + std::to_string(by));
    return fixed_dim(x.value / by);
  };
  if (to_space) {
    TANDEM_ASSIGN_OR_RETURN(d[1], divide(d[1], b * b, "channels"));
    d[2] = dim_mul(d[2], bd);
    d[3] = dim_mul(d[3], bd);
  } else {
    d[1] = dim_mul(d[1], bb);
    TANDEM_ASSIGN_OR_RETURN(d[2], divide(d[2], b, "height"));
    TANDEM_ASSIGN_OR_RETURN(d[3], divide(d[3], b, "width"));
  }
  ctx.set_tensor(0, dt, std::move(d));
  return Status::ok();
}

Status eye_like_rule(RuleContext& ctx) {
  TypeInfo t = ctx.type(0);
  t.kind = TypeInfo::Kind::tensor;
  if (ctx.node().has_attr("dtype")) t.elem = static_cast<DataType>(ctx.node().attr_int("dtype", 1));
  ctx.set(0, t);
  return Status::ok();
}

}  // namespace

void register_movement_rules(RuleTable& t) {
  t.add("", "Reshape", reshape_rule);
  t.add("", "Flatten", flatten_rule);
  t.add("", "Transpose", transpose_rule);
  t.add("", "Squeeze", squeeze_rule);
  t.add("", "Unsqueeze", unsqueeze_rule);
  t.add("", "Concat", concat_rule);
  t.add("", "Split", split_rule);
  t.add("", "Slice", slice_rule);
  t.add("", "Gather", gather_rule);
  t.add("", "GatherElements", gather_elements_rule);
  t.add("", "GatherND", gather_nd_rule);
  t.add("", "Expand", expand_rule);
  t.add("", "Tile", tile_rule);
  t.add("", "Pad", pad_rule);
  t.add("", "Compress", compress_rule);
  t.add("", "NonZero", nonzero_rule);
  t.add("", "Unique", unique_rule);
  t.add("", "OneHot", onehot_rule);
  t.add("", "DepthToSpace", depth_space_rule);
  t.add("", "SpaceToDepth", depth_space_rule);
  t.add("", "EyeLike", eye_like_rule);
}

}  // namespace tandem::shape_detail
