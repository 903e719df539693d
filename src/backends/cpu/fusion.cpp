// fusion.cpp: compile-time rewrites of the cpu backend's steps.
//   1. Patterns: the decomposed HardSwish x * Clip(x + 3, 0, 6) / 6 (also * (1/6)) and
//      x * HardSigmoid(x) with alpha 1/6, beta 0.5 become one HardSwish; x * Sigmoid(x) becomes
//      Swish, x * Tanh(Softplus(x)) Mish; the decomposed exact Gelu
//      x * 0.5 * (1 + Erf(x / sqrt(2))) and its tanh approximation
//      x * 0.5 * (1 + Tanh(sqrt(2 / pi) * (x + 0.044715 * x^3))) become Gelu. The decomposed
//      LayerNorm that exporters (paddle2onnx, PyTorch) emit,
//        d = x - ReduceMean(x); n = d / Sqrt(ReduceMean(Pow(d, 2)) + eps); [n * gamma] [+ beta]
//      (Mul(d, d) also accepted for the square; constant gamma/beta; axes trailing) becomes one
//      LayerNormalization step (normalization.cpp), which reads x once per pass instead of
//      running nine kernels with four temporaries. Each intermediate must have no other reader
//      (d exactly the square and the Div).
//   0. QDQ products: DequantizeLinear -> Conv/MatMul -> QuantizeLinear with constant
//      parameters become QLinearConv/QLinearMatMul (qdq_fusion.cpp); the QuantizeLinear ->
//      DequantizeLinear pairs left become one float step each (Ew::fake_quant_*).
//   2. Chains: a step whose output has exactly one reader (and is not a segment output) is
//      offered that reader (OpSpec::absorb). Conv absorbs BatchNormalization and per-channel
//      affine ops into its weights, then activations and further elementwise ops as post-ops;
//      elementwise programs absorb the next elementwise op. The fused step takes the reader's
//      place in the order, so every operand is ready when it runs.
// A fused step keeps the list of original nodes, which the generic path replays.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "backends/cpu/fusion.h"
#include "backends/cpu/op_family.h"
#include "core/tensor_util.h"

namespace tandem::cpu {

namespace {

bool scalar_value(const FusionContext& f, int v, float* out) {
  const Tensor* t = f.constant(v);
  if (!t || t->numel() != 1) return false;
  if (t->dtype() == DataType::float32) *out = t->data<float>()[0];
  else if (t->dtype() == DataType::float64) *out = static_cast<float>(t->data<double>()[0]);
  else return false;
  return true;
}

bool near(float a, float b) { return std::fabs(a - b) <= 1e-6f * std::max(1.0f, std::fabs(b)); }

// The live step producing `v` with op `op`, whose only reader is `reader` (or any reader when
// reader < 0 and it has exactly one).
int producer_of(CompiledGraph& g, FusionContext& f, int v, const char* op, int reader) {
  if (v < 0) return -1;
  int p = g.values[v].producer;
  if (p < 0 || g.steps[p].dead || g.steps[p].node->op_type != op) return -1;
  if (!canonical_domain(g.steps[p].node->domain).empty()) return -1;
  if (g.steps[p].originals.size() != 1) return -1;
  int r = f.sole_reader(v);
  if (r < 0 || (reader >= 0 && r != reader)) return -1;
  return p;
}

// Clip bounds of a Clip step (attributes before opset 11, constant inputs after).
bool clip_bounds(FusionContext& f, const Step& s, float* lo, float* hi) {
  const Node& n = *s.node;
  if (n.opset < 11) {
    *lo = n.attr_float("min", -3.4e38f);
    *hi = n.attr_float("max", 3.4e38f);
    return true;
  }
  *lo = -3.4e38f;
  *hi = 3.4e38f;
  if (s.inputs.size() > 1 && s.inputs[1] >= 0 && !scalar_value(f, s.inputs[1], lo)) return false;
  if (s.inputs.size() > 2 && s.inputs[2] >= 0 && !scalar_value(f, s.inputs[2], hi)) return false;
  return true;
}

// Replaces step `last` by a one-input activation `op` on `x`, retiring `absorbed` steps.
void rewrite_as(CompiledGraph& g, int last, const std::vector<int>& absorbed, int x, const char* op, Ew code) {
  Step& s = g.steps[last];
  Node n;
  n.name = s.node->name;
  n.index = s.node->index;
  n.op_type = op;
  n.opset = s.node->opset;
  n.inputs = {g.values[x].name};
  n.outputs = s.node->outputs;
  if (code == Ew::gelu_tanh) {  // what a later reader's node_to_ew reads back
    Attribute approximate;
    approximate.type = AttrType::s;
    approximate.s = "tanh";
    n.attrs["approximate"] = std::move(approximate);
  }
  g.synthesized.push_back(std::move(n));
  std::vector<const Node*> originals;
  for (int a : absorbed) {
    for (const Node* o : g.steps[a].originals) originals.push_back(o);
    g.steps[a].dead = true;
  }
  for (const Node* o : s.originals) originals.push_back(o);
  s.node = &g.synthesized.back();
  s.originals = std::move(originals);
  s.inputs = {x};
  EwProgram p;
  p.operands = {x};
  p.ops = {EwOp{Ew::load, 0, 0, 0}, EwOp{code, -1, 0, 0}};
  s.spec = make_program_spec(std::move(p));
}

// Mul(x, Clip(Add(x, 3), 0, 6)) followed by Div(., 6) or Mul(., 1/6), at step `d`.
bool match_hardswish(CompiledGraph& g, FusionContext& f, int d) {
  Step& ds = g.steps[d];
  const std::string& dop = ds.node->op_type;
  if ((dop != "Div" && dop != "Mul") || ds.inputs.size() != 2) return false;
  for (int side = 0; side < 2; ++side) {
    if (dop == "Div" && side == 1) break;
    int mv = ds.inputs[side], cv = ds.inputs[1 - side];
    float c = 0;
    if (!scalar_value(f, cv, &c)) continue;
    if (dop == "Div" ? !near(c, 6.0f) : !near(c, 1.0f / 6.0f)) continue;
    int m = producer_of(g, f, mv, "Mul", d);
    if (m < 0) continue;
    const Step& ms = g.steps[m];
    if (ms.inputs.size() != 2) continue;
    for (int ms_side = 0; ms_side < 2; ++ms_side) {
      int x = ms.inputs[ms_side], clv = ms.inputs[1 - ms_side];
      int cl = producer_of(g, f, clv, "Clip", m);
      if (cl < 0) continue;
      float lo, hi;
      if (!clip_bounds(f, g.steps[cl], &lo, &hi) || !near(lo, 0.0f) || !near(hi, 6.0f)) continue;
      int av = g.steps[cl].inputs[0];
      int a = producer_of(g, f, av, "Add", cl);
      if (a < 0) continue;
      const Step& as = g.steps[a];
      if (as.inputs.size() != 2) continue;
      for (int a_side = 0; a_side < 2; ++a_side) {
        float three = 0;
        if (as.inputs[a_side] == x && scalar_value(f, as.inputs[1 - a_side], &three) && near(three, 3.0f)) {
          rewrite_as(g, d, {a, cl, m}, x, "HardSwish", Ew::hardswish);
          return true;
        }
      }
    }
  }
  return false;
}

// Mul(x, HardSigmoid(x; 1/6, 0.5)) -> HardSwish; Mul(x, Sigmoid(x)) -> Swish;
// Mul(x, Tanh(Softplus(x))) -> Mish (as exporters write it before opset 18).
bool match_gated(CompiledGraph& g, FusionContext& f, int m) {
  Step& ms = g.steps[m];
  if (ms.node->op_type != "Mul" || ms.inputs.size() != 2) return false;
  for (int side = 0; side < 2; ++side) {
    int x = ms.inputs[side], gv = ms.inputs[1 - side];
    if (x < 0) continue;
    int h = producer_of(g, f, gv, "HardSigmoid", m);
    if (h >= 0 && g.steps[h].inputs.size() == 1 && g.steps[h].inputs[0] == x &&
        near(g.steps[h].node->attr_float("alpha", 0.2f), 1.0f / 6.0f) && near(g.steps[h].node->attr_float("beta", 0.5f), 0.5f)) {
      rewrite_as(g, m, {h}, x, "HardSwish", Ew::hardswish);
      return true;
    }
    int s = producer_of(g, f, gv, "Sigmoid", m);
    if (s >= 0 && g.steps[s].inputs.size() == 1 && g.steps[s].inputs[0] == x) {
      rewrite_as(g, m, {s}, x, "Swish", Ew::swish);
      return true;
    }
    const int t = producer_of(g, f, gv, "Tanh", m);
    const int sp = t >= 0 && g.steps[t].inputs.size() == 1 ? producer_of(g, f, g.steps[t].inputs[0], "Softplus", t) : -1;
    if (sp >= 0 && g.steps[sp].inputs.size() == 1 && g.steps[sp].inputs[0] == x) {
      rewrite_as(g, m, {sp, t}, x, "Mish", Ew::mish);
      return true;
    }
  }
  return false;
}

// Add(Erf(x / sqrt(2)), 1) (or x * (1 / sqrt(2)), constants on either side), each step read only
// by the next and the Add only by `reader`: the erf branch of a decomposed exact Gelu of `x`.
// Returns its steps, or an empty list.
std::vector<int> erf_branch(CompiledGraph& g, FusionContext& f, int v, int x, int reader) {
  const int a = producer_of(g, f, v, "Add", reader);
  if (a < 0 || g.steps[a].inputs.size() != 2) return {};
  for (int side = 0; side < 2; ++side) {
    float one = 0;
    if (!scalar_value(f, g.steps[a].inputs[1 - side], &one) || !near(one, 1.0f)) continue;
    const int e = producer_of(g, f, g.steps[a].inputs[side], "Erf", a);
    if (e < 0 || g.steps[e].inputs.size() != 1) continue;
    const int ev = g.steps[e].inputs[0];
    const int d = producer_of(g, f, ev, "Div", e);
    float c = 0;
    if (d >= 0 && g.steps[d].inputs.size() == 2 && g.steps[d].inputs[0] == x &&
        scalar_value(f, g.steps[d].inputs[1], &c) && std::fabs(c - 1.41421356f) < 1e-4f)
      return {d, e, a};
    const int m = producer_of(g, f, ev, "Mul", e);
    if (m < 0 || g.steps[m].inputs.size() != 2) continue;
    for (int ms = 0; ms < 2; ++ms)
      if (g.steps[m].inputs[ms] == x && scalar_value(f, g.steps[m].inputs[1 - ms], &c) &&
          std::fabs(c - 0.70710678f) < 1e-4f)
        return {m, e, a};
  }
  return {};
}

// Scalar constant `c` on one side of binary step `s`: the other input, or -1.
int other_than_constant(FusionContext& f, const Step& s, float c, float tolerance) {
  if (s.inputs.size() != 2) return -1;
  for (int side = 0; side < 2; ++side) {
    float v = 0;
    if (scalar_value(f, s.inputs[1 - side], &v) && std::fabs(v - c) <= tolerance) return s.inputs[side];
  }
  return -1;
}

// x^3 as Pow(x, 3), Mul(Mul(x, x), x) or Mul(x, Mul(x, x)), its last step read only by
// `reader`: the steps, or an empty list.
std::vector<int> cube_of(CompiledGraph& g, FusionContext& f, int v, int x, int reader) {
  const int p = producer_of(g, f, v, "Pow", reader);
  if (p >= 0 && g.steps[p].inputs.size() == 2 && g.steps[p].inputs[0] == x &&
      other_than_constant(f, g.steps[p], 3.0f, 0.0f) == x)
    return {p};
  const int m = producer_of(g, f, v, "Mul", reader);
  if (m < 0 || g.steps[m].inputs.size() != 2) return {};
  for (int side = 0; side < 2; ++side) {
    if (g.steps[m].inputs[side] != x) continue;
    const int sq = producer_of(g, f, g.steps[m].inputs[1 - side], "Mul", m);
    if (sq >= 0 && g.steps[sq].inputs.size() == 2 && g.steps[sq].inputs[0] == x && g.steps[sq].inputs[1] == x)
      return {sq, m};
  }
  return {};
}

// Add(Tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)), 1), constants on either side, each step read
// only by the next and the Add only by `reader`: the tanh branch of Gelu's tanh approximation
// (GPT-2's "gelu_new"). Returns its steps, or an empty list.
std::vector<int> tanh_branch(CompiledGraph& g, FusionContext& f, int v, int x, int reader) {
  const int a = producer_of(g, f, v, "Add", reader);
  if (a < 0) return {};
  const int t = producer_of(g, f, other_than_constant(f, g.steps[a], 1.0f, 1e-6f), "Tanh", a);
  if (t < 0 || g.steps[t].inputs.size() != 1) return {};
  const int s = producer_of(g, f, g.steps[t].inputs[0], "Mul", t);
  if (s < 0) return {};
  const int u = producer_of(g, f, other_than_constant(f, g.steps[s], 0.7978845608f, 1e-4f), "Add", s);
  if (u < 0 || g.steps[u].inputs.size() != 2) return {};
  for (int side = 0; side < 2; ++side) {
    if (g.steps[u].inputs[side] != x) continue;
    const int w = producer_of(g, f, g.steps[u].inputs[1 - side], "Mul", u);
    if (w < 0) continue;
    std::vector<int> steps = cube_of(g, f, other_than_constant(f, g.steps[w], 0.044715f, 1e-6f), x, w);
    if (steps.empty()) continue;
    steps.insert(steps.end(), {w, u, s, t, a});
    return steps;
  }
  return {};
}

using GeluBranch = std::vector<int> (*)(CompiledGraph&, FusionContext&, int, int, int);

// Gelu as PyTorch and Hugging Face exports write it before opset 20, at its last Mul `y`:
// Mul(Mul(x, branch), 0.5) or Mul(Mul(x, 0.5), branch), operands in either order, where the
// branch is Add(Erf(x / sqrt(2)), 1) (exact) or the tanh approximation's. Becomes one Gelu
// step reading x once, which a MatMul or Conv before it then takes as a post-op.
bool match_gelu(CompiledGraph& g, FusionContext& f, int y) {
  const Step& ys = g.steps[y];
  if (ys.node->op_type != "Mul" || ys.inputs.size() != 2) return false;
  static const struct {
    GeluBranch branch;
    Ew code;
  } forms[] = {{erf_branch, Ew::gelu}, {tanh_branch, Ew::gelu_tanh}};
  for (int side = 0; side < 2; ++side) {
    const int p = ys.inputs[side], q = ys.inputs[1 - side];
    const int m = producer_of(g, f, p, "Mul", y);
    if (m < 0 || g.steps[m].inputs.size() != 2) continue;
    float half = 0;
    const bool half_outside = scalar_value(f, q, &half) && near(half, 0.5f);
    for (int ms = 0; ms < 2; ++ms) {
      const int x = g.steps[m].inputs[ms], other = g.steps[m].inputs[1 - ms];
      if (x < 0) continue;
      const bool half_inside = !half_outside && scalar_value(f, other, &half) && near(half, 0.5f);
      if (!half_outside && !half_inside) continue;
      for (const auto& form : forms) {
        // Mul(Mul(x, branch), 0.5), or Mul(Mul(x, 0.5), branch).
        std::vector<int> steps = half_outside ? form.branch(g, f, other, x, m) : form.branch(g, f, q, x, y);
        if (steps.empty()) continue;
        steps.push_back(m);
        std::sort(steps.begin(), steps.end());
        rewrite_as(g, y, steps, x, "Gelu", form.code);
        return true;
      }
    }
  }
  return false;
}

int single_output(const Step& s) {
  int out = -1, count = 0;
  for (int v : s.outputs)
    if (v >= 0) {
      out = v;
      ++count;
    }
  return count == 1 ? out : -1;
}

// --- decomposed LayerNorm ------------------------------------------------------------------

// The sorted axes of a ReduceMean step with keepdims 1: the constant axes input (opset 18) or
// the attribute. False when unknown, empty (all axes) or repeated.
bool mean_axes(FusionContext& f, const Step& s, std::vector<int64_t>* axes) {
  const Node& n = *s.node;
  if (n.attr_int("keepdims", 1) != 1 || s.inputs.empty() || s.inputs[0] < 0) return false;
  if (s.inputs.size() > 1 && s.inputs[1] >= 0) {
    const Tensor* t = f.constant(s.inputs[1]);
    if (!t || (t->dtype() != DataType::int64 && t->dtype() != DataType::int32)) return false;
    *axes = to_int64_vector(*t);
  } else if (n.opset < 18) {
    *axes = n.attr_ints("axes");
  } else {
    return false;
  }
  if (axes->empty()) return false;
  std::sort(axes->begin(), axes->end());
  return std::adjacent_find(axes->begin(), axes->end()) == axes->end();
}

// Rank of value `v` as declared in the segment graph (inputs, value infos, outputs), or -1.
int64_t declared_rank(const CompiledGraph& g, int v) {
  const std::string& name = g.values[v].name;
  for (const auto* list : {&g.graph->inputs, &g.graph->value_infos, &g.graph->outputs})
    for (const ValueInfo& vi : *list)
      if (vi.name == name && vi.type.kind == TypeInfo::Kind::tensor && vi.type.has_shape)
        return static_cast<int64_t>(vi.type.dims.size());
  return -1;
}

// The LayerNormalization axis equivalent to reducing `x` over sorted `axes`: they must be
// contiguous and end at the last dim (-1, or rank - 1 where x's rank is declared).
bool trailing_axis(const CompiledGraph& g, int x, const std::vector<int64_t>& axes, int64_t* axis) {
  for (size_t i = 1; i < axes.size(); ++i)
    if (axes[i] != axes[i - 1] + 1) return false;
  if (axes.back() == -1) {
    *axis = axes.front();
    return true;
  }
  if (axes.front() < 0) return false;
  const int64_t rank = declared_rank(g, x);
  if (rank <= 0 || axes.back() != rank - 1) return false;
  *axis = axes.front() - rank;
  return true;
}

// The sole reader of `v` when it is a live default-domain `op` (one original node, two inputs,
// one output) whose other operand is a float32 constant, stored in `*param`; else -1.
int affine_reader(CompiledGraph& g, FusionContext& f, int v, const char* op, int* param) {
  const int r = f.sole_reader(v);
  if (r < 0) return -1;
  const Step& rs = g.steps[r];
  if (rs.dead || rs.node->op_type != op || !canonical_domain(rs.node->domain).empty()) return -1;
  if (rs.originals.size() != 1 || rs.inputs.size() != 2 || single_output(rs) < 0) return -1;
  const int other = rs.inputs[0] == v ? rs.inputs[1] : rs.inputs[0];
  const Tensor* t = f.constant(other);
  if (other == v || !t || t->dtype() != DataType::float32 || t->numel() == 0) return -1;
  *param = other;
  return r;
}

// Replaces the matched steps (`matched`, ascending; the last one stays) by one
// LayerNormalization step on x with Scale `gamma` (-1: a constant 1) and B `beta` (-1: none).
// The step keeps the original nodes for the generic path. False (nothing changed) when the
// cpu op table cannot build the spec.
bool rewrite_as_layer_norm(CompiledGraph& g, FusionContext& f, const std::vector<int>& matched, int x, int gamma,
                           int beta, int64_t axis, float eps) {
  const OpEntry* e = cpu_ops().find("LayerNormalization");
  if (!e || !e->make) return false;
  Step& last = g.steps[matched.back()];
  Node n;
  n.name = last.node->name;
  n.index = last.node->index;
  n.op_type = "LayerNormalization";
  n.opset = 17;
  n.attrs["axis"].type = AttrType::i;
  n.attrs["axis"].i = axis;
  n.attrs["epsilon"].type = AttrType::f;
  n.attrs["epsilon"].f = eps;
  n.outputs = last.node->outputs;
  const int scale = gamma >= 0 ? gamma : f.add_constant(Tensor::from_vector<float>({1}, {1.0f}));
  std::vector<int> inputs{x, scale};
  if (beta >= 0) inputs.push_back(beta);
  for (int v : inputs) n.inputs.push_back(g.name_of(v));
  if (!e->supports(n).is_ok()) return false;
  g.synthesized.push_back(std::move(n));
  Step probe;
  probe.node = &g.synthesized.back();
  probe.inputs = inputs;
  probe.outputs = last.outputs;
  auto spec = e->make(f, probe);
  if (!spec.is_ok() || !*spec) {
    g.synthesized.pop_back();
    return false;
  }
  std::vector<const Node*> originals;
  std::string ops;
  for (int m : matched) {
    for (const Node* o : g.steps[m].originals) {
      originals.push_back(o);
      ops += (ops.empty() ? "" : " + ") + o->op_type;
    }
    if (m != matched.back()) g.steps[m].dead = true;
  }
  last.node = probe.node;
  last.originals = std::move(originals);
  last.inputs = std::move(inputs);
  last.spec = std::move(spec).value();
  if (verbose()) {
    char params[64];
    std::snprintf(params, sizeof params, "axis %lld, epsilon %g", static_cast<long long>(axis), eps);
    note(last.node->label() + " <- " + ops + " (" + params + (gamma >= 0 ? ", scale" : "") +
         (beta >= 0 ? ", bias" : "") + ")");
  }
  return true;
}

// The decomposed LayerNorm (see the header), matched at its Div step `dv`.
bool match_layer_norm(CompiledGraph& g, FusionContext& f, int dv) {
  const Step& ds = g.steps[dv];
  if (ds.node->op_type != "Div" || ds.inputs.size() != 2 || ds.outputs.size() != 1) return false;
  const int d = ds.inputs[0];
  // s = Sqrt(e), e = Add(v, eps) in either order.
  const int sq = producer_of(g, f, ds.inputs[1], "Sqrt", dv);
  if (sq < 0 || d < 0 || g.steps[sq].inputs.size() != 1) return false;
  const int ad = producer_of(g, f, g.steps[sq].inputs[0], "Add", sq);
  if (ad < 0 || g.steps[ad].inputs.size() != 2) return false;
  int v = -1;
  float eps = 0;
  for (int side = 0; side < 2 && v < 0; ++side)
    if (scalar_value(f, g.steps[ad].inputs[1 - side], &eps)) v = g.steps[ad].inputs[side];
  if (v < 0 || !(eps > 0)) return false;
  // v = ReduceMean(p), p = Pow(d, 2) or Mul(d, d).
  const int rv = producer_of(g, f, v, "ReduceMean", ad);
  std::vector<int64_t> var_axes, mean_ax;
  if (rv < 0 || !mean_axes(f, g.steps[rv], &var_axes)) return false;
  const int pv = g.steps[rv].inputs[0];
  int pw = producer_of(g, f, pv, "Pow", rv);
  float two = 0;
  if (pw >= 0) {
    const Step& ps = g.steps[pw];
    if (ps.inputs.size() != 2 || ps.inputs[0] != d || !scalar_value(f, ps.inputs[1], &two) || two != 2.0f) return false;
  } else {
    pw = producer_of(g, f, pv, "Mul", rv);
    if (pw < 0 || g.steps[pw].inputs.size() != 2 || g.steps[pw].inputs[0] != d || g.steps[pw].inputs[1] != d)
      return false;
  }
  // d = Sub(x, m), read by exactly the square and the Div.
  const CompiledValue& dval = g.values[d];
  if (dval.is_output) return false;
  for (int r : dval.readers)
    if (r != pw && r != dv) return false;
  if (std::count(dval.readers.begin(), dval.readers.end(), dv) != 1) return false;
  const int sb = dval.producer;
  if (sb < 0 || g.steps[sb].dead || g.steps[sb].node->op_type != "Sub" || g.steps[sb].originals.size() != 1 ||
      !canonical_domain(g.steps[sb].node->domain).empty() || g.steps[sb].inputs.size() != 2)
    return false;
  const int x = g.steps[sb].inputs[0];
  // m = ReduceMean(x) over the same axes.
  const int rm = producer_of(g, f, g.steps[sb].inputs[1], "ReduceMean", sb);
  if (x < 0 || rm < 0 || g.steps[rm].inputs[0] != x || !mean_axes(f, g.steps[rm], &mean_ax) || mean_ax != var_axes)
    return false;
  int64_t axis = 0;
  if (!trailing_axis(g, x, var_axes, &axis)) {
    if (verbose()) note(ds.node->label() + " decomposed LayerNorm not rewritten: axes are not known to be trailing");
    return false;
  }
  // Optional Mul(., gamma) and Add(., beta), operands in either order.
  std::vector<int> matched{rm, sb, pw, rv, ad, sq, dv};
  int gamma = -1, beta = -1, out = ds.outputs[0];
  const int ml = affine_reader(g, f, out, "Mul", &gamma);
  if (ml >= 0) {
    matched.push_back(ml);
    out = single_output(g.steps[ml]);
  }
  const int ab = affine_reader(g, f, out, "Add", &beta);
  if (ab >= 0) matched.push_back(ab);
  std::sort(matched.begin(), matched.end());
  return rewrite_as_layer_norm(g, f, matched, x, gamma, beta, axis, eps);
}

}  // namespace

void fuse_steps(CompiledGraph& g) {
  FusionContext f{g};
  g.relink();
  // 0. QDQ products (qdq_fusion.cpp), before Conv absorbs its float readers.
  fuse_qdq_products(g);
  fuse_qdq_round_trips(g);
  // 1. Patterns.
  int layer_norms = 0;
  for (size_t i = 0; i < g.steps.size(); ++i) {
    if (g.steps[i].dead || !g.steps[i].spec) continue;
    if (!canonical_domain(g.steps[i].node->domain).empty()) continue;
    const int at = static_cast<int>(i);
    if (match_hardswish(g, f, at) || match_gated(g, f, at) || match_gelu(g, f, at)) {
      g.relink();
    } else if (match_layer_norm(g, f, at)) {
      ++layer_norms;
      g.relink();
    }
  }
  if (layer_norms > 0 && verbose())
    note("fusion: " + std::to_string(layer_norms) + " decomposed LayerNorm pattern(s) -> LayerNormalization");
  // 2. Chains: quantized products first, so that their float tails (a Cast and the scale
  // product of dynamic quantization, DequantizeLinear -> activation -> QuantizeLinear) go into
  // the integer primitive rather than into an elementwise step that reads a small operand of
  // theirs (the x_scale * w_scale product).
  auto quantized_product = [&](size_t i) {
    const std::string& op = g.steps[i].node ? g.steps[i].node->op_type : std::string();
    return op == "QLinearConv" || op == "ConvInteger" || op == "QLinearMatMul" || op == "MatMulInteger";
  };
  std::vector<size_t> order;
  for (size_t i = 0; i < g.steps.size(); ++i)
    if (!g.steps[i].dead && quantized_product(i)) order.push_back(i);
  for (size_t i = 0; i < g.steps.size(); ++i) order.push_back(i);
  for (size_t i : order) {
    int cur = static_cast<int>(i);
    while (true) {
      Step& s = g.steps[cur];
      if (s.dead || !s.spec) break;
      int out = single_output(s);
      int r = f.sole_reader(out);
      if (r < 0 || r == cur) break;
      Step& reader = g.steps[r];
      if (reader.dead || !reader.spec) break;
      // Another domain's node only as the head of an elementwise program step, whose program
      // says what it computes: a com.microsoft QuantizeLinear -> DequantizeLinear round trip.
      if (!canonical_domain(reader.node->domain).empty() && !reader.spec->program()) break;
      // A reader with several outputs is offered only when it is DynamicQuantizeLinear: the step
      // that absorbs it computes its data, scale and zero point, and the merged step has all three.
      if (single_output(reader) < 0 && reader.node->op_type != "DynamicQuantizeLinear") break;
      int acc = -1;
      for (size_t k = 0; k < reader.inputs.size(); ++k)
        if (reader.inputs[k] == out) acc = static_cast<int>(k);
      if (acc < 0) break;
      if (!s.spec->absorb(f, s, reader, acc)) {
        if (verbose()) note(s.node->label() + " does not absorb " + reader.node->label());
        break;
      }
      // The fused step replaces the reader (keeping the reader's place in the order).
      Step merged = std::move(s);
      for (const Node* o : reader.originals) merged.originals.push_back(o);
      for (size_t k = 0; k < reader.inputs.size(); ++k)
        if (static_cast<int>(k) != acc) merged.inputs.push_back(reader.inputs[k]);
      merged.outputs = reader.outputs;
      g.steps[r] = std::move(merged);
      g.steps[cur] = Step{};
      g.steps[cur].dead = true;
      g.relink();
      cur = r;
    }
  }
  // 3. Producers absorbed by their only reader (a DequantizeLinear or a nearest Resize by the
  // elementwise program that then reads its bytes or its source).
  for (size_t i = 0; i < g.steps.size(); ++i) {
    for (size_t k = 0; k < g.steps[i].inputs.size(); ++k) {
      Step& s = g.steps[i];
      const int v = s.inputs[k];
      if (s.dead || !s.spec || v < 0) break;
      const CompiledValue& cv = g.values[v];
      const int p = cv.producer;
      if (p < 0 || p == static_cast<int>(i) || g.steps[p].dead || cv.is_output) continue;
      if (std::any_of(cv.readers.begin(), cv.readers.end(), [&](int r) { return r != static_cast<int>(i); })) continue;
      Step& producer = g.steps[p];
      if (!s.spec->absorb_producer(f, s, producer, v)) continue;
      std::vector<int> inputs;
      for (int x : s.inputs)
        if (x != v) inputs.push_back(x);
      inputs.insert(inputs.end(), producer.inputs.begin(), producer.inputs.end());
      s.inputs = std::move(inputs);
      s.originals.insert(s.originals.begin(), producer.originals.begin(), producer.originals.end());
      producer = Step{};
      producer.dead = true;
      g.relink();
      k = static_cast<size_t>(-1);  // the inputs changed: scan them again
    }
  }
}

}  // namespace tandem::cpu
