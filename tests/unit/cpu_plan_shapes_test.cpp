// cpu_plan_shapes_test.cpp: a cpu plan fed shapes first seen at run time (free dims). Its
// plans build an instance per input signature; the tests cover
//   - a signature that shape inference proves wrong (dims that cannot broadcast): the
//     request's error, returned before any kernel runs, and no instance kept for it (it used to
//     run the whole segment on the reference kernels up to the failing node: seconds on a
//     detector);
//   - the instance cache's byte bound (TANDEM_CPU_INSTANCE_CACHE_MB): many large shapes do not
//     keep an arena each, and an evicted shape is rebuilt with the same answer.
//
// The suite is skipped when the build has no cpu backend (oneDNN not found).
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "backends/backend.h"
#include "engine/placement.h"
#include "graph_build_util.h"
#include "op_test_util.h"

namespace tandem {
namespace {

using testing::attr_ints;
using testing::GraphBuilder;

Backend* cpu() { return find_backend("cpu"); }

Tensor filled(const Shape& shape, float step) {
  Tensor t(DataType::float32, shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = step * static_cast<float>(i % 13);
  return t;
}

TEST(CpuBackendPlanShapes, DimsThatCannotBroadcastFailBeforeAnyKernelRuns) {
  if (!cpu()) GTEST_SKIP() << "this build has no cpu backend";
  // y = Conv(x, w) + z, x and z untyped (their dims are known only when a request comes).
  GraphBuilder b(13);
  b.input("x", filled({1, 4, 8, 8}, 0.1f), false).input("z", filled({1, 4, 8, 8}, 0.2f), false);
  b.init("w", filled({4, 4, 3, 3}, 0.01f));
  b.node("Conv", {"x", "w"}, {"c"}, {{"pads", attr_ints({1, 1, 1, 1})}}).node("Add", {"c", "z"}, {"y"});
  b.output("y");
  auto placed = PlacedModel::create(b.graph(), {cpu()});
  ASSERT_TRUE(placed.is_ok()) << placed.status().to_string();

  std::vector<Value> out;
  const std::vector<Value> bad{Value::of(filled({1, 4, 8, 8}, 0.1f)), Value::of(filled({1, 4, 9, 9}, 0.2f))};
  Status s = (*placed)->run(bad, &out);
  EXPECT_EQ(s.code(), StatusCode::invalid_argument) << s.to_string();
  EXPECT_NE(s.message().find("Add"), std::string::npos) << s.message();  // names the node
  EXPECT_NE(s.message().find("9"), std::string::npos) << s.message();    // and the dims
  EXPECT_EQ((*placed)->describe().find("whole segment on reference kernels"), std::string::npos)
      << (*placed)->describe();

  // The same plan serves a good request next, on its fast kernels.
  s = (*placed)->run(b.feeds(), &out);
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].tensor.shape(), (Shape{1, 4, 8, 8}));
  EXPECT_EQ((*placed)->describe().find("reference kernels ("), std::string::npos) << (*placed)->describe();
}

// The instance lines of a plan's description.
int instances_described(const PlacedModel& placed) {
  const std::string text = placed.describe();
  int n = 0;
  for (size_t at = text.find("instance x="); at != std::string::npos; at = text.find("instance x=", at + 1)) ++n;
  return n;
}

TEST(CpuBackendPlanShapes, CachedInstancesStayWithinTheirByteBound) {
  if (!cpu()) GTEST_SKIP() << "this build has no cpu backend";
  // y = Relu(Conv(x, w)), 16 channels, x untyped: each spatial size is an instance whose arena
  // holds a few MB at the sizes below.
  GraphBuilder b(13);
  b.input("x", filled({1, 16, 96, 96}, 0.1f), false).init("w", filled({16, 16, 3, 3}, 0.01f));
  b.node("Conv", {"x", "w"}, {"c"}, {{"pads", attr_ints({1, 1, 1, 1})}}).node("Relu", {"c"}, {"y"});
  b.output("y");
  auto run_sizes = [&](const std::vector<int64_t>& sides, std::vector<Value>* first_answer,
                       const CompileOptions& options = {}) {
    auto placed = PlacedModel::create(b.graph(), {cpu()}, options);
    EXPECT_TRUE(placed.is_ok()) << placed.status().to_string();
    if (!placed.is_ok()) return -1;
    for (size_t i = 0; i < sides.size(); ++i) {
      std::vector<Value> out;
      const Status s = (*placed)->run({Value::of(filled({1, 16, sides[i], sides[i]}, 0.1f))}, &out);
      EXPECT_TRUE(s.is_ok()) << s.to_string();
      if (i == 0) *first_answer = out;
      if (i + 1 == sides.size() && sides[i] == sides[0] && !first_answer->empty() && !out.empty()) {
        EXPECT_EQ(0, std::memcmp(out[0].tensor.raw_data(), (*first_answer)[0].tensor.raw_data(),
                                 out[0].tensor.nbytes()));  // rebuilt, same answer
      }
    }
    return instances_described(**placed);
  };
  std::vector<Value> first;
  // No bound to speak of: every size keeps its instance.
  EXPECT_EQ(run_sizes({96, 112, 128, 144}, &first), 4);
  // 1 MiB: every instance here is larger, so only the newest stays; the first size comes back.
  setenv("TANDEM_CPU_INSTANCE_CACHE_MB", "1", 1);
  const int bounded = run_sizes({96, 112, 128, 144, 96}, &first);
  unsetenv("TANDEM_CPU_INSTANCE_CACHE_MB");
  EXPECT_EQ(bounded, 1);
  // The same bound from the compile options (PrepareOptions::shape_cache_mb), which win over
  // the environment.
  CompileOptions one_mib;
  one_mib.shape_cache_bytes = 1 << 20;
  EXPECT_EQ(run_sizes({96, 112, 128, 144, 96}, &first, one_mib), 1);
  CompileOptions one_gib;
  one_gib.shape_cache_bytes = size_t{1} << 30;
  setenv("TANDEM_CPU_INSTANCE_CACHE_MB", "1", 1);
  const int unbounded = run_sizes({96, 112, 128, 144}, &first, one_gib);
  unsetenv("TANDEM_CPU_INSTANCE_CACHE_MB");
  EXPECT_EQ(unbounded, 4);
}

}  // namespace
}  // namespace tandem
