// cpu_threads_test.cpp: the cpu backend's thread budget. A run whose OpenMP team would take the
// process past its cores (because other runs are in progress) runs on an instance built for
// one thread instead, and computes the same result. The TeamSizer moves runs to one thread when
// competition from other processes makes the team slower, and back when it ends.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>
#include <filesystem>
#include <random>
#include <thread>
#include <vector>

#include "backends/backend.h"
#include "backends/cpu/runtime_env.h"
#include "backends/cpu/threads.h"
#include "core/compare.h"
#include "core/sysinfo.h"
#include "engine/placement.h"
#include "onnx/loader.h"

namespace tandem {
namespace {

TEST(CpuBackendThreads, ConcurrentRunsDoNotOversubscribe) {
  Backend* cpu = find_backend("cpu");
  if (!cpu) GTEST_SKIP() << "this build has no cpu backend";
  const auto path = std::filesystem::path(TANDEM_SOURCE_DIR) / "models" / "ch_PP-OCRv4_det_infer.onnx";
  ASSERT_TRUE(std::filesystem::exists(path)) << path.string() << " is missing: run scripts/setup";
  auto model = load_model(path);
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  // A team as large as the machine: two such runs at once cannot both have it.
  const int threads = std::max(2, physical_cores());
  auto placed =
      PlacedModel::create(model->graph, {cpu, find_backend("reference")}, CompileOptions{threads, Precision::fp32, {}});
  ASSERT_TRUE(placed.is_ok()) << placed.status().to_string();

  Tensor x(DataType::float32, {1, 3, 192, 192});
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> d(0.0f, 1.0f);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = d(rng);
  const std::vector<Value> inputs{Value::of(x)};
  std::vector<Value> alone;
  ASSERT_TRUE((*placed)->run(inputs, &alone).is_ok());
  EXPECT_EQ((*placed)->describe().find(", 1 thread(s)"), std::string::npos) << "a lone run gets the full team";

  constexpr int kCallers = 3, kRuns = 6;
  std::atomic<int> ready{0};
  std::vector<Status> failures(kCallers);
  std::vector<std::vector<Value>> results(kCallers);
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c)
    callers.emplace_back([&, c] {
      ready.fetch_add(1);
      while (ready.load() < kCallers) std::this_thread::yield();
      for (int r = 0; r < kRuns; ++r) {
        Status s = (*placed)->run(inputs, &results[c]);
        if (!s.is_ok()) failures[c] = s;
      }
    });
  for (auto& t : callers) t.join();
  for (int c = 0; c < kCallers; ++c) {
    ASSERT_TRUE(failures[c].is_ok()) << failures[c].to_string();
    Status same = compare_values(alone[0], results[c][0], Tolerance{1e-4, 1e-5});
    EXPECT_TRUE(same.is_ok()) << "caller " << c << ": " << same.message();
  }
  // Overlapping runs made the plan build (and use) the one-thread instance.
  EXPECT_NE((*placed)->describe().find(", 1 thread(s)"), std::string::npos) << (*placed)->describe();
}

// The sizer's decisions on made-up latencies (milliseconds).
TEST(CpuTeamSizer, StaysWithTheTeamOnAQuietMachine) {
  cpu::TeamSizer sizer;
  for (int i = 0; i < 1000; ++i) {
    ASSERT_FALSE(sizer.choose_single()) << "run " << i;
    sizer.record(false, 40 + (i % 7));  // jitter within 20 % of the best run
  }
}

// A plan's first run on a new context is several times slower than the rest (its arena is
// touched for the first time); counted, it would send the next runs to one thread.
TEST(CpuTeamSizer, IgnoresColdRuns) {
  cpu::TeamSizer sizer;
  ASSERT_FALSE(sizer.choose_single());
  sizer.record(false, 120, /*cold=*/true);
  for (int i = 0; i < 100; ++i) {
    ASSERT_FALSE(sizer.choose_single()) << "run " << i;
    sizer.record(false, 20 + (i % 3));
  }
  // The same cold run counted does move runs to one thread: the rule above is what keeps them.
  cpu::TeamSizer counted;
  counted.record(false, 120);
  int singles = 0;
  for (int i = 0; i < 20; ++i) {
    const bool single = counted.choose_single();
    singles += single;
    counted.record(single, single ? 34 : 20);
  }
  EXPECT_GT(singles, 0);
}

TEST(CpuTeamSizer, MovesToOneThreadUnderCompetitionAndBacksOff) {
  cpu::TeamSizer sizer;
  for (int i = 0; i < 10; ++i) {
    ASSERT_FALSE(sizer.choose_single());
    sizer.record(false, 40);
  }
  // Other processes take a core: team runs take 700 ms, one-thread runs 140 ms.
  int team_runs = 0;
  for (int i = 0; i < 10 && !sizer.choose_single(); ++i, ++team_runs) sizer.record(false, 700);
  EXPECT_LE(team_runs, 3) << "the sizer took too long to notice";
  sizer.record(true, 140);
  // Count team probes over the next 600 runs: windows of 8, 16, 32 ... one thread between them.
  int probes = 0;
  for (int i = 0; i < 600; ++i) {
    const bool single = sizer.choose_single();
    probes += !single;
    sizer.record(single, single ? 140 : 700);
  }
  EXPECT_GE(probes, 3);
  EXPECT_LE(probes, 7) << "probing did not back off";
  // The competition ends: the next probe finds the team fast again and the team stays.
  int singles = 0;
  for (int i = 0; i < 300; ++i) {
    const bool single = sizer.choose_single();
    singles += single;
    sizer.record(single, single ? 140 : 40);
  }
  EXPECT_LE(singles, 256);
  for (int i = 0; i < 100; ++i) {
    ASSERT_FALSE(sizer.choose_single()) << "the team should have stayed, run " << i;
    sizer.record(false, 41);
  }
}

// The instruction-set path follows TANDEM_CPU_ISA for tandem's kernels and for oneDNN. The cap is
// read once per process: ctest runs this case again under each cap (cpu_backend_avx2 and
// cpu_backend_baseline in tests/CMakeLists.txt).
TEST(CpuIsa, LevelFollowsTheCap) {
  int machine = 0;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
    machine = 1;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
      machine = 2;
  }
  const char* env = std::getenv("TANDEM_CPU_ISA");
  const std::string cap = env ? env : "";
  const int want = cap == "baseline" ? 0 : cap == "avx2" ? std::min(machine, 1) : machine;
  EXPECT_EQ(cpu::cpu_isa_level(), want) << "TANDEM_CPU_ISA=" << cap;
  const char* names[] = {"baseline", "avx2", "avx512"};
  const std::string line = cpu::cpu_isa_description();
  EXPECT_EQ(line.rfind(std::string("cpu isa: ") + names[want] + " (", 0), 0u) << line;
  if (!cap.empty()) {
    EXPECT_NE(line.find("cap: TANDEM_CPU_ISA=" + cap), std::string::npos) << line;
  }
  if (want < 2) {
    EXPECT_FALSE(cpu::has_native_bf16());
  }
  const dnnl::cpu_isa onednn = dnnl::get_effective_cpu_isa();  // after the engine set the cap
  if (want == 0) {
    EXPECT_EQ(onednn, dnnl::cpu_isa::sse41);
  }
  if (want == 1) {
    EXPECT_EQ(onednn, dnnl::cpu_isa::avx2);
  }
}

}  // namespace
}  // namespace tandem
