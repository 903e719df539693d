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

#include "commands.h"
#include "tandem/backend_info.h"
#include "tandem/conformance.h"

namespace tandem::cli {

namespace fs = std::filesystem;

namespace {

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
    // Nodes the chosen backend does not support run on the reference backend.
    const auto backends = list_backends();
    if (std::none_of(backends.begin(), backends.end(), [&](const BackendInfo& b) { return b.name == opt->backend; })) {
      std::fprintf(stderr, "tandem conformance: unknown backend '%s'\n", opt->backend.c_str());
      *exit_code = 2;
      return;
    }
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
      const ConformanceResult r = run_conformance_case(dir, opt->backend, tol);
      using Outcome = ConformanceResult::Outcome;
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
