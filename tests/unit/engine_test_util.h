// engine_test_util.h: helpers shared by the engine tests: a manual clock, tiny ONNX models
// built in memory, and engine creation, preparation and telemetry lookup that fail the test
// on error.
#pragma once

#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/testing.h"
#include "tandem/engine.h"

namespace tandem::testing_util {

// A clock that moves only when told to. Thread-safe.
class ManualClock final : public Clock {
 public:
  std::chrono::steady_clock::time_point now() const override {
    return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(ns_.load()));
  }
  void advance_ms(double ms) { ns_ += static_cast<int64_t>(ms * 1e6); }

 private:
  std::atomic<int64_t> ns_{int64_t{1} << 40};
};

// y = Relu(x + w): x float[1, n] (or [batch, n] with a symbolic first dim), w = 0, 0.5, 1, ...
// minus 1.
inline std::string tiny_model_bytes(int n = 8, bool symbolic_batch = false) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  auto* op = m.add_opset_import();
  op->set_domain("");
  op->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("tiny");
  auto set_info = [&](onnx::ValueInfoProto* vi, const std::string& name) {
    vi->set_name(name);
    auto* tt = vi->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    auto* d0 = tt->mutable_shape()->add_dim();
    if (symbolic_batch) d0->set_dim_param("batch");
    else d0->set_dim_value(1);
    tt->mutable_shape()->add_dim()->set_dim_value(n);
  };
  set_info(g->add_input(), "x");
  set_info(g->add_output(), "y");
  auto* w = g->add_initializer();
  w->set_name("w");
  w->set_data_type(onnx::TensorProto::FLOAT);
  w->add_dims(n);
  for (int i = 0; i < n; ++i) w->add_float_data(0.5f * static_cast<float>(i) - 1.0f);
  auto* add = g->add_node();
  add->set_op_type("Add");
  add->set_name("add");
  add->add_input("x");
  add->add_input("w");
  add->add_output("s");
  auto* relu = g->add_node();
  relu->set_op_type("Relu");
  relu->set_name("relu");
  relu->add_input("s");
  relu->add_output("y");
  std::string bytes;
  m.SerializeToString(&bytes);
  return bytes;
}

// Inputs for the tiny model: x[0, i] = i * 0.25 + offset.
inline std::map<std::string, Value> tiny_inputs(int n = 8, float offset = 0.f, int64_t batch = 1) {
  std::vector<float> v(static_cast<size_t>(n * batch));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i % static_cast<size_t>(n)) * 0.25f + offset;
  return {{"x", Value::of(Tensor::from_vector<float>({batch, n}, v))}};
}

// The expected output of the tiny model for tiny_inputs(n, offset).
inline std::vector<float> tiny_expected(int n = 8, float offset = 0.f) {
  std::vector<float> y(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    const float s = static_cast<float>(i) * 0.25f + offset + (0.5f * static_cast<float>(i) - 1.0f);
    y[static_cast<size_t>(i)] = s > 0 ? s : 0;
  }
  return y;
}

// An engine over `backends` in order; null (and a test failure) when creation fails.
inline std::unique_ptr<Engine> make_engine(std::vector<std::string> backends, int max_hung_calls_per_backend = 16) {
  EngineOptions o;
  o.backends = std::move(backends);
  o.max_hung_calls_per_backend = max_hung_calls_per_backend;
  auto e = Engine::create(o);
  EXPECT_TRUE(e.is_ok()) << e.status().to_string();
  return e.is_ok() ? std::move(e).value() : nullptr;
}

// `bytes` (the tiny model by default) prepared on `engine`; null (and a test failure) on error.
inline std::shared_ptr<PreparedModel> prepare_model(Engine& engine, const PrepareOptions& o = {},
                                                    const std::string& bytes = tiny_model_bytes()) {
  auto p = engine.prepare_bytes(bytes, o);
  EXPECT_TRUE(p.is_ok()) << p.status().to_string();
  return p.is_ok() ? *p : nullptr;
}

// The telemetry of the route (backend) named `name`; a test failure and an empty record when
// the model has none.
inline const BackendTelemetry& route_telemetry(const ModelTelemetry& t, const std::string& name) {
  for (const auto& b : t.backends)
    if (b.backend == name) return b;
  static const BackendTelemetry none;
  ADD_FAILURE() << "no route " << name;
  return none;
}
// Of a temporary telemetry: a copy, so that `const auto& b = route_telemetry(m->telemetry(), ..)`
// does not point into a destroyed object.
inline BackendTelemetry route_telemetry(ModelTelemetry&& t, const std::string& name) {
  return route_telemetry(static_cast<const ModelTelemetry&>(t), name);
}

}  // namespace tandem::testing_util
