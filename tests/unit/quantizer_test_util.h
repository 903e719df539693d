// quantizer_test_util.h: helpers shared by the quantizer's tests (quantizer_test.cpp,
// quantizer_adjust_test.cpp): float initializers, serialized models, and running a model on the
// reference backend through the public API.
#pragma once

#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "onnx_build_util.h"
#include "tandem/model.h"

namespace tandem::testing_util {


inline std::string bytes_of(const onnx::ModelProto& m) {
  std::string s;
  m.SerializeToString(&s);
  return s;
}

inline const onnx::TensorProto* find_initializer(const onnx::GraphProto& g, const std::string& name) {
  for (const auto& t : g.initializer())
    if (t.name() == name) return &t;
  return nullptr;
}

// Runs serialized `bytes` on the reference backend; every output, in order (empty after a
// failure, which is reported as a test failure).
inline std::vector<Tensor> run_on_reference(const std::string& bytes, const std::map<std::string, Tensor>& inputs) {
  auto model = OnnxModel::from_bytes(bytes, {}, "test");
  EXPECT_TRUE(model.is_ok()) << model.status().to_string();
  if (!model) return {};
  CompileSettings settings;
  settings.backend = "reference";
  auto compiled = model->compile(settings);
  EXPECT_TRUE(compiled.is_ok()) << compiled.status().to_string();
  if (!compiled) return {};
  std::map<std::string, Value> values;
  for (const auto& [name, t] : inputs) values[name] = Value::of(t);
  auto bound = compiled->bind(values);
  EXPECT_TRUE(bound.is_ok()) << bound.status().to_string();
  if (!bound) return {};
  std::vector<Value> outputs;
  Status s = compiled->run(*bound, &outputs);
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  std::vector<Tensor> tensors;
  if (s.is_ok())
    for (const auto& v : outputs) tensors.push_back(v.tensor);
  return tensors;
}

}  // namespace tandem::testing_util
