// `tandem conformance`: runs ONNX backend-test cases (model.onnx + test_data_set_*/) on one
// backend and compares with the expected outputs.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "cli/commands.h"
#include "core/compare.h"
#include "engine/placement.h"
#include "onnx/loader.h"

namespace tandem::cli {

namespace fs = std::filesystem;

namespace {

enum class Outcome { passed, failed, skipped };

struct CaseResult {
  std::string name;
  Outcome outcome = Outcome::passed;
  std::string reason;
};

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

bool is_case_dir(const fs::path& p) { return fs::exists(p / "model.onnx"); }

std::vector<fs::path> collect_cases(const std::vector<std::string>& roots, std::string* error) {
  std::vector<fs::path> cases;
  for (const std::string& r : roots) {
    fs::path root(r);
    std::error_code ec;
    if (!fs::is_directory(root, ec)) {
      *error = r + ": not a directory";
      return {};
    }
    if (is_case_dir(root)) {
      cases.push_back(root);
      continue;
    }
    for (const auto& entry : fs::directory_iterator(root, ec))
      if (entry.is_directory() && is_case_dir(entry.path())) cases.push_back(entry.path());
  }
  std::sort(cases.begin(), cases.end());
  return cases;
}

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
CaseResult run_case(const fs::path& dir, const std::vector<Backend*>& backends, const Tolerance& tol) {
  CaseResult r;
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

std::set<std::string> read_list(const std::string& path, bool* ok) {
  std::set<std::string> names;
  std::ifstream in(path);
  *ok = static_cast<bool>(in);
  std::string line;
  while (std::getline(in, line)) {
    size_t hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    line.erase(0, line.find_first_not_of(" \t"));
    line.erase(line.find_last_not_of(" \t\r") + 1);
    if (!line.empty()) names.insert(line);
  }
  return names;
}

}  // namespace

void add_conformance_command(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("conformance", "Run ONNX backend-test cases and compare outputs");
  struct Options {
    std::string backend = "reference";
    std::string json;
    std::string expected_failures;
    std::vector<std::string> dirs;
    double rtol = 1e-3;
    double atol = 1e-7;
    bool quiet = false;
  };
  auto opt = std::make_shared<Options>();
  cmd->add_option("--backend", opt->backend, "Backend to run the cases on");
  cmd->add_option("--json", opt->json, "Write per-case results to this JSON file");
  cmd->add_option("--expected-failures", opt->expected_failures,
                  "File listing the cases expected to fail; exit non-zero if another case fails or a listed one passes");
  cmd->add_option("--rtol", opt->rtol, "Relative tolerance for floats");
  cmd->add_option("--atol", opt->atol, "Absolute tolerance for floats");
  cmd->add_flag("--quiet", opt->quiet, "Print only the summary line");
  cmd->add_option("dirs", opt->dirs, "Case folders, or folders of case folders")->required();
  cmd->callback([opt, exit_code] {
    Backend* backend = find_backend(opt->backend);
    if (!backend) {
      std::fprintf(stderr, "tandem conformance: unknown backend '%s'\n", opt->backend.c_str());
      *exit_code = 2;
      return;
    }
    // Nodes the chosen backend does not support run on the reference backend.
    std::vector<Backend*> backends{backend};
    if (backend->name() != "reference") backends.push_back(find_backend("reference"));
    std::string error;
    auto cases = collect_cases(opt->dirs, &error);
    if (!error.empty()) {
      std::fprintf(stderr, "tandem conformance: %s\n", error.c_str());
      *exit_code = 2;
      return;
    }
    std::set<std::string> expected_failures;
    if (!opt->expected_failures.empty()) {
      bool ok = false;
      expected_failures = read_list(opt->expected_failures, &ok);
      if (!ok) {
        std::fprintf(stderr, "tandem conformance: cannot read %s\n", opt->expected_failures.c_str());
        *exit_code = 2;
        return;
      }
    }
    Tolerance tol{opt->rtol, opt->atol};
    int passed = 0, failed = 0, skipped = 0;
    std::vector<std::string> unexpected_failures, unexpected_passes;
    nlohmann::json report = nlohmann::json::array();
    for (const fs::path& dir : cases) {
      CaseResult r = run_case(dir, backends, tol);
      const char* label = r.outcome == Outcome::passed ? "passed" : r.outcome == Outcome::failed ? "failed" : "skipped";
      report.push_back({{"case", r.name}, {"folder", dir.parent_path().filename().string()}, {"result", label},
                        {"reason", r.reason}});
      const bool listed = expected_failures.count(r.name) > 0;
      if (r.outcome == Outcome::passed) {
        ++passed;
        if (listed) unexpected_passes.push_back(r.name);
      } else if (r.outcome == Outcome::failed) {
        ++failed;
        if (!opt->quiet) std::printf("FAIL %s: %s\n", r.name.c_str(), r.reason.c_str());
        if (!opt->expected_failures.empty() && !listed) unexpected_failures.push_back(r.name);
      } else {
        ++skipped;
        if (!opt->quiet) std::printf("SKIP %s: %s\n", r.name.c_str(), r.reason.c_str());
      }
      std::fflush(stdout);
    }
    if (!opt->json.empty()) {
      std::ofstream out(opt->json);
      out << nlohmann::json{{"backend", opt->backend}, {"passed", passed}, {"failed", failed}, {"skipped", skipped},
                            {"cases", report}}
                 .dump(2)
          << "\n";
    }
    for (const auto& n : unexpected_failures) std::printf("UNEXPECTED FAILURE %s (not in the expected-failures list)\n", n.c_str());
    for (const auto& n : unexpected_passes)
      std::printf("UNEXPECTED PASS %s (now passes: remove it from the expected-failures list)\n", n.c_str());
    std::printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    if (!opt->expected_failures.empty()) *exit_code = (unexpected_failures.empty() && unexpected_passes.empty()) ? 0 : 1;
    else *exit_code = failed == 0 ? 0 : 1;
  });
}

}  // namespace tandem::cli
