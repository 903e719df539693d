// cpu_plan_errors_test.cpp: requests whose input dims cannot work with the model, on the cpu
// backend. Its plans build an instance per input signature at run time when the dims are free;
// a signature that shape inference proves wrong (dims that cannot broadcast) is the request's
// error, returned before any kernel runs, and no instance is kept for it (it used to run the
// whole segment on the reference kernels up to the failing node: seconds on a detector).
//
// The suite is skipped when the build has no cpu backend (oneDNN not found).
#include <gtest/gtest.h>

#include <random>

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

TEST(CpuBackendPlanErrors, DimsThatCannotBroadcastFailBeforeAnyKernelRuns) {
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

}  // namespace
}  // namespace tandem
