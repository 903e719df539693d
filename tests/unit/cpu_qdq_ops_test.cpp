// cpu_qdq_ops_test.cpp (CpuBackendQdqOps, also run under each TANDEM_CPU_ISA cap by ctest):
// QDQ-format chains around ops without weights (DequantizeLinear inputs -> Add, Mul, Sigmoid,
// LeakyRelu, GlobalAveragePool, AveragePool, Concat -> QuantizeLinear) become the backend's
// quantized com.microsoft kernels (qdq_fusion.cpp) and agree with the reference backend, which
// runs the nodes one by one in float32, within one unit. QuantizeLinear -> DequantizeLinear
// round trips left over become one float step, or post-ops of the convolution before them, and
// agree with the reference bit for bit. Gemm with int8 weights becomes QGemm. Float chains
// between DequantizeLinear and QuantizeLinear that stay float read and write the bytes directly
// (elementwise programs with 8-bit ends); ops that only move values run on the bytes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cpu_int8_test_util.h"
#include "op_test_util.h"

namespace tandem {
namespace {

using namespace int8_test;
using testing::attr_float;
using testing::attr_int;
using testing::attr_ints;
using testing::attr_string;

// A float input quantized at (xs, xz) and dequantized, as a QDQ model reads an activation.
void quantized_input(GraphBuilder& q, const std::string& name, const Shape& shape, uint32_t seed, float scale,
                     uint8_t zero_point) {
  q.input(name, random_floats(shape, seed, -1.0f, 1.0f))
      .init(name + "_s", Tensor::scalar<float>(scale))
      .init(name + "_z", Tensor::scalar<uint8_t>(zero_point))
      .node("QuantizeLinear", {name, name + "_s", name + "_z"}, {name + "_q"})
      .node("DequantizeLinear", {name + "_q", name + "_s", name + "_z"}, {name + "_f"});
}

// 8-bit data from outside (an input) dequantized at (xs, xz), as a QDQ model reads the output
// of an integer op.
void dequantized_input(GraphBuilder& q, const std::string& name, const Shape& shape, uint32_t seed, float scale,
                       uint8_t zero_point) {
  q.input(name + "_q", random_ints<uint8_t>(shape, 0, 255, seed))
      .init(name + "_s", Tensor::scalar<float>(scale))
      .init(name + "_z", Tensor::scalar<uint8_t>(zero_point))
      .node("DequantizeLinear", {name + "_q", name + "_s", name + "_z"}, {name + "_f"});
}

struct OpCase {
  std::string op, fused;
  std::vector<Shape> inputs;
  std::map<std::string, Attribute> attrs;
};

TEST(CpuBackendQdqOps, ChainsAroundOpsWithoutWeightsRunQuantized) {
  REQUIRE_CPU();
  const std::vector<OpCase> cases = {
      {"Add", "QLinearAdd", {{1, 8, 6, 5}, {1, 8, 6, 5}}, {}},
      {"Add", "QLinearAdd", {{1, 8, 6, 5}, {1, 8, 1, 1}}, {}},  // broadcast
      {"Mul", "QLinearMul", {{2, 3, 7}, {2, 3, 7}}, {}},
      {"Sigmoid", "QLinearSigmoid", {{1, 4, 9, 9}}, {}},
      {"LeakyRelu", "QLinearLeakyRelu", {{3, 50}}, {{"alpha", attr_float(0.2f)}}},
      {"GlobalAveragePool", "QLinearGlobalAveragePool", {{1, 16, 7, 9}}, {}},
      {"AveragePool", "QLinearAveragePool", {{1, 8, 10, 10}},
       {{"kernel_shape", attr_ints({3, 3})}, {"strides", attr_ints({2, 2})}, {"pads", attr_ints({1, 1, 1, 1})}}},
      {"Concat", "QLinearConcat", {{1, 4, 5, 5}, {1, 6, 5, 5}, {1, 2, 5, 5}}, {{"axis", attr_int(1)}}},
  };
  uint32_t seed = 40;
  for (const OpCase& c : cases) {
    SCOPED_TRACE(c.op + " with " + std::to_string(c.inputs.size()) + " input(s)");
    GraphBuilder q;
    std::vector<std::string> operands;
    for (size_t i = 0; i < c.inputs.size(); ++i) {
      const std::string name = "x" + std::to_string(i);
      // Each input its own scale and zero point, so that the kernel requantizes each.
      dequantized_input(q, name, c.inputs[i], seed++, 0.009f + 0.002f * static_cast<float>(i),
                        static_cast<uint8_t>(120 + 5 * i));
      operands.push_back(name + "_f");
    }
    q.node(c.op, operands, {"y"}, c.attrs)
        .init("ys", Tensor::scalar<float>(0.0071f))
        .init("yz", Tensor::scalar<uint8_t>(100))
        .node("QuantizeLinear", {"y", "ys", "yz"}, {"yq"})
        .output("yq");
    const std::string text = describe_cpu(q);
    EXPECT_NE(text.find("[" + c.fused + " "), std::string::npos) << text;
    EXPECT_NE(text.find(std::string(c.inputs.size() == 1 ? "DequantizeLinear + " : "DequantizeLinear + DequantizeLinear + ") +
                        c.op + " + QuantizeLinear"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("0 steps on reference kernels"), std::string::npos) << text;
    for (int threads : {1, 2}) {
      Runs r = run_both(q, threads);
      ASSERT_EQ(r.cpu.size(), 1u);
      const int64_t differ = expect_within_units(r.ref[0], r.cpu[0], 1, c.op);
      EXPECT_LE(differ, r.cpu[0].tensor.numel() / 50 + 1) << "more than 2% of outputs off by one";
      const auto* bytes = static_cast<const uint8_t*>(r.cpu[0].tensor.raw_data());
      std::set<uint8_t> levels(bytes, bytes + r.cpu[0].tensor.numel());
      EXPECT_GT(levels.size(), std::min<size_t>(8, static_cast<size_t>(r.cpu[0].tensor.numel()) / 2)) << "varied outputs";
    }
  }
}

TEST(CpuBackendQdqOps, OtherChainsKeepTheFloatPath) {
  REQUIRE_CPU();
  {  // An operand that is not dequantized (a float constant).
    GraphBuilder q;
    quantized_input(q, "x0", {1, 4, 3, 3}, 90, 0.01f, 128);
    q.init("k", Tensor::scalar<float>(0.5f))
        .node("Add", {"x0_f", "k"}, {"y"})
        .init("ys", Tensor::scalar<float>(0.01f))
        .init("yz", Tensor::scalar<uint8_t>(128))
        .node("QuantizeLinear", {"y", "ys", "yz"}, {"yq"})
        .output("yq");
    const std::string text = describe_cpu(q);
    EXPECT_EQ(text.find("QLinearAdd"), std::string::npos) << text;
    Runs r = run_both(q);
    ASSERT_EQ(r.cpu.size(), 1u);
    expect_within_units(r.ref[0], r.cpu[0], 0, "float path");
  }
  {  // The op's float output is read by something else too: it must stay.
    GraphBuilder q;
    quantized_input(q, "x0", {1, 4, 3, 3}, 91, 0.01f, 128);
    quantized_input(q, "x1", {1, 4, 3, 3}, 92, 0.01f, 128);
    q.node("Add", {"x0_f", "x1_f"}, {"y"})
        .init("ys", Tensor::scalar<float>(0.01f))
        .init("yz", Tensor::scalar<uint8_t>(128))
        .node("QuantizeLinear", {"y", "ys", "yz"}, {"yq"})
        .output("yq")
        .output("y");
    const std::string text = describe_cpu(q);
    EXPECT_EQ(text.find("QLinearAdd"), std::string::npos) << text;
  }
  {  // Inputs that QuantizeLinear makes from float values: the Add stays float, no 8-bit tensor
     // is written (the pairs become round trips), and the result is the reference's exactly.
    GraphBuilder q;
    quantized_input(q, "x0", {1, 4, 3, 3}, 93, 0.01f, 128);
    quantized_input(q, "x1", {1, 4, 3, 3}, 94, 0.013f, 120);
    q.node("Add", {"x0_f", "x1_f"}, {"y"})
        .init("ys", Tensor::scalar<float>(0.011f))
        .init("yz", Tensor::scalar<uint8_t>(128))
        .node("QuantizeLinear", {"y", "ys", "yz"}, {"yq"})
        .output("yq");
    const std::string text = describe_cpu(q);
    EXPECT_EQ(text.find("QLinearAdd"), std::string::npos) << text;
    EXPECT_NE(text.find("fused: QuantizeLinear + DequantizeLinear + Add"), std::string::npos) << text;
    Runs r = run_both(q);
    ASSERT_EQ(r.cpu.size(), 1u);
    expect_within_units(r.ref[0], r.cpu[0], 0, "float path of quantized float inputs");
  }
}


// Float values that land on the 8-bit grid's ties (k + 0.5) * 0.25 for k in [-60, 320), so
// that rounding (ties to even) and saturation at both ends are exercised, every 7th one a random
// value in between.
Tensor tie_values(const Shape& shape, uint32_t seed) {
  Tensor t(DataType::float32, shape);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> k(-60, 319);
  std::uniform_real_distribution<float> any(-20.0f, 90.0f);
  for (int64_t i = 0; i < t.numel(); ++i)
    t.data<float>()[i] = i % 7 == 6 ? any(rng) : (static_cast<float>(k(rng)) + 0.5f) * 0.25f;
  return t;
}

TEST(CpuBackendQdqOps, RoundTripsRunAsOneFloatStepBitForBit) {
  REQUIRE_CPU();
  GraphBuilder q;
  Tensor x = tie_values({2, 5, 7, 9}, 7);
  float* v = x.data<float>();
  v[3] = std::numeric_limits<float>::quiet_NaN();  // quantizes to the zero point: 0.0 back
  v[4] = std::numeric_limits<float>::infinity();
  v[5] = -std::numeric_limits<float>::infinity();
  v[6] = 3.0e38f;
  q.input("x", x)
      .init("su", Tensor::scalar<float>(0.25f))
      .init("zu", Tensor::scalar<uint8_t>(10))
      .node("QuantizeLinear", {"x", "su", "zu"}, {"xu"})
      .node("DequantizeLinear", {"xu", "su", "zu"}, {"yu"})
      .init("ss", Tensor::scalar<float>(0.037f))
      .init("zs", Tensor::scalar<int8_t>(-7))
      .node("QuantizeLinear", {"x", "ss", "zs"}, {"xs"})
      .node("DequantizeLinear", {"xs", "ss", "zs"}, {"ys"})
      .output("yu")
      .output("ys");
  const std::string text = describe_cpu(q);
  EXPECT_NE(text.find("fused: QuantizeLinear + DequantizeLinear"), std::string::npos) << text;
  EXPECT_EQ(text.find("[DequantizeLinear"), std::string::npos) << text;
  EXPECT_NE(text.find("0 steps on reference kernels"), std::string::npos) << text;
  for (int threads : {1, 2}) {
    Runs r = run_both(q, threads);
    ASSERT_EQ(r.cpu.size(), 2u);
    expect_same_floats(r.ref[0], r.cpu[0], "uint8 round trip");
    expect_same_floats(r.ref[1], r.cpu[1], "int8 round trip");
    EXPECT_EQ(r.cpu[0].tensor.data<float>()[3], 0.0f) << "NaN";
  }
  // A round trip whose parameters differ between the two nodes is left as it is.
  GraphBuilder d;
  d.input("x", x)
      .init("s1", Tensor::scalar<float>(0.25f))
      .init("s2", Tensor::scalar<float>(0.5f))
      .init("z", Tensor::scalar<uint8_t>(10))
      .node("QuantizeLinear", {"x", "s1", "z"}, {"xq"})
      .node("DequantizeLinear", {"xq", "s2", "z"}, {"y"})
      .output("y");
  const std::string plain = describe_cpu(d);
  EXPECT_NE(plain.find("[DequantizeLinear"), std::string::npos) << plain;
  Runs r = run_both(d);
  ASSERT_EQ(r.cpu.size(), 1u);
  expect_same_floats(r.ref[0], r.cpu[0], "different scales");
}

TEST(CpuBackendQdqOps, RoundTripsAfterAConvolutionBecomeItsPostOps) {
  REQUIRE_CPU();
  // A 1x1 convolution with identity weights passes its input through exactly, so its output
  // sits on the ties too; two round trips (uint8, then int8 after a Relu) follow it, the second
  // of which rounds with the 1.5 * 2^23 addition (the chain's second rounding).
  const int64_t C = 8;
  const Tensor w = identity_conv_weights(C);
  GraphBuilder q;
  q.input("x", tie_values({1, C, 6, 10}, 11))
      .init("w", w)
      .node("Conv", {"x", "w"}, {"c"}, {{"kernel_shape", attr_ints({1, 1})}})
      .init("su", Tensor::scalar<float>(0.25f))
      .init("zu", Tensor::scalar<uint8_t>(10))
      .node("QuantizeLinear", {"c", "su", "zu"}, {"cq"})
      .node("DequantizeLinear", {"cq", "su", "zu"}, {"cf"})
      .node("Relu", {"cf"}, {"r"})
      .init("ss", Tensor::scalar<float>(0.1f))
      .init("zs", Tensor::scalar<int8_t>(-3))
      .node("QuantizeLinear", {"r", "ss", "zs"}, {"rq"})
      .node("DequantizeLinear", {"rq", "ss", "zs"}, {"y"})
      .output("y");
  const std::string text = describe_cpu(q);
  EXPECT_NE(text.find("Conv + QuantizeLinear + DequantizeLinear + Relu + QuantizeLinear + DequantizeLinear"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("post-ops)"), std::string::npos) << "a separate pass after the convolution\n" << text;
  for (int threads : {1, 2}) {
    Runs r = run_both(q, threads);
    ASSERT_EQ(r.cpu.size(), 1u);
    expect_same_floats(r.ref[0], r.cpu[0], "convolution with round trips");
  }
}

// The float ops between DequantizeLinear and QuantizeLinear that no quantized kernel takes (a
// product by a per-channel gate, residual sums with float values) run as one elementwise step
// that reads the bytes and writes bytes: no float copy of either exists. Channels-last bytes (a
// QLinearConv's output) make it walk the blocked layout, with padded channel blocks where the
// channels are not a multiple of the block (5, 24); plain bytes, the plain layout.
GraphBuilder gated_residual(int64_t C, bool int8_out, int64_t N = 1) {
  const int64_t Cin = 8;
  GraphBuilder q;
  q.input("x", random_floats({N, Cin, 9, 7}, 21, -1.0f, 1.0f))
      .input("g", random_floats({N, C, 1, 1}, 22, 0.0f, 1.0f))
      .input("f", random_floats({N, C, 9, 7}, 23, -2.0f, 2.0f))
      .init("xs", Tensor::scalar<float>(0.01f))
      .init("xz", Tensor::scalar<uint8_t>(128))
      .init("w", random_ints<int8_t>({C, Cin, 1, 1}, -onednn_weight_max(), onednn_weight_max(), 24))
      .init("ws", Tensor::scalar<float>(0.002f))
      .init("wz", Tensor::scalar<int8_t>(0))
      .init("ys", Tensor::scalar<float>(0.013f))
      .init("yz", Tensor::scalar<uint8_t>(118))
      .node("QuantizeLinear", {"x", "xs", "xz"}, {"a"})
      .node("QLinearConv", {"a", "xs", "xz", "w", "ws", "wz", "ys", "yz"}, {"y"})
      .node("DequantizeLinear", {"y", "ys", "yz"}, {"yf"});
  dequantized_input(q, "b", {N, C, 9, 7}, 25, 0.02f, 100);
  q.node("Mul", {"yf", "g"}, {"m"})
      .node("Add", {"m", "yf"}, {"s"})
      .node("Add", {"s", "f"}, {"t"})
      .node("Add", {"t", "b_f"}, {"u"});
  if (int8_out) q.init("os", Tensor::scalar<float>(0.05f)).init("oz", Tensor::scalar<int8_t>(-9));
  else q.init("os", Tensor::scalar<float>(0.06f)).init("oz", Tensor::scalar<uint8_t>(128));
  // The convolution's bytes are an output too (as a squeeze-and-excitation gate's pooling reads
  // them in real models): it cannot take the DequantizeLinear as its own float tail.
  q.node("QuantizeLinear", {"u", "os", "oz"}, {"out"}).output("out").output("y");
  return q;
}

TEST(CpuBackendQdqOps, QuantizeLinearRoundsLikeTheReferenceNextToHalfIntegers) {
  REQUIRE_CPU();
  // The vector quantizers multiply by the scale's reciprocal and divide only next to
  // half-integers: values on and one or two floats either side of (k + 0.5) * scale, for scales
  // with inexact reciprocals, a power of two, and subnormal ones (always divided).
  std::vector<float> values;
  const float scales[] = {0.1f, 0.037f, 1.0f / 3.0f, 0.0071f, 0.25f, 3e-5f, 1e-39f, 7.3e-39f};
  for (float scale : scales)
    for (int k = -300; k <= 300; ++k) {
      float h = (static_cast<float>(k) + 0.5f) * scale;
      values.push_back(h);
      for (float dir : {INFINITY, -INFINITY}) {
        float v = std::nextafter(h, dir);
        values.push_back(v);
        values.push_back(std::nextafter(v, dir));
      }
    }
  values.insert(values.end(), {NAN, INFINITY, -INFINITY, 3e38f, -3e38f, 0.0f, -0.0f});
  GraphBuilder q;
  q.input("x", Tensor::from_vector<float>({static_cast<int64_t>(values.size())}, values));
  int i = 0;
  for (float scale : scales) {
    const std::string n = std::to_string(i++);
    q.init("s" + n, Tensor::scalar<float>(scale))
        .init("zu" + n, Tensor::scalar<uint8_t>(128))
        .init("zs" + n, Tensor::scalar<int8_t>(-3))
        .node("QuantizeLinear", {"x", "s" + n, "zu" + n}, {"u" + n})
        .node("QuantizeLinear", {"x", "s" + n, "zs" + n}, {"i" + n})
        .output("u" + n)
        .output("i" + n);
  }
  for (int threads : {1, 2}) {
    Runs r = run_both(q, threads);
    ASSERT_EQ(r.cpu.size(), 2 * std::size(scales));
    for (size_t o = 0; o < r.cpu.size(); ++o)
      expect_within_units(r.ref[o], r.cpu[o], 0, "QuantizeLinear output " + std::to_string(o));
  }
}

TEST(CpuBackendQdqOps, FloatChainsBetweenQuantizedOpsReadAndWriteBytes) {
  REQUIRE_CPU();
  for (int64_t C : {24, 5, 32}) {
    for (bool int8_out : {false, true}) {
      const int64_t N = C == 24 ? 2 : 1;  // a batch: the walk's outer dims include images
      SCOPED_TRACE("channels " + std::to_string(C) + (int8_out ? ", int8 output" : ", uint8 output"));
      const GraphBuilder q = gated_residual(C, int8_out, N);
      const std::string text = describe_cpu(q);
      EXPECT_NE(text.find("fused: DequantizeLinear + DequantizeLinear + Mul + Add + Add + Add + QuantizeLinear"),
                std::string::npos)
          << text;
      EXPECT_NE(text.find("0 steps on reference kernels"), std::string::npos) << text;
      for (int threads : {1, 2}) {
        Runs r = run_both(q, threads);
        ASSERT_EQ(r.cpu.size(), 2u);
        // The same float32 arithmetic as the nodes one by one: equal bytes.
        expect_within_units(r.ref[0], r.cpu[0], 0, "chain with 8-bit ends");
        const Tensor& out = r.cpu[0].tensor;
        int saturated = 0;
        for (int64_t i = 0; i < out.numel(); ++i) {
          const int v = int8_out ? out.data<int8_t>()[i] : out.data<uint8_t>()[i];
          saturated += v == (int8_out ? -128 : 0) || v == (int8_out ? 127 : 255);
        }
        EXPECT_LT(saturated, out.numel() / 4) << "the outputs exercise the arithmetic";
      }
    }
  }
  // Plain bytes (rank 3): the plain walk, a broadcast float operand.
  GraphBuilder p;
  dequantized_input(p, "a", {2, 3, 37}, 31, 0.05f, 90);
  p.input("f", random_floats({3, 1}, 32, -1.0f, 1.0f))
      .node("Mul", {"a_f", "f"}, {"m"})
      .node("Relu", {"m"}, {"r"})
      .init("os", Tensor::scalar<float>(0.01f))
      .init("oz", Tensor::scalar<uint8_t>(3))
      .node("QuantizeLinear", {"r", "os", "oz"}, {"out"})
      .output("out");
  const std::string text = describe_cpu(p);
  EXPECT_NE(text.find("fused: DequantizeLinear + Mul + Relu + QuantizeLinear"), std::string::npos) << text;
  for (int threads : {1, 2}) {
    Runs r = run_both(p, threads);
    ASSERT_EQ(r.cpu.size(), 1u);
    expect_within_units(r.ref[0], r.cpu[0], 0, "plain chain with 8-bit ends");
  }
}

// An FPN's top-down add in QDQ form: a gated residual of a quantized convolution's output plus
// the coarser level's quantized map, dequantized and upsampled by a nearest Resize (by 2, or to
// sizes that repeat rows and columns unevenly). The elementwise kernel gathers the coarser
// map's bytes through the Resize's tables and dequantizes them as it goes (no float32 copy of
// either map): the same bytes as the nodes one by one.
TEST(CpuBackendQdqOps, AnUpsampledDequantizedOperandIsGatheredFromItsBytes) {
  REQUIRE_CPU();
  for (int64_t C : {24, 5, 32}) {
    for (bool int8_coarse : {false, true}) {
      for (bool by_sizes : {false, true}) {
        const int64_t N = C == 24 ? 2 : 1;
        SCOPED_TRACE("channels " + std::to_string(C) + (int8_coarse ? ", int8" : ", uint8") + " coarse map" +
                     (by_sizes ? ", resized to sizes" : ", upsampled by 2"));
        GraphBuilder q;
        const int64_t H = by_sizes ? 9 : 10, W = by_sizes ? 7 : 8;
        q.input("x", random_floats({N, 8, H, W}, 81, -1.0f, 1.0f))
            .input("x2", random_floats({N, 8, 5, 4}, 82, -1.0f, 1.0f))
            .input("g", random_floats({N, C, 1, 1}, 83, 0.0f, 1.0f))
            .init("xs", Tensor::scalar<float>(0.01f))
            .init("xz", Tensor::scalar<uint8_t>(128))
            .init("w", random_ints<int8_t>({C, 8, 1, 1}, -onednn_weight_max(), onednn_weight_max(), 84))
            .init("w2", random_ints<int8_t>({C, 8, 3, 3}, -onednn_weight_max(), onednn_weight_max(), 85))
            .init("ws", Tensor::scalar<float>(0.002f))
            .init("wz", Tensor::scalar<int8_t>(0))
            .init("ys", Tensor::scalar<float>(0.013f))
            .init("yz", Tensor::scalar<uint8_t>(118))
            .init("vs", Tensor::scalar<float>(0.03f))
            .init("roi", Tensor::from_vector<float>({0}, {}))
            .init("by2", Tensor::from_vector<float>({4}, {1, 1, 2, 2}))
            .init("sizes", Tensor::from_vector<int64_t>({4}, {N, C, H, W}))
            .init("os", Tensor::scalar<float>(0.05f))
            .init("oz", Tensor::scalar<uint8_t>(121));
        if (int8_coarse) q.init("vz", Tensor::scalar<int8_t>(-7));
        else q.init("vz", Tensor::scalar<uint8_t>(131));
        q.node("QuantizeLinear", {"x", "xs", "xz"}, {"a"})
            .node("QLinearConv", {"a", "xs", "xz", "w", "ws", "wz", "ys", "yz"}, {"y"})
            .node("DequantizeLinear", {"y", "ys", "yz"}, {"yf"})
            .node("QuantizeLinear", {"x2", "xs", "xz"}, {"a2"})
            .node("QLinearConv", {"a2", "xs", "xz", "w2", "ws", "wz", "vs", "vz"}, {"v"},
                  {{"pads", attr_ints({1, 1, 1, 1})}})
            .node("DequantizeLinear", {"v", "vs", "vz"}, {"vf"});
        if (by_sizes) q.node("Resize", {"vf", "roi", "", "sizes"}, {"up"}, {{"mode", attr_string("nearest")}});
        else q.node("Resize", {"vf", "roi", "by2"}, {"up"}, {{"mode", attr_string("nearest")}});
        q.node("Mul", {"yf", "g"}, {"m"})
            .node("Add", {"m", "yf"}, {"s"})
            .node("Add", {"s", "up"}, {"t"})
            .node("QuantizeLinear", {"t", "os", "oz"}, {"out"})
            .output("out")
            .output("y")   // (read elsewhere too, as in the model: the convolutions keep their bytes)
            .output("v");
        const std::string text = describe_cpu(q);
        EXPECT_NE(text.find("fused: DequantizeLinear + Resize + DequantizeLinear + Mul + Add + Add + QuantizeLinear"),
                  std::string::npos)
            << text;
        EXPECT_NE(text.find("0 steps on reference kernels"), std::string::npos) << text;
        for (int threads : {1, 2}) {
          Runs r = run_both(q, threads);
          ASSERT_EQ(r.cpu.size(), 3u);
          expect_within_units(r.ref[0], r.cpu[0], 0, "residual with an upsampled 8-bit operand");
        }
      }
    }
  }
}

// A dequantized value that the program reads both as it is and through a nearest Resize (an
// identity one here) keeps its float32 value: neither reader may take its DequantizeLinear.
TEST(CpuBackendQdqOps, AValueReadDirectlyAndUpsampledKeepsItsDequantizedFloats) {
  REQUIRE_CPU();
  GraphBuilder q;
  dequantized_input(q, "a", {1, 24, 6, 5}, 91, 0.05f, 90);
  q.init("roi", Tensor::from_vector<float>({0}, {}))
      .init("one", Tensor::from_vector<float>({4}, {1, 1, 1, 1}))
      .init("os", Tensor::scalar<float>(0.1f))
      .init("oz", Tensor::scalar<uint8_t>(128))
      .node("Resize", {"a_f", "roi", "one"}, {"up"}, {{"mode", attr_string("nearest")}})
      .node("Add", {"a_f", "up"}, {"s"})
      .node("QuantizeLinear", {"s", "os", "oz"}, {"out"})
      .output("out");
  for (int threads : {1, 2}) {
    Runs r = run_both(q, threads);
    ASSERT_EQ(r.cpu.size(), 1u);
    EXPECT_EQ(nodes_on(r.report, "cpu"), 4) << "every node on the cpu backend, none declined";
    expect_within_units(r.ref[0], r.cpu[0], 0, "a value read directly and upsampled");
  }
}

TEST(CpuBackendQdqOps, BytesThatBroadcastOrFillOnePixelStillRunOnTheFastPath) {
  REQUIRE_CPU();
  // A gate's bytes [1, C, 1, 1] that the program broadcasts over [1, C, 5, 6] (dequantized into
  // a float32 temporary first), and a program over [1, C, 1, 1] channels-last bytes, whose
  // rows are channel blocks (the last one padded: C = 24, 5).
  for (int64_t C : {24, 5, 32}) {
    SCOPED_TRACE("channels " + std::to_string(C));
    GraphBuilder q;
    q.input("x", random_floats({1, 8, 1, 1}, 111, -1.0f, 1.0f))
        .input("f", random_floats({1, C, 5, 6}, 112, -1.0f, 1.0f))
        .init("xs", Tensor::scalar<float>(0.01f))
        .init("xz", Tensor::scalar<uint8_t>(128))
        .init("w", random_ints<int8_t>({C, 8, 1, 1}, -onednn_weight_max(), onednn_weight_max(), 113))
        .init("ws", Tensor::scalar<float>(0.002f))
        .init("wz", Tensor::scalar<int8_t>(0))
        .init("ys", Tensor::scalar<float>(0.013f))
        .init("yz", Tensor::scalar<uint8_t>(118))
        .node("QuantizeLinear", {"x", "xs", "xz"}, {"a"})
        .node("QLinearConv", {"a", "xs", "xz", "w", "ws", "wz", "ys", "yz"}, {"g"})
        .node("DequantizeLinear", {"g", "ys", "yz"}, {"gf"})
        .node("Mul", {"f", "gf"}, {"m"})                    // the gate's bytes, broadcast
        .node("DequantizeLinear", {"g", "ys", "yz"}, {"gf2"})
        .node("HardSigmoid", {"gf2"}, {"h"})               // over the gate's own pixel
        .init("os", Tensor::scalar<float>(0.004f))
        .init("oz", Tensor::scalar<uint8_t>(3))
        .node("QuantizeLinear", {"h", "os", "oz"}, {"hq"})
        .output("m")
        .output("hq");
    const std::string text = describe_cpu(q);
    EXPECT_NE(text.find("fused: DequantizeLinear + Mul"), std::string::npos) << text;
    EXPECT_NE(text.find("fused: DequantizeLinear + HardSigmoid + QuantizeLinear"), std::string::npos) << text;
    EXPECT_EQ(text.find("generic path"), std::string::npos) << text;
    for (int threads : {1, 2}) {
      Runs r = run_both(q, threads);
      ASSERT_EQ(r.cpu.size(), 2u);
      expect_same_floats(r.ref[0], r.cpu[0], "broadcast gate");
      expect_within_units(r.ref[1], r.cpu[1], 0, "one-pixel program");
    }
  }
}

TEST(CpuBackendQdqOps, AConcatenationThatIsQuantizedIsWrittenAsBytes) {
  REQUIRE_CPU();
  // Float convolutions (identity weights: their outputs are their inputs, blocked) and a plain
  // input, concatenated along channels at offsets that are not multiples of the channel block,
  // then quantized: each input goes into its channels of the channels-last bytes.
  for (bool int8_out : {false, true}) {
    SCOPED_TRACE(int8_out ? "int8" : "uint8");
    GraphBuilder q;
    std::vector<std::string> parts;
    const std::vector<int64_t> channels = {24, 5, 16, 3};
    for (size_t i = 0; i < channels.size(); ++i) {
      const std::string n = "x" + std::to_string(i);
      q.input(n, random_floats({2, channels[i], 5, 7}, 50 + static_cast<uint32_t>(i), -3.0f, 3.0f));
      if (i == 3) {
        parts.push_back(n);  // plain
        continue;
      }
      q.init("w" + n, identity_conv_weights(channels[i]))
          .node("Conv", {n, "w" + n}, {"c" + n}, {{"kernel_shape", attr_ints({1, 1})}});
      parts.push_back("c" + n);
    }
    if (int8_out) q.init("s", Tensor::scalar<float>(0.03f)).init("z", Tensor::scalar<int8_t>(4));
    else q.init("s", Tensor::scalar<float>(0.025f)).init("z", Tensor::scalar<uint8_t>(131));
    q.node("Concat", parts, {"cat"}, {{"axis", attr_int(1)}})
        .node("QuantizeLinear", {"cat", "s", "z"}, {"out"})
        .output("out");
    const std::string text = describe_cpu(q);
    EXPECT_NE(text.find("fused: Concat + QuantizeLinear"), std::string::npos) << text;
    for (int threads : {1, 2}) {
      Runs r = run_both(q, threads);
      ASSERT_EQ(r.cpu.size(), 1u);
      expect_within_units(r.ref[0], r.cpu[0], 0, "quantized concatenation");
    }
  }
  // Plain values along a middle axis.
  GraphBuilder p;
  p.input("a", random_floats({3, 4, 5}, 61, -1.0f, 1.0f))
      .input("b", random_floats({3, 7, 5}, 62, -1.0f, 1.0f))
      .init("s", Tensor::scalar<float>(0.01f))
      .init("z", Tensor::scalar<uint8_t>(128))
      .node("Concat", {"a", "b"}, {"cat"}, {{"axis", attr_int(-2)}})
      .node("QuantizeLinear", {"cat", "s", "z"}, {"out"})
      .output("out");
  EXPECT_NE(describe_cpu(p).find("fused: Concat + QuantizeLinear"), std::string::npos);
  Runs r = run_both(p, 2);
  ASSERT_EQ(r.cpu.size(), 1u);
  expect_within_units(r.ref[0], r.cpu[0], 0, "plain quantized concatenation");
}

TEST(CpuBackendQdqOps, NearestResizesIntoAQuantizedConcatenationAreReadFromTheirSources) {
  REQUIRE_CPU();
  // An FPN's fusion: coarser maps upsampled (nearest, by 2, 4 and 8, by scales or sizes, one
  // with half_pixel coordinates) and concatenated with a full-resolution map, then quantized.
  // The Resizes go into the concatenation, which reads their sources through the index tables:
  // the same bytes.
  for (int64_t C : {24, 5}) {
    SCOPED_TRACE(std::to_string(C) + " channels per part");
    GraphBuilder q;
    q.input("f", random_floats({2, C, 16, 24}, 70, -3.0f, 3.0f))
        .input("a", random_floats({2, C, 8, 12}, 71, -3.0f, 3.0f))
        .input("b", random_floats({2, C, 4, 6}, 72, -3.0f, 3.0f))
        .input("c", random_floats({2, C, 2, 3}, 73, -3.0f, 3.0f))
        .init("roi", Tensor::from_vector<float>({0}, {}))
        .init("x2", Tensor::from_vector<float>({4}, {1, 1, 2, 2}))
        .init("x4", Tensor::from_vector<float>({4}, {1, 1, 4, 4}))
        .init("full", Tensor::from_vector<int64_t>({4}, {2, C, 16, 24}))
        .init("s", Tensor::scalar<float>(0.025f))
        .init("z", Tensor::scalar<uint8_t>(131));
    q.node("Resize", {"a", "roi", "x2"}, {"ua"}, {{"mode", attr_string("nearest")}})
        .node("Resize", {"b", "roi", "x4"}, {"ub"},
              {{"mode", attr_string("nearest")}, {"coordinate_transformation_mode", attr_string("half_pixel")}})
        .node("Resize", {"c", "roi", "", "full"}, {"uc"}, {{"mode", attr_string("nearest")}})
        .node("Concat", {"ua", "f", "ub", "uc"}, {"cat"}, {{"axis", attr_int(1)}})
        .node("QuantizeLinear", {"cat", "s", "z"}, {"out"})
        .output("out");
    const std::string text = describe_cpu(q);
    EXPECT_NE(text.find("fused: Resize + Resize + Resize + Concat + QuantizeLinear"), std::string::npos) << text;
    EXPECT_EQ(text.find("generic path"), std::string::npos) << text;
    for (int threads : {1, 2}) {
      Runs r = run_both(q, threads);
      ASSERT_EQ(r.cpu.size(), 1u);
      expect_within_units(r.ref[0], r.cpu[0], 0, "quantized concatenation of upsampled maps");
    }
  }
}

// DequantizeLinear -> an op that moves or selects values -> QuantizeLinear with the same
// constants, as ONNX Runtime's QDQ tool wraps them: the op runs on the bytes, exactly.
struct MoveCase {
  std::string op;
  Shape input;
  std::map<std::string, Attribute> attrs;
  std::vector<std::pair<std::string, Tensor>> extra;  // constant inputs after the data
};

TEST(CpuBackendQdqOps, OpsThatMoveValuesRunOnTheBytes) {
  REQUIRE_CPU();
  const std::vector<MoveCase> cases = {
      {"Transpose", {1, 3, 4, 5}, {{"perm", attr_ints({0, 2, 3, 1})}}, {}},
      {"Reshape", {1, 3, 4, 5}, {}, {{"shape", Tensor::from_vector<int64_t>({2}, {3, 20})}}},
      {"Gather", {2, 5, 3}, {{"axis", attr_int(1)}}, {{"idx", Tensor::from_vector<int64_t>({3}, {4, 0, 2})}}},
      {"MaxPool",
       {1, 8, 9, 9},
       {{"kernel_shape", attr_ints({3, 3})}, {"strides", attr_ints({2, 2})}, {"pads", attr_ints({1, 1, 1, 1})}},
       {}},
      {"Resize",
       {1, 3, 5, 6},
       {{"mode", attr_string("nearest")}},
       {{"roi", Tensor::from_vector<float>({0}, {})}, {"scales", Tensor::from_vector<float>({4}, {1, 1, 2, 1.5f})}}},
      // The roi omitted (an empty name): the fused node keeps the gap.
      {"Resize",
       {1, 3, 5, 6},
       {{"mode", attr_string("nearest")}},
       {{"", Tensor()}, {"scales", Tensor::from_vector<float>({4}, {1, 1, 2, 2})}}},
      // Pad: the constant (0 when omitted, or a value between two steps of the grid) becomes
      // the byte the QuantizeLinear makes of it; reflect copies bytes.
      {"Pad", {1, 3, 5, 6}, {}, {{"pads", Tensor::from_vector<int64_t>({8}, {0, 0, 1, 2, 0, 0, 2, 1})}}},
      {"Pad",
       {1, 3, 5, 6},
       {},
       {{"pads", Tensor::from_vector<int64_t>({8}, {0, 1, 1, 0, 0, 0, 0, 3})}, {"fill", Tensor::scalar<float>(0.5f)}}},
      {"Pad",
       {1, 3, 5, 6},
       {{"mode", attr_string("reflect")}},
       {{"pads", Tensor::from_vector<int64_t>({8}, {0, 0, 2, 1, 0, 0, 1, 2})}}},
  };
  for (const MoveCase& c : cases) {
    for (bool int8 : {false, true}) {
      SCOPED_TRACE(c.op + (int8 ? " int8" : " uint8"));
      GraphBuilder q;
      q.input("x_q", int8 ? random_ints<int8_t>(c.input, -128, 127, 71) : random_ints<uint8_t>(c.input, 0, 255, 71))
          .init("s", Tensor::scalar<float>(0.037f));
      if (int8) q.init("z", Tensor::scalar<int8_t>(-5));
      else q.init("z", Tensor::scalar<uint8_t>(131));
      std::vector<std::string> inputs = {"x_f"};
      for (const auto& [name, t] : c.extra) {
        if (!name.empty()) q.init(name, t);
        inputs.push_back(name);
      }
      q.node("DequantizeLinear", {"x_q", "s", "z"}, {"x_f"})
          .node(c.op, inputs, {"y"}, c.attrs)
          .node("QuantizeLinear", {"y", "s", "z"}, {"out"})
          .output("out");
      const std::string text = describe_cpu(q);
      EXPECT_NE(text.find("fused: DequantizeLinear + " + c.op + " + QuantizeLinear"), std::string::npos) << text;
      EXPECT_NE(text.find("0 steps on reference kernels"), std::string::npos) << text;
      EXPECT_EQ(text.find("ref:any"), std::string::npos) << "oneDNN's reference loop:\n" << text;
      for (int threads : {1, 2}) {
        Runs r = run_both(q, threads);
        ASSERT_EQ(r.cpu.size(), 1u);
        expect_within_units(r.ref[0], r.cpu[0], 0, c.op + " on bytes");
      }
    }
  }
  // Channels-last bytes (a QLinearConv's output) through MaxPool and Resize keep their layout.
  for (const std::string op : {"MaxPool", "Resize"}) {
    SCOPED_TRACE(op + " of channels-last bytes");
    GraphBuilder q;
    q.input("x", random_floats({1, 8, 9, 7}, 81, -1.0f, 1.0f))
        .init("xs", Tensor::scalar<float>(0.01f))
        .init("xz", Tensor::scalar<uint8_t>(128))
        .init("w", random_ints<int8_t>({24, 8, 1, 1}, -onednn_weight_max(), onednn_weight_max(), 82))
        .init("ws", Tensor::scalar<float>(0.002f))
        .init("wz", Tensor::scalar<int8_t>(0))
        .init("ys", Tensor::scalar<float>(0.013f))
        .init("yz", Tensor::scalar<uint8_t>(118))
        .node("QuantizeLinear", {"x", "xs", "xz"}, {"a"})
        .node("QLinearConv", {"a", "xs", "xz", "w", "ws", "wz", "ys", "yz"}, {"c"})
        .node("DequantizeLinear", {"c", "ys", "yz"}, {"cf"});
    if (op == "MaxPool") {
      q.node("MaxPool", {"cf"}, {"p"},
             {{"kernel_shape", attr_ints({2, 2})}, {"strides", attr_ints({2, 2})}, {"ceil_mode", attr_int(1)}});
    } else {
      q.init("roi", Tensor::from_vector<float>({0}, {}))
          .init("scales", Tensor::from_vector<float>({4}, {1, 1, 2, 2}))
          .node("Resize", {"cf", "roi", "scales"}, {"p"}, {{"mode", attr_string("nearest")}});
    }
    q.node("QuantizeLinear", {"p", "ys", "yz"}, {"out"}).output("out");
    const std::string text = describe_cpu(q);
    EXPECT_NE(text.find("fused: DequantizeLinear + " + op + " + QuantizeLinear"), std::string::npos) << text;
    EXPECT_EQ(text.find("layout reorder of 'c'"), std::string::npos) << text;
    EXPECT_NE(text.find("[" + op + " '" + op + "3']  -> 1x24x"), std::string::npos) << text;
    for (int threads : {1, 2}) {
      Runs r = run_both(q, threads);
      ASSERT_EQ(r.cpu.size(), 1u);
      expect_within_units(r.ref[0], r.cpu[0], 0, op + " on channels-last bytes");
    }
  }
  // Different constants on the two sides: the float path stays.
  GraphBuilder d;
  d.input("x_q", random_ints<uint8_t>({1, 3, 4, 5}, 0, 255, 91))
      .init("s1", Tensor::scalar<float>(0.037f))
      .init("s2", Tensor::scalar<float>(0.05f))
      .init("z", Tensor::scalar<uint8_t>(131))
      .node("DequantizeLinear", {"x_q", "s1", "z"}, {"x_f"})
      .node("Transpose", {"x_f"}, {"y"}, {{"perm", attr_ints({0, 2, 3, 1})}})
      .node("QuantizeLinear", {"y", "s2", "z"}, {"out"})
      .output("out");
  EXPECT_EQ(describe_cpu(d).find("fused: DequantizeLinear + Transpose + QuantizeLinear"), std::string::npos);
  Runs r = run_both(d);
  ASSERT_EQ(r.cpu.size(), 1u);
  expect_within_units(r.ref[0], r.cpu[0], 0, "transpose between different constants");
}

TEST(CpuBackendQdqOps, GemmBecomesQGemm) {
  REQUIRE_CPU();
  // Weights exact as int8 per output column ([K, N], or [N, K] under transB), a float bias per
  // column, alpha and beta: one QGemm step, within one unit of the float path's requantization.
  const int64_t K = 24, N = 10;
  for (bool trans_b : {false, true}) {
    SCOPED_TRACE(trans_b ? "transB" : "B as [K, N]");
    std::vector<float> ws, bias;
    for (int64_t j = 0; j < N; ++j) {
      ws.push_back(0.003f + 0.0004f * static_cast<float>(j % 4));
      bias.push_back(-0.3f + 0.07f * static_cast<float>(j));
    }
    GraphBuilder q;
    q.input("x", random_floats({6, K}, 101, -1.0f, 1.0f))
        .init("xs", Tensor::scalar<float>(1.0f / 127))
        .init("xz", Tensor::scalar<uint8_t>(128))
        .init("wq", random_ints<int8_t>(trans_b ? Shape{N, K} : Shape{K, N}, -onednn_weight_max(),
                                        onednn_weight_max(), 102))
        .init("ws", f32(ws))
        .init("wz", Tensor::from_vector<int8_t>({N}, std::vector<int8_t>(N, 0)))
        .init("b", f32(bias))
        .init("ys", Tensor::scalar<float>(0.03f))
        .init("yz", Tensor::scalar<uint8_t>(120))
        .node("QuantizeLinear", {"x", "xs", "xz"}, {"xq"})
        .node("DequantizeLinear", {"xq", "xs", "xz"}, {"xf"})
        .node("DequantizeLinear", {"wq", "ws", "wz"}, {"wf"}, {{"axis", attr_int(trans_b ? 0 : 1)}})
        .node("Gemm", {"xf", "wf", "b"}, {"g"},
              {{"transB", attr_int(trans_b ? 1 : 0)}, {"alpha", attr_float(trans_b ? 0.5f : 1.0f)},
               {"beta", attr_float(trans_b ? 2.0f : 1.0f)}})
        .node("QuantizeLinear", {"g", "ys", "yz"}, {"yq"})
        .output("yq");
    const std::string text = describe_cpu(q);
    EXPECT_NE(text.find("[QGemm 'Gemm3']  fused: DequantizeLinear + Gemm + QuantizeLinear"), std::string::npos) << text;
    EXPECT_NE(text.find("0 steps on reference kernels"), std::string::npos) << text;
    for (int threads : {1, 2}) {
      Runs r = run_both(q, threads);
      ASSERT_EQ(r.cpu.size(), 1u);
      const int64_t differ = expect_within_units(r.ref[0], r.cpu[0], 1, "QDQ Gemm");
      EXPECT_LE(differ, r.cpu[0].tensor.numel() / 20) << "more than 5% of outputs off by one";
      int saturated = 0;
      for (int64_t i = 0; i < r.cpu[0].tensor.numel(); ++i)
        saturated += r.cpu[0].tensor.data<uint8_t>()[i] == 0 || r.cpu[0].tensor.data<uint8_t>()[i] == 255;
      EXPECT_LT(saturated, r.cpu[0].tensor.numel() / 10) << "the outputs exercise the arithmetic";
    }
  }
}

TEST(CpuBackendQdqOps, ADequantizedValueWithOtherReadersStaysFloat) {
  REQUIRE_CPU();
  // The float value is also a graph output: the DequantizeLinear stays, and the chain after it
  // reads its float copy (and still quantizes as it stores).
  GraphBuilder q;
  dequantized_input(q, "a", {1, 4, 5, 6}, 41, 0.05f, 90);
  q.input("f", random_floats({1, 4, 5, 6}, 42, -1.0f, 1.0f))
      .node("Add", {"a_f", "f"}, {"s"})
      .init("os", Tensor::scalar<float>(0.02f))
      .init("oz", Tensor::scalar<uint8_t>(128))
      .node("QuantizeLinear", {"s", "os", "oz"}, {"out"})
      .output("out")
      .output("a_f");
  const std::string text = describe_cpu(q);
  EXPECT_NE(text.find("[DequantizeLinear"), std::string::npos) << text;
  EXPECT_NE(text.find("fused: Add + QuantizeLinear"), std::string::npos) << text;
  Runs r = run_both(q, 2);
  ASSERT_EQ(r.cpu.size(), 2u);
  expect_within_units(r.ref[0], r.cpu[0], 0, "quantized sum");
  expect_same_floats(r.ref[1], r.cpu[1], "dequantized output");
}

TEST(CpuBackendQdqOps, ConvTransposeBecomesAnInt8Deconvolution) {
  REQUIRE_CPU();
  // DequantizeLinear -> ConvTranspose (weights [C, O, k, k] exact as int8 per output channel,
  // axis 1) -> QuantizeLinear: one int8 deconvolution step, within one unit of the float path.
  // Patches that do not overlap, overlapping ones with padding and output_padding, odd channel
  // counts, uint8 and int8 data. Two groups keep the float path (and its results).
  struct Case {
    int64_t C, O, k, stride, pad, opad, group;
    bool int8_data, bias;
  };
  for (const Case& c : {Case{24, 24, 2, 2, 0, 0, 1, false, true}, Case{16, 8, 4, 2, 1, 0, 1, true, false},
                        Case{5, 7, 3, 2, 1, 1, 1, false, true}, Case{8, 8, 2, 2, 0, 0, 2, false, true}}) {
    if (c.int8_data && !tandem::cpu::onednn_has_vnni()) continue;  // the float path then (exact)
    SCOPED_TRACE("C " + std::to_string(c.C) + ", O " + std::to_string(c.O) + ", k " + std::to_string(c.k));
    std::vector<float> ws, bias;
    for (int64_t o = 0; o < c.O; ++o) {
      if (o < c.O / c.group) ws.push_back(0.004f + 0.0005f * static_cast<float>(o % 5));  // along axis 1
      bias.push_back(-0.2f + 0.05f * static_cast<float>(o));
    }
    auto zero = [&](int v) { return c.int8_data ? Tensor::scalar<int8_t>(static_cast<int8_t>(v - 128)) : Tensor::scalar<uint8_t>(static_cast<uint8_t>(v)); };
    GraphBuilder q;
    q.input("x", random_floats({2, c.C, 5, 6}, 111, -1.0f, 1.0f))
        .init("xs", Tensor::scalar<float>(1.0f / 120))
        .init("xz", zero(130))
        .init("wq", random_ints<int8_t>({c.C, c.O / c.group, c.k, c.k}, -onednn_weight_max(), onednn_weight_max(), 112))
        .init("ws", f32(ws))
        .init("wz", Tensor::from_vector<int8_t>({c.O / c.group}, std::vector<int8_t>(c.O / c.group, 0)))
        .init("b", f32(bias))
        .init("ys", Tensor::scalar<float>(0.06f))
        .init("yz", zero(120))
        .node("QuantizeLinear", {"x", "xs", "xz"}, {"xq"})
        .node("DequantizeLinear", {"xq", "xs", "xz"}, {"xf"})
        .node("DequantizeLinear", {"wq", "ws", "wz"}, {"wf"}, {{"axis", attr_int(1)}});
    std::vector<std::string> in{"xf", "wf"};
    if (c.bias) in.push_back("b");
    q.node("ConvTranspose", in, {"t"},
           {{"kernel_shape", attr_ints({c.k, c.k})}, {"strides", attr_ints({c.stride, c.stride})},
            {"pads", attr_ints({c.pad, c.pad, c.pad, c.pad})}, {"output_padding", attr_ints({c.opad, c.opad})},
            {"group", attr_int(c.group)}})
        .node("QuantizeLinear", {"t", "ys", "yz"}, {"yq"})
        .output("yq");
    const std::string text = describe_cpu(q);
    EXPECT_EQ(text.find("fused: DequantizeLinear + ConvTranspose + QuantizeLinear") != std::string::npos, c.group == 1)
        << text;
    EXPECT_NE(text.find("0 steps on reference kernels"), std::string::npos) << text;
    for (int threads : {1, 2}) {
      Runs r = run_both(q, threads);
      ASSERT_EQ(r.cpu.size(), 1u);
      const int64_t differ = expect_within_units(r.ref[0], r.cpu[0], 1, "QDQ ConvTranspose");
      EXPECT_LE(differ, r.cpu[0].tensor.numel() / 20) << "more than 5% of outputs off by one";
      const Tensor& out = r.cpu[0].tensor;
      int saturated = 0;
      for (int64_t i = 0; i < out.numel(); ++i) {
        const int v = c.int8_data ? out.data<int8_t>()[i] + 128 : out.data<uint8_t>()[i];
        saturated += v == 0 || v == 255;
      }
      EXPECT_LT(saturated, out.numel() / 10) << "the outputs exercise the arithmetic";
    }
  }
}

}  // namespace
}  // namespace tandem
