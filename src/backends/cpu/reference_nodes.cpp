// reference_nodes.cpp: nodes and whole segments on the reference kernels (reference_nodes.h).
#include "backends/cpu/reference_nodes.h"

#include <chrono>
#include <exception>
#include <new>
#include <set>

#include "kernels/registry.h"

namespace tandem::cpu {

namespace {

// Runs one node: inputs from `env`, outputs into it. `in` and `out` are reused buffers.
Status run_node(const Node& n, ValueEnv& env, std::vector<const Value*>& in, std::vector<Value>& out) {
  in.clear();
  for (const std::string& name : n.inputs) {
    if (name.empty()) {
      in.push_back(nullptr);
      continue;
    }
    auto it = env.find(name);
    in.push_back(it == env.end() ? nullptr : &it->second);
  }
  out.assign(n.outputs.size(), Value{});
  KernelFn fn = reference_kernels().find(canonical_domain(n.domain), n.op_type);
  if (!fn) return internal_error(n.label() + " no reference kernel");
  KernelContext kc(n, in, &out, nullptr);
  Status st;
  // Kernels report errors by Status; only the standard library throws (an allocation that
  // cannot be satisfied), and that stops here.
  try {
    st = fn(kc);
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::out_of_memory, n.label() + " out of memory");
  } catch (const std::exception& e) {
    return Status(StatusCode::internal, n.label() + " unexpected error: " + e.what());
  }
  if (!st.is_ok()) return st;
  for (size_t i = 0; i < out.size(); ++i)
    if (!n.outputs[i].empty()) env[n.outputs[i]] = std::move(out[i]);
  return Status::ok();
}

}  // namespace

Status run_reference_nodes(const std::vector<const Node*>& nodes, ValueEnv& env) {
  std::vector<const Value*> in;
  std::vector<Value> out;
  for (const Node* n : nodes) TANDEM_RETURN_IF_ERROR(run_node(*n, env, in, out));
  return Status::ok();
}

Result<ReferenceGraph> prepare_reference_graph(const Graph& graph) {
  ReferenceGraph rg;
  rg.graph = &graph;
  for (const Node& n : graph.nodes)
    if (!reference_kernels().find(canonical_domain(n.domain), n.op_type))
      return unsupported(n.label() + " unknown op '" + n.op_type + "' (domain '" +
                         (n.domain.empty() ? std::string("ai.onnx") : n.domain) + "', opset " +
                         std::to_string(n.opset) + "): no backend implements it");
  TANDEM_ASSIGN_OR_RETURN(const std::vector<int> order, topological_order(graph));
  for (int i : order) rg.order.push_back(&graph.nodes[static_cast<size_t>(i)]);
  // Last use: a value is dropped after the last node that reads it, unless it is a graph output
  // or an initializer; outputs nobody reads are dropped right away.
  std::set<std::string> keep;
  for (const auto& vi : graph.outputs) keep.insert(vi.name);
  for (const auto& [name, t] : graph.initializers) keep.insert(name);
  std::map<std::string, size_t> last_use;
  for (size_t p = 0; p < rg.order.size(); ++p)
    for (const std::string& name : rg.order[p]->inputs)
      if (!name.empty()) last_use[name] = p;
  for (size_t p = 0; p < rg.order.size(); ++p)
    for (const std::string& name : rg.order[p]->outputs)
      if (!name.empty() && !last_use.count(name)) last_use[name] = p;
  rg.frees.resize(rg.order.size());
  for (const auto& [name, p] : last_use)
    if (!keep.count(name)) rg.frees[p].push_back(name);
  return rg;
}

Result<std::vector<Value>> run_reference_graph(const ReferenceGraph& rg, const std::vector<Value>& inputs,
                                               const RunControl& control) {
  const Graph& g = *rg.graph;
  if (inputs.size() > g.inputs.size())
    return invalid_argument("graph '" + g.name + "' takes " + std::to_string(g.inputs.size()) + " inputs, got " +
                            std::to_string(inputs.size()));
  ValueEnv env;
  for (const auto& [name, t] : g.initializers) env[name] = Value::of(t);
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string& name = g.inputs[i].name;
    if (inputs[i].is_none() && env.count(name)) continue;  // the initializer acts as the default
    env[name] = inputs[i];
  }
  const bool has_deadline = control.deadline != std::chrono::steady_clock::time_point::max();
  std::vector<const Value*> in;
  std::vector<Value> out;
  for (size_t p = 0; p < rg.order.size(); ++p) {
    const Node& n = *rg.order[p];
    if (control.cancel && control.cancel->load(std::memory_order_relaxed))
      return Status(StatusCode::cancelled, "the request was cancelled");
    if (has_deadline && std::chrono::steady_clock::now() > control.deadline)
      return Status(StatusCode::timeout, "the deadline passed before " + n.label() + " ran");
    TANDEM_RETURN_IF_ERROR(run_node(n, env, in, out));
    for (const std::string& name : rg.frees[p]) env.erase(name);
  }
  std::vector<Value> result;
  result.reserve(g.outputs.size());
  for (const auto& vi : g.outputs) {
    auto it = env.find(vi.name);
    result.push_back(it == env.end() ? Value{} : it->second);
  }
  return result;
}

}  // namespace tandem::cpu
