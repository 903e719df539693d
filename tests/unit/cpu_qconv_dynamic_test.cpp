// cpu_qconv_dynamic_test.cpp (CpuQConvDynamic, also run under each TANDEM_CPU_ISA cap by ctest):
// a ConvInteger whose float tail ends in a DynamicQuantizeLinear, computed in bands of rows
// with the range taken band by band (src/backends/cpu/qconv_dynamic.h). The bands, kept or
// computed twice, must give the bytes, scale and zero point of the same step run as separate
// kernels (TANDEM_CPU_QDYNAMIC=0), and the reference's numbers.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "backends/backend.h"
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

struct Layer {
  int64_t C = 8, O = 16, K = 1, stride = 1, group = 1, H = 12, W = 12;
  std::string trace() const {
    return "C=" + std::to_string(C) + " O=" + std::to_string(O) + " K=" + std::to_string(K) + " stride " +
           std::to_string(stride) + " group " + std::to_string(group) + " " + std::to_string(H) + "x" +
           std::to_string(W);
  }
};

// x -> DynamicQuantizeLinear -> ConvInteger (padded to keep the size at stride 1) -> Cast ->
// Mul(x_scale * w_scale) -> Add(bias) -> Clip(-20, 30) -> DynamicQuantizeLinear (yq, ys, yz)
// -> ConvInteger 1x1 (O -> 8) -> Cast -> Mul(ys * 0.01): outputs z, ys, yz. The second
// product makes yq a value only integer convolutions read.
GraphBuilder layer(const Layer& l) {
  std::vector<float> ws, bias;
  for (int64_t o = 0; o < l.O; ++o) {
    ws.push_back(0.002f + 0.0003f * static_cast<float>(o % 7));
    bias.push_back(-0.4f + 0.05f * static_cast<float>(o % 11));
  }
  const int64_t wmax = onednn_weight_max();
  // Values grow down the image, so that each band of rows has a range of its own.
  Tensor x = random_floats({1, l.C, l.H, l.W}, 41, -1.0f, 1.6f);
  for (int64_t i = 0; i < x.numel(); ++i)
    x.data<float>()[i] *= 0.05f + 2.0f * static_cast<float>(i / l.W % l.H) / static_cast<float>(l.H);
  GraphBuilder q;
  q.input("x", x)
      .init("w", random_ints<uint8_t>({l.O, l.C / l.group, l.K, l.K}, 128 - wmax, 128 + wmax, 42))
      .init("wz", Tensor::scalar<uint8_t>(128))
      .init("ws", Tensor::from_vector<float>({l.O, 1, 1}, ws))
      .init("b", Tensor::from_vector<float>({l.O, 1, 1}, bias))
      .init("lo", Tensor::scalar<float>(-20.0f))
      .init("hi", Tensor::scalar<float>(30.0f))
      .init("w2", random_ints<int8_t>({8, l.O, 1, 1}, -wmax, wmax, 43))
      .init("s2", Tensor::scalar<float>(0.01f))
      .node("DynamicQuantizeLinear", {"x"}, {"xq", "xs", "xz"})
      .node("Mul", {"xs", "ws"}, {"s"})
      .node("ConvInteger", {"xq", "w", "xz", "wz"}, {"c"},
            {{"pads", attr_ints(std::vector<int64_t>(4, l.K / 2))},
             {"strides", attr_ints({l.stride, l.stride})},
             {"group", attr_int(l.group)}})
      .node("Cast", {"c"}, {"cf"}, {{"to", attr_int(1)}})
      .node("Mul", {"cf", "s"}, {"v"})
      .node("Add", {"v", "b"}, {"vb"})
      .node("Clip", {"vb", "lo", "hi"}, {"r"})
      .node("DynamicQuantizeLinear", {"r"}, {"yq", "ys", "yz"})
      .node("ConvInteger", {"yq", "w2", "yz"}, {"c2"})
      .node("Cast", {"c2"}, {"c2f"}, {{"to", attr_int(1)}})
      .node("Mul", {"ys", "s2"}, {"t"})
      .node("Mul", {"c2f", "t"}, {"z"})
      .output("z")
      .output("ys")
      .output("yz");
  return q;
}

// The cpu backend's outputs for `q` at `threads`, with the DynamicQuantizeLinear absorbed
// (`fused`) or not, and what its plan runs.
struct CpuRun {
  std::vector<Value> out;
  std::string text;
};
CpuRun run_cpu(const GraphBuilder& q, int threads, bool fused) {
  if (!fused) setenv("TANDEM_CPU_QDYNAMIC", "0", 1);
  CompileOptions opts;
  opts.threads = threads;
  auto placed = PlacedModel::create(q.graph(), {cpu_backend()}, opts);
  unsetenv("TANDEM_CPU_QDYNAMIC");
  CpuRun r;
  EXPECT_TRUE(placed.is_ok()) << placed.status().to_string();
  if (!placed.is_ok()) return r;
  r.text = (*placed)->describe();
  const Status s = (*placed)->run(q.feeds(), &r.out);
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  return r;
}

// Runs layer `l` at one and two threads, fused and apart, and against the reference. Returns
// the plans' descriptions (fused, one then two threads).
std::vector<std::string> expect_same_as_apart(const Layer& l) {
  SCOPED_TRACE(l.trace());
  const GraphBuilder q = layer(l);
  std::vector<Value> want;
  auto slow = PlacedModel::create(q.graph(), {ref()});
  EXPECT_TRUE(slow.is_ok());
  if (slow.is_ok()) {
    EXPECT_TRUE((*slow)->run(q.feeds(), &want).is_ok());
  }
  std::vector<std::string> texts;
  for (int threads : {1, 2}) {
    SCOPED_TRACE(std::to_string(threads) + " threads");
    const CpuRun apart = run_cpu(q, threads, false), fused = run_cpu(q, threads, true);
    texts.push_back(fused.text);
    EXPECT_EQ(apart.text.find("bands"), std::string::npos) << apart.text;
    if (apart.out.size() != 3 || fused.out.size() != 3 || want.size() != 3) {
      ADD_FAILURE() << "missing outputs";
      continue;
    }
    // The same float32 results quantized the same way: bit for bit.
    expect_same_floats(apart.out[0], fused.out[0], "z");
    expect_same_floats(apart.out[1], fused.out[1], "y scale");
    expect_within_units(apart.out[2], fused.out[2], 0, "y zero point");
    // And the reference's numbers (the tail's products reassociated by the primitive: the
    // scale within float32 rounding; a byte of y may flip at a rounding tie).
    const Status close = compare_values(want[1], fused.out[1], Tolerance{1e-6, 1e-5});
    EXPECT_TRUE(close.is_ok()) << close.to_string();
    expect_within_units(want[2], fused.out[2], 1, "y zero point against the reference");
  }
  return texts;
}

TEST(CpuQConvDynamic, KeptBandsGiveTheBytesOfTheSeparateKernels) {
  REQUIRE_CPU();
  // Products that are not cheap: at two threads one band per thread (its float result kept);
  // at one, the step runs the product and the quantization apart. (Each layer is large enough
  // for a team of two threads.)
  for (const Layer& l : {Layer{64, 64, 1, 1, 1, 101, 100}, Layer{32, 48, 3, 1, 1, 65, 60},
                         Layer{192, 192, 5, 1, 192, 83, 80}, Layer{32, 64, 3, 2, 1, 121, 120}}) {
    const std::vector<std::string> texts = expect_same_as_apart(l);
    ASSERT_EQ(texts.size(), 2u);
    EXPECT_EQ(texts[0].find("bands"), std::string::npos) << texts[0];
    EXPECT_NE(texts[1].find("(2 bands, quantized)"), std::string::npos) << l.trace() << "\n" << texts[1];
  }
}

TEST(CpuQConvDynamic, RecomputedBandsGiveTheBytesOfTheSeparateKernels) {
  REQUIRE_CPU();
  // Cheap dense products of results over 4 MiB: bands of a few hundred KiB computed twice, at
  // any thread count. A 1x1 of 16 channels; 3x3 windows of one channel over odd heights (first,
  // middle and last bands pad differently), at strides 1 and 2.
  for (const Layer& l : {Layer{16, 32, 1, 1, 1, 160, 220}, Layer{1, 32, 3, 1, 1, 201, 180},
                         Layer{1, 32, 3, 2, 1, 401, 360}}) {
    for (const std::string& text : expect_same_as_apart(l))
      EXPECT_NE(text.find("bands computed twice, quantized)"), std::string::npos) << l.trace() << "\n" << text;
  }
  // Depthwise windows as cheap are kept (oneDNN's depthwise kernel costs about what the traffic
  // saves): apart on one thread.
  const Layer depthwise{32, 32, 3, 1, 32, 201, 180};
  const std::vector<std::string> texts = expect_same_as_apart(depthwise);
  ASSERT_EQ(texts.size(), 2u);
  EXPECT_EQ(texts[0].find("bands"), std::string::npos) << texts[0];
}

TEST(CpuQConvDynamic, AnAllZeroResultGivesZeroScaleAndZeroPoint) {
  REQUIRE_CPU();
  // Bias 0 and an input of zeros: every float is 0, the range is [0, 0] and the quantization
  // gives scale 0, zero point 0 and zero bytes, as the reference does.
  GraphBuilder q;
  q.input("x", Tensor(DataType::float32, {1, 8, 10, 10}))
      .init("w", random_ints<int8_t>({16, 8, 1, 1}, -100, 100, 44))
      .init("s2", Tensor::scalar<float>(0.5f))
      .init("w2", random_ints<int8_t>({4, 16, 1, 1}, -100, 100, 45))
      .node("DynamicQuantizeLinear", {"x"}, {"xq", "xs", "xz"})
      .node("ConvInteger", {"xq", "w", "xz"}, {"c"})
      .node("Cast", {"c"}, {"cf"}, {{"to", attr_int(1)}})
      .node("Mul", {"cf", "xs"}, {"v"})
      .node("DynamicQuantizeLinear", {"v"}, {"yq", "ys", "yz"})
      .node("ConvInteger", {"yq", "w2", "yz"}, {"c2"})
      .output("c2")
      .output("ys")
      .output("yz");
  for (int threads : {1, 2}) {
    SCOPED_TRACE(std::to_string(threads) + " threads");
    const CpuRun fused = run_cpu(q, threads, true);
    ASSERT_EQ(fused.out.size(), 3u);
    EXPECT_EQ(fused.out[1].tensor.data<float>()[0], 0.0f);
    EXPECT_EQ(fused.out[2].tensor.data<uint8_t>()[0], 0);
    for (int64_t i = 0; i < fused.out[0].tensor.numel(); ++i) ASSERT_EQ(fused.out[0].tensor.data<int32_t>()[i], 0);
  }
}

}  // namespace
}  // namespace tandem
