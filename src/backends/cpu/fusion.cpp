// fusion.cpp: compile-time rewrites of the cpu backend's steps.
//   1. Patterns: the decomposed HardSwish x * Clip(x + 3, 0, 6) / 6 (also * (1/6)) and
//      x * HardSigmoid(x) with alpha 1/6, beta 0.5 become one HardSwish; x * Sigmoid(x) becomes
//      Swish. Each intermediate must have no other reader.
//   2. Chains: a step whose output has exactly one reader (and is not a segment output) is
//      offered that reader (OpSpec::absorb). Conv absorbs BatchNormalization and per-channel
//      affine ops into its weights, then activations and further elementwise ops as post-ops;
//      elementwise programs absorb the next elementwise op. The fused step takes the reader's
//      place in the order, so every operand is ready when it runs.
// A fused step keeps the list of original nodes, which the generic path replays.
#include <cmath>

#include "backends/cpu/cpu_ops.h"

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

// Mul(x, HardSigmoid(x; 1/6, 0.5)) -> HardSwish; Mul(x, Sigmoid(x)) -> Swish.
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

}  // namespace

void fuse_steps(CompiledGraph& g) {
  FusionContext f{g};
  g.relink();
  // 1. Patterns.
  for (size_t i = 0; i < g.steps.size(); ++i) {
    if (g.steps[i].dead || !g.steps[i].spec) continue;
    if (!canonical_domain(g.steps[i].node->domain).empty()) continue;
    if (match_hardswish(g, f, static_cast<int>(i)) || match_gated(g, f, static_cast<int>(i))) g.relink();
  }
  // 2. Chains.
  for (size_t i = 0; i < g.steps.size(); ++i) {
    int cur = static_cast<int>(i);
    while (true) {
      Step& s = g.steps[cur];
      if (s.dead || !s.spec) break;
      int out = single_output(s);
      int r = f.sole_reader(out);
      if (r < 0 || r == cur) break;
      Step& reader = g.steps[r];
      if (reader.dead || !reader.spec || single_output(reader) < 0) break;
      if (!canonical_domain(reader.node->domain).empty()) break;
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
}

}  // namespace tandem::cpu
