// graph.h: the in-memory model: typed value infos, nodes with attributes, nested graphs.
//
// A Graph owns its nodes, initializers and subgraphs (through attributes). It is built once
// by the ONNX loader and then read-only; concurrent readers are safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "tandem/status.h"
#include "tandem/tensor.h"

namespace tandem {

struct Graph;

// One dimension of a declared shape: a fixed size, a symbol ("batch"), or unknown.
struct Dim {
  int64_t value = -1;  // >= 0 when fixed
  std::string symbol;  // non-empty when symbolic
  bool fixed() const { return value >= 0; }
};

// The declared type of a graph input/output: tensor, sequence or optional, possibly nested.
struct TypeInfo {
  enum class Kind { unknown, tensor, sequence, optional, map };
  Kind kind = Kind::unknown;
  DataType elem = DataType::undefined;  // tensor element type (for tensor kind)
  bool has_shape = false;               // false: rank unknown
  std::vector<Dim> dims;
  std::shared_ptr<TypeInfo> inner;  // element type of sequence/optional
  // "float32[1,3,N,W]", "seq(float32[?])", "optional(...)".
  std::string to_string() const;
};

struct ValueInfo {
  std::string name;
  TypeInfo type;
};

enum class AttrType { undefined, f, i, s, t, g, floats, ints, strings, tensors, graphs, type_proto, sparse };

struct Attribute {
  AttrType type = AttrType::undefined;
  float f = 0;
  int64_t i = 0;
  std::string s;
  Tensor t;
  std::shared_ptr<Graph> g;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
  std::vector<Tensor> tensors;
  std::vector<std::shared_ptr<Graph>> graphs;
  std::shared_ptr<TypeInfo> tp;
};

struct Node {
  std::string name;
  std::string op_type;
  std::string domain;  // "" or "ai.onnx" for the default domain
  int64_t opset = 0;   // the model's opset version for this node's domain
  std::vector<std::string> inputs;  // "" marks an omitted optional input
  std::vector<std::string> outputs; // "" marks an omitted optional output
  std::map<std::string, Attribute> attrs;

  // "[Conv 'stem.0']" (or "[Conv #12]" for an unnamed node): the prefix of every message.
  std::string label() const;
  const Attribute* attr(const std::string& key) const;
  bool has_attr(const std::string& key) const { return attr(key) != nullptr; }
  int64_t attr_int(const std::string& key, int64_t fallback) const;
  float attr_float(const std::string& key, float fallback) const;
  std::string attr_string(const std::string& key, const std::string& fallback) const;
  std::vector<int64_t> attr_ints(const std::string& key, std::vector<int64_t> fallback = {}) const;
  std::vector<float> attr_floats(const std::string& key, std::vector<float> fallback = {}) const;
  std::vector<std::string> attr_strings(const std::string& key) const;
  int index = -1;  // position in the owning graph, for unnamed-node labels
};

struct Graph {
  std::string name;
  std::vector<Node> nodes;
  std::vector<ValueInfo> inputs;
  std::vector<ValueInfo> outputs;
  std::vector<ValueInfo> value_infos;
  std::map<std::string, Tensor> initializers;
  // Opset versions by domain ("" is ai.onnx), inherited by subgraphs from their model.
  std::map<std::string, int64_t> opsets;
};

struct Model {
  std::filesystem::path path;  // where it was loaded from (empty when loaded from memory)
  int64_t ir_version = 0;
  std::string producer_name;
  std::string producer_version;
  std::map<std::string, int64_t> opsets;  // domain ("" is ai.onnx) -> version
  std::map<std::string, std::string> metadata;
  std::shared_ptr<Graph> graph;
};

// Adds to `out` the names that `g` (or any graph nested in it) reads but does not define:
// the values it takes from enclosing graphs.
void collect_outer_reads(const Graph& g, std::set<std::string>& out);
// The graphs held by a node's attributes (If branches, Loop/Scan bodies, ...).
std::vector<const Graph*> subgraphs_of(const Node& n);

// The one topological order of a graph: positions in g.nodes such that every node comes after
// the producers of its inputs and of what its subgraphs read from enclosing graphs. Stable with
// respect to the file's node order (among ready nodes the lowest position goes first). Names
// produced by no node (graph inputs, initializers, outer-scope values) impose no order.
// Fails with invalid_model naming a node on a cycle (a node reading its own output is one).
Result<std::vector<int>> topological_order(const Graph& g);

// Canonical domain name: "" and "ai.onnx" both become "".
std::string canonical_domain(const std::string& domain);

// Fixes the dims of the named graph inputs (symbolic or unknown dims become the given values),
// so that backends can specialise compilation. A dim given as -1 stays as declared (a batch dim
// left free; symbolic when the input declared no shape). Each shape must have the input's
// declared rank and agree with its fixed dims; otherwise invalid_argument naming the input.
Status fix_input_shapes(Graph& graph, const std::map<std::string, std::vector<int64_t>>& shapes);

}  // namespace tandem
