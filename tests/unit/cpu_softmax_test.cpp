// cpu_softmax_test.cpp (CpuBackendSoftmax, also under each TANDEM_CPU_ISA cap by ctest): the cpu
// backend's Softmax (src/backends/cpu/reduce.cpp) never writes subnormal probabilities, whose
// matrix products run several times slower on CPUs that take microcode assists for them:
// masked and far-from-maximum positions come out exactly 0, and the rest agree with the
// reference backend. Along the last axis (contiguous rows) and along an inner axis (strided).
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <random>
#include <vector>

#include "backends/backend.h"
#include "core/compare.h"
#include "cpu_int8_test_util.h"
#include "graph_build_util.h"
#include "op_test_util.h"

namespace tandem {
namespace {

using testing::attr_int;
using testing::GraphBuilder;

using namespace int8_test;

// Attention-like scores: every fourth position masked (-10000 added), the rest spread wide
// enough that some exponentials fall far below the largest.
Tensor scores(const Shape& shape, uint32_t seed) {
  Tensor t(DataType::float32, shape);
  std::mt19937 rng(seed);
  std::normal_distribution<float> spread(0.0f, 30.0f);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = spread(rng) + (i % 4 == 1 ? -10000.0f : 0.0f);
  return t;
}

TEST(CpuBackendSoftmax, MaskedAndFarPositionsAreZeroNotSubnormal) {
  REQUIRE_CPU();
  for (int64_t axis : {2, 1}) {  // rows along the last axis; then along an inner one (strided)
    SCOPED_TRACE("axis " + std::to_string(axis));
    GraphBuilder q;
    q.input("x", scores({2, 64, 48}, 7)).node("Softmax", {"x"}, {"y"}, {{"axis", attr_int(axis)}}).output("y");
    for (int threads : {1, 2}) {
      Runs r = run_both(q, threads);
      ASSERT_EQ(r.cpu.size(), 1u);
      ASSERT_EQ(nodes_on(r.report, "reference"), 0);
      const Status close = compare_values(r.ref[0], r.cpu[0], Tolerance{1e-5, 1e-30});
      EXPECT_TRUE(close.is_ok()) << close.to_string();
      const Tensor& y = r.cpu[0].tensor;
      int64_t subnormal = 0, zeros = 0;
      for (int64_t i = 0; i < y.numel(); ++i) {
        const float v = y.data<float>()[i];
        subnormal += std::fpclassify(v) == FP_SUBNORMAL;
        zeros += v == 0.0f;
      }
      EXPECT_EQ(subnormal, 0);
      // The masked quarter (e^-10000 is far below FLT_MIN) and more.
      EXPECT_GE(zeros, y.numel() / 4);
    }
  }
}

}  // namespace
}  // namespace tandem
