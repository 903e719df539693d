// golden_models_test.cpp: the three PP-OCR models under models/ run on the reference backend
// must reproduce the ONNX Runtime outputs stored in tests/golden/<case>/ (made by
// tests/golden/make_goldens.mjs; see tests/golden/README.md). The models are not in git:
// scripts/setup fetches them, and a missing model is a failure, not a skip.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "core/compare.h"
#include "core/npy.h"
#include "onnx/loader.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;

// Tolerance for float outputs against ONNX Runtime (different summation orders).
constexpr Tolerance kGoldenTolerance{1e-3, 1e-4};

// File name the golden scripts use for a value name: [A-Za-z0-9._-] kept, others become '_'.
std::string sanitize(const std::string& name) {
  std::string s = name;
  for (char& c : s) {
    bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                c == '_' || c == '-';
    if (!keep) c = '_';
  }
  return s;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Loads models/<model_file>, feeds tests/golden/<case_dir>/input_<name>.npy for each graph
// input, runs on the reference backend and compares every graph output with
// tests/golden/<case_dir>/<output name>.npy.
void run_golden(const std::string& model_file, const std::string& case_dir) {
  const fs::path model_path = fs::path(TANDEM_SOURCE_DIR) / "models" / model_file;
  const fs::path golden_dir = fs::path(TANDEM_SOURCE_DIR) / "tests" / "golden" / case_dir;
  ASSERT_TRUE(fs::exists(model_path)) << model_path.string()
                                      << " is missing: run scripts/setup to fetch the models";
  ASSERT_TRUE(fs::is_directory(golden_dir))
      << golden_dir.string() << " is missing: regenerate it with node tests/golden/make_goldens.mjs";

  auto model = load_model(model_path);
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  const Graph& graph = *model->graph;

  Backend* backend = find_backend("reference");
  ASSERT_NE(backend, nullptr) << "the reference backend is not registered";

  auto t0 = std::chrono::steady_clock::now();
  auto plan = backend->compile(graph, {});
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  const double compile_s = seconds_since(t0);

  std::vector<Value> inputs;
  for (const ValueInfo& in : graph.inputs) {
    const fs::path file = golden_dir / ("input_" + sanitize(in.name) + ".npy");
    if (!fs::exists(file)) {
      // An input backed by an initializer may be left out, but only at the end of the list.
      ASSERT_TRUE(graph.initializers.count(in.name)) << "no golden input " << file.string();
      break;
    }
    auto t = read_npy(file);
    ASSERT_TRUE(t.is_ok()) << t.status().to_string();
    inputs.push_back(Value::of(std::move(t).value()));
  }

  std::vector<Value> outputs;
  t0 = std::chrono::steady_clock::now();
  Status s = backend->run(**plan, inputs, &outputs, {});
  const double run_s = seconds_since(t0);
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  ASSERT_EQ(outputs.size(), graph.outputs.size());

  for (size_t i = 0; i < graph.outputs.size(); ++i) {
    const std::string& name = graph.outputs[i].name;
    SCOPED_TRACE("output '" + name + "'");
    auto expected = read_npy(golden_dir / (sanitize(name) + ".npy"));
    ASSERT_TRUE(expected.is_ok()) << expected.status().to_string();
    ASSERT_TRUE(outputs[i].is_tensor()) << "the reference backend did not produce a tensor";
    const Tensor& actual = outputs[i].tensor;
    Status c = compare_tensors(*expected, actual, kGoldenTolerance);
    if (!c.is_ok() && expected->shape() == actual.shape() && expected->dtype() == actual.dtype()) {
      ErrorStats e = error_stats(*expected, actual, kGoldenTolerance);
      ADD_FAILURE() << c.message() << " (max_abs " << e.max_abs << ", max_rel " << e.max_rel << ", rmse "
                    << e.rmse << ", " << e.mismatches << " of " << actual.numel() << " elements outside tolerance)";
    } else {
      EXPECT_TRUE(c.is_ok()) << c.message();
    }
  }
  std::printf("[ timing   ] %s on reference: compile %.3f s, run %.3f s\n", model_file.c_str(), compile_s, run_s);
  ::testing::Test::RecordProperty("compile_seconds", std::to_string(compile_s));
  ::testing::Test::RecordProperty("run_seconds", std::to_string(run_s));
}

TEST(GoldenModels, Detection) { run_golden("ch_PP-OCRv4_det_infer.onnx", "det"); }

// A synthetic text page: the detector responds strongly, so this checks real activations.
TEST(GoldenModels, DetectionOnTextPage) { run_golden("ch_PP-OCRv4_det_infer.onnx", "det_text"); }

TEST(GoldenModels, Recognition) { run_golden("ch_PP-OCRv4_rec_infer.onnx", "rec"); }

TEST(GoldenModels, Classifier) { run_golden("ch_ppocr_mobile_v2.0_cls_infer.onnx", "cls"); }

}  // namespace
}  // namespace tandem
