// compile.cpp: a segment graph becomes a CompiledGraph: values and compile-time constants,
// one step per node with its op family's spec, then fusion; with a fixed input signature the
// instance is built here too (plan.h).
#include <algorithm>
#include <set>

#include "backends/cpu/fp16_lowering.h"
#include "backends/cpu/fusion.h"
#include "backends/cpu/op_table.h"
#include "backends/cpu/plan.h"
#include "backends/cpu/runtime_env.h"
#include "core/sysinfo.h"
#include "kernels/registry.h"
#include "passes/shape_inference.h"

namespace tandem::cpu {

void CompiledGraph::relink() {
  for (auto& v : values) {
    v.producer = -1;
    v.readers.clear();
  }
  for (size_t s = 0; s < steps.size(); ++s) {
    const Step& st = steps[s];
    if (st.dead) continue;
    for (int v : st.inputs)
      if (v >= 0) values[v].readers.push_back(static_cast<int>(s));
    for (int v : st.outputs)
      if (v >= 0) values[v].producer = static_cast<int>(s);
  }
}

int FusionContext::sole_reader(int value) const {
  if (value < 0) return -1;
  const CompiledValue& v = graph.values[value];
  if (v.is_output || v.readers.empty()) return -1;
  int r = v.readers.front();
  for (int x : v.readers)
    if (x != r) return -1;
  if (v.readers.size() != 1) return -1;  // read twice by one step: not a chain
  return r;
}

int FusionContext::add_constant(Tensor t) {
  int id = static_cast<int>(graph.values.size());
  graph.values.push_back(CompiledValue{});
  graph.values.back().name = "__cpu_const_" + std::to_string(id);
  graph.values.back().constant = std::move(t);
  graph.value_of[graph.values.back().name] = id;
  return id;
}

const Tensor* FusionContext::constant(int value) const {
  if (value < 0) return nullptr;
  const Tensor& t = graph.values[value].constant;
  return t.defined() ? &t : nullptr;
}

namespace {

// Input positions whose value decides an output shape (so the value is part of the key).
bool is_shape_param(const Node& n, size_t i) {
  const std::string& op = n.op_type;
  if (i == 0) return op == "ConstantOfShape" || op == "Range";
  if (op == "Reshape" || op == "Expand" || op == "Tile" || op == "Squeeze" || op == "Unsqueeze" ||
      op == "Upsample" || op == "Split" || op == "TopK" || op == "OneHot" || op.rfind("Reduce", 0) == 0)
    return i == 1;
  if (op == "Slice") return i >= 1 && i <= 4;
  if (op == "Resize") return i >= 1 && i <= 3;
  if (op == "Pad") return i == 1 || i == 3;
  if (op == "Range") return i <= 2;
  if (op == "Trilu") return i == 1;  // k: the kernel's diagonal, read when the instance is built
  return false;
}

// The value of a Constant node, when it is a plain tensor attribute.
Tensor constant_node_value(const Node& n) {
  if (const Attribute* a = n.attr("value"); a && a->type == AttrType::t) return a->t;
  if (const Attribute* a = n.attr("value_float"); a && a->type == AttrType::f) return Tensor::scalar<float>(a->f);
  if (const Attribute* a = n.attr("value_int"); a && a->type == AttrType::i) return Tensor::scalar<int64_t>(a->i);
  if (const Attribute* a = n.attr("value_floats"); a && a->type == AttrType::floats)
    return Tensor::from_vector<float>({static_cast<int64_t>(a->floats.size())}, a->floats);
  if (const Attribute* a = n.attr("value_ints"); a && a->type == AttrType::ints)
    return Tensor::from_vector<int64_t>({static_cast<int64_t>(a->ints.size())}, a->ints);
  return {};
}

}  // namespace

Result<std::unique_ptr<CpuPlan>> compile_graph(const Graph& graph, const CompileOptions& options) {
  auto plan = std::make_unique<CpuPlan>();
  CompiledGraph& g = plan->g;
  g.graph = std::make_shared<Graph>(graph);
  g.threads = options.threads > 0 ? options.threads : physical_cores();
  g.precision = options.precision;
  g.cache_dir = options.cache_dir;
  g.shape_cache_bytes = options.shape_cache_bytes;
  {
    ShapeInferenceOptions before;
    before.use_declared_types = false;
    auto typed = infer_shapes(*g.graph, {}, before);
    if (typed) {
      TANDEM_ASSIGN_OR_RETURN(g.widened_values, widen_half_precision(*g.graph, typed->types));
    }
  }
  const Graph& gr = *g.graph;
  for (const Node& n : gr.nodes)
    if (!subgraphs_of(n).empty())
      return unsupported(n.label() + " the cpu backend does not run ops with subgraphs");

  auto value = [&](const std::string& name) {
    auto it = g.value_of.find(name);
    if (it != g.value_of.end()) return it->second;
    int id = static_cast<int>(g.values.size());
    g.values.push_back(CompiledValue{});
    g.values.back().name = name;
    g.value_of[name] = id;
    return id;
  };
  for (size_t i = 0; i < gr.inputs.size(); ++i) {
    int v = value(gr.inputs[i].name);
    g.values[v].input_index = static_cast<int>(i);
    g.inputs.push_back(v);
  }
  // Compile-time constants: initializers (not overridden by an input), Constant nodes and
  // whatever shape inference folds.
  std::set<std::string> input_names;
  for (const auto& vi : gr.inputs) input_names.insert(vi.name);
  for (const auto& [name, t] : gr.initializers)
    if (!input_names.count(name)) g.values[value(name)].constant = t;
  for (const Node& n : gr.nodes)
    if (n.op_type == "Constant" && canonical_domain(n.domain).empty() && n.outputs.size() == 1) {
      Tensor t = constant_node_value(n);
      if (t.defined()) g.values[value(n.outputs[0])].constant = t;
    }
  ShapeInferenceOptions sio;
  sio.use_declared_types = false;
  auto inferred = infer_shapes(gr, {}, sio);
  if (inferred) {
    for (const auto& [name, t] : inferred->constants) {
      if (input_names.count(name)) continue;
      int v = value(name);
      if (!g.values[v].constant.defined()) g.values[v].constant = t;
    }
  }

  // Steps in topological order.
  TANDEM_ASSIGN_OR_RETURN(const std::vector<int> order, topological_order(gr));
  const OpTable& table = cpu_ops();
  FusionContext fc{g};
  for (int idx : order) {
    const Node& n = gr.nodes[idx];
    bool all_known = true;
    for (const auto& o : n.outputs)
      if (!o.empty() && !g.values[value(o)].constant.defined()) all_known = false;
    if (all_known) {
      ++g.folded_nodes;
      continue;
    }
    Step st;
    st.node = &n;
    st.originals = {&n};
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      if (n.inputs[i].empty()) {
        st.inputs.push_back(-1);
        continue;
      }
      int v = value(n.inputs[i]);
      st.inputs.push_back(v);
      if (is_shape_param(n, i)) g.values[v].shape_param = true;
    }
    for (const auto& o : n.outputs) st.outputs.push_back(o.empty() ? -1 : value(o));
    g.steps.push_back(std::move(st));
  }
  for (const auto& vi : gr.outputs) {
    int v = value(vi.name);
    g.values[v].is_output = true;
    g.outputs.push_back(v);
  }
  g.relink();
  for (Step& st : g.steps) {
    const Node& n = *st.node;
    const OpEntry* e = table.find(canonical_domain(n.domain), n.op_type);
    if (e && e->make && e->supports(n).is_ok()) {
      auto spec = e->make(fc, st);
      if (spec) st.spec = std::move(spec).value();
      else if (spec.status().code() == StatusCode::unsupported)
        g.declined_steps.emplace_back(static_cast<int>(&st - g.steps.data()), spec.status().message());
    }
    if (!st.spec && !reference_kernels().find(canonical_domain(n.domain), n.op_type))
      return unsupported(n.label() + " op '" + n.op_type + "' has no cpu or reference kernel");
  }
  if (feature_enabled("FUSION")) fuse_steps(g);
  g.relink();
  // When every input's dtype and shape are fixed (and none decides shapes by its value), build
  // the instance for that signature now: weights are packed, primitives created and the arena
  // planned at prepare time instead of at the first run. A failure here is left to that run.
  std::vector<Value> signature;
  for (size_t i = 0; i < gr.inputs.size(); ++i) {
    const TypeInfo& t = gr.inputs[i].type;
    if (t.kind != TypeInfo::Kind::tensor || !t.has_shape || t.elem == DataType::undefined ||
        t.elem == DataType::string)
      break;
    Shape shape;
    for (const Dim& d : t.dims) shape.push_back(d.value);
    if (std::any_of(shape.begin(), shape.end(), [](int64_t d) { return d < 0; })) break;
    Tensor zeros(t.elem, shape);
    if (keyed_input(g, static_cast<int>(i), zeros)) break;
    signature.push_back(Value::of(std::move(zeros)));
  }
  if (signature.size() == gr.inputs.size()) {
    try {
      (void)plan->instance_for(signature, g.threads);
    } catch (const std::exception&) {  // oneDNN errors, out of memory: the first run reports them
    }
  }
  return plan;
}

}  // namespace tandem::cpu
