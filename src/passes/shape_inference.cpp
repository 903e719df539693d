// shape_inference.cpp: the driver of shape inference (topological walk, scopes for nested
// graphs, constant folding with the reference kernels, declared-type merging) and the rules of
// the control-flow ops, which need it to infer their subgraphs.
#include "passes/shape_inference.h"

#include <algorithm>
#include <functional>
#include <set>

#include "kernels/registry.h"
#include "core/tensor_util.h"
#include "passes/shape_rules.h"

namespace tandem {

using namespace shape_detail;

bool fully_known(const TypeInfo& t, Shape* shape) {
  if (t.kind != TypeInfo::Kind::tensor || !t.has_shape || !all_fixed(t.dims)) return false;
  if (shape) *shape = to_shape(t.dims);
  return true;
}

namespace {

// Traced values are kept for integer tensors of rank <= 1 with at most this many elements.
constexpr int64_t kMaxDimValues = 64;
// Nested graphs deeper than this are refused rather than recursed into.
constexpr int kMaxDepth = 64;

// Ops never folded: their results change per run, or they need a subgraph runner.
bool never_fold(const Node& n) {
  static const std::set<std::string> ops = {"RandomUniform", "RandomNormal", "RandomUniformLike", "RandomNormalLike",
                                            "Bernoulli",     "Multinomial",  "If",                "Loop",
                                            "Scan",          "SequenceMap"};
  return canonical_domain(n.domain).empty() && ops.count(n.op_type) > 0;
}

int64_t value_elements(const Value& v) {
  if (v.is_tensor()) return v.tensor.numel();
  int64_t n = 0;
  for (const Tensor& t : v.sequence) n += t.numel();
  return n;
}

std::optional<Dims> dimvals_of(const Value& v) {
  if (!v.is_tensor()) return std::nullopt;
  const Tensor& t = v.tensor;
  if (!is_integer_type(t.dtype()) || t.rank() > 1 || t.numel() > kMaxDimValues) return std::nullopt;
  Dims d;
  for (int64_t x : to_int64_vector(t)) d.push_back(int_dim(x));
  return d;
}

bool same_type(const TypeInfo& a, const TypeInfo& b) { return a.kind == b.kind && a.to_string() == b.to_string(); }

// The exact type of a known output, keeping the optional wrapper the rule gave it.
TypeInfo exact_type(const TypeInfo& rule_type, const Value& v) {
  if (v.is_none()) return rule_type;
  if (rule_type.kind == TypeInfo::Kind::optional) {
    TypeInfo t = rule_type;
    t.inner = std::make_shared<TypeInfo>(type_of_value(v));
    return t;
  }
  if (v.is_sequence() && v.sequence.empty() && rule_type.kind == TypeInfo::Kind::sequence) return rule_type;
  return type_of_value(v);
}

// Values visible while inferring one graph; names not found resolve in the enclosing graph.
struct Scope {
  const Scope* parent = nullptr;
  std::map<std::string, TypeInfo> types;
  std::map<std::string, Value> values;
  std::map<std::string, Dims> dimvals;

  // The scope that defines `name` (its type), searching outwards; a nested graph's own names
  // shadow the enclosing ones.
  const Scope* owner(const std::string& name) const {
    for (const Scope* s = this; s; s = s->parent)
      if (s->types.count(name)) return s;
    return nullptr;
  }
  const TypeInfo* type(const std::string& n) const {
    const Scope* s = owner(n);
    return s ? &s->types.at(n) : nullptr;
  }
  const Value* value(const std::string& n) const {
    const Scope* s = owner(n);
    if (!s) return nullptr;
    auto it = s->values.find(n);
    return it == s->values.end() ? nullptr : &it->second;
  }
  const Dims* dimval(const std::string& n) const {
    const Scope* s = owner(n);
    if (!s) return nullptr;
    auto it = s->dimvals.find(n);
    return it == s->dimvals.end() ? nullptr : &it->second;
  }

  void set_value(const std::string& name, const Value& v) {
    values[name] = v;
    if (auto d = dimvals_of(v)) dimvals[name] = std::move(*d);
  }
};

class Inference final : public SubgraphInference {
 public:
  Inference(const ShapeInferenceOptions& opt, std::vector<std::string>* warnings, std::map<std::string, int64_t> bindings)
      : opt_(opt), warnings_(warnings), bindings_(std::move(bindings)) {}

  Status run_graph(const Graph& g, Scope& scope) {
    TANDEM_ASSIGN_OR_RETURN(std::vector<int> order, topological_order(g));
    std::map<std::string, const TypeInfo*> declared;
    if (opt_.use_declared_types) {
      for (const ValueInfo& vi : g.value_infos) declared[vi.name] = &vi.type;
      for (const ValueInfo& vi : g.outputs) declared[vi.name] = &vi.type;
    }
    Scope* saved = current_;
    current_ = &scope;
    for (int i : order) {
      Status st = run_node(g.nodes[i], scope, declared);
      if (!st.is_ok()) {
        current_ = saved;
        return st;
      }
    }
    current_ = saved;
    return Status::ok();
  }

  Result<std::vector<TypeInfo>> infer(const Graph& g, const std::vector<TypeInfo>& inputs,
                                      std::vector<std::optional<Value>>* known) override {
    if (depth_ >= kMaxDepth) return invalid_model("graph '" + g.name + "': subgraphs are nested too deeply");
    Scope s;
    s.parent = current_;
    for (const auto& [name, t] : g.initializers) {
      s.set_value(name, Value::of(t));
      s.types[name] = type_of_value(Value::of(t));
    }
    for (size_t i = 0; i < g.inputs.size(); ++i) {
      const ValueInfo& vi = g.inputs[i];
      TypeInfo t = i < inputs.size() ? inputs[i] : TypeInfo{};
      s.types[vi.name] = refine(t, vi.type, "", /*warn=*/false);
      s.values.erase(vi.name);
      s.dimvals.erase(vi.name);
    }
    ++depth_;
    Status st = run_graph(g, s);
    --depth_;
    if (!st.is_ok()) return st;
    std::vector<TypeInfo> out;
    if (known) known->assign(g.outputs.size(), std::nullopt);
    for (size_t i = 0; i < g.outputs.size(); ++i) {
      const TypeInfo* t = s.type(g.outputs[i].name);
      if (!t) return invalid_model("graph '" + g.name + "' output '" + g.outputs[i].name + "' is not defined");
      out.push_back(refine(*t, g.outputs[i].type, g.outputs[i].name, opt_.use_declared_types));
      if (known)
        if (const Value* v = s.value(g.outputs[i].name)) (*known)[i] = *v;
    }
    return out;
  }

  // `inferred` with the gaps filled from `declared` (symbols bound by input_shapes applied).
  TypeInfo refine(TypeInfo inf, const TypeInfo& decl, const std::string& name, bool use) {
    if (decl.kind == TypeInfo::Kind::unknown) return inf;
    const bool inf_blank = inf.kind == TypeInfo::Kind::unknown ||
                           (inf.kind == TypeInfo::Kind::tensor && inf.elem == DataType::undefined && !inf.has_shape);
    if (inf_blank) return bind(decl);
    if (inf.kind != decl.kind) {
      if (use) warn("value '" + name + "' is declared " + decl.to_string() + " but inferred " + inf.to_string());
      return inf;
    }
    if (inf.kind != TypeInfo::Kind::tensor) {
      if (decl.inner && inf.inner) inf.inner = std::make_shared<TypeInfo>(refine(*inf.inner, *decl.inner, name, use));
      else if (!inf.inner && decl.inner) inf.inner = std::make_shared<TypeInfo>(bind(*decl.inner));
      return inf;
    }
    if (inf.elem == DataType::undefined) inf.elem = decl.elem;
    else if (use && decl.elem != DataType::undefined && decl.elem != inf.elem)
      warn("value '" + name + "' is declared " + decl.to_string() + " but inferred " + inf.to_string());
    if (!decl.has_shape) return inf;
    const TypeInfo b = bind(decl);
    if (!inf.has_shape) {
      inf.has_shape = true;
      inf.dims = b.dims;
      return inf;
    }
    if (inf.dims.size() != b.dims.size()) {
      if (use) warn("value '" + name + "' is declared " + decl.to_string() + " but inferred " + inf.to_string());
      return inf;
    }
    bool conflict = false;
    for (size_t i = 0; i < inf.dims.size(); ++i) {
      const Dim& d = b.dims[i];
      if (inf.dims[i].fixed()) conflict |= d.fixed() && d.value != inf.dims[i].value;
      else if (d.fixed() || (inf.dims[i].symbol.empty() && !d.symbol.empty())) inf.dims[i] = d;
    }
    if (conflict && use) warn("value '" + name + "' is declared " + decl.to_string() + " but inferred " + inf.to_string());
    return inf;
  }

  // `t` with the symbols fixed by input_shapes replaced by their values.
  TypeInfo bind(TypeInfo t) const {
    for (Dim& d : t.dims)
      if (!d.fixed() && !d.symbol.empty())
        if (auto it = bindings_.find(d.symbol); it != bindings_.end()) d = fixed_dim(it->second);
    if (t.inner) t.inner = std::make_shared<TypeInfo>(bind(*t.inner));
    return t;
  }

  void warn(std::string w) {
    if (warnings_->size() < 1000) warnings_->push_back(std::move(w));
  }

 private:
  Status run_node(const Node& n, Scope& scope, const std::map<std::string, const TypeInfo*>& declared) {
    const size_t ni = n.inputs.size();
    std::vector<const TypeInfo*> types(ni, nullptr);
    std::vector<const Value*> values(ni, nullptr);
    std::vector<const Dims*> dvs(ni, nullptr);
    for (size_t i = 0; i < ni; ++i) {
      const std::string& name = n.inputs[i];
      if (name.empty()) continue;
      types[i] = scope.type(name);
      if (!types[i]) return invalid_model(n.label() + " input '" + name + "' is not defined");
      values[i] = scope.value(name);
      dvs[i] = scope.dimval(name);
    }
    RuleContext ctx(n, types, values, dvs, this);
    if (RuleFn rule = shape_rules().find(canonical_domain(n.domain), n.op_type)) TANDEM_RETURN_IF_ERROR(rule(ctx));
    fold(n, ctx, values);
    for (size_t i = 0; i < n.outputs.size(); ++i) {
      const std::string& name = n.outputs[i];
      if (name.empty()) continue;
      TypeInfo t = ctx.out_types[i];
      if (t.kind == TypeInfo::Kind::unknown) t = unranked_type(DataType::undefined);
      scope.values.erase(name);
      scope.dimvals.erase(name);
      if (ctx.out_values[i]) {
        t = exact_type(t, *ctx.out_values[i]);
        scope.set_value(name, *ctx.out_values[i]);
      }
      if (!scope.dimvals.count(name) && ctx.out_dimvals[i] && t.kind == TypeInfo::Kind::tensor &&
          static_cast<int64_t>(ctx.out_dimvals[i]->size()) <= kMaxDimValues)
        scope.dimvals[name] = *ctx.out_dimvals[i];
      if (auto it = declared.find(name); it != declared.end()) t = refine(std::move(t), *it->second, name, true);
      scope.types[name] = std::move(t);
    }
    return Status::ok();
  }

  // Evaluates `n` with its reference kernel when every input is known and small.
  void fold(const Node& n, RuleContext& ctx, const std::vector<const Value*>& values) {
    const bool all_given = std::all_of(ctx.out_values.begin(), ctx.out_values.end(), [](const auto& v) { return v.has_value(); });
    if (all_given || never_fold(n)) return;
    if (n.op_type == "Constant" && canonical_domain(n.domain).empty()) {
      if (const Attribute* a = n.attr("value"); a && a->t.defined()) {
        ctx.set_value(0, Value::of(a->t));  // shares the attribute's buffer
        return;
      }
    }
    if (opt_.max_fold_elements <= 0 && n.op_type != "Constant") return;
    int64_t total = 0;
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      if (n.inputs[i].empty()) continue;
      if (!values[i]) return;
      total += value_elements(*values[i]);
    }
    if (total > opt_.max_fold_elements) return;
    for (const TypeInfo& t : ctx.out_types) {
      if (t.kind != TypeInfo::Kind::tensor || !t.has_shape || !all_fixed(t.dims)) continue;
      int64_t count = 1;  // overflow-safe: fixed dims may be absurd in a malformed model
      bool zero = false, big = false;
      for (const Dim& d : t.dims) {
        if (d.value == 0) zero = true;
        else if (!big && d.value > opt_.max_fold_elements / count) big = true;
        else if (!big) count *= d.value;
      }
      if (big && !zero) return;
    }
    // Dropout in training mode is random.
    if (n.op_type == "Dropout" && n.inputs.size() > 2 && values[2] && values[2]->is_tensor()) {
      auto v = to_double_vector(values[2]->tensor);
      if (!v.empty() && v[0] != 0) return;
    }
    KernelFn fn = reference_kernels().find(canonical_domain(n.domain), n.op_type);
    if (!fn) return;
    std::vector<Value> outs(n.outputs.size());
    KernelContext kc(n, values, &outs, nullptr);
    Status st = fn(kc);
    if (!st.is_ok()) {
      warn(n.label() + " was not folded: " + st.message());
      return;
    }
    for (size_t i = 0; i < outs.size(); ++i) {
      if (!kc.has_output(i) || ctx.out_values[i]) continue;
      if (outs[i].is_none() && ctx.out_types[i].kind != TypeInfo::Kind::optional) continue;
      // A rule that claims exact dims must agree with the kernel: a cheap self-check.
      Shape rule_shape;
      if (outs[i].is_tensor() && fully_known(ctx.out_types[i], &rule_shape) && rule_shape != outs[i].tensor.shape())
        warn(n.label() + " output '" + n.outputs[i] + "': the shape rule gives " + ctx.out_types[i].to_string() +
             " but the kernel gives " + shape_to_string(outs[i].tensor.shape()));
      if (value_elements(outs[i]) > opt_.max_fold_elements) {
        ctx.out_types[i] = exact_type(ctx.out_types[i], outs[i]);  // exact type, value not kept
        continue;
      }
      ctx.set_value(i, std::move(outs[i]));
    }
  }

  const ShapeInferenceOptions& opt_;
  std::vector<std::string>* warnings_;
  std::map<std::string, int64_t> bindings_;
  Scope* current_ = nullptr;
  int depth_ = 0;
};

// ---- control-flow rules ------------------------------------------------------------------------

const Graph* graph_attr(const RuleContext& ctx, const char* name) {
  const Attribute* a = ctx.node().attr(name);
  return a && a->g ? a->g.get() : nullptr;
}

Status check_output_count(const RuleContext& ctx, const char* what, size_t have, size_t need) {
  if (have < need)
    return ctx.invalid(std::string(what) + " has " + std::to_string(have) + " outputs, the node needs " + std::to_string(need));
  return Status::ok();
}

// An error from inside a subgraph, prefixed with the node and attribute that hold it:
// "[Loop 'l'] body: [MatMul 'fc'] inner dimensions differ: 64 vs 32".
Status nested_error(const RuleContext& ctx, const char* attr, const Status& st) {
  return st.with_prefix(ctx.node().label() + " " + attr + ": ");
}

Status if_rule(RuleContext& ctx) {
  const Graph* then_g = graph_attr(ctx, "then_branch");
  const Graph* else_g = graph_attr(ctx, "else_branch");
  if (!then_g || !else_g) return ctx.invalid("missing then_branch or else_branch");
  SubgraphInference* sub = ctx.subgraphs();
  if (const Tensor* c = ctx.value(0); c && c->numel() == 1 && c->dtype() != DataType::string) {
    // A known condition: only the taken branch matters, and its known values pass through.
    const bool then_taken = to_double_vector(*c)[0] != 0;
    const char* name = then_taken ? "then_branch" : "else_branch";
    std::vector<std::optional<Value>> known;
    auto t = sub->infer(then_taken ? *then_g : *else_g, {}, &known);
    if (!t.is_ok()) return nested_error(ctx, name, t.status());
    TANDEM_RETURN_IF_ERROR(check_output_count(ctx, name, t->size(), ctx.num_outputs()));
    for (size_t i = 0; i < ctx.num_outputs(); ++i) {
      ctx.set(i, (*t)[i]);
      if (known[i]) ctx.set_value(i, *known[i]);
    }
    return Status::ok();
  }
  // Either branch may run. One that cannot run with these inputs is not a certain error (the
  // condition may never select it); both failing is.
  auto a = sub->infer(*then_g, {}, nullptr);
  auto b = sub->infer(*else_g, {}, nullptr);
  if (!a.is_ok() && !b.is_ok()) return nested_error(ctx, "then_branch", a.status());
  if (a.is_ok()) TANDEM_RETURN_IF_ERROR(check_output_count(ctx, "then_branch", a->size(), ctx.num_outputs()));
  if (b.is_ok()) TANDEM_RETURN_IF_ERROR(check_output_count(ctx, "else_branch", b->size(), ctx.num_outputs()));
  for (size_t i = 0; i < ctx.num_outputs(); ++i) {
    if (a.is_ok() && b.is_ok()) ctx.set(i, join_types((*a)[i], (*b)[i]));
    else ctx.set(i, a.is_ok() ? (*a)[i] : (*b)[i]);
  }
  return Status::ok();
}

// Infers a loop body until the loop-carried types settle: each round joins the types going in
// with the types coming out. `make_inputs` builds the body inputs from the carried types;
// `carried_out` is the index of the first carried output of the body.
Result<std::vector<TypeInfo>> settle_loop(SubgraphInference* sub, const Graph& body, std::vector<TypeInfo>& carried,
                                          const std::function<std::vector<TypeInfo>(const std::vector<TypeInfo>&)>& make_inputs,
                                          size_t carried_out) {
  std::vector<TypeInfo> outs;
  for (int round = 0; round < 4; ++round) {
    TANDEM_ASSIGN_OR_RETURN(outs, sub->infer(body, make_inputs(carried), nullptr));
    bool stable = true;
    for (size_t i = 0; i < carried.size() && carried_out + i < outs.size(); ++i) {
      TypeInfo j = join_types(carried[i], outs[carried_out + i]);
      if (!same_type(j, carried[i])) stable = false;
      carried[i] = std::move(j);
    }
    if (stable) break;
  }
  return outs;
}

TypeInfo with_leading(const TypeInfo& t, Dim d, int64_t axis = 0) {
  if (t.kind != TypeInfo::Kind::tensor || !t.has_shape) return unranked_type(t.elem);
  TypeInfo r = t;
  const int64_t rank = static_cast<int64_t>(t.dims.size()) + 1;
  if (axis < 0) axis += rank;
  if (axis < 0 || axis >= rank) return unranked_type(t.elem);
  r.dims.insert(r.dims.begin() + axis, d);
  return r;
}

TypeInfo without_axis(const TypeInfo& t, int64_t axis) {
  if (t.kind != TypeInfo::Kind::tensor || !t.has_shape) return unranked_type(t.elem);
  const int64_t rank = static_cast<int64_t>(t.dims.size());
  if (axis < 0) axis += rank;
  if (axis < 0 || axis >= rank) return unranked_type(t.elem);
  TypeInfo r = t;
  r.dims.erase(r.dims.begin() + axis);
  return r;
}

Status loop_rule(RuleContext& ctx) {
  const Graph* body = graph_attr(ctx, "body");
  if (!body) return ctx.invalid("missing attribute 'body'");
  const size_t n = ctx.num_inputs() >= 2 ? ctx.num_inputs() - 2 : 0;
  if (body->outputs.size() < 1 + n)
    return ctx.invalid("body has " + std::to_string(body->outputs.size()) + " outputs, expected at least " + std::to_string(1 + n));
  std::vector<TypeInfo> carried;
  for (size_t i = 0; i < n; ++i) carried.push_back(ctx.type(2 + i));
  auto make = [&](const std::vector<TypeInfo>& c) {
    std::vector<TypeInfo> in = {tensor_type(DataType::int64, {}), tensor_type(DataType::boolean, {})};
    in.insert(in.end(), c.begin(), c.end());
    return in;
  };
  auto settled = settle_loop(ctx.subgraphs(), *body, carried, make, 1);
  if (!settled.is_ok()) return nested_error(ctx, "body", settled.status());
  const std::vector<TypeInfo>& outs = *settled;
  // The trip count is M when nothing can stop the loop early: no cond input and a body that
  // passes its cond input straight through.
  Dim trips = unknown_dim();
  auto m = ctx.ints(0);
  const bool passthrough = body->inputs.size() >= 2 && body->outputs[0].name == body->inputs[1].name;
  if (m && m->size() == 1 && passthrough) {
    std::optional<double> cond;
    if (auto c = ctx.floats(1); c && c->size() == 1) cond = (*c)[0];
    if (!ctx.has_input(1) || (cond && *cond != 0)) trips = fixed_dim(std::max<int64_t>(0, (*m)[0]));
    else if (cond) trips = fixed_dim(0);
  }
  for (size_t i = 0; i < ctx.num_outputs(); ++i) {
    if (i < n) ctx.set(i, carried[i]);
    else if (1 + i < outs.size()) ctx.set(i, with_leading(outs[1 + i], trips));
  }
  return Status::ok();
}

Status scan_rule(RuleContext& ctx) {
  const Graph* body = graph_attr(ctx, "body");
  if (!body) return ctx.invalid("missing attribute 'body'");
  const int64_t m = ctx.node().attr_int("num_scan_inputs", 0);
  const bool v8 = ctx.opset() < 9;
  const size_t first = v8 ? 1 : 0;  // opset 8 starts with sequence_lens
  if (m < 1 || static_cast<size_t>(m) + first > ctx.num_inputs())
    return ctx.invalid("num_scan_inputs " + std::to_string(m) + " does not fit " + std::to_string(ctx.num_inputs()) + " inputs");
  const size_t n = ctx.num_inputs() - first - static_cast<size_t>(m);
  std::vector<int64_t> in_axes = ctx.node().attr_ints("scan_input_axes", std::vector<int64_t>(m, 0));
  if (static_cast<int64_t>(in_axes.size()) != m) return ctx.invalid("scan_input_axes has the wrong length");
  Dim batch = unknown_dim(), seq = unknown_dim();
  std::vector<TypeInfo> carried, slices;
  for (size_t i = 0; i < n; ++i) {
    TypeInfo t = ctx.type(first + i);
    if (v8) {
      if (t.has_shape && !t.dims.empty()) batch = t.dims[0];
      t = without_axis(t, 0);
    }
    carried.push_back(t);
  }
  for (int64_t j = 0; j < m; ++j) {
    TypeInfo t = ctx.type(first + n + j);
    int64_t axis = v8 ? 1 : in_axes[j];
    if (t.has_shape) {
      const int64_t r = static_cast<int64_t>(t.dims.size());
      TANDEM_ASSIGN_OR_RETURN(axis, ctx.axis(axis, r, "scan input axis"));
      Dim u;
      if (!unify_dim(j == 0 ? t.dims[axis] : seq, t.dims[axis], &u))
        return ctx.invalid("scan inputs have different sequence lengths");
      seq = u;
      if (v8) batch = t.dims[0];
    }
    TypeInfo s = without_axis(t, axis);
    if (v8) s = without_axis(s, 0);
    slices.push_back(s);
  }
  auto make = [&](const std::vector<TypeInfo>& c) {
    std::vector<TypeInfo> in = c;
    in.insert(in.end(), slices.begin(), slices.end());
    return in;
  };
  auto settled = settle_loop(ctx.subgraphs(), *body, carried, make, 0);
  if (!settled.is_ok()) return nested_error(ctx, "body", settled.status());
  const std::vector<TypeInfo>& outs = *settled;
  const size_t k = outs.size() > n ? outs.size() - n : 0;
  std::vector<int64_t> out_axes = ctx.node().attr_ints("scan_output_axes", std::vector<int64_t>(k, 0));
  for (size_t i = 0; i < ctx.num_outputs(); ++i) {
    if (i < n) {
      ctx.set(i, v8 ? with_leading(carried[i], batch) : carried[i]);
    } else if (i < outs.size()) {
      const size_t j = i - n;
      if (v8) ctx.set(i, with_leading(with_leading(outs[i], seq), batch));
      else ctx.set(i, with_leading(outs[i], seq, j < out_axes.size() ? out_axes[j] : 0));
    }
  }
  return Status::ok();
}

Status sequence_map_rule(RuleContext& ctx) {
  const Graph* body = graph_attr(ctx, "body");
  if (!body) return ctx.invalid("missing attribute 'body'");
  std::vector<TypeInfo> in;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    const TypeInfo& t = ctx.type(i);
    in.push_back(t.kind == TypeInfo::Kind::sequence ? (t.inner ? *t.inner : TypeInfo{}) : t);
  }
  auto inferred = ctx.subgraphs()->infer(*body, in, nullptr);
  if (!inferred.is_ok()) return nested_error(ctx, "body", inferred.status());
  const std::vector<TypeInfo>& outs = *inferred;
  for (size_t i = 0; i < ctx.num_outputs() && i < outs.size(); ++i) {
    TypeInfo s;
    s.kind = TypeInfo::Kind::sequence;
    s.inner = std::make_shared<TypeInfo>(outs[i]);
    ctx.set(i, s);
  }
  return Status::ok();
}

std::string type_str(const TypeInfo& t) { return t.to_string(); }

}  // namespace

namespace shape_detail {
void register_control_rules(RuleTable& t) {
  t.add("", "If", if_rule);
  t.add("", "Loop", loop_rule);
  t.add("", "Scan", scan_rule);
  t.add("", "SequenceMap", sequence_map_rule);
}
}  // namespace shape_detail

Result<ShapeInferenceResult> infer_shapes(const Graph& graph, const std::map<std::string, Shape>& input_shapes,
                                          const ShapeInferenceOptions& options) {
  std::map<std::string, const ValueInfo*> inputs;
  for (const ValueInfo& vi : graph.inputs) inputs[vi.name] = &vi;
  // The shapes the caller fixes: input_values first, then input_shapes.
  std::map<std::string, Shape> given = input_shapes;
  for (const auto& [name, t] : options.input_values) given[name] = t.shape();
  ShapeInferenceResult result;
  std::map<std::string, int64_t> bindings;
  std::set<std::string> conflicting;
  for (const auto& [name, shape] : given) {
    auto it = inputs.find(name);
    if (it == inputs.end()) return invalid_argument("'" + name + "' is not an input of graph '" + graph.name + "'");
    const TypeInfo& decl = it->second->type;
    if (decl.kind != TypeInfo::Kind::tensor && decl.kind != TypeInfo::Kind::unknown)
      return invalid_argument("input '" + name + "' is declared " + type_str(decl) + ", not a tensor");
    if (!decl.has_shape) continue;
    bool differs = decl.dims.size() != shape.size();
    for (size_t i = 0; i < shape.size() && !differs; ++i) {
      const Dim& d = decl.dims[i];
      if (shape[i] < 0) continue;
      if (d.fixed() && d.value != shape[i]) differs = true;
      if (!d.fixed() && !d.symbol.empty()) {
        auto [b, fresh] = bindings.emplace(d.symbol, shape[i]);
        if (!fresh && b->second != shape[i]) conflicting.insert(d.symbol);
      }
    }
    if (differs)
      result.warnings.push_back("input '" + name + "' is declared " + type_str(decl) + " but given shape " +
                                shape_to_string(shape) + "; the given shape is used");
  }
  for (const std::string& sym : conflicting) {
    result.warnings.push_back("symbol '" + sym + "' is given different values by different inputs; it stays symbolic");
    bindings.erase(sym);
  }

  Inference inf(options, &result.warnings, bindings);
  Scope main;
  for (const auto& [name, t] : graph.initializers) {
    main.set_value(name, Value::of(t));
    main.types[name] = type_of_value(Value::of(t));
  }
  for (const ValueInfo& vi : graph.inputs) {
    auto g = given.find(vi.name);
    auto v = options.input_values.find(vi.name);
    const bool has_init = graph.initializers.count(vi.name) > 0;
    if (g == given.end() && has_init) continue;  // the initializer is the (known) value
    main.values.erase(vi.name);
    main.dimvals.erase(vi.name);
    TypeInfo t = inf.bind(vi.type);
    if (t.kind == TypeInfo::Kind::unknown && (g != given.end() || has_init)) t.kind = TypeInfo::Kind::tensor;
    if (t.kind == TypeInfo::Kind::tensor && t.elem == DataType::undefined && has_init)
      t.elem = graph.initializers.at(vi.name).dtype();
    if (v != options.input_values.end()) {
      if (t.elem != DataType::undefined && t.elem != v->second.dtype())
        return invalid_argument("input '" + vi.name + "' is declared " + type_str(vi.type) + " but given a " +
                                std::string(dtype_name(v->second.dtype())) + " value");
      main.set_value(vi.name, Value::of(v->second));
      t = type_of_value(Value::of(v->second));
    } else if (g != given.end()) {
      Dims dims;
      for (size_t i = 0; i < g->second.size(); ++i) {
        if (g->second[i] >= 0) dims.push_back(fixed_dim(g->second[i]));
        else dims.push_back(t.has_shape && t.dims.size() == g->second.size() ? t.dims[i] : unknown_dim());
      }
      t.has_shape = true;
      t.dims = std::move(dims);
    }
    main.types[vi.name] = std::move(t);
  }
  TANDEM_RETURN_IF_ERROR(inf.run_graph(graph, main));
  result.types = std::move(main.types);
  for (auto& [name, v] : main.values)
    if (v.is_tensor()) result.constants[name] = v.tensor;
  return result;
}

}  // namespace tandem
