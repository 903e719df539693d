// run_conformance_case (tandem/conformance.h): one ONNX backend-test case on one backend.
#include "tandem/conformance.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <set>
#include <vector>

#include "backends/backend.h"
#include "engine/placement.h"
#include "onnx/loader.h"

namespace tandem {

namespace fs = std::filesystem;

namespace {

using Outcome = ConformanceResult::Outcome;

// Ops whose outputs depend on a random-number generator: such cases cannot be compared.
const std::set<std::string>& random_ops() {
  static const std::set<std::string> ops = {"RandomUniform", "RandomNormal", "RandomUniformLike",
                                             "RandomNormalLike", "Bernoulli", "Multinomial"};
  return ops;
}

// Name of a random op used anywhere in the graph (subgraphs included), or "". Dropout in
// training mode with a non-zero ratio is random too.
std::string find_random_op(const Graph& g) {
  for (const Node& n : g.nodes) {
    if (random_ops().count(n.op_type)) return n.op_type;
    for (const auto& [k, a] : n.attrs) {
      if (a.g) {
        std::string r = find_random_op(*a.g);
        if (!r.empty()) return r;
      }
    }
  }
  return "";
}

// A value known before running: a bound graph input or an initializer.
const Tensor* known_tensor(const Graph& g, const std::map<std::string, Value>& inputs, const std::string& name) {
  auto it = inputs.find(name);
  if (it != inputs.end() && it->second.is_tensor()) return &it->second.tensor;
  auto init = g.initializers.find(name);
  return init == g.initializers.end() ? nullptr : &init->second;
}

// Dropout in training mode with a non-zero ratio draws random numbers; "" when none does.
std::string find_random_dropout(const Graph& g, const std::map<std::string, Value>& inputs) {
  for (const Node& n : g.nodes) {
    if (n.op_type != "Dropout" || n.inputs.size() < 3 || n.inputs[2].empty()) continue;
    const Tensor* training = known_tensor(g, inputs, n.inputs[2]);
    if (!training || training->numel() != 1 || !training->data<bool>()[0]) continue;
    const Tensor* ratio = n.inputs[1].empty() ? nullptr : known_tensor(g, inputs, n.inputs[1]);
    if (ratio && ratio->numel() == 1 && ratio->dtype() == DataType::float32 && ratio->data<float>()[0] == 0.0f) continue;
    return n.label() + " in training mode";
  }
  return "";
}

// The entries of `dir` whose names start with `prefix`, in the order of their numeric suffix.
std::vector<fs::path> sorted_matching(const fs::path& dir, const std::string& prefix) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().filename().string().rfind(prefix, 0) == 0) out.push_back(e.path());
  // input_10.pb sorts after input_9.pb
  std::sort(out.begin(), out.end(), [](const fs::path& a, const fs::path& b) {
    auto num = [](const fs::path& p) {
      std::string s = p.stem().string();
      size_t u = s.rfind('_');
      return u == std::string::npos ? 0L : std::atol(s.c_str() + u + 1);
    };
    return num(a) < num(b);
  });
  return out;
}

// Runs one case with the nodes placed on `backends` in preference order.
ConformanceResult run_case(const fs::path& dir, const std::vector<Backend*>& backends, const Tolerance& tol) {
  ConformanceResult r;
  r.name = dir.filename().string();
  auto model = load_model(dir / "model.onnx");
  if (!model) return {r.name, Outcome::failed, model.status().message()};
  std::string random = find_random_op(*model->graph);
  if (!random.empty()) return {r.name, Outcome::skipped, "uses random-number op " + random};
  auto placed = PlacedModel::create(model->graph, backends);
  if (!placed) return {r.name, Outcome::failed, placed.status().message()};
  const Graph& g = *model->graph;
  auto data_sets = sorted_matching(dir, "test_data_set_");
  if (data_sets.empty()) return {r.name, Outcome::skipped, "no test_data_set_* folder"};
  for (const fs::path& ds : data_sets) {
    auto input_files = sorted_matching(ds, "input_");
    auto output_files = sorted_matching(ds, "output_");
    if (input_files.size() > g.inputs.size())
      return {r.name, Outcome::failed, ds.filename().string() + " has more inputs than the model"};
    std::vector<Value> inputs;
    for (size_t i = 0; i < input_files.size(); ++i) {
      auto v = load_value_pb(input_files[i], g.inputs[i].type);
      if (!v) return {r.name, Outcome::failed, v.status().message()};
      inputs.push_back(std::move(v).value());
    }
    std::map<std::string, Value> named;
    for (size_t i = 0; i < inputs.size(); ++i) named[g.inputs[i].name] = inputs[i];
    std::string random_dropout = find_random_dropout(g, named);
    if (!random_dropout.empty()) return {r.name, Outcome::skipped, "draws random numbers: " + random_dropout};
    std::vector<Value> outputs;
    Status s = (*placed)->run(inputs, &outputs);
    if (!s.is_ok()) return {r.name, Outcome::failed, s.to_string()};
    if (output_files.size() > outputs.size())
      return {r.name, Outcome::failed, "the model produced fewer outputs than expected"};
    for (size_t i = 0; i < output_files.size(); ++i) {
      auto expected = load_value_pb(output_files[i], g.outputs[i].type);
      if (!expected) return {r.name, Outcome::failed, expected.status().message()};
      Status c = compare_values(*expected, outputs[i], tol);
      if (!c.is_ok())
        return {r.name, Outcome::failed, "output '" + g.outputs[i].name + "' " + c.message()};
    }
  }
  return r;
}

}  // namespace

ConformanceResult run_conformance_case(const fs::path& case_dir, std::string_view backend_name,
                                       const Tolerance& tolerance) {
  Backend* backend = find_backend(backend_name);
  if (!backend)
    return {case_dir.filename().string(), Outcome::failed, "unknown backend '" + std::string(backend_name) + "'"};
  std::vector<Backend*> backends{backend};
  if (!backend->is_reference()) backends.push_back(reference_backend());
  return run_case(case_dir, backends, tolerance);
}

}  // namespace tandem
