// kernel.h: how a reference kernel sees one node execution.
//
// A reference kernel is a plain function `Status fn(KernelContext&)`. It reads its inputs and
// the node's attributes, validates what it needs, allocates and computes its outputs and hands
// them back with set_output(). Reference kernels are the numerical specification of tandem:
// keep them naive and readable (accumulate in double where it matters), never optimize them.
//
// Lifetime: a KernelContext lives for one node execution. Input Values are borrowed from the
// executor and must not be mutated (they may be shared with other nodes); outputs are new.
#pragma once

#include <string>
#include <vector>

#include "graph/graph.h"
#include "tandem/status.h"
#include "tandem/value.h"

namespace tandem {

// Runs a nested graph (If/Loop/Scan bodies) with the current scope visible as outer scope.
class SubgraphRunner {
 public:
  virtual ~SubgraphRunner() = default;
  // `inputs` bind to g.inputs in order; returns values for g.outputs in order.
  virtual Result<std::vector<Value>> run_subgraph(const Graph& g, const std::vector<Value>& inputs) = 0;
};

class KernelContext {
 public:
  KernelContext(const Node& node, std::vector<const Value*> inputs, std::vector<Value>* outputs,
                SubgraphRunner* runner)
      : node_(node), inputs_(std::move(inputs)), outputs_(outputs), runner_(runner) {}

  const Node& node() const { return node_; }
  // The opset version of the node's domain, for ops whose signature changed across opsets.
  int64_t opset() const { return node_.opset; }

  // Number of input slots, including omitted optional ones.
  size_t num_inputs() const { return inputs_.size(); }
  // True when slot i exists, was not omitted and does not hold an empty optional.
  bool has_input(size_t i) const { return i < inputs_.size() && inputs_[i] && !inputs_[i]->is_none(); }
  // The tensor in slot i; an undefined Tensor when absent or not a tensor.
  const Tensor& input(size_t i) const;
  // The Value in slot i; a `none` Value when absent.
  const Value& input_value(size_t i) const;

  size_t num_outputs() const { return outputs_->size(); }
  // False when the model omitted output slot i (its name is empty): skip computing it.
  bool has_output(size_t i) const { return i < node_.outputs.size() && !node_.outputs[i].empty(); }
  void set_output(size_t i, Tensor t) { set_output(i, Value::of(std::move(t))); }
  void set_output(size_t i, Value v) {
    if (i < outputs_->size()) (*outputs_)[i] = std::move(v);
  }

  // Errors whose message starts with the node label: "[Conv 'stem.0'] <msg>".
  Status fail(StatusCode code, const std::string& msg) const { return {code, node_.label() + " " + msg}; }
  Status invalid(const std::string& msg) const { return fail(StatusCode::invalid_argument, msg); }
  Status unsupported(const std::string& msg) const { return fail(StatusCode::unsupported, msg); }

  Result<std::vector<Value>> run_subgraph(const Graph& g, const std::vector<Value>& inputs) {
    if (!runner_) return fail(StatusCode::internal, "no subgraph runner available");
    return runner_->run_subgraph(g, inputs);
  }

 private:
  const Node& node_;
  std::vector<const Value*> inputs_;
  std::vector<Value>* outputs_;
  SubgraphRunner* runner_;
};

using KernelFn = Status (*)(KernelContext&);

}  // namespace tandem
