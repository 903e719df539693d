#include "passes/constant_folding.h"

#include <set>
#include <string>

namespace tandem {

Result<FoldResult> fold_constants(const Graph& graph, const FoldOptions& options) {
  // Name every input that an initializer backs, so that inference treats it as unknown.
  std::map<std::string, Shape> overridable;
  for (const ValueInfo& vi : graph.inputs)
    if (auto it = graph.initializers.find(vi.name); it != graph.initializers.end()) overridable[vi.name] = it->second.shape();
  ShapeInferenceOptions sio;
  sio.max_fold_elements = options.max_elements;
  auto inferred = infer_shapes(graph, overridable, sio);
  if (!inferred) return inferred.status();

  FoldResult result;
  result.graph = std::make_shared<Graph>();
  Graph& g = *result.graph;
  g.name = graph.name;
  g.inputs = graph.inputs;
  g.outputs = graph.outputs;
  g.value_infos = graph.value_infos;
  g.opsets = graph.opsets;
  g.initializers = graph.initializers;

  auto known = [&](const std::string& name) { return inferred->constants.count(name) > 0; };
  for (const Node& n : graph.nodes) {
    bool folded = options.max_elements > 0 && !n.outputs.empty() && subgraphs_of(n).empty();
    for (const std::string& out : n.outputs) folded &= out.empty() || known(out);
    if (!folded) {
      g.nodes.push_back(n);
      g.nodes.back().index = static_cast<int>(g.nodes.size()) - 1;
      continue;
    }
    ++result.folded_nodes;
    for (const std::string& out : n.outputs) {
      if (out.empty()) continue;
      const Tensor& t = inferred->constants.at(out);
      g.initializers[out] = t;
      result.folded_bytes += static_cast<int64_t>(t.nbytes());
    }
  }

  // Keep the initializers something still reads.
  std::set<std::string> read;
  for (const Node& n : g.nodes) {
    for (const std::string& in : n.inputs) read.insert(in);
    for (const Graph* sub : subgraphs_of(n)) collect_outer_reads(*sub, read);
  }
  for (const ValueInfo& vi : g.outputs) read.insert(vi.name);
  for (const ValueInfo& vi : g.inputs) read.insert(vi.name);
  for (auto it = g.initializers.begin(); it != g.initializers.end();)
    it = read.count(it->first) ? std::next(it) : g.initializers.erase(it);
  result.inferred = std::move(inferred).value();
  return result;
}

}  // namespace tandem
