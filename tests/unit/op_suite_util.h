// op_suite_util.h: the generic op suite. A case is one node (its op, attributes, opset and
// input values) run as a graph of its own. The reference backend defines the answer: its
// outputs must have the element types and the dims shape inference predicts. Every other
// backend in the registry whose supports() accepts the node compiles and runs the same graph
// and must agree with the reference within the case's tolerance (exactly for integer, bool and
// string outputs).
//
// The cases live in per-family files (op_cases_*.cpp); each family function builds its cases
// from a seeded CaseRng, so shapes and values are random but the same on every run.
#pragma once

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/compare.h"
#include "graph/graph.h"
#include "op_test_util.h"
#include "tandem/tensor.h"
#include "tandem/value.h"

namespace tandem::testing {

using Attrs = std::map<std::string, Attribute>;

// Seeded source of shapes and values.
class CaseRng {
 public:
  explicit CaseRng(uint32_t seed) : gen_(seed) {}
  int64_t dim(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(gen_); }
  Shape shape(size_t rank, int64_t lo = 1, int64_t hi = 9) {
    Shape s(rank);
    for (auto& d : s) d = dim(lo, hi);
    return s;
  }
  // Uniform values in [lo, hi] of any numeric type (integers: whole numbers, bool: lo/hi
  // ignored, half and double: converted from float).
  Tensor tensor(const Shape& shape, float lo = -1.0f, float hi = 1.0f, DataType dtype = DataType::float32);
  Tensor ints(const Shape& shape, int64_t lo, int64_t hi, DataType dtype = DataType::int64) {
    return tensor(shape, static_cast<float>(lo), static_cast<float>(hi), dtype);
  }

 private:
  std::mt19937 gen_;
};

// One op under test. Inputs are named x0, x1, ...; outputs y0, y1, ...
struct OpCase {
  std::string op;
  std::vector<Value> inputs;  // a none Value (or an undefined tensor) marks an omitted input
  Attrs attrs;
  int64_t opset = 17;
  std::string domain;
  int outputs = 1;
  uint32_t constants = 0;     // bit i: input i is an initializer rather than a graph input
  Tolerance tol{1e-3, 1e-4};  // floats: |got - want| <= atol + rtol * |want|
  bool deterministic = true;  // false (random ops): outputs are checked for type and shape only
  // True for the float32 forms of the ops every backend is meant to run on its own kernels
  // (convolutions, products, pools, normalization, elementwise math, views): a backend that
  // declines such a case fails it.
  bool every_backend = false;
  std::string note;  // what the case exercises, for failure messages
  // Graph inputs the node does not take, read by its subgraphs from the enclosing scope.
  std::vector<std::pair<std::string, Value>> outer;

  std::string label() const { return op + (note.empty() ? "" : " (" + note + ")"); }
};

// Builder-style shorthands for the case tables.
inline OpCase op_case(std::string op, std::vector<Tensor> inputs, Attrs attrs = {}, std::string note = {}) {
  OpCase c;
  c.op = std::move(op);
  for (Tensor& t : inputs) c.inputs.push_back(t.defined() ? Value::of(std::move(t)) : Value{});
  c.attrs = std::move(attrs);
  c.note = std::move(note);
  return c;
}
inline OpCase with_opset(OpCase c, int64_t opset) {
  c.opset = opset;
  return c;
}
inline OpCase with_outputs(OpCase c, int n) {
  c.outputs = n;
  return c;
}
inline OpCase with_constants(OpCase c, uint32_t mask) {
  c.constants = mask;
  return c;
}
inline OpCase with_tol(OpCase c, double rtol, double atol) {
  c.tol = Tolerance{rtol, atol};
  return c;
}
inline OpCase with_domain(OpCase c, std::string d) {
  c.domain = std::move(d);
  return c;
}
inline OpCase nondeterministic(OpCase c) {
  c.deterministic = false;
  return c;
}
inline OpCase on_every_backend(OpCase c, bool when = true) {
  c.every_backend = when;
  return c;
}
// A case whose inputs are Values (sequences, or tensors).
inline OpCase value_case(std::string op, std::vector<Value> inputs, Attrs attrs = {}, std::string note = {}) {
  OpCase c;
  c.op = std::move(op);
  c.inputs = std::move(inputs);
  c.attrs = std::move(attrs);
  c.note = std::move(note);
  return c;
}

// Bodies of If, Loop, Scan and SequenceMap: typed inputs, nodes in order, named outputs.
struct BodyNode {
  BodyNode(std::string o, std::vector<std::string> in, std::vector<std::string> out, Attrs a = {})
      : op(std::move(o)), inputs(std::move(in)), outputs(std::move(out)), attrs(std::move(a)) {}
  std::string op;
  std::vector<std::string> inputs, outputs;
  Attrs attrs;
};
// A tensor ValueInfo; `dims` empty with `rank_known` false leaves the shape unknown.
inline ValueInfo tensor_info(std::string name, DataType elem, Shape dims = {}, bool rank_known = true) {
  ValueInfo vi{std::move(name), {}};
  vi.type.kind = TypeInfo::Kind::tensor;
  vi.type.elem = elem;
  vi.type.has_shape = rank_known;
  for (int64_t d : dims) vi.type.dims.push_back(Dim{d, {}});
  return vi;
}
std::shared_ptr<Graph> body_graph(std::vector<ValueInfo> inputs, const std::vector<BodyNode>& nodes,
                                  const std::vector<std::string>& outputs, int64_t opset = 17);

// The single-node graph of a case (inputs typed from their values) and its feeds.
std::shared_ptr<Graph> case_graph(const OpCase& c);
std::vector<Value> case_feeds(const OpCase& c);

// What running a case found, per backend name: ok, or the failure. Backends that declined the
// node (supports() or the compiled plan) are listed apart, with their reason.
struct CaseOutcome {
  Status reference = Status::ok();  // the reference run and its type/shape check
  std::map<std::string, Status> backends;
  std::map<std::string, std::string> declined;  // backend -> why it declined the node
};

// Runs the graph of `c` on the reference backend alone.
Status run_on_reference(const OpCase& c, std::vector<Value>* outputs);

// Runs `c` on the reference backend and on every other registered backend that accepts it.
CaseOutcome run_case(const OpCase& c);

// The case families (op_cases_*.cpp).
std::vector<OpCase> elementwise_cases();
std::vector<OpCase> activation_cases();
std::vector<OpCase> nn_cases();
std::vector<OpCase> recurrent_cases();  // op_cases_rnn.cpp: RNN, GRU, LSTM
std::vector<OpCase> reduce_cases();
std::vector<OpCase> shape_cases();
std::vector<OpCase> indexing_cases();
std::vector<OpCase> sequence_and_control_cases();
std::vector<OpCase> misc_cases();
std::vector<OpCase> random_and_half_cases();
std::vector<OpCase> quantize_cases();  // op_cases_quantize.cpp: standard and com.microsoft 8-bit ops
std::vector<OpCase> int8_cases();      // op_cases_int8.cpp: cpu-specific 8-bit shapes (nhwc chains, fused dynamic layers)

}  // namespace tandem::testing
