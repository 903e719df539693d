#include "graph/graph.h"

#include <algorithm>
#include <map>
#include <set>

namespace tandem {

void collect_outer_reads(const Graph& g, std::set<std::string>& out) {
  std::set<std::string> local;
  for (const auto& [name, t] : g.initializers) local.insert(name);
  for (const auto& vi : g.inputs) local.insert(vi.name);
  for (const Node& n : g.nodes)
    for (const std::string& o : n.outputs) local.insert(o);
  std::set<std::string> reads;
  for (const Node& n : g.nodes) {
    for (const std::string& in : n.inputs)
      if (!in.empty()) reads.insert(in);
    for (const Graph* sub : subgraphs_of(n)) collect_outer_reads(*sub, reads);
  }
  for (const std::string& r : reads)
    if (!local.count(r)) out.insert(r);
}

Result<std::vector<int>> topological_order(const Graph& g) {
  const int count = static_cast<int>(g.nodes.size());
  std::map<std::string, int> producer;
  for (int i = 0; i < count; ++i)
    for (const std::string& o : g.nodes[i].outputs)
      if (!o.empty()) producer[o] = i;
  std::vector<int> pending(count, 0);
  std::vector<std::vector<int>> consumers(count);
  for (int i = 0; i < count; ++i) {
    std::set<std::string> deps;
    for (const std::string& in : g.nodes[i].inputs)
      if (!in.empty()) deps.insert(in);
    for (const Graph* sub : subgraphs_of(g.nodes[i])) collect_outer_reads(*sub, deps);
    for (const std::string& d : deps) {
      auto it = producer.find(d);
      if (it == producer.end()) continue;  // a node reading its own output stays pending: a cycle
      pending[i]++;
      consumers[it->second].push_back(i);
    }
  }
  std::set<int> ready;
  for (int i = 0; i < count; ++i)
    if (pending[i] == 0) ready.insert(i);
  std::vector<int> order;
  order.reserve(count);
  while (!ready.empty()) {
    const int i = *ready.begin();
    ready.erase(ready.begin());
    order.push_back(i);
    for (int c : consumers[i])
      if (--pending[c] == 0) ready.insert(c);
  }
  if (static_cast<int>(order.size()) != count)
    for (int i = 0; i < count; ++i)
      if (pending[i] > 0) return invalid_model("the graph has a cycle through " + g.nodes[i].label());
  return order;
}

std::vector<const Graph*> subgraphs_of(const Node& n) {
  std::vector<const Graph*> out;
  for (const auto& [k, a] : n.attrs) {
    if (a.g) out.push_back(a.g.get());
    for (const auto& sub : a.graphs) out.push_back(sub.get());
  }
  return out;
}

std::string canonical_domain(const std::string& domain) { return domain == "ai.onnx" ? std::string() : domain; }

std::string TypeInfo::to_string() const {
  switch (kind) {
    case Kind::tensor: {
      std::string s(dtype_name(elem));
      if (!has_shape) return s + "[*]";  // rank unknown
      s += '[';
      for (size_t i = 0; i < dims.size(); ++i) {
        if (i) s += ',';
        if (dims[i].fixed()) s += std::to_string(dims[i].value);
        else if (!dims[i].symbol.empty()) s += dims[i].symbol;
        else s += '?';
      }
      return s + ']';
    }
    case Kind::sequence: return "seq(" + (inner ? inner->to_string() : std::string("?")) + ")";
    case Kind::optional: return "optional(" + (inner ? inner->to_string() : std::string("?")) + ")";
    case Kind::map: return "map";
    case Kind::unknown: break;
  }
  return "unknown";
}

std::string Node::label() const {
  if (!name.empty()) return "[" + op_type + " '" + name + "']";
  return "[" + op_type + " #" + std::to_string(index) + "]";
}

const Attribute* Node::attr(const std::string& key) const {
  auto it = attrs.find(key);
  return it == attrs.end() ? nullptr : &it->second;
}
int64_t Node::attr_int(const std::string& key, int64_t fallback) const {
  const Attribute* a = attr(key);
  return a ? a->i : fallback;
}
float Node::attr_float(const std::string& key, float fallback) const {
  const Attribute* a = attr(key);
  return a ? a->f : fallback;
}
std::string Node::attr_string(const std::string& key, const std::string& fallback) const {
  const Attribute* a = attr(key);
  return a ? a->s : fallback;
}
std::vector<int64_t> Node::attr_ints(const std::string& key, std::vector<int64_t> fallback) const {
  const Attribute* a = attr(key);
  return a ? a->ints : fallback;
}
std::vector<float> Node::attr_floats(const std::string& key, std::vector<float> fallback) const {
  const Attribute* a = attr(key);
  return a ? a->floats : fallback;
}
std::vector<std::string> Node::attr_strings(const std::string& key) const {
  const Attribute* a = attr(key);
  return a ? a->strings : std::vector<std::string>{};
}

Status fix_input_shapes(Graph& graph, const std::map<std::string, std::vector<int64_t>>& shapes) {
  for (const auto& [name, shape] : shapes) {
    auto it = std::find_if(graph.inputs.begin(), graph.inputs.end(), [&name = name](const ValueInfo& vi) { return vi.name == name; });
    if (it == graph.inputs.end()) return invalid_argument("input_shapes names unknown input '" + name + "'");
    TypeInfo& type = it->type;
    if (type.kind != TypeInfo::Kind::tensor) return invalid_argument("input_shapes: input '" + name + "' is not a tensor");
    std::string dims_text;
    for (size_t d = 0; d < shape.size(); ++d) dims_text += (d ? "x" : "") + std::to_string(shape[d]);
    if (type.has_shape && type.dims.size() != shape.size())
      return invalid_argument("input_shapes: input '" + name + "' has rank " + std::to_string(type.dims.size()) + " (" +
                              type.to_string() + "), got " + dims_text);
    for (size_t d = 0; d < shape.size(); ++d) {
      if (shape[d] < -1) return invalid_argument("input_shapes: input '" + name + "' has a negative dim other than -1");
      if (shape[d] >= 0 && type.has_shape && type.dims[d].fixed() && type.dims[d].value != shape[d])
        return invalid_argument("input_shapes: input '" + name + "' fixes dim " + std::to_string(d) + " at " +
                                std::to_string(type.dims[d].value) + ", got " + std::to_string(shape[d]));
    }
    std::vector<Dim> dims(shape.size());
    for (size_t d = 0; d < shape.size(); ++d) {
      if (shape[d] >= 0)
        dims[d].value = shape[d];
      else if (type.has_shape)
        dims[d] = type.dims[d];  // -1: as declared
      else
        dims[d].symbol = name + "_dim" + std::to_string(d);
    }
    type.has_shape = true;
    type.dims = std::move(dims);
  }
  return Status::ok();
}

}  // namespace tandem
