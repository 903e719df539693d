// onnx_tensor_util.h: small helpers over onnx::TensorProto and graph names shared by the
// quantizer's files: reading float32 data, making initializers, unique names.
//
// Thread-safety: pure functions (the name set is the caller's).
#pragma once

#include <cstdint>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <onnx/onnx_pb.h>

#include "tandem/status.h"

namespace tandem::onnx_util {

// True for the standard operator domain ("" or "ai.onnx").
inline bool is_default_domain(const std::string& domain) { return domain.empty() || domain == "ai.onnx"; }

// "[Conv 'name']", or "[Conv #index]" for a node without a name.
inline std::string node_label(const onnx::NodeProto& n, int index = -1) {
  if (!n.name().empty() || index < 0) return "[" + n.op_type() + " '" + n.name() + "']";
  return "[" + n.op_type() + " #" + std::to_string(index) + "]";
}

// `base`, or `base_1`, `base_2`, ... whichever is free; the name is then taken.
inline std::string unique_name(const std::string& base, std::set<std::string>& taken) {
  std::string name = base;
  for (int i = 1; taken.count(name); ++i) name = base + "_" + std::to_string(i);
  taken.insert(name);
  return name;
}

// The float32 elements of `t` (raw_data or float_data), little-endian as ONNX stores them.
inline Result<std::vector<float>> float_elements(const onnx::TensorProto& t) {
  if (t.data_location() == onnx::TensorProto::EXTERNAL)
    return unsupported("initializer '" + t.name() + "' keeps its data in an external file");
  if (t.data_type() != onnx::TensorProto::FLOAT)
    return invalid_model("initializer '" + t.name() + "' is not float32");
  std::vector<float> values;
  if (t.has_raw_data()) {
    const std::string& raw = t.raw_data();
    if (raw.size() % sizeof(float) != 0)
      return invalid_model("initializer '" + t.name() + "' has raw data of " + std::to_string(raw.size()) + " bytes");
    values.resize(raw.size() / sizeof(float));
    std::memcpy(values.data(), raw.data(), raw.size());
  } else {
    values.assign(t.float_data().begin(), t.float_data().end());
  }
  int64_t count = 1;
  for (int64_t d : t.dims()) count *= d;
  if (static_cast<int64_t>(values.size()) != count)
    return invalid_model("initializer '" + t.name() + "' holds " + std::to_string(values.size()) +
                         " values for dims of " + std::to_string(count));
  return values;
}

inline std::vector<int64_t> dims_of(const onnx::TensorProto& t) { return {t.dims().begin(), t.dims().end()}; }

// A tensor named `name` of element type `elem` with `dims` whose raw data are `values` (their
// bytes as they lie in memory: little-endian).
template <class T>
onnx::TensorProto make_tensor(const std::string& name, int elem, const std::vector<int64_t>& dims,
                              const std::vector<T>& values) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(elem);
  for (int64_t d : dims) t.add_dims(d);
  t.set_raw_data(std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T)));
  return t;
}

inline void set_int_attr(onnx::NodeProto& n, const std::string& name, int64_t value) {
  for (auto& a : *n.mutable_attribute())
    if (a.name() == name) {
      a.set_type(onnx::AttributeProto::INT);
      a.set_i(value);
      return;
    }
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(value);
}

inline const onnx::AttributeProto* find_attr(const onnx::NodeProto& n, const std::string& name) {
  for (const auto& a : n.attribute())
    if (a.name() == name) return &a;
  return nullptr;
}

// Every name the graph and its nested graphs use: values, initializers and node names.
inline void collect_names(const onnx::GraphProto& g, std::set<std::string>& names) {
  for (const auto& vi : g.input()) names.insert(vi.name());
  for (const auto& vi : g.output()) names.insert(vi.name());
  for (const auto& vi : g.value_info()) names.insert(vi.name());
  for (const auto& t : g.initializer()) names.insert(t.name());
  for (const auto& n : g.node()) {
    names.insert(n.name());
    for (const auto& i : n.input()) names.insert(i);
    for (const auto& o : n.output()) names.insert(o);
    for (const auto& a : n.attribute()) {
      if (a.has_g()) collect_names(a.g(), names);
      for (const auto& sub : a.graphs()) collect_names(sub, names);
    }
  }
}

// Adds every name `g`, its nodes and nested graphs read (node inputs, graph outputs).
inline void collect_reads(const onnx::GraphProto& g, std::set<std::string>& reads) {
  for (const auto& n : g.node()) {
    for (const auto& i : n.input()) reads.insert(i);
    for (const auto& a : n.attribute()) {
      if (a.has_g()) collect_reads(a.g(), reads);
      for (const auto& sub : a.graphs()) collect_reads(sub, reads);
    }
  }
  for (const auto& vi : g.output()) reads.insert(vi.name());
}

// How many times each value is read in `g`: once per node input, once for all the reads of
// each node's nested graphs together, and once per graph output.
inline std::map<std::string, int> read_counts(const onnx::GraphProto& g) {
  std::map<std::string, int> counts;
  for (const auto& n : g.node()) {
    for (const auto& in : n.input()) ++counts[in];
    std::set<std::string> nested;
    for (const auto& a : n.attribute()) {
      if (a.has_g()) collect_reads(a.g(), nested);
      for (const auto& sub : a.graphs()) collect_reads(sub, nested);
    }
    for (const auto& name : nested) ++counts[name];
  }
  for (const auto& vi : g.output()) ++counts[vi.name()];
  return counts;
}

// Makes `outputs` (values of `g`, with their element types) the only outputs of `g` and removes
// every node that none of them needs, directly or through nested graphs. Inputs and
// initializers stay. `g` must be in topological order, as ONNX requires.
inline void keep_only_outputs(onnx::GraphProto& g, const std::map<std::string, int>& outputs) {
  std::set<std::string> needed;
  for (const auto& [name, elem] : outputs) needed.insert(name);
  std::vector<bool> keep(static_cast<size_t>(g.node_size()), false);
  for (int i = g.node_size() - 1; i >= 0; --i) {
    const onnx::NodeProto& n = g.node(i);
    for (const auto& o : n.output()) keep[static_cast<size_t>(i)] = keep[static_cast<size_t>(i)] || needed.count(o) > 0;
    if (!keep[static_cast<size_t>(i)]) continue;
    for (const auto& in : n.input()) needed.insert(in);
    for (const auto& a : n.attribute()) {
      if (a.has_g()) collect_reads(a.g(), needed);
      for (const auto& sub : a.graphs()) collect_reads(sub, needed);
    }
  }
  google::protobuf::RepeatedPtrField<onnx::NodeProto> kept;
  for (int i = 0; i < g.node_size(); ++i)
    if (keep[static_cast<size_t>(i)]) *kept.Add() = std::move(*g.mutable_node(i));
  g.mutable_node()->Swap(&kept);
  g.clear_output();
  for (const auto& [name, elem] : outputs) {
    auto* vi = g.add_output();
    vi->set_name(name);
    vi->mutable_type()->mutable_tensor_type()->set_elem_type(elem);
  }
}

}  // namespace tandem::onnx_util
