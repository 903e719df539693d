// cpu_conv_layout_test.cpp (CpuBackendConvLayout, also under each TANDEM_CPU_ISA cap by ctest):
// the layout the cpu backend's Conv (conv.cpp) runs a grouped convolution in. With 4 channels
// per group oneDNN's blocked kernels have only their reference loops: the convolution runs on
// channels-last activations (its source reordered in, its result reordered out to the blocked
// layout), not on plain ones through oneDNN's much slower gemm convolution, and its numbers
// agree with the reference backend, fused bias and activation included.
#include <gtest/gtest.h>

#include <string>

#include "backends/backend.h"
#include "backends/cpu/runtime_env.h"
#include "core/compare.h"
#include "cpu_int8_test_util.h"
#include "graph_build_util.h"
#include "op_test_util.h"

namespace tandem {
namespace {

using testing::attr_int;
using testing::attr_ints;
using testing::GraphBuilder;

using namespace int8_test;

TEST(CpuBackendConvLayout, FourChannelsPerGroupRunChannelsLast) {
  REQUIRE_CPU();
  GraphBuilder q;
  q.input("x", random_floats({1, 128, 20, 20}, 5, -1.0f, 1.0f))
      .init("w", random_floats({128, 4, 3, 3}, 6, -0.5f, 0.5f))
      .init("b", random_floats({128}, 7, -0.2f, 0.2f))
      .node("Conv", {"x", "w", "b"}, {"c"}, {{"group", attr_int(32)}, {"pads", attr_ints({1, 1, 1, 1})}})
      .node("Relu", {"c"}, {"y"})
      .output("y");
  const std::string text = describe_cpu(q);
  EXPECT_EQ(text.find("ref:any"), std::string::npos) << text;
  // Where oneDNN has a direct kernel for it (AVX-512), channels-last; elsewhere (AVX2, the
  // baseline) its gemm convolution on plain activations, without the two reorders.
  if (text.find("gemm") == std::string::npos) {
    EXPECT_NE(text.find("(from nhwc)"), std::string::npos) << text;
  } else {
    EXPECT_EQ(text.find("nhwc"), std::string::npos) << text;
  }
  if (cpu::cpu_isa_level() >= 2) {
    EXPECT_EQ(text.find("gemm"), std::string::npos) << text;
  }
  for (int threads : {1, 2}) {
    Runs r = run_both(q, threads);
    ASSERT_EQ(r.cpu.size(), 1u);
    ASSERT_EQ(nodes_on(r.report, "reference"), 0);
    const Status close = compare_values(r.ref[0], r.cpu[0], Tolerance{1e-5, 1e-5});
    EXPECT_TRUE(close.is_ok()) << close.to_string();
  }
}

}  // namespace
}  // namespace tandem
