// End-to-end tests of the `tandem` CLI: bad requests give one error line and a non-zero exit;
// good ones produce the right files. The binary's path comes from TANDEM_CLI.
#include <gtest/gtest.h>

#include <limits>
#include <regex>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tandem/tensor_io.h"
#include "tandem/tensor.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs `tandem <args>` through the shell, capturing stdout and stderr separately; `env` (such as
// "TANDEM_CPU_ISA=avx2") is prefixed to the command line.
CommandResult run_cli(const std::string& args, const fs::path& dir, const std::string& env = "") {
  const fs::path out = dir / "stdout.txt";
  const fs::path err = dir / "stderr.txt";
  const std::string cmd = (env.empty() ? "" : env + " ") + std::string(TANDEM_CLI) + " " + args + " >" +
                          out.string() + " 2>" + err.string();
  const int status = std::system(cmd.c_str());
  auto slurp = [](const fs::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("tandem_cli_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const Tensor& t) {
    const fs::path p = dir_ / name;
    fs::create_directories(p.parent_path());
    EXPECT_TRUE(write_npy(p, t).is_ok());
    return p.string();
  }
  // Expects a failure with exactly one line on stderr that contains `needle`.
  void expect_one_line_error(const CommandResult& r, const std::string& needle) {
    EXPECT_NE(r.exit_code, 0);
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  }

  fs::path dir_;
  const std::string add_model_ = std::string(TANDEM_ONNX_TESTDATA) + "/node/test_add/model.onnx";
};

Tensor filled(DataType dtype, Shape shape) { return Tensor(dtype, std::move(shape)); }

TEST_F(CliTest, RunWritesOutputsAndIsSeeded) {
  auto r1 = run_cli("run " + add_model_ + " --random-inputs --seed 3 --output-dir " + (dir_ / "a").string(), dir_);
  ASSERT_EQ(r1.exit_code, 0) << r1.err;
  EXPECT_NE(r1.out.find("sum float32[3x4x5] min"), std::string::npos) << r1.out;
  auto r2 = run_cli("run " + add_model_ + " --random-inputs --seed 3 --output-dir " + (dir_ / "b").string(), dir_);
  ASSERT_EQ(r2.exit_code, 0) << r2.err;
  auto a = read_npy(dir_ / "a" / "sum.npy");
  auto b = read_npy(dir_ / "b" / "sum.npy");
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  ASSERT_EQ(a->shape(), (Shape{3, 4, 5}));
  for (int64_t i = 0; i < a->numel(); ++i) EXPECT_EQ(a->data<float>()[i], b->data<float>()[i]);
}

TEST_F(CliTest, RunComputesFromGivenInputs) {
  Tensor x = filled(DataType::float32, {3, 4, 5});
  Tensor y = filled(DataType::float32, {3, 4, 5});
  for (int i = 0; i < 60; ++i) {
    x.data<float>()[i] = static_cast<float>(i);
    y.data<float>()[i] = 0.5f;
  }
  // The value after the first '=' is the path, even when the path holds '=' itself.
  const std::string xp = write("with=equals/x.npy", x);
  const std::string yp = write("y.npy", y);
  auto r = run_cli("run " + add_model_ + " --input x=" + xp + " --input y=" + yp + " --output-dir " + dir_.string(), dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto sum = read_npy(dir_ / "sum.npy");
  ASSERT_TRUE(sum.is_ok());
  for (int i = 0; i < 60; ++i) EXPECT_EQ(sum->data<float>()[i], static_cast<float>(i) + 0.5f);
}

TEST_F(CliTest, WrongDtype) {
  const std::string x = write("x.npy", filled(DataType::int64, {3, 4, 5}));
  expect_one_line_error(run_cli("run " + add_model_ + " --input x=" + x + " --random-inputs", dir_),
                        "input 'x' has dtype int64, expected float32");
}

TEST_F(CliTest, WrongRank) {
  const std::string x = write("x.npy", filled(DataType::float32, {3, 20}));
  expect_one_line_error(run_cli("run " + add_model_ + " --input x=" + x + " --random-inputs", dir_), "has rank 2");
}

TEST_F(CliTest, WrongDims) {
  const std::string x = write("x.npy", filled(DataType::float32, {3, 4, 6}));
  expect_one_line_error(run_cli("run " + add_model_ + " --input x=" + x + " --random-inputs", dir_),
                        "dim 2 must be 5");
}

TEST_F(CliTest, MissingInput) {
  const std::string x = write("x.npy", filled(DataType::float32, {3, 4, 5}));
  expect_one_line_error(run_cli("run " + add_model_ + " --input x=" + x, dir_), "missing input 'y'");
}

TEST_F(CliTest, UnknownInputName) {
  const std::string x = write("x.npy", filled(DataType::float32, {3, 4, 5}));
  expect_one_line_error(run_cli("run " + add_model_ + " --input nope=" + x + " --random-inputs", dir_),
                        "unknown input 'nope'");
}

TEST_F(CliTest, MalformedAssignmentAndShape) {
  expect_one_line_error(run_cli("run " + add_model_ + " --input x.npy", dir_), "expects NAME=VALUE");
  expect_one_line_error(run_cli("run " + add_model_ + " --random-inputs --shape x=3xfoo", dir_), "bad dims");
  expect_one_line_error(run_cli("run " + add_model_ + " --random-inputs --shape x=3x4", dir_), "rank");
}

TEST_F(CliTest, BadFiles) {
  expect_one_line_error(run_cli("run " + (dir_ / "missing.onnx").string(), dir_), "missing.onnx");
  {
    std::ofstream garbage(dir_ / "garbage.onnx", std::ios::binary);
    for (int i = 0; i < 1000; ++i) garbage.put(static_cast<char>((i * 7919) % 251));
  }
  expect_one_line_error(run_cli("run " + (dir_ / "garbage.onnx").string(), dir_), "garbage.onnx");
  {
    std::ofstream bad(dir_ / "bad.npy", std::ios::binary);
    bad << "not numpy";
  }
  expect_one_line_error(run_cli("run " + add_model_ + " --random-inputs --input x=" + (dir_ / "bad.npy").string(), dir_),
                        "not a .npy file");
  expect_one_line_error(run_cli("run " + add_model_ + " --backend nosuch", dir_), "unknown backend 'nosuch'");
}

TEST_F(CliTest, InfoListsModel) {
  auto r = run_cli("info " + add_model_, dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("x float32[3,4,5]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Add"), std::string::npos);
}

// --optimized shows the rewritten graph: folded shape subgraphs, fused Conv chains and, with
// the input shape fixed, the kernels with their layouts.
TEST_F(CliTest, InfoOptimizedListsTheRewrittenGraph) {
  const std::string model = std::string(TANDEM_SOURCE_DIR) + "/models/ch_ppocr_mobile_v2.0_cls_infer.onnx";
  if (!fs::exists(model)) GTEST_SKIP() << model << " is missing: run scripts/setup";
  auto r = run_cli("info " + model + " --optimized --shape x=1x3x48x192 --threads 1", dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string backend = r.out.find("optimized for backend cpu") != std::string::npos ? "cpu" : "reference";
  if (backend == "reference") GTEST_SKIP() << "this build has no cpu backend";
  EXPECT_NE(r.out.find("nodes folded to constants"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("fused: Conv + BatchNormalization"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("instance x=1x3x48x192"), std::string::npos) << r.out;
  // The blocked layout follows the ISA path: 16 channels per block on AVX-512, 8 on AVX2.
  const bool blocked_16 = r.out.find("cpu isa: avx512 (") != std::string::npos;
  EXPECT_NE(r.out.find(blocked_16 ? "nChw16c" : "nChw8c"), std::string::npos) << r.out;
  expect_one_line_error(run_cli("info " + model + " --optimized --shape x=1x3x48", dir_), "has rank 4");
  expect_one_line_error(run_cli("info " + model + " --optimized --backend nosuch", dir_), "unknown backend 'nosuch'");
}

// The oneDNN implementation of every convolution, from TANDEM_CPU_VERBOSE's notes
// ("[Conv 'name'] 1x3x48x192 -> 1x8x24x96: jit:avx512_core, 1/1 post-ops fused").
std::vector<std::string> conv_impls(const std::string& notes) {
  std::vector<std::string> impls;
  std::istringstream in(notes);
  for (std::string l; std::getline(in, l);) {
    const size_t arrow = l.find(" -> ");
    if (l.find("[Conv '") == std::string::npos || arrow == std::string::npos) continue;
    const size_t colon = l.find(": ", arrow);
    if (colon == std::string::npos) continue;
    impls.push_back(l.substr(colon + 2, l.find(',', colon) - colon - 2));
  }
  return impls;
}

// TANDEM_CPU_ISA caps the cpu backend and oneDNN: `info --optimized` names the path in use, and
// no convolution runs an AVX-512 kernel under a lower cap (nor a reference one: each path has
// oneDNN jit kernels for the layouts it picks).
TEST_F(CliTest, CpuIsaCapReachesOneDnn) {
  const std::string model = std::string(TANDEM_SOURCE_DIR) + "/models/ch_ppocr_mobile_v2.0_cls_infer.onnx";
  if (!fs::exists(model)) GTEST_SKIP() << model << " is missing: run scripts/setup";
  const std::string args = "info " + model + " --optimized --shape x=1x3x48x192 --threads 1";
  auto native = run_cli(args, dir_, "TANDEM_CPU_ISA= TANDEM_CPU_VERBOSE=1");
  ASSERT_EQ(native.exit_code, 0) << native.err;
  if (native.out.find("optimized for backend cpu") == std::string::npos) GTEST_SKIP() << "this build has no cpu backend";
  const bool avx512 = native.out.find("cpu isa: avx512 (") != std::string::npos;
  EXPECT_NE(native.out.find("cap: none"), std::string::npos) << native.out;
  if (avx512) {
    bool any = false;
    for (const std::string& impl : conv_impls(native.err)) any |= impl.find("avx512") != std::string::npos;
    EXPECT_TRUE(any) << "no AVX-512 convolution on an AVX-512 machine:\n" << native.err;
  }
  for (const std::string isa : {"avx2", "baseline"}) {
    SCOPED_TRACE("TANDEM_CPU_ISA=" + isa);
    auto r = run_cli(args, dir_, "TANDEM_CPU_ISA=" + isa + " TANDEM_CPU_VERBOSE=1");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const bool has_avx2 = native.out.find("cpu isa: baseline (") == std::string::npos;
    const std::string want = isa == "avx2" && has_avx2 ? "avx2" : "baseline";
    EXPECT_NE(r.out.find("cpu isa: " + want + " ("), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("cap: TANDEM_CPU_ISA=" + isa), std::string::npos) << r.out;
    const std::vector<std::string> impls = conv_impls(r.err);
    EXPECT_GE(impls.size(), 50u) << r.err;  // the classifier has 53 convolutions
    for (const std::string& impl : impls) {
      EXPECT_EQ(impl.find("avx512"), std::string::npos) << impl;
      EXPECT_NE(impl.rfind("ref", 0), 0u) << impl;
      if (isa == "baseline") {
        EXPECT_EQ(impl.find("avx"), std::string::npos) << impl;
      }
    }
  }
}

// bench prints the percentiles and writes the JSON bench/compare reads.
TEST_F(CliTest, BenchWritesPercentilesAndPeakRss) {
  const fs::path json = dir_ / "bench.json";
  auto r = run_cli("bench " + add_model_ + " --warmup 1 --iters 7 --no-progress --json " + json.string(), dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("p50"), std::string::npos) << r.out;
  std::ifstream in(json);
  std::stringstream text;
  text << in.rdbuf();
  for (const char* key : {"\"p50_ms\"", "\"p90_ms\"", "\"p99_ms\"", "\"min_ms\"", "\"max_ms\"", "\"iters\": 7", "\"peak_rss_mb\""})
    EXPECT_NE(text.str().find(key), std::string::npos) << key << " missing from " << text.str();
  expect_one_line_error(run_cli("bench " + add_model_ + " --iters 0", dir_), "--iters");
}

// soak with injected errors: fallback loses nothing, strict mode reports typed failures, and
// the JSON summary says who served what.
TEST_F(CliTest, SoakFallsBackAndStrictModeFails) {
  const fs::path json = dir_ / "soak.json";
  auto r = run_cli("soak " + add_model_ + " --requests 300 --threads 2 --inject error=0.3 --quiet --json " + json.string(),
                   dir_);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("succeeded 300, failed 0"), std::string::npos) << r.out;
  std::ifstream in(json);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_NE(text.str().find("\"failed\": 0"), std::string::npos) << text.str().substr(0, 400);
  EXPECT_NE(text.str().find("\"reference\""), std::string::npos);

  r = run_cli("soak " + add_model_ + " --requests 200 --inject error=0.5 --strict --quiet", dir_);
  EXPECT_NE(r.out.find("device_error"), std::string::npos) << r.out << r.err;
  EXPECT_EQ(r.out.find("succeeded 200,"), std::string::npos) << "strict mode cannot hide injected errors: " << r.out;
  expect_one_line_error(run_cli("soak " + add_model_ + " --requests 10 --inject error=2", dir_), "error");

  // --retries: a failed call is made again on its route first (until its breaker opens: 20
  // failed calls, 10 requests), or never with --retries 0.
  r = run_cli("soak " + add_model_ + " --requests 30 --inject error=1.0", dir_);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("retries 10"), std::string::npos) << r.out;
  r = run_cli("soak " + add_model_ + " --requests 30 --inject error=1.0 --retries 0", dir_);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out.find("retries"), std::string::npos) << r.out;
  expect_one_line_error(run_cli("soak " + add_model_ + " --requests 10 --retries -1", dir_), "--retries");
}

// soak --cache-dir: the engine keeps its prepare measurements in the folder; a folder that
// cannot be made is one error line.
TEST_F(CliTest, SoakKeepsItsMeasurementsInTheCacheFolder) {
  const fs::path cache = dir_ / "soak-cache";
  auto r = run_cli("soak " + add_model_ + " --requests 5 --quiet --cache-dir " + cache.string(), dir_);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  bool kept = false;
  for (const auto& entry : fs::directory_iterator(cache)) kept = kept || entry.path().extension() == ".json";
  EXPECT_TRUE(kept) << "nothing kept in " << cache;
  std::ofstream(dir_ / "a-file") << "x";
  expect_one_line_error(
      run_cli("soak " + add_model_ + " --requests 5 --cache-dir " + (dir_ / "a-file" / "cache").string(), dir_),
      "cache folder");
}

// bench --cache-dir hands the folder to the backends' compile (made if missing), with or
// without the engine; one that cannot be made is one error line.
TEST_F(CliTest, BenchTakesACacheFolder) {
  for (const std::string routes : {"", " --routes cpu,reference"}) {
    const fs::path cache = dir_ / ("bench-cache" + std::to_string(routes.size())) / "nested";
    auto r = run_cli("bench " + add_model_ + " --iters 2 --no-progress --cache-dir " + cache.string() + routes, dir_);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_TRUE(fs::is_directory(cache)) << routes;
  }
  std::ofstream(dir_ / "a-file") << "x";
  expect_one_line_error(
      run_cli("bench " + add_model_ + " --iters 2 --no-progress --cache-dir " + (dir_ / "a-file" / "cache").string(),
              dir_),
      "cache folder");
}

// soak --input: the file's tensor goes into every request (a NaN in it fails every call
// under the output guard, which seeded random inputs never do); bad files and names give one
// error line.
TEST_F(CliTest, SoakSendsTheGivenInputFiles) {
  Tensor x = filled(DataType::float32, {3, 4, 5});
  Tensor y = filled(DataType::float32, {3, 4, 5});
  for (int i = 0; i < 60; ++i) {
    x.data<float>()[i] = static_cast<float>(i);
    y.data<float>()[i] = 0.5f;
  }
  const std::string xp = write("x.npy", x);
  const std::string yp = write("y.npy", y);
  const std::string base = "soak " + add_model_ + " --requests 40 --quiet --routes cpu,reference --input y=" + yp;
  auto r = run_cli(base + " --input x=" + xp + " --inject route=cpu,offset=0.25 --parity-sample 1", dir_);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("succeeded 40, failed 0"), std::string::npos) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("faulty\\(cpu\\): .*parity [1-9][0-9]*/[1-9]"))) << r.out;
  x.data<float>()[7] = std::numeric_limits<float>::quiet_NaN();
  const std::string nan_xp = write("nan/x.npy", x);
  r = run_cli(base + " --input x=" + nan_xp + " --output-guard", dir_);
  EXPECT_NE(r.out.find("succeeded 0, failed 40"), std::string::npos) << r.out << r.err;
  r = run_cli(base + " --output-guard", dir_);  // x random: nothing fails
  EXPECT_NE(r.out.find("succeeded 40, failed 0"), std::string::npos) << r.out << r.err;
  expect_one_line_error(run_cli(base + " --input z=" + xp, dir_), "unknown input 'z'");
  expect_one_line_error(run_cli(base + " --input x=" + (dir_ / "missing.npy").string(), dir_), "input 'x'");
  expect_one_line_error(run_cli(base + " --input x=" + xp + " --shape x=2x2", dir_), "--shape x");
}

// Route chains on the CLI: fault injection on a named route, the chain printed, nothing
// reaching the last resort; bad chains give one error line.
TEST_F(CliTest, SoakAndBenchTakeARouteChain) {
  auto r = run_cli("soak " + add_model_ +
                       " --requests 200 --threads 2 --routes cpu,reference --inject route=cpu,error=1.0 --quiet",
                   dir_);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("routes: faulty(cpu) -> reference"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("succeeded 200, failed 0"), std::string::npos) << r.out;
  r = run_cli("bench " + add_model_ + " --routes cpu,reference --iters 5 --no-progress", dir_);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("routes cpu -> reference (through the engine); served by: cpu 8"), std::string::npos) << r.out;
  expect_one_line_error(run_cli("soak " + add_model_ + " --requests 10 --routes cpu@int3", dir_), "int3");
  expect_one_line_error(run_cli("soak " + add_model_ + " --requests 10 --routes reference,cpu", dir_), "must be last");
  expect_one_line_error(run_cli("soak " + add_model_ + " --requests 10 --inject route=gpu,error=0.5", dir_),
                        "no route 'gpu'");
  expect_one_line_error(run_cli("bench " + add_model_ + " --precision fp16 --no-progress", dir_), "fp16");
}

// --precision int8 quantizes the model at prepare (int8 weights per channel, activations per
// call) and runs it on the cpu backend; through the engine the chain is cpu@int8 -> cpu ->
// reference and telemetry labels each route with its precision.
TEST_F(CliTest, RunAtInt8QuantizesTheModel) {
  const std::string cls = std::string(TANDEM_SOURCE_DIR) + "/models/ch_ppocr_mobile_v2.0_cls_infer.onnx";
  const std::string shape = " --random-inputs --shape x=1x3x48x192";
  auto r = run_cli("run " + cls + " --precision int8" + shape, dir_);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("note: int8: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" nodes quantized (Conv "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("served by cpu@int8: "), std::string::npos) << r.out;
  const fs::path json = dir_ / "metrics.json";
  r = run_cli("run " + cls + " --precision int8 --units cpu_only --metrics-json " + json.string() + shape, dir_);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("served by cpu@int8: "), std::string::npos) << r.out;
  std::ifstream in(json);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_NE(text.str().find("route chain: cpu@int8 -> cpu -> reference"), std::string::npos) << text.str();
  EXPECT_NE(text.str().find("\"precision\": \"int8\""), std::string::npos) << text.str();
  // info and bench take the precision too.
  r = run_cli("info " + cls + " --optimized --precision int8 --shape x=1x3x48x192", dir_);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("ConvInteger"), std::string::npos) << r.out;
  r = run_cli("bench " + cls + " --precision int8 --iters 2 --warmup 1 --no-progress" + " --shape x=1x3x48x192", dir_);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  // Nothing to quantize, and the reference backend asked for int8: one error line each.
  expect_one_line_error(run_cli("run " + add_model_ + " --precision int8 --random-inputs", dir_),
                        "nothing in the model can be quantized");
  expect_one_line_error(run_cli("run " + cls + " --backend reference --precision int8" + shape, dir_), "ground truth");
}

// --precision bf16 without --backend goes to the cpu backend, which computes in bf16 where the
// CPU has it natively and otherwise refuses with its reason; it never lands on the reference
// backend, which would compute in float32 under a bf16 label.
TEST_F(CliTest, RunAtBf16GoesToTheCpuBackend) {
  const std::string cls = std::string(TANDEM_SOURCE_DIR) + "/models/ch_ppocr_mobile_v2.0_cls_infer.onnx";
  auto r = run_cli("run " + cls + " --precision bf16 --random-inputs --shape x=1x3x48x192", dir_);
  EXPECT_EQ(r.out.find("reference@bf16"), std::string::npos) << r.out;
  if (r.exit_code == 0) {
    EXPECT_NE(r.out.find("served by cpu@bf16: "), std::string::npos) << r.out;
  } else {
    expect_one_line_error(r, "AVX512_BF16");
  }
}

// convert writes a float16 model, reports sizes, and compares it with the original.
TEST_F(CliTest, ConvertWritesAFloat16ModelAndComparesIt) {
  const fs::path out = dir_ / "add_fp16.onnx";
  auto r = run_cli("convert " + add_model_ + " --to fp16 -o " + out.string(), dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(out));
  EXPECT_NE(r.out.find("size: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("output sum float16[3x4x5]: max-abs "), std::string::npos) << r.out;
  auto info = run_cli("info " + out.string(), dir_);
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_NE(info.out.find("x float16[3,4,5]"), std::string::npos) << info.out;

  const std::string model = std::string(TANDEM_SOURCE_DIR) + "/models/ch_ppocr_mobile_v2.0_cls_infer.onnx";
  if (!fs::exists(model)) GTEST_SKIP() << model << " is missing: run scripts/setup";
  r = run_cli("convert " + model + " --to fp16 --keep-io-types --shape x=1x3x48x192 -o " + out.string(), dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string key = "output softmax_0.tmp_0 float32[1x2]: max-abs ";
  const size_t at = r.out.find(key);
  ASSERT_NE(at, std::string::npos) << r.out;
  EXPECT_LT(std::stod(r.out.substr(at + key.size())), 1e-2) << r.out;
  EXPECT_LT(fs::file_size(out), fs::file_size(model) * 6 / 10);
}

TEST_F(CliTest, ConvertBadInput) {
  const std::string out = (dir_ / "out.onnx").string();
  expect_one_line_error(run_cli("convert " + (dir_ / "missing.onnx").string() + " --to fp16 -o " + out, dir_),
                        "missing.onnx");
  {
    std::ofstream garbage(dir_ / "garbage.onnx", std::ios::binary);
    for (int i = 0; i < 1000; ++i) garbage.put(static_cast<char>((i * 7919) % 251));
  }
  expect_one_line_error(run_cli("convert " + (dir_ / "garbage.onnx").string() + " --to fp16 -o " + out, dir_),
                        "garbage.onnx");
  expect_one_line_error(run_cli("convert " + add_model_ + " --to int8 -o " + out, dir_), "unknown --to 'int8'");
  expect_one_line_error(run_cli("convert " + add_model_ + " --to fp16 --shape nope=3 -o " + out, dir_),
                        "unknown input 'nope'");
  expect_one_line_error(run_cli("convert " + add_model_ + " --to fp16 -o " + (dir_ / "no" / "such" / "dir.onnx").string(), dir_),
                        "cannot write");
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(CliTest, ConformanceSummaryLine) {
  auto r = run_cli("conformance --backend reference " + std::string(TANDEM_ONNX_TESTDATA) + "/node/test_add " +
                       std::string(TANDEM_ONNX_TESTDATA) + "/node/test_bernoulli",
                   dir_);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("SKIP test_bernoulli"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1 passed, 0 failed, 1 skipped"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace tandem
