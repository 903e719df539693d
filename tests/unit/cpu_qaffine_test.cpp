// cpu_qaffine_test.cpp (CpuProductAffine, also run under each TANDEM_CPU_ISA cap by ctest):
// the per-channel affine head of an integer convolution's float tail (product scale, bias,
// folded batch normalization) given to oneDNN as output scales and bias
// (src/backends/cpu/product_affine.h), against the reference backend: with a runtime
// dynamic-quantization scale and with known scales, with negative factors, with a zero factor
// that ends the head early, and with an all-zero input whose runtime scale is 0.
#include <gtest/gtest.h>

#include <string>
#include <tuple>
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
  int64_t C = 8, O = 16, K = 1;
  bool runtime_scale = true;  // DynamicQuantizeLinear's scale; else a known uint8 input's
  bool zero_gamma = false;    // one channel's normalization factor is 0
  bool zero_input = false;    // every input 0: the runtime scale is 0
};

// ConvInteger -> Cast -> Mul(scale) -> Add(bias) -> Mul(gamma) -> Add(beta) -> Relu, the
// scale x_scale * w_scale[o] (runtime) or a constant.
GraphBuilder layer(const Layer& l) {
  std::vector<float> ws, bias, gamma, beta;
  for (int64_t o = 0; o < l.O; ++o) {
    const auto f = static_cast<float>(o);
    ws.push_back(0.003f + 0.0004f * static_cast<float>(o % 5));
    bias.push_back(-0.3f + 0.04f * f);
    gamma.push_back(l.zero_gamma && o == 3 ? 0.0f : (o % 4 == 1 ? -1.0f : 1.0f) * (0.5f + 0.1f * f));
    beta.push_back(0.2f - 0.03f * f);
  }
  const Shape xshape = {1, l.C, 12, 12};
  GraphBuilder q;
  q.init("w", random_ints<uint8_t>({l.O, l.C, l.K, l.K}, 128 - onednn_weight_max(), 128 + onednn_weight_max(), 32))
      .init("wz", Tensor::scalar<uint8_t>(128))
      .init("ws", Tensor::from_vector<float>({l.O, 1, 1}, ws))
      .init("b", Tensor::from_vector<float>({l.O, 1, 1}, bias))
      .init("g", Tensor::from_vector<float>({l.O, 1, 1}, gamma))
      .init("beta", Tensor::from_vector<float>({l.O, 1, 1}, beta));
  if (l.runtime_scale) {
    q.input("x", l.zero_input ? Tensor(DataType::float32, xshape) : random_floats(xshape, 31, -0.9f, 1.4f))
        .node("DynamicQuantizeLinear", {"x"}, {"xq", "xs", "xz"})
        .node("Mul", {"xs", "ws"}, {"s"});
  } else {
    std::vector<float> s;
    for (float w : ws) s.push_back(w * 0.01f);
    q.input("xq", random_ints<uint8_t>(xshape, 0, 255, 33))
        .init("xz", Tensor::scalar<uint8_t>(100))
        .init("s", Tensor::from_vector<float>({l.O, 1, 1}, s));
  }
  q.node("ConvInteger", {"xq", "w", "xz", "wz"}, {"c"}, {{"pads", attr_ints(std::vector<int64_t>(4, l.K / 2))}})
      .node("Cast", {"c"}, {"cf"}, {{"to", attr_int(1)}})
      .node("Mul", {"cf", "s"}, {"y"})
      .node("Add", {"y", "b"}, {"yb"})
      .node("Mul", {"yb", "g"}, {"yg"})
      .node("Add", {"yg", "beta"}, {"yn"})
      .node("Relu", {"yn"}, {"r"})
      .output("r");
  return q;
}

std::string trace(const Layer& l) {
  return "C=" + std::to_string(l.C) + " O=" + std::to_string(l.O) + " K=" + std::to_string(l.K) +
         (l.runtime_scale ? " runtime scale" : " known scale") + (l.zero_gamma ? ", a zero factor" : "") +
         (l.zero_input ? ", all-zero input" : "");
}

// Runs `q` on one and two threads against the reference backend; returns the fraction of the
// cpu backend's outputs that are positive (the last run's), 0 when a run failed.
double expect_matches_reference(const GraphBuilder& q) {
  double positive = 0;
  for (int threads : {1, 2}) {
    Runs r = run_both(q, threads);
    EXPECT_EQ(r.cpu.size(), 1u);
    EXPECT_EQ(nodes_on(r.report, "reference"), 0);
    if (r.cpu.size() != 1 || r.ref.size() != 1) return 0;
    // The head's products and sums are reassociated (one scale and one bias per channel):
    // float32 rounding apart from the separate nodes.
    const Status close = compare_values(r.ref[0], r.cpu[0], Tolerance{1e-5, 1e-5});
    EXPECT_TRUE(close.is_ok()) << close.to_string();
    const Tensor& y = r.cpu[0].tensor;
    int64_t count = 0;
    for (int64_t i = 0; i < y.numel(); ++i) count += y.data<float>()[i] > 0;
    positive = static_cast<double>(count) / static_cast<double>(y.numel());
  }
  return positive;
}

TEST(CpuProductAffine, ScaleBiasAndNormalizationBecomeOnePrimitive) {
  REQUIRE_CPU();
  for (auto [C, O, K] : {std::tuple<int64_t, int64_t, int64_t>{8, 16, 1}, {8, 16, 3}, {96, 96, 1}, {48, 24, 3}})
    for (bool runtime : {true, false}) {
      Layer l{C, O, K, runtime};
      SCOPED_TRACE(trace(l));
      const GraphBuilder q = layer(l);
      const std::string text = describe_cpu(q);
      EXPECT_NE(text.find("fused: ConvInteger + Cast + Mul + Add + Mul + Add + Relu"), std::string::npos) << text;
      if (text.find("own integer kernel") == std::string::npos) {
        // One primitive: no float tail after it; a runtime scale is prepared by a small kernel.
        EXPECT_EQ(text.find("tail)"), std::string::npos) << text;
        EXPECT_EQ(text.find("(runtime scale)") != std::string::npos, runtime) << text;
      }
      EXPECT_GT(expect_matches_reference(q), 0.2) << "the outputs exercise the arithmetic";
    }
}

TEST(CpuProductAffine, AZeroFactorEndsTheHeadBeforeIt) {
  REQUIRE_CPU();
  // gamma[3] = 0 after a bias: the bias cannot be divided by that channel's scale, so the head
  // stops at the bias and the normalization stays a post-op; the numbers are unchanged.
  for (bool runtime : {true, false}) {
    Layer l{8, 16, 3, runtime, true};
    SCOPED_TRACE(trace(l));
    expect_matches_reference(layer(l));
  }
}

TEST(CpuProductAffine, AnAllZeroInputGivesTheShiftThroughAZeroRuntimeScale) {
  REQUIRE_CPU();
  // DynamicQuantizeLinear of zeros has scale 0: y = 0 * acc + bias, normalized. The bias,
  // divided by the scale inside the primitive, must still come out (the kernel keeps the scale
  // off zero), not NaN or infinity.
  for (int64_t K : {1, 3}) {
    Layer l{8, 16, K, true, false, true};
    SCOPED_TRACE(trace(l));
    const GraphBuilder q = layer(l);
    EXPECT_GT(expect_matches_reference(q), 0) << "some channels' shift is positive";
  }
}

}  // namespace
}  // namespace tandem
