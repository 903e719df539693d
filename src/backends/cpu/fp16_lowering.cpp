// fp16_lowering.cpp: the cpu backend computes float16 models in float32 (see fp16_lowering.h,
// widen_half_precision). The rewrite works on the plan's own copy of the segment graph, before
// steps are made, so every op family sees float32 and runs on its own fast path.
#include <set>

#include "backends/cpu/fp16_lowering.h"
#include "core/tensor_util.h"

namespace tandem::cpu {

namespace {

constexpr const char* kWideSuffix = "__tandem_f32";

Tensor widen(const Tensor& half) {
  Tensor wide(DataType::float32, half.shape());
  const Float16* src = half.data<Float16>();
  float* dst = wide.data<float>();
  for (int64_t i = 0; i < half.numel(); ++i) dst[i] = static_cast<float>(src[i]);
  return wide;
}

void rename_reads(Graph& g, const std::string& from, const std::string& to, const Node* except) {
  for (Node& n : g.nodes) {
    if (&n == except) continue;
    for (std::string& in : n.inputs)
      if (in == from) in = to;
  }
}

Node cast_node(const std::string& name, const std::string& from, const std::string& to, DataType dtype, int64_t opset) {
  Node n;
  n.name = name;
  n.op_type = "Cast";
  n.opset = opset;
  n.inputs = {from};
  n.outputs = {to};
  Attribute a;
  a.type = AttrType::i;
  a.i = static_cast<int64_t>(dtype);
  n.attrs["to"] = a;
  return n;
}

bool widen_attribute(Node& n, const char* key) {
  auto it = n.attrs.find(key);
  if (it == n.attrs.end() || it->second.type != AttrType::t || it->second.t.dtype() != DataType::float16) return false;
  it->second.t = widen(it->second.t);
  return true;
}

}  // namespace

Result<int> widen_half_precision(Graph& g, const std::map<std::string, TypeInfo>& types) {
  auto elem = [&](const std::string& name) {
    auto it = types.find(name);
    return it != types.end() && it->second.kind == TypeInfo::Kind::tensor ? it->second.elem : DataType::undefined;
  };
  auto is_float = [&](const std::string& name) {
    DataType t = elem(name);
    return t == DataType::float16 || t == DataType::float32;
  };
  bool any_half = false;
  for (const auto& [name, t] : types) any_half |= t.kind == TypeInfo::Kind::tensor && t.elem == DataType::float16;
  for (const auto& [name, t] : g.initializers) any_half |= t.dtype() == DataType::float16;
  if (!any_half) return 0;

  const int64_t opset = g.opsets.count("") ? g.opsets.at("") : 13;
  std::set<std::string> graph_inputs, graph_outputs;
  for (const ValueInfo& vi : g.inputs) graph_inputs.insert(vi.name);
  for (const ValueInfo& vi : g.outputs) graph_outputs.insert(vi.name);
  int widened = 0;

  // Casts first: a Cast between float types becomes float32 -> float32, an identity that is
  // dropped below (the rounding it stood for is not reproduced: the graph computes in float32).
  for (Node& n : g.nodes) {
    if (n.op_type == "Cast" && canonical_domain(n.domain).empty() && n.attr_int("to", 0) == static_cast<int64_t>(DataType::float16))
      n.attrs["to"].i = static_cast<int64_t>(DataType::float32);
    if (n.op_type == "Constant") widened += widen_attribute(n, "value");
    if (n.op_type == "ConstantOfShape") widened += widen_attribute(n, "value");
  }

  // Initializers: widened in place, unless the graph also returns them as they are.
  std::map<std::string, Tensor> extra;
  for (auto& [name, t] : g.initializers) {
    if (t.dtype() != DataType::float16 || graph_inputs.count(name)) continue;
    ++widened;
    if (graph_outputs.count(name)) {
      extra[name + kWideSuffix] = widen(t);
      rename_reads(g, name, name + kWideSuffix, nullptr);
    } else {
      t = widen(t);
    }
  }
  for (auto& [name, t] : extra) g.initializers[name] = std::move(t);

  // float16 graph inputs: read through a Cast to float32 at the entry.
  std::vector<Node> entry;
  for (const ValueInfo& vi : g.inputs) {
    if (elem(vi.name) != DataType::float16) continue;
    ++widened;
    const std::string wide = vi.name + kWideSuffix;
    rename_reads(g, vi.name, wide, nullptr);
    entry.push_back(cast_node("widen " + vi.name, vi.name, wide, DataType::float32, opset));
  }

  // float16 graph outputs a node produces: the node writes a float32 value, a Cast narrows it.
  std::vector<Node> exit;
  for (const ValueInfo& vi : g.outputs) {
    if (elem(vi.name) != DataType::float16 || graph_inputs.count(vi.name) || g.initializers.count(vi.name)) continue;
    const std::string wide = vi.name + kWideSuffix;
    bool produced = false;
    for (Node& n : g.nodes)
      for (std::string& out : n.outputs)
        if (out == vi.name) {
          out = wide;
          produced = true;
        }
    if (!produced) continue;
    ++widened;
    rename_reads(g, vi.name, wide, nullptr);
    exit.push_back(cast_node("narrow " + vi.name, wide, vi.name, DataType::float16, opset));
  }

  // Identity casts between float values inside the graph are dropped: readers take the input.
  std::vector<Node> kept;
  kept.reserve(entry.size() + g.nodes.size() + exit.size());
  for (Node& n : entry) kept.push_back(std::move(n));
  std::map<std::string, std::string> forward;
  for (Node& n : g.nodes) {
    for (std::string& in : n.inputs)
      if (auto it = forward.find(in); it != forward.end()) in = it->second;
    const bool identity = n.op_type == "Cast" && canonical_domain(n.domain).empty() && n.inputs.size() == 1 &&
                          n.outputs.size() == 1 && n.attr_int("to", 0) == static_cast<int64_t>(DataType::float32) &&
                          !graph_outputs.count(n.outputs[0]) &&
                          (is_float(n.inputs[0]) || n.inputs[0].ends_with(kWideSuffix));
    if (identity) {
      forward[n.outputs[0]] = n.inputs[0];
      continue;
    }
    kept.push_back(std::move(n));
  }
  for (Node& n : exit) {
    for (std::string& in : n.inputs)
      if (auto it = forward.find(in); it != forward.end()) in = it->second;
    kept.push_back(std::move(n));
  }
  g.nodes = std::move(kept);
  for (size_t i = 0; i < g.nodes.size(); ++i) g.nodes[i].index = static_cast<int>(i);

  // Declared types of inner values follow (inputs and outputs keep theirs).
  for (ValueInfo& vi : g.value_infos)
    if (vi.type.kind == TypeInfo::Kind::tensor && vi.type.elem == DataType::float16) vi.type.elem = DataType::float32;
  return widened;
}

}  // namespace tandem::cpu
