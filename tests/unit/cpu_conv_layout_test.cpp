// cpu_conv_layout_test.cpp (CpuBackendConvLayout, also under each TANDEM_CPU_ISA cap by ctest):
// the layout the cpu backend's Conv (conv.cpp) runs a grouped convolution in. With 4 channels
// per group oneDNN's blocked kernels have only their reference loops: the convolution runs on
// channels-last activations (its source reordered in, its result reordered out to the blocked
// layout), not on plain ones through oneDNN's much slower gemm convolution, and its numbers
// agree with the reference backend, fused bias and activation included.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/cpu/runtime_env.h"
#include "core/compare.h"
#include "cpu_int8_test_util.h"
#include "graph_build_util.h"
#include "op_test_util.h"
#include "scoped_env.h"

namespace tandem {
namespace {

using testing::attr_int;
using testing::attr_ints;
using testing::GraphBuilder;

using namespace int8_test;

// Runs `q` on the cpu backend (nothing on reference) and on the reference backend at one and
// two threads: every output within `tolerance` (absolute and relative).
void expect_close_to_reference(const GraphBuilder& q, double tolerance) {
  for (int threads : {1, 2}) {
    SCOPED_TRACE(std::to_string(threads) + " threads");
    Runs r = run_both(q, threads);
    ASSERT_EQ(r.cpu.size(), 1u);
    ASSERT_EQ(nodes_on(r.report, "reference"), 0);
    const Status close = compare_values(r.ref[0], r.cpu[0], Tolerance{tolerance, tolerance});
    EXPECT_TRUE(close.is_ok()) << close.to_string();
  }
}

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
  expect_close_to_reference(q, 1e-5);
}

// Shapes of a speech encoder's and a vocoder's layers (1-D) and of a video network's (3-D):
// a strided convolution with bias, a residual Add and LeakyRelu after it, a ConvTranspose back
// to the input's length, a grouped dilated convolution and a pre-activation residual block.
GraphBuilder one_and_three_d_layers(size_t dims) {
  const int64_t C = 16, O = 24;
  const Shape spatial = dims == 1 ? Shape{37} : Shape{5, 9, 8};
  auto with_spatial = [&](Shape head, int64_t k) {
    head.resize(2 + dims, k);
    return head;
  };
  Shape xs = {1, C}, rs = {1, O};
  for (int64_t d : spatial) {
    xs.push_back(d);
    rs.push_back((d + 2 - 3) / 2 + 1);
  }
  auto per_dim = [&](int64_t v) { return std::vector<int64_t>(dims, v); };
  auto pads = [&](int64_t v) { return std::vector<int64_t>(2 * dims, v); };
  GraphBuilder q;
  q.input("x", random_floats(xs, 5, -1.0f, 1.0f))
      .input("r", random_floats(rs, 6, -1.0f, 1.0f))
      .init("w1", random_floats(with_spatial({O, C}, 3), 7, -0.3f, 0.3f))
      .init("b1", random_floats({O}, 8, -0.2f, 0.2f))
      .init("w2", random_floats(with_spatial({O, C}, 4), 9, -0.3f, 0.3f))
      .init("b2", random_floats({C}, 10, -0.2f, 0.2f))
      .init("w3", random_floats(with_spatial({C, C / 4}, 3), 11, -0.3f, 0.3f))
      .node("Conv", {"x", "w1", "b1"}, {"c"}, {{"strides", attr_ints(per_dim(2))}, {"pads", attr_ints(pads(1))}})
      .node("Add", {"c", "r"}, {"s"})
      .node("LeakyRelu", {"s"}, {"a"}, {{"alpha", testing::attr_float(0.1f)}})
      .node("ConvTranspose", {"a", "w2", "b2"}, {"t"},
            {{"strides", attr_ints(per_dim(2))}, {"pads", attr_ints(pads(1))}, {"output_padding", attr_ints(per_dim(1))}})
      .node("Conv", {"t", "w3"}, {"u"},
            {{"group", attr_int(4)}, {"dilations", attr_ints(per_dim(2))}, {"pads", attr_ints(pads(2))}})
      // A pre-activation residual block, as vocoders write them.
      .init("w4", random_floats(with_spatial({C, C}, 3), 12, -0.3f, 0.3f))
      .node("LeakyRelu", {"u"}, {"v"}, {{"alpha", testing::attr_float(0.1f)}})
      .node("Conv", {"v", "w4"}, {"z"}, {{"pads", attr_ints(pads(1))}})
      .node("Add", {"u", "z"}, {"y"})
      .output("y");
  return q;
}

TEST(CpuBackendConvLayout, OneAndThreeDimensionalConvolutionsRunChannelsLast) {
  REQUIRE_CPU();
  for (size_t dims : {1, 3}) {
    SCOPED_TRACE(std::to_string(dims) + "-D");
    const GraphBuilder q = one_and_three_d_layers(dims);
    const std::string text = describe_cpu(q);
    EXPECT_EQ(text.find("ref:any"), std::string::npos) << text;
    EXPECT_NE(text.find("0 steps on reference kernels"), std::string::npos) << text;
    // On AVX-512 oneDNN has direct or brgemm kernels for every one of them on channels-last
    // activations; on AVX2 a layer without one stays on plain activations (gemm), and the
    // baseline keeps all of them plain.
    if (cpu::cpu_isa_level() >= 1) {
      EXPECT_NE(text.find(dims == 1 ? " nwc  (oneDNN" : " ndhwc  (oneDNN"), std::string::npos) << text;
    }
    if (cpu::cpu_isa_level() >= 2) {
      EXPECT_EQ(text.find("gemm"), std::string::npos) << text;
      // The ConvTranspose's result, which only the last convolution reads, stays channels-last:
      // no reorder out of that step, none into the next.
      EXPECT_EQ(text.find("[ConvTranspose 'ConvTranspose3'] (from nhwc)"), std::string::npos) << text;
      EXPECT_EQ(text.find("[layout reorder of 't']"), std::string::npos) << text;
      EXPECT_NE(text.find("[ConvTranspose 'ConvTranspose3']  -> "), std::string::npos) << text;
      // The residual block's values stay channels-last: its LeakyRelu walks them so, and the
      // Add joins the convolution's post-ops.
      EXPECT_EQ(text.find("[layout reorder of 'u']"), std::string::npos) << text;
      EXPECT_EQ(text.find("[layout reorder of 'v']"), std::string::npos) << text;
      EXPECT_EQ(text.find("(post-ops)"), std::string::npos) << text;
    }
    {  // the switch that keeps them plain
      const testing::ScopedEnv plain("TANDEM_CPU_CHANNELS_LAST_1D3D", "0");
      const std::string plain_text = describe_cpu(q);
      EXPECT_EQ(plain_text.find(dims == 1 ? " nwc " : " ndhwc "), std::string::npos) << plain_text;
    }
    expect_close_to_reference(q, 1e-4);
  }
}

// ResNet's 3x3 layers: oneDNN's Winograd kernels where they time faster (always, here), with
// the BatchNormalization and Relu fused and with a residual Add applied after the kernel; the
// numbers stay within float32 rounding of the reference.
TEST(CpuBackendConvLayout, WinogradConvolutionsMatchTheReference) {
  REQUIRE_CPU();
  const int64_t C = 64;
  GraphBuilder q;
  q.input("x", random_floats({1, C, 14, 14}, 5, -1.0f, 1.0f))
      .init("w1", random_floats({C, C, 3, 3}, 6, -0.1f, 0.1f))
      .init("b1", random_floats({C}, 7, -0.2f, 0.2f))
      .init("w2", random_floats({C, C, 3, 3}, 8, -0.1f, 0.1f))
      .node("Conv", {"x", "w1", "b1"}, {"c1"}, {{"pads", attr_ints({1, 1, 1, 1})}})
      .node("Relu", {"c1"}, {"r1"})
      .node("Conv", {"r1", "w2"}, {"c2"}, {{"pads", attr_ints({1, 1, 1, 1})}})
      .node("Add", {"c2", "x"}, {"s"})
      .node("Relu", {"s"}, {"y"})
      .output("y");
  {
    const testing::ScopedEnv always("TANDEM_CPU_WINOGRAD", "always");
    const std::string text = describe_cpu(q);
    // oneDNN 2.6 has Winograd kernels on AVX-512 only.
    if (cpu::cpu_isa_level() >= 2) {
      EXPECT_NE(text.find("[Conv 'Conv0']  -> 1x64x14x14 nChw16c  (oneDNN jit"), std::string::npos) << text;
      EXPECT_NE(text.find("wino"), std::string::npos) << text;
      const size_t first = text.find("wino");
      EXPECT_NE(text.find("wino", first + 1), std::string::npos) << "both layers:\n" << text;
    }
    expect_close_to_reference(q, 1e-5);
  }
  const testing::ScopedEnv direct("TANDEM_CPU_WINOGRAD", "0");
  const std::string text = describe_cpu(q);
  EXPECT_EQ(text.find("wino"), std::string::npos) << text;
}

}  // namespace
}  // namespace tandem
