// shape_rules.h: internal to shape inference (shape_inference.cpp, shape_rules*.cpp): the
// context a per-op rule sees, Dim arithmetic helpers and the rule table.
//
// A rule reads the types of a node's inputs (and, where the driver knows them, their values or
// the symbolic elements of small integer tensors) and fills the types of its outputs, and the
// traced elements of small integer outputs. It does not evaluate data (constant folding is the
// driver's business, with the reference kernels); it may only record values it knows without
// computing, like Shape of fixed dims. A rule returns invalid_argument only for mismatches that
// are certain errors; whatever it cannot tell stays unknown (-1 dims or unknown rank).
//
// Thread-safety: the rule table is built once (thread-safe static init) and is immutable.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "tandem/status.h"
#include "tandem/value.h"

namespace tandem::shape_detail {

using Dims = std::vector<Dim>;

// Dims at or above this are treated as overflow (unknown) by the Dim arithmetic and the rules.
constexpr int64_t kDimLimit = int64_t{1} << 62;

inline Dim fixed_dim(int64_t v) { return Dim{v, {}}; }
inline Dim unknown_dim() { return Dim{}; }
inline Dim symbol_dim(std::string s) { return Dim{-1, std::move(s)}; }
inline bool is_one(const Dim& d) { return d.value == 1; }
// True when both are the same fixed value or the same symbol.
inline bool same_dim(const Dim& a, const Dim& b) {
  if (a.fixed() || b.fixed()) return a.value == b.value;
  return !a.symbol.empty() && a.symbol == b.symbol;
}
// Traced integer values (the `dim values` of small int tensors) reuse Dim, and encode a literal
// negative element (Reshape's -1) as a Dim whose symbol is the number, e.g. "-1".
inline Dim int_dim(int64_t v) { return v >= 0 ? fixed_dim(v) : Dim{-1, std::to_string(v)}; }
bool literal_negative(const Dim& d, int64_t* v);
// The dim with a literal negative turned into unknown.
inline Dim plain_dim(const Dim& d) {
  int64_t v = 0;
  return literal_negative(d, &v) ? unknown_dim() : d;
}
bool all_fixed(const Dims& d);
Shape to_shape(const Dims& d);  // -1 for non-fixed dims
Dims from_shape(const Shape& s);
std::string dim_to_string(const Dim& d);
std::string dims_to_string(const Dims& d);
// a+b, a*b with fixed arithmetic; symbolic only for the identities (x+0, x*1).
Dim dim_add(const Dim& a, const Dim& b);
Dim dim_mul(const Dim& a, const Dim& b);
// Product of dims[begin, end).
Dim dims_product(const Dims& d, size_t begin, size_t end);
// Combines two dims that must be equal. false when both are fixed and differ.
bool unify_dim(const Dim& a, const Dim& b, Dim* out);
// Keeps what two alternatives (If branches, loop iterations) agree on.
Dim join_dim(const Dim& a, const Dim& b);
TypeInfo join_types(const TypeInfo& a, const TypeInfo& b);

TypeInfo tensor_type(DataType dtype, Dims dims);
TypeInfo unranked_type(DataType dtype);
// The exact type of a known value.
TypeInfo type_of_value(const Value& v);

class SubgraphInference {
 public:
  virtual ~SubgraphInference() = default;
  // Infers `g` with its inputs typed `inputs` (in order; fewer or unknown entries fall back to
  // g's declared input types). Returns the types of g.outputs; `known` (if not null) receives
  // their known values (none when not known).
  virtual Result<std::vector<TypeInfo>> infer(const Graph& g, const std::vector<TypeInfo>& inputs,
                                              std::vector<std::optional<Value>>* known) = 0;
};

// What a rule sees of one node, and where it writes the output types.
class RuleContext {
 public:
  RuleContext(const Node& node, std::vector<const TypeInfo*> in_types, std::vector<const Value*> in_values,
              std::vector<const Dims*> in_dimvals, SubgraphInference* sub)
      : node_(node),
        in_types_(std::move(in_types)),
        in_values_(std::move(in_values)),
        in_dimvals_(std::move(in_dimvals)),
        sub_(sub),
        out_types(node.outputs.size()),
        out_dimvals(node.outputs.size()),
        out_values(node.outputs.size()) {}

  const Node& node() const { return node_; }
  int64_t opset() const { return node_.opset; }
  size_t num_inputs() const { return in_types_.size(); }
  size_t num_outputs() const { return out_types.size(); }
  // Slot i exists and was not omitted.
  bool has_input(size_t i) const { return i < in_types_.size() && in_types_[i] != nullptr; }
  // The input's type; an `unknown` TypeInfo when absent.
  const TypeInfo& type(size_t i) const;
  DataType dtype(size_t i) const { return type(i).elem; }
  // True when input i is a tensor of known rank.
  bool ranked(size_t i) const { return type(i).kind == TypeInfo::Kind::tensor && type(i).has_shape; }
  int64_t rank(size_t i) const { return static_cast<int64_t>(type(i).dims.size()); }
  const Dims& dims(size_t i) const { return type(i).dims; }
  // The known tensor in slot i, or null.
  const Tensor* value(size_t i) const;
  const Value* known_value(size_t i) const { return i < in_values_.size() ? in_values_[i] : nullptr; }
  // Known integer / float elements of input i.
  std::optional<std::vector<int64_t>> ints(size_t i) const;
  std::optional<std::vector<double>> floats(size_t i) const;
  // Elements of a small integer input as dims (fixed where known, symbolic where the driver
  // traced them from a Shape), or null.
  const Dims* dim_values(size_t i) const { return i < in_dimvals_.size() ? in_dimvals_[i] : nullptr; }
  // The number of elements of a 1-D input whose length is fixed, else -1.
  int64_t length_of(size_t i) const;
  // Integer parameter lists that moved from an attribute to an input across opsets: the
  // attribute when present, else the known input; nullopt when the input is present but not
  // known; an empty vector when neither is given.
  std::optional<std::vector<int64_t>> ints_attr_or_input(const std::string& attr, size_t input) const;

  SubgraphInference* subgraphs() const { return sub_; }

  void set(size_t i, TypeInfo t) {
    if (i < out_types.size()) out_types[i] = std::move(t);
  }
  void set_tensor(size_t i, DataType dtype, Dims dims) { set(i, tensor_type(dtype, std::move(dims))); }
  void set_unranked(size_t i, DataType dtype) { set(i, unranked_type(dtype)); }
  void set_dimvals(size_t i, Dims d) {
    if (i < out_dimvals.size()) out_dimvals[i] = std::move(d);
  }
  void set_value(size_t i, Value v) {
    if (i < out_values.size()) out_values[i] = std::move(v);
  }

  // invalid_argument "[Op 'name'] msg".
  Status invalid(const std::string& msg) const { return invalid_argument(node_.label() + " " + msg); }
  // Normalizes an axis against rank, or an error naming the node.
  Result<int64_t> axis(int64_t a, int64_t rank, const char* what = "axis") const;

 private:
  const Node& node_;
  std::vector<const TypeInfo*> in_types_;
  std::vector<const Value*> in_values_;
  std::vector<const Dims*> in_dimvals_;
  SubgraphInference* sub_;

 public:
  std::vector<TypeInfo> out_types;
  std::vector<std::optional<Dims>> out_dimvals;
  std::vector<std::optional<Value>> out_values;
};

using RuleFn = Status (*)(RuleContext&);

class RuleTable {
 public:
  void add(const std::string& domain, const std::string& op, RuleFn fn) { table_[{domain, op}] = fn; }
  RuleFn find(const std::string& domain, const std::string& op) const {
    auto it = table_.find({domain, op});
    return it == table_.end() ? nullptr : it->second;
  }

 private:
  std::map<std::pair<std::string, std::string>, RuleFn> table_;
};

// The table of every rule; built on first use.
const RuleTable& shape_rules();
void register_elementwise_rules(RuleTable& t);  // elementwise, value producers, reductions, quantization
void register_movement_rules(RuleTable& t);     // reshapes, concat/split/slice, gather, pad, ...
void register_sequence_rules(RuleTable& t);     // sequences and optionals
void register_nn_rules(RuleTable& t);      // shape_rules_nn.cpp: conv, pool, matmul, norms, rnn, ...
void register_control_rules(RuleTable& t); // shape_inference.cpp: If, Loop, Scan, SequenceMap
void register_quantize_rules(RuleTable& t);  // shape_rules_quantize.cpp: com.microsoft quantized ops

// Shared rule helpers.
// Numpy broadcast of the given dims; error naming the node when certainly incompatible.
Result<Dims> broadcast(const RuleContext& ctx, const std::vector<const Dims*>& shapes);
// Output 0 = input `from` (type and dims).
Status same_as_input(RuleContext& ctx, size_t from = 0);
// Normalizes (negative axes count from the end) and de-duplicates axes against rank r; an
// error naming the node for an axis out of range.
Result<std::vector<int64_t>> norm_axes(const RuleContext& ctx, const std::vector<int64_t>& axes, int64_t r);
// The target shape given by a 1-D shape input: fixed/symbolic elements where traced, unknown
// elements where only the length is known; nullopt when even the length is unknown.
std::optional<Dims> shape_operand(const RuleContext& ctx, size_t i);
// Dims of input i, or null when its rank is unknown.
inline const Dims* ranked_dims(const RuleContext& ctx, size_t i) { return ctx.ranked(i) ? &ctx.dims(i) : nullptr; }

}  // namespace tandem::shape_detail
