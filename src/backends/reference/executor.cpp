#include "backends/reference/executor.h"

#include <algorithm>
#include <exception>
#include <new>

namespace tandem {


Result<std::shared_ptr<const ExecutionPlan>> compile_plan(const Graph& graph, const KernelTable& kernels,
                                                          const std::set<std::string>& outer) {
  auto plan = std::make_shared<ExecutionPlan>();
  plan->graph = &graph;
  auto slot = [&](const std::string& name) {
    auto it = plan->slot_of.find(name);
    if (it != plan->slot_of.end()) return it->second;
    int s = static_cast<int>(plan->slot_names.size());
    plan->slot_of[name] = s;
    plan->slot_names.push_back(name);
    return s;
  };
  std::set<std::string> graph_inputs;
  for (const auto& vi : graph.inputs) {
    plan->input_slots.push_back(slot(vi.name));
    graph_inputs.insert(vi.name);
  }
  for (const auto& [name, t] : graph.initializers) {
    int s = slot(name);
    plan->constants.emplace_back(s, t);
  }
  std::map<std::string, int> producer;
  for (const Node& n : graph.nodes)
    for (const std::string& o : n.outputs)
      if (!o.empty()) producer[o] = n.index;

  // Implicit inputs: what each node's subgraphs read from this graph or beyond.
  const size_t count = graph.nodes.size();
  std::vector<std::vector<std::string>> deps(count);
  for (const Node& n : graph.nodes) {
    for (const std::string& in : n.inputs)
      if (!in.empty()) deps[n.index].push_back(in);
    std::set<std::string> implicit;
    for (const Graph* sg : subgraphs_of(n)) collect_outer_reads(*sg, implicit);
    for (const std::string& name : implicit) deps[n.index].push_back(name);
  }

  TANDEM_ASSIGN_OR_RETURN(plan->order, topological_order(graph));

  // Kernels, slots and subplans.
  plan->kernels.assign(count, nullptr);
  plan->node_inputs.resize(count);
  plan->node_outputs.resize(count);
  plan->node_frees.resize(count);
  std::set<std::string> visible = outer;
  for (const auto& [name, s] : plan->slot_of) visible.insert(name);
  for (const auto& [name, idx] : producer) visible.insert(name);
  for (const Node& n : graph.nodes) {
    KernelFn fn = kernels.find(n.domain, n.op_type);
    if (!fn)
      return unsupported(n.label() + " unknown op '" + n.op_type + "' (domain '" +
                         (n.domain.empty() ? std::string("ai.onnx") : n.domain) + "', opset " +
                         std::to_string(n.opset) + "): no backend implements it");
    plan->kernels[n.index] = fn;
    for (const std::string& in : n.inputs) plan->node_inputs[n.index].push_back(in.empty() ? -1 : slot(in));
    for (const std::string& o : n.outputs) plan->node_outputs[n.index].push_back(o.empty() ? -1 : slot(o));
    for (const Graph* sg : subgraphs_of(n)) {
      auto sub = compile_plan(*sg, kernels, visible);
      if (!sub) return sub.status();
      plan->subplans[sg] = std::move(sub).value();
    }
  }

  // Names read here but defined in an enclosing scope.
  for (const auto& [name, s] : plan->slot_of) {
    bool local = graph_inputs.count(name) || graph.initializers.count(name) || producer.count(name);
    if (!local) {
      plan->outer_names.push_back(name);
      plan->outer_slots.push_back(s);
    }
  }
  // Also implicit reads by subgraphs of names from beyond this graph.
  for (const Node& n : graph.nodes)
    for (const std::string& d : deps[n.index]) {
      bool local = graph_inputs.count(d) || graph.initializers.count(d) || producer.count(d);
      if (!local && !plan->slot_of.count(d)) {
        int s = slot(d);
        plan->outer_names.push_back(d);
        plan->outer_slots.push_back(s);
      }
    }

  // Last use: a slot is freed after the last node in `order` that reads it, unless it is a
  // graph output, a constant or an outer value (those belong to someone else).
  std::set<int> keep;
  for (const auto& vi : graph.outputs) {
    int s = slot(vi.name);
    plan->output_slots.push_back(s);
    keep.insert(s);
  }
  for (const auto& [s, t] : plan->constants) keep.insert(s);
  for (int s : plan->outer_slots) keep.insert(s);
  std::vector<int> last_use(plan->slot_names.size(), -1);
  for (int i : plan->order)
    for (const std::string& d : deps[i]) last_use[plan->slot_of[d]] = i;
  for (int i : plan->order)
    for (int o : plan->node_outputs[i])  // outputs nobody reads are dropped right away
      if (o >= 0 && last_use[o] < 0) last_use[o] = i;
  for (size_t s = 0; s < last_use.size(); ++s)
    if (last_use[s] >= 0 && !keep.count(static_cast<int>(s))) plan->node_frees[last_use[s]].push_back(static_cast<int>(s));
  return std::shared_ptr<const ExecutionPlan>(std::move(plan));
}

namespace {

// Calls a kernel. Kernels report errors by Status; the only exceptions that can escape them
// come from the standard library (an allocation that cannot be satisfied), and they stop here.
Status invoke(KernelFn fn, KernelContext& ctx) {
  try {
    return fn(ctx);
  } catch (const std::bad_alloc&) {
    return ctx.fail(StatusCode::out_of_memory, "out of memory");
  } catch (const std::exception& e) {
    return ctx.fail(StatusCode::internal, std::string("unexpected error: ") + e.what());
  }
}

// One activation of a plan: its value slots, and the frame of the enclosing graph.
class Frame final : public SubgraphRunner {
 public:
  Frame(const ExecutionPlan& plan, const Frame* parent, const RunControl& control)
      : plan_(plan), parent_(parent), control_(control), slots_(plan.slot_names.size()) {}

  const Value* lookup(const std::string& name) const {
    auto it = plan_.slot_of.find(name);
    if (it != plan_.slot_of.end() && !slots_[it->second].is_none()) return &slots_[it->second];
    if (it != plan_.slot_of.end() && bound_[it->second]) return &slots_[it->second];
    return parent_ ? parent_->lookup(name) : nullptr;
  }

  Status bind(const std::vector<Value>& inputs) {
    bound_.assign(slots_.size(), false);
    for (const auto& [s, t] : plan_.constants) {
      slots_[s] = Value::of(t);
      bound_[s] = true;
    }
    const size_t n = plan_.input_slots.size();
    if (inputs.size() > n)
      return invalid_argument("graph '" + plan_.graph->name + "' takes " + std::to_string(n) + " inputs, got " +
                              std::to_string(inputs.size()));
    for (size_t i = 0; i < inputs.size(); ++i) {
      int s = plan_.input_slots[i];
      if (inputs[i].is_none() && bound_[s]) continue;  // initializer acts as the default
      slots_[s] = inputs[i];
      bound_[s] = true;
    }
    for (size_t k = 0; k < plan_.outer_names.size(); ++k) {
      const Value* v = parent_ ? parent_->lookup(plan_.outer_names[k]) : nullptr;
      int s = plan_.outer_slots[k];
      if (bound_[s]) continue;
      if (v) slots_[s] = *v;
      bound_[s] = true;
    }
    return Status::ok();
  }

  Result<std::vector<Value>> run() {
    const Graph& g = *plan_.graph;
    std::vector<const Value*> in_ptrs;
    std::vector<Value> outs;
    for (int idx : plan_.order) {
      if (control_.cancel && control_.cancel->load(std::memory_order_relaxed))
        return Status(StatusCode::cancelled, "the request was cancelled");
      if (control_.deadline != std::chrono::steady_clock::time_point::max() &&
          std::chrono::steady_clock::now() > control_.deadline)
        return Status(StatusCode::timeout, "the deadline passed before " + g.nodes[idx].label() + " ran");
      const Node& node = g.nodes[idx];
      in_ptrs.clear();
      for (int s : plan_.node_inputs[idx]) in_ptrs.push_back(s >= 0 ? &slots_[s] : nullptr);
      outs.assign(node.outputs.size(), Value{});
      KernelContext ctx(node, in_ptrs, &outs, this);
      Status st = invoke(plan_.kernels[idx], ctx);
      if (!st.is_ok()) return st;
      for (size_t o = 0; o < outs.size(); ++o) {
        int s = plan_.node_outputs[idx][o];
        if (s < 0) continue;
        slots_[s] = std::move(outs[o]);
        bound_[s] = true;
      }
      for (int s : plan_.node_frees[idx]) {
        slots_[s] = Value{};
        bound_[s] = false;
      }
    }
    std::vector<Value> result;
    result.reserve(plan_.output_slots.size());
    for (int s : plan_.output_slots) result.push_back(slots_[s]);
    return result;
  }

  Result<std::vector<Value>> run_subgraph(const Graph& g, const std::vector<Value>& inputs) override {
    auto it = plan_.subplans.find(&g);
    if (it == plan_.subplans.end()) return internal_error("subgraph '" + g.name + "' was not compiled");
    Frame child(*it->second, this, control_);
    TANDEM_RETURN_IF_ERROR(child.bind(inputs));
    return child.run();
  }

 private:
  const ExecutionPlan& plan_;
  const Frame* parent_;
  const RunControl& control_;
  std::vector<Value> slots_;
  std::vector<bool> bound_;
};

}  // namespace

Result<std::vector<Value>> run_plan(const ExecutionPlan& plan, const std::vector<Value>& inputs,
                                    const RunControl& control) {
  Frame frame(plan, nullptr, control);
  TANDEM_RETURN_IF_ERROR(frame.bind(inputs));
  return frame.run();
}

}  // namespace tandem
