// graph_build_util.h: builds small IR graphs in tests (inputs with their feed values,
// initializers, nodes, outputs), for tests that compile graphs on backends directly.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "tandem/tensor.h"
#include "tandem/value.h"

namespace tandem::testing {

// A small graph under construction; each input keeps the value a test feeds it.
class GraphBuilder {
 public:
  explicit GraphBuilder(int64_t opset = 13) : g_(std::make_shared<Graph>()) { g_->opsets[""] = opset; }

  // A float32 graph input; `typed` false leaves its type undeclared (as between segments).
  GraphBuilder& input(const std::string& name, const Tensor& value, bool typed = true) {
    ValueInfo vi{name, {}};
    if (typed) {
      vi.type.kind = TypeInfo::Kind::tensor;
      vi.type.elem = value.dtype();
      vi.type.has_shape = true;
      for (int64_t d : value.shape()) vi.type.dims.push_back(Dim{d, {}});
    }
    g_->inputs.push_back(vi);
    feeds_.push_back(value);
    return *this;
  }
  GraphBuilder& init(const std::string& name, const Tensor& value) {
    g_->initializers[name] = value;
    return *this;
  }
  // `domain`: "" (ai.onnx), or another (imported at version 1 if the graph does not yet).
  GraphBuilder& node(const std::string& op, std::vector<std::string> in, std::vector<std::string> out,
                     std::map<std::string, Attribute> attrs = {}, const std::string& domain = "") {
    Node n;
    n.op_type = op;
    n.name = op + std::to_string(g_->nodes.size());
    if (!g_->opsets.count(domain)) g_->opsets[domain] = 1;
    n.domain = domain;
    n.opset = g_->opsets[domain];
    n.inputs = std::move(in);
    n.outputs = std::move(out);
    n.attrs = std::move(attrs);
    n.index = static_cast<int>(g_->nodes.size());
    g_->nodes.push_back(std::move(n));
    return *this;
  }
  GraphBuilder& output(const std::string& name) {
    g_->outputs.push_back(ValueInfo{name, {}});
    return *this;
  }
  std::shared_ptr<Graph> graph() const { return g_; }
  std::vector<Value> feeds() const {
    std::vector<Value> v;
    for (const auto& t : feeds_) v.push_back(Value::of(t));
    return v;
  }

 private:
  std::shared_ptr<Graph> g_;
  std::vector<Tensor> feeds_;
};

}  // namespace tandem::testing
