// op_test_util.h: run one reference kernel on hand-made inputs, for unit tests of op families.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kernels/registry.h"
#include "tensor_build_util.h"

namespace tandem::testing {

inline Attribute attr_int(int64_t v) { Attribute a; a.type = AttrType::i; a.i = v; return a; }
inline Attribute attr_float(float v) { Attribute a; a.type = AttrType::f; a.f = v; return a; }
inline Attribute attr_string(std::string v) { Attribute a; a.type = AttrType::s; a.s = std::move(v); return a; }
inline Attribute attr_ints(std::vector<int64_t> v) { Attribute a; a.type = AttrType::ints; a.ints = std::move(v); return a; }
inline Attribute attr_floats(std::vector<float> v) { Attribute a; a.type = AttrType::floats; a.floats = std::move(v); return a; }
inline Attribute attr_strings(std::vector<std::string> v) { Attribute a; a.type = AttrType::strings; a.strings = std::move(v); return a; }
inline Attribute attr_tensor(Tensor t) { Attribute a; a.type = AttrType::t; a.t = std::move(t); return a; }
inline Attribute attr_graph(std::shared_ptr<Graph> g) { Attribute a; a.type = AttrType::g; a.g = std::move(g); return a; }

// Runs `op_type` (default domain, opset `opset`) on `inputs` (an undefined Tensor marks an
// omitted input) producing `num_outputs` outputs. Returns the kernel's Status.
inline Status run_op(const std::string& op_type, const std::vector<Tensor>& inputs,
                     const std::map<std::string, Attribute>& attrs, std::vector<Value>* outputs,
                     size_t num_outputs = 1, int64_t opset = 17, const std::string& domain = "") {
  Node node;
  node.op_type = op_type;
  node.name = "test";
  node.domain = domain;
  node.opset = opset;
  node.attrs = attrs;
  std::vector<Value> in_values;
  in_values.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    node.inputs.push_back(inputs[i].defined() ? "in" + std::to_string(i) : "");
    in_values.push_back(inputs[i].defined() ? Value::of(inputs[i]) : Value{});
  }
  std::vector<const Value*> ptrs;
  for (const Value& v : in_values) ptrs.push_back(&v);
  for (size_t i = 0; i < num_outputs; ++i) node.outputs.push_back("out" + std::to_string(i));
  outputs->assign(num_outputs, Value{});
  KernelFn fn = reference_kernels().find(domain, op_type);
  if (!fn) return unsupported("no reference kernel for " + op_type);
  KernelContext ctx(node, ptrs, outputs, nullptr);
  return fn(ctx);
}

// Convenience for single-output ops: returns the output tensor; fails the test on error.
inline Tensor run_op1(const std::string& op_type, const std::vector<Tensor>& inputs,
                      const std::map<std::string, Attribute>& attrs = {}, int64_t opset = 17) {
  std::vector<Value> outs;
  Status s = run_op(op_type, inputs, attrs, &outs, 1, opset);
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  if (!s.is_ok() || outs.empty()) return {};
  return outs[0].tensor;
}

template <class T>
std::vector<T> values_of(const Tensor& t) {
  if (!t.defined()) return {};
  return std::vector<T>(t.data<T>(), t.data<T>() + t.numel());
}

}  // namespace tandem::testing
