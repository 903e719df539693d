// cpu_int8_test.cpp (CpuBackendInt8, also run under each TANDEM_CPU_ISA cap by ctest
// cpu_backend_avx2 / _baseline): the quantized ops on the cpu backend (quantize.cpp, qconv.cpp,
// qmatmul.cpp, qdirect.cpp) against the reference backend and against values worked by hand
// from the ONNX spec, and that the nodes are placed on the cpu backend, including the weights
// oneDNN cannot take exactly (the own integer kernels).
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "backends/backend.h"
#include "core/compare.h"
#include "engine/placement.h"
#include "graph_build_util.h"
#include "op_test_util.h"
#include "cpu_int8_test_util.h"

namespace tandem {
namespace {

using testing::attr_int;
using testing::GraphBuilder;
using testing::attr_ints;

using namespace int8_test;

// --- QuantizeLinear / DequantizeLinear ---------------------------------------------------------

TEST(CpuBackendInt8, QuantizeLinearRoundsHalfToEvenAndSaturates) {
  REQUIRE_CPU();
  // scale 0.5, zero point 10: x / scale = 0.5 1.5 2.5 -0.5 -1.5 400 -400 NaN 3.2; worked by hand
  // from the spec: round half to even, add 10, saturate to [0, 255], NaN to the zero point.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> x = {0.25f, 0.75f, 1.25f, -0.25f, -0.75f, 200.0f, -200.0f, nan, 1.6f};
  // 17 more elements make a vector body and a tail.
  for (int i = 0; i < 17; ++i) x.push_back(0.25f + 0.5f * static_cast<float>(i));
  GraphBuilder q;
  q.input("x", f32(x))
      .init("s", Tensor::scalar<float>(0.5f))
      .init("z", Tensor::scalar<uint8_t>(10))
      .node("QuantizeLinear", {"x", "s", "z"}, {"y"})
      .output("y");
  Runs r = run_both(q);
  ASSERT_EQ(r.cpu.size(), 1u);
  EXPECT_EQ(nodes_on(r.report, "cpu"), 1);
  const uint8_t* y = r.cpu[0].tensor.data<uint8_t>();
  const uint8_t want[] = {10, 12, 12, 10, 8, 255, 0, 10, 13};
  for (int i = 0; i < 9; ++i) EXPECT_EQ(y[i], want[i]) << "element " << i;
  // x / scale = i + 0.5 rounds to the even one of i and i + 1.
  for (int i = 0; i < 17; ++i) EXPECT_EQ(y[9 + i], 10 + (i % 2 == 0 ? i : i + 1)) << "tie " << i;
  expect_within_units(r.ref[0], r.cpu[0], 0, "QuantizeLinear");
}

TEST(CpuBackendInt8, QuantizeAndDequantizePerTensorAndPerAxisMatchReference) {
  REQUIRE_CPU();
  const Tensor x = random_floats({2, 16, 9, 11}, 7, -3.0f, 3.0f);
  std::vector<float> scales;
  std::vector<int8_t> zps;
  for (int c = 0; c < 16; ++c) {
    scales.push_back(0.01f + 0.003f * static_cast<float>(c));
    zps.push_back(static_cast<int8_t>(c - 8));
  }
  GraphBuilder q;
  q.input("x", x)
      .init("s", Tensor::scalar<float>(0.02f))
      .init("z", Tensor::scalar<uint8_t>(128))
      .init("sc", f32(scales))
      .init("zc", Tensor::from_vector<int8_t>({16}, zps))
      .node("QuantizeLinear", {"x", "s", "z"}, {"qu"})
      .node("DequantizeLinear", {"qu", "s", "z"}, {"du"})
      .node("QuantizeLinear", {"x", "sc", "zc"}, {"qs"}, {{"axis", attr_int(1)}})
      .node("DequantizeLinear", {"qs", "sc", "zc"}, {"ds"}, {{"axis", attr_int(1)}})
      .output("qu").output("du").output("qs").output("ds");
  Runs r = run_both(q);
  ASSERT_EQ(r.cpu.size(), 4u);
  EXPECT_EQ(nodes_on(r.report, "cpu"), 4);
  expect_within_units(r.ref[0], r.cpu[0], 0, "per-tensor uint8");
  expect_within_units(r.ref[2], r.cpu[2], 0, "per-axis int8");
  for (int i : {1, 3}) EXPECT_TRUE(compare_values(r.ref[i], r.cpu[i], Tolerance{0, 0}).is_ok()) << "output " << i;
}

TEST(CpuBackendInt8, DynamicQuantizeLinearLargeWithNaNMatchesReference) {
  REQUIRE_CPU();
  // Enough elements for the parallel min/max chunks and the vector tails; NaN is ignored by the
  // range and quantizes to the zero point.
  Tensor x = random_floats({200003}, 21, -0.8f, 2.5f);
  x.data<float>()[17] = std::numeric_limits<float>::quiet_NaN();
  x.data<float>()[150001] = -1.25f;  // the minimum, far from the first chunk
  x.data<float>()[99999] = 2.5f;     // the maximum
  GraphBuilder q;
  q.input("x", x).node("DynamicQuantizeLinear", {"x"}, {"y", "s", "z"}).output("y").output("s").output("z");
  Runs r = run_both(q, 2);
  ASSERT_EQ(r.cpu.size(), 3u);
  EXPECT_EQ(nodes_on(r.report, "cpu"), 1);
  EXPECT_EQ(expect_within_units(r.ref[0], r.cpu[0], 0, "y"), 0);
  EXPECT_TRUE(compare_values(r.ref[1], r.cpu[1], Tolerance{0, 0}).is_ok());
  EXPECT_FLOAT_EQ(r.cpu[1].tensor.data<float>()[0], (2.5f + 1.25f) / 255.0f);
  EXPECT_EQ(expect_within_units(r.ref[2], r.cpu[2], 0, "zero point"), 0);
}

// --- QLinearConv ---------------------------------------------------------------------------------

// `layers` QLinearConv 3x3 (pad 1) of `channels` channels on uint8 activations with int8
// weights, per-channel weight scales and int32 bias, between a QuantizeLinear and a
// DequantizeLinear.
// A name with a number: "a3", "l0_w" (std::string appends; GCC 12 warns on some operator+ chains).
std::string named(const char* prefix, int i, const char* suffix = "") {
  std::string s(prefix);
  s.append(std::to_string(i));
  s.append(suffix);
  return s;
}

GraphBuilder qconv_chain(int layers, int64_t channels, int64_t size, uint32_t seed) {
  GraphBuilder q;
  q.input("x", random_floats({1, channels, size, size}, seed, -1.0f, 1.0f))
      .init("xs", Tensor::scalar<float>(1.0f / 127))
      .init("xz", Tensor::scalar<uint8_t>(128))
      .node("QuantizeLinear", {"x", "xs", "xz"}, {"a0"});
  for (int l = 0; l < layers; ++l) {
    std::vector<float> ws;
    for (int64_t c = 0; c < channels; ++c) ws.push_back(0.0006f + 0.00005f * static_cast<float>((c * 7 + l) % 13));
    const uint32_t s = seed + 10 * static_cast<uint32_t>(l);
    q.init(named("l", l, "_w"), random_ints<int8_t>({channels, channels, 3, 3}, -127, 127, s + 1))
        .init(named("l", l, "_ws"), f32(ws))
        .init(named("l", l, "_wz"), Tensor::from_vector<int8_t>({channels}, std::vector<int8_t>(channels, 0)))
        .init(named("l", l, "_b"), random_ints<int32_t>({channels}, -2000, 2000, s + 2))
        .node("QLinearConv",
              {named("a", l), "xs", "xz", named("l", l, "_w"), named("l", l, "_ws"), named("l", l, "_wz"), "xs", "xz",
               named("l", l, "_b")},
              {named("a", l + 1)}, {{"pads", attr_ints({1, 1, 1, 1})}});
  }
  q.node("DequantizeLinear", {named("a", layers), "xs", "xz"}, {"y"});
  for (int l = 1; l <= layers; ++l) q.output(named("a", l));
  q.output("y");
  return q;
}

TEST(CpuBackendInt8, QLinearConvChainRunsOnCpuAndMatchesReference) {
  REQUIRE_CPU();
  for (int threads : {1, 2}) {
    SCOPED_TRACE("threads " + std::to_string(threads));
    const GraphBuilder q = qconv_chain(3, 32, 14, 100);
    Runs r = run_both(q, threads);
    ASSERT_EQ(r.cpu.size(), 4u);
    EXPECT_EQ(nodes_on(r.report, "cpu"), 5) << "every node on the cpu backend";
    int64_t differ = 0;
    for (int l = 0; l < 3; ++l) differ += expect_within_units(r.ref[l], r.cpu[l], 1, "layer " + std::to_string(l));
    EXPECT_LE(differ, 3 * 32 * 14 * 14 / 1000) << "more than 0.1% of outputs off by one";
    std::cout << "QLinearConv chain: " << differ << " of " << 3 * 32 * 14 * 14 << " outputs off by one\n";
    // The activations are not all saturated: the test exercises the arithmetic.
    const Tensor& last = r.cpu[2].tensor;
    int saturated = 0;
    for (int64_t i = 0; i < last.numel(); ++i) saturated += last.data<uint8_t>()[i] == 0 || last.data<uint8_t>()[i] == 255;
    EXPECT_LT(saturated, last.numel() / 4);
  }
}

TEST(CpuBackendInt8, QLinearConvGroupsStridesAndSignedOutput) {
  REQUIRE_CPU();
  GraphBuilder q;
  q.input("x", random_floats({2, 8, 11, 9}, 3, -2.0f, 2.0f))
      .init("xs", Tensor::scalar<float>(0.02f))
      .init("xz", Tensor::scalar<int8_t>(-3))
      .init("w", random_ints<int8_t>({12, 2, 3, 2}, -100, 100, 4))
      .init("ws", Tensor::scalar<float>(0.01f))
      .init("wz", Tensor::scalar<int8_t>(0))
      .init("ys", Tensor::scalar<float>(0.15f))
      .init("yz", Tensor::scalar<int8_t>(5))
      .node("QuantizeLinear", {"x", "xs", "xz"}, {"a"})
      .node("QLinearConv", {"a", "xs", "xz", "w", "ws", "wz", "ys", "yz"}, {"y"},
            {{"group", attr_int(4)}, {"strides", attr_ints({2, 1})}, {"pads", attr_ints({1, 0, 0, 1})}})
      .output("y");
  Runs r = run_both(q);
  ASSERT_EQ(r.cpu.size(), 1u);
  EXPECT_EQ(nodes_on(r.report, "cpu"), 2);
  expect_within_units(r.ref[0], r.cpu[0], 1, "grouped int8 QLinearConv");
}

TEST(CpuBackendInt8, WeightsOutsideInt8RunOnTheOwnIntegerKernelExactly) {
  REQUIRE_CPU();
  // uint8 weights with zero point 0 reach 255, int8 weights with zero point -100 reach 227:
  // w - w_zero_point leaves the int8 range oneDNN multiplies in, so the backend's own integer
  // kernels run them, and they round like the reference (no off-by-one allowed).
  GraphBuilder q;
  q.input("x", random_floats({2, 4, 9, 7}, 5, -1.0f, 1.0f))
      .input("v", random_floats({3, 5, 12}, 15, -1.0f, 1.0f))
      .init("xs", Tensor::scalar<float>(0.01f))
      .init("xz", Tensor::scalar<uint8_t>(128))
      .init("w", random_ints<uint8_t>({6, 2, 3, 2}, 0, 255, 6))
      .init("ws", f32({0.001f, 0.002f, 0.0005f, 0.001f, 0.003f, 0.001f}))
      .init("wz", Tensor::scalar<uint8_t>(0))
      .init("ys", Tensor::scalar<float>(0.3f))
      .init("m", random_ints<int8_t>({12, 7}, -127, 127, 16))
      .init("mz", Tensor::scalar<int8_t>(-100))
      .node("QuantizeLinear", {"x", "xs", "xz"}, {"a"})
      .node("QLinearConv", {"a", "xs", "xz", "w", "ws", "wz", "ys", "xz"}, {"y"},
            {{"group", attr_int(2)}, {"strides", attr_ints({2, 1})}, {"pads", attr_ints({1, 0, 1, 1})}})
      .node("ConvInteger", {"a", "w", "xz", "wz"}, {"c"}, {{"group", attr_int(2)}})
      .node("QuantizeLinear", {"v", "xs", "xz"}, {"vq"})
      .node("MatMulInteger", {"vq", "m", "xz", "mz"}, {"p"})
      .node("QLinearMatMul", {"vq", "xs", "xz", "m", "xs", "mz", "ys", "xz"}, {"pq"})
      .output("y").output("c").output("p").output("pq");
  Runs r = run_both(q);
  ASSERT_EQ(r.cpu.size(), 4u);
  EXPECT_EQ(nodes_on(r.report, "cpu"), 6) << "every node on the cpu backend";
  const char* names[] = {"QLinearConv", "ConvInteger", "MatMulInteger", "QLinearMatMul"};
  for (int i = 0; i < 4; ++i) EXPECT_EQ(expect_within_units(r.ref[i], r.cpu[i], 0, names[i]), 0);
}

// --- Products and dynamic quantization ---------------------------------------------------------------

TEST(CpuBackendInt8, QLinearMatMulPerColumnMatchesReference) {
  REQUIRE_CPU();
  std::vector<float> bs;
  for (int j = 0; j < 48; ++j) bs.push_back(0.001f * static_cast<float>(1 + j % 5));
  GraphBuilder q;
  q.input("x", random_floats({2, 10, 64}, 8, -1.0f, 1.0f))
      .init("as", Tensor::scalar<float>(0.01f))
      .init("az", Tensor::scalar<uint8_t>(120))
      .init("b", random_ints<int8_t>({64, 48}, -127, 127, 9))
      .init("bs", f32(bs))
      .init("bz", Tensor::from_vector<int8_t>({48}, std::vector<int8_t>(48, 0)))
      .init("ys", Tensor::scalar<float>(0.05f))
      .init("yz", Tensor::scalar<uint8_t>(128))
      .node("QuantizeLinear", {"x", "as", "az"}, {"a"})
      .node("QLinearMatMul", {"a", "as", "az", "b", "bs", "bz", "ys", "yz"}, {"y"})
      .node("MatMulInteger", {"a", "b", "az"}, {"acc"})
      .output("y").output("acc");
  Runs r = run_both(q);
  ASSERT_EQ(r.cpu.size(), 2u);
  EXPECT_EQ(nodes_on(r.report, "cpu"), 3);
  expect_within_units(r.ref[0], r.cpu[0], 1, "QLinearMatMul");
  expect_within_units(r.ref[1], r.cpu[1], 0, "MatMulInteger");
}

TEST(CpuBackendInt8, DynamicQuantizationChainsRunOnCpu) {
  REQUIRE_CPU();
  // What dynamic quantization tools emit: DynamicQuantizeLinear, the integer product with the
  // runtime zero point, Cast to float and the scale products.
  GraphBuilder q;
  q.input("x", random_floats({1, 8, 10, 10}, 11, -0.7f, 1.9f))
      .input("v", random_floats({3, 32}, 12, -1.5f, 0.4f))
      .init("w", random_ints<int8_t>({16, 8, 3, 3}, -127, 127, 13))
      .init("ws", Tensor::scalar<float>(0.004f))
      .init("m", random_ints<int8_t>({32, 24}, -127, 127, 14))
      .node("DynamicQuantizeLinear", {"x"}, {"xq", "xs", "xz"})
      .node("ConvInteger", {"xq", "w", "xz"}, {"c"}, {{"pads", attr_ints({1, 1, 1, 1})}})
      .node("Cast", {"c"}, {"cf"}, {{"to", attr_int(1)}})
      .node("Mul", {"xs", "ws"}, {"s"})
      .node("Mul", {"cf", "s"}, {"y"})
      .node("DynamicQuantizeLinear", {"v"}, {"vq", "vs", "vz"})
      .node("MatMulInteger", {"vq", "m", "vz"}, {"p"})
      .output("y").output("c").output("xz").output("p").output("vq");
  Runs r = run_both(q);
  ASSERT_EQ(r.cpu.size(), 5u);
  EXPECT_EQ(nodes_on(r.report, "cpu"), 7);
  EXPECT_TRUE(compare_values(r.ref[0], r.cpu[0], Tolerance{1e-6, 1e-6}).is_ok());
  expect_within_units(r.ref[1], r.cpu[1], 0, "ConvInteger");
  expect_within_units(r.ref[2], r.cpu[2], 0, "zero point");
  expect_within_units(r.ref[3], r.cpu[3], 0, "MatMulInteger");
  expect_within_units(r.ref[4], r.cpu[4], 0, "DynamicQuantizeLinear");
}

TEST(CpuBackendInt8, DynamicallyQuantizedLinearLayersFuseCastAndScales) {
  REQUIRE_CPU();
  // Two layers as dynamic quantization emits them; MatMulInteger absorbs the Cast to float32,
  // the scale product and the bias (post-ops or the elementwise kernel right after).
  GraphBuilder q;
  q.input("x", random_floats({2, 7, 64}, 31, -1.0f, 3.0f));
  std::string cur = "x";
  for (int l = 0; l < 2; ++l) {
    const std::string p = named("l", l, "_");
    q.init(p + "w", random_ints<int8_t>({64, 64}, -127, 127, 32 + l))
        .init(p + "ws", Tensor::scalar<float>(0.003f))
        .init(p + "b", random_floats({64}, 40 + l, -0.2f, 0.2f))
        .node("DynamicQuantizeLinear", {cur}, {p + "q", p + "qs", p + "qz"})
        .node("MatMulInteger", {p + "q", p + "w", p + "qz"}, {p + "acc"})
        .node("Cast", {p + "acc"}, {p + "accf"}, {{"to", attr_int(1)}})
        .node("Mul", {p + "qs", p + "ws"}, {p + "s"})
        .node("Mul", {p + "accf", p + "s"}, {p + "m"})
        .node("Add", {p + "m", p + "b"}, {p + "y"});
    cur = p + "y";
  }
  q.output(cur);
  for (int threads : {1, 2}) {
    Runs r = run_both(q, threads);
    ASSERT_EQ(r.cpu.size(), 1u);
    EXPECT_EQ(nodes_on(r.report, "cpu"), 12);
    // Exact integer products; the float scale and bias arithmetic may associate differently.
    Status c = compare_values(r.ref[0], r.cpu[0], Tolerance{1e-5, 1e-5});
    EXPECT_TRUE(c.is_ok()) << c.message();
  }
}

// --- QDQ format: DequantizeLinear -> Conv/MatMul -> QuantizeLinear -----------------------------

// x -> QuantizeLinear -> DequantizeLinear -> Conv(dequantized int8 weights per output channel,
// float bias) -> QuantizeLinear -> "yq"; with `extra_reader` the dequantized activation is also
// a graph output (through Relu), so the product does not take its DequantizeLinear (the Relu
// does: it reads the bytes).
GraphBuilder qdq_conv(bool extra_reader, bool depthwise = false, bool padded = true) {
  const int64_t C = depthwise ? 16 : 8, O = 16;
  std::vector<float> ws, bias;
  for (int64_t o = 0; o < O; ++o) {
    ws.push_back(0.001f + 0.00013f * static_cast<float>(o % 7));
    bias.push_back(-0.2f + 0.027f * static_cast<float>(o));
  }
  GraphBuilder q;
  q.input("x", random_floats({1, C, 10, 10}, 7, -1.0f, 1.0f))
      .init("xs", Tensor::scalar<float>(1.0f / 127))
      .init("xz", Tensor::scalar<uint8_t>(128))
      .init("wq", random_ints<int8_t>({O, depthwise ? 1 : C, 3, 3}, -onednn_weight_max(), onednn_weight_max(), 8))
      .init("ws", f32(ws))
      .init("wz", Tensor::from_vector<int8_t>({O}, std::vector<int8_t>(O, 0)))
      .init("b", f32(bias))
      .init("ys", Tensor::scalar<float>(0.011f))
      .init("yz", Tensor::scalar<uint8_t>(120))
      .node("QuantizeLinear", {"x", "xs", "xz"}, {"xq"})
      .node("DequantizeLinear", {"xq", "xs", "xz"}, {"xf"})
      .node("DequantizeLinear", {"wq", "ws", "wz"}, {"wf"}, {{"axis", attr_int(0)}})
      .node("Conv", {"xf", "wf", "b"}, {"c"},
            {{"pads", attr_ints(padded ? std::vector<int64_t>{1, 1, 1, 1} : std::vector<int64_t>{0, 0, 0, 0})},
             {"strides", attr_ints({1, 2})},
             {"group", attr_int(depthwise ? C : 1)}})
      .node("QuantizeLinear", {"c", "ys", "yz"}, {"yq"})
      .output("yq");
  if (extra_reader) q.node("Relu", {"xf"}, {"r"}).output("r");
  return q;
}

TEST(CpuBackendInt8, QdqConvFusesIntoQLinearConvAndMatchesReference) {
  REQUIRE_CPU();
  for (bool extra_reader : {false, true}) {
    SCOPED_TRACE(extra_reader ? "dequantized activation read elsewhere" : "sole reader");
    const GraphBuilder q = qdq_conv(extra_reader);
    const std::string text = describe_cpu(q);
    const std::string fused = extra_reader ? "fused: Conv + QuantizeLinear" : "fused: DequantizeLinear + Conv + QuantizeLinear";
    EXPECT_NE(text.find("[QLinearConv 'Conv3']  " + fused), std::string::npos) << text;
    EXPECT_EQ(text.find("[Conv 'Conv3']"), std::string::npos) << "the float Conv is gone:\n" << text;
    EXPECT_NE(text.find("0 steps on reference kernels"), std::string::npos) << text;
    EXPECT_EQ(text.find("[Relu 'Relu5']  fused: DequantizeLinear + Relu") != std::string::npos, extra_reader)
        << text;
    for (int threads : {1, 2}) {
      Runs r = run_both(q, threads);
      ASSERT_EQ(r.cpu.size(), extra_reader ? 2u : 1u);
      ASSERT_EQ(r.cpu[0].tensor.dtype(), DataType::uint8);
      EXPECT_EQ(r.cpu[0].tensor.shape(), (Shape{1, 16, 10, 5}));
      const int64_t differ = expect_within_units(r.ref[0], r.cpu[0], 1, "fused QDQ conv");
      EXPECT_LE(differ, r.cpu[0].tensor.numel() / 50) << "more than 2% of outputs off by one";
      const Tensor& y = r.cpu[0].tensor;
      int saturated = 0;
      for (int64_t i = 0; i < y.numel(); ++i) saturated += y.data<uint8_t>()[i] == 0 || y.data<uint8_t>()[i] == 255;
      EXPECT_LT(saturated, y.numel() / 10) << "the outputs exercise the arithmetic";
      if (extra_reader) {
        EXPECT_TRUE(compare_values(r.ref[1], r.cpu[1], Tolerance{0, 0}).is_ok());
      }
    }
  }
}

TEST(CpuBackendInt8, QdqMatMulFusesIntoQLinearMatMulAndMatchesReference) {
  REQUIRE_CPU();
  const int64_t K = 32, N = 24;
  std::vector<float> ws;
  for (int64_t j = 0; j < N; ++j) ws.push_back(0.002f + 0.0003f * static_cast<float>(j % 5));
  GraphBuilder q;
  q.input("x", random_floats({2, 5, K}, 9, -1.0f, 1.0f))
      .init("xs", Tensor::scalar<float>(1.0f / 127))
      .init("xz", Tensor::scalar<int8_t>(0))
      .init("wq", random_ints<int8_t>({K, N}, -onednn_weight_max(), onednn_weight_max(), 10))
      .init("ws", f32(ws))
      .init("wz", Tensor::from_vector<int8_t>({N}, std::vector<int8_t>(N, 0)))
      .init("ys", Tensor::scalar<float>(0.02f))
      .init("yz", Tensor::scalar<int8_t>(-3))
      .node("QuantizeLinear", {"x", "xs", "xz"}, {"xq"})
      .node("DequantizeLinear", {"xq", "xs", "xz"}, {"xf"})
      .node("DequantizeLinear", {"wq", "ws", "wz"}, {"wf"}, {{"axis", attr_int(1)}})
      .node("MatMul", {"xf", "wf"}, {"m"})
      .node("QuantizeLinear", {"m", "ys", "yz"}, {"yq"})
      .output("yq");
  const std::string text = describe_cpu(q);
  EXPECT_NE(text.find("[QLinearMatMul 'MatMul3']  fused: DequantizeLinear + MatMul + QuantizeLinear"), std::string::npos)
      << text;
  Runs r = run_both(q);
  ASSERT_EQ(r.cpu.size(), 1u);
  ASSERT_EQ(r.cpu[0].tensor.dtype(), DataType::int8);
  expect_within_units(r.ref[0], r.cpu[0], 1, "fused QDQ matmul");
}

TEST(CpuBackendInt8, QdqConvWithRuntimeScaleRunsItsProductIn8BitsAndQuantizesApart) {
  REQUIRE_CPU();
  // The output scale is a graph input: no QLinearConv, but the product still runs in 8 bits
  // with a float output (as when no QuantizeLinear closes it), and the QuantizeLinear stays.
  GraphBuilder q = qdq_conv(false);
  q.input("ys_in", Tensor::scalar<float>(0.011f));
  q.graph()->nodes[4].inputs[1] = "ys_in";
  const std::string text = describe_cpu(q);
  EXPECT_EQ(text.find("QLinearConv"), std::string::npos) << text;
  EXPECT_NE(text.find("[ConvInteger 'Conv3']  fused: DequantizeLinear + Conv  -> c"), std::string::npos) << text;
  EXPECT_NE(text.find("[QuantizeLinear 'QuantizeLinear4']"), std::string::npos) << text;
  Runs r = run_both(q);
  ASSERT_EQ(r.cpu.size(), 1u);
  expect_within_units(r.ref[0], r.cpu[0], 1, "QDQ conv, quantized apart");
}

// A QDQ model written without output quantization: x -> QuantizeLinear -> DequantizeLinear ->
// Conv(dequantized int8 weights, float bias) -> c, which a hard-swish (c * HardSigmoid(c), as
// exporters write it) reads (-> "h") and, with `conv_output`, the graph returns too.
TEST(CpuBackendInt8, QdqConvWithAFloatOutputRunsIn8BitsWithAFloatTail) {
  REQUIRE_CPU();
  // Unpadded, the source zero point joins the bias, which takes the float bias too.
  for (auto [depthwise, padded] : std::vector<std::pair<bool, bool>>{{false, true}, {true, true}, {false, false}, {true, false}}) {
    for (bool conv_output : {false, true}) {
      SCOPED_TRACE(std::string(depthwise ? "depthwise" : "dense") + (padded ? "" : ", unpadded") +
                   (conv_output ? ", product returned" : ""));
      GraphBuilder q = qdq_conv(false, depthwise, padded);
      q.graph()->nodes.pop_back();  // the closing QuantizeLinear
      q.graph()->outputs.clear();
      q.node("HardSigmoid", {"c"}, {"g"}, {{"alpha", testing::attr_float(1.0f / 6)}, {"beta", testing::attr_float(0.5f)}})
          .node("Mul", {"c", "g"}, {"h"})
          .output("h");
      if (conv_output) q.output("c");
      const std::string text = describe_cpu(q);
      EXPECT_NE(text.find("[ConvInteger 'Conv3']  fused: DequantizeLinear + Conv"), std::string::npos) << text;
      EXPECT_EQ(text.find("[Conv 'Conv3']"), std::string::npos) << "the float Conv is gone:\n" << text;
      EXPECT_NE(text.find("0 steps on reference kernels"), std::string::npos) << text;
      for (int threads : {1, 2}) {
        Runs r = run_both(q, threads);
        ASSERT_EQ(r.cpu.size(), conv_output ? 2u : 1u);
        // The reference sums float32 products of the dequantized values; the product here is
        // the exact integer sum, scaled once.
        for (size_t i = 0; i < r.cpu.size(); ++i) {
          ASSERT_EQ(r.cpu[i].tensor.dtype(), DataType::float32);
          Status c = compare_values(r.ref[i], r.cpu[i], Tolerance{1e-5, 1e-5});
          EXPECT_TRUE(c.is_ok()) << "output " << i << ": " << c.message();
        }
        const Tensor& h = r.cpu[0].tensor;
        int positive = 0;
        for (int64_t i = 0; i < h.numel(); ++i) positive += h.data<float>()[i] > 0.0f;
        EXPECT_GT(positive, h.numel() / 10) << "the outputs exercise the arithmetic";
        EXPECT_LT(positive, h.numel() * 9 / 10) << "the outputs exercise the arithmetic";
      }
    }
  }
}

// The same product whose hard-swish feeds the next product's quantized input: the closing
// QuantizeLinear joins the step, which writes 8-bit values (within one unit of the reference).
TEST(CpuBackendInt8, QdqConvWithAFloatTailAndAClosingQuantizeWritesBytes) {
  REQUIRE_CPU();
  for (auto [depthwise, padded] : std::vector<std::pair<bool, bool>>{{false, true}, {true, true}, {false, false}, {true, false}}) {
    SCOPED_TRACE(std::string(depthwise ? "depthwise" : "dense") + (padded ? "" : ", unpadded"));
    GraphBuilder q = qdq_conv(false, depthwise, padded);
    q.graph()->nodes.pop_back();  // the QuantizeLinear right after the Conv
    q.graph()->outputs.clear();
    q.node("HardSigmoid", {"c"}, {"g"},
           {{"alpha", testing::attr_float(1.0f / 6)}, {"beta", testing::attr_float(0.5f)}})
        .node("Mul", {"c", "g"}, {"h"})
        .init("hs", Tensor::scalar<float>(0.004f))
        .init("hz", Tensor::scalar<uint8_t>(20))
        .node("QuantizeLinear", {"h", "hs", "hz"}, {"hq"})
        .output("hq");
    const std::string text = describe_cpu(q);
    EXPECT_NE(text.find("[ConvInteger 'Conv3']  fused: DequantizeLinear + Conv + HardSigmoid + Mul + QuantizeLinear  -> hq"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("0 steps on reference kernels"), std::string::npos) << text;
    for (int threads : {1, 2}) {
      Runs r = run_both(q, threads);
      ASSERT_EQ(r.cpu.size(), 1u);
      ASSERT_EQ(r.cpu[0].tensor.dtype(), DataType::uint8);
      const int64_t differ = expect_within_units(r.ref[0], r.cpu[0], 1, "QDQ conv with a float tail, requantized");
      EXPECT_LE(differ, r.cpu[0].tensor.numel() / 50) << "more than 2% of outputs off by one";
      const auto* bytes = static_cast<const uint8_t*>(r.cpu[0].tensor.raw_data());
      std::set<uint8_t> levels(bytes, bytes + r.cpu[0].tensor.numel());
      EXPECT_GT(levels.size(), 20u) << "varied outputs";
    }
  }
}

// DequantizeLinear -> MatMul with no closing QuantizeLinear (a bias Add and a Relu after it, or
// nothing): one MatMulInteger step whose int32 product is scaled per column in float32.
TEST(CpuBackendInt8, QdqMatMulWithAFloatOutputRunsIn8BitsScaledPerColumn) {
  REQUIRE_CPU();
  const int64_t K = 32, N = 24;
  std::vector<float> ws, bias;
  for (int64_t j = 0; j < N; ++j) {
    ws.push_back(0.002f + 0.0003f * static_cast<float>(j % 5));
    bias.push_back(-0.1f + 0.01f * static_cast<float>(j));
  }
  for (bool unsigned_source : {true, false}) {
    for (bool tail : {true, false}) {
      SCOPED_TRACE(std::string(unsigned_source ? "uint8" : "int8") + " source" + (tail ? ", bias and Relu" : ""));
      GraphBuilder q;
      q.input("x", random_floats({2, 5, K}, 9, -1.0f, 1.0f))
          .init("xs", Tensor::scalar<float>(1.0f / 127))
          .init("xz", unsigned_source ? Tensor::scalar<uint8_t>(128) : Tensor::scalar<int8_t>(0))
          .init("wq", random_ints<int8_t>({K, N}, -onednn_weight_max(), onednn_weight_max(), 10))
          .init("ws", f32(ws))
          .init("wz", Tensor::from_vector<int8_t>({N}, std::vector<int8_t>(N, 0)))
          .init("b", f32(bias))
          .node("QuantizeLinear", {"x", "xs", "xz"}, {"xq"})
          .node("DequantizeLinear", {"xq", "xs", "xz"}, {"xf"})
          .node("DequantizeLinear", {"wq", "ws", "wz"}, {"wf"}, {{"axis", attr_int(1)}})
          .node("MatMul", {"xf", "wf"}, {"m"});
      if (tail) q.node("Add", {"m", "b"}, {"mb"}).node("Relu", {"mb"}, {"y"}).output("y");
      else q.output("m");
      const std::string text = describe_cpu(q);
      const std::string fused = tail ? "fused: DequantizeLinear + MatMul + Add + Relu" : "fused: DequantizeLinear + MatMul";
      EXPECT_NE(text.find("[MatMulInteger 'MatMul3']  " + fused), std::string::npos) << text;
      EXPECT_EQ(text.find("[MatMul 'MatMul3']"), std::string::npos) << "the float MatMul is gone:\n" << text;
      EXPECT_NE(text.find("0 steps on reference kernels"), std::string::npos) << text;
      for (int threads : {1, 2}) {
        Runs r = run_both(q, threads);
        ASSERT_EQ(r.cpu.size(), 1u);
        ASSERT_EQ(r.cpu[0].tensor.dtype(), DataType::float32);
        // The reference sums float32 products of the dequantized values; the product here is
        // the exact integer sum, scaled once.
        Status c = compare_values(r.ref[0], r.cpu[0], Tolerance{1e-5, 1e-5});
        EXPECT_TRUE(c.is_ok()) << c.message();
        const Tensor& y = r.cpu[0].tensor;
        int positive = 0;
        for (int64_t i = 0; i < y.numel(); ++i) positive += y.data<float>()[i] > 0.0f;
        EXPECT_GT(positive, y.numel() / 10) << "the outputs exercise the arithmetic";
        EXPECT_LT(positive, y.numel() * 9 / 10) << "the outputs exercise the arithmetic";
      }
    }
  }
}

// --- Chains after a quantized product: DequantizeLinear -> elementwise -> [QuantizeLinear] --------

// qdq_conv's product, then DequantizeLinear -> Mul(scalar) -> Add(per channel, or a scalar with
// `scalar_shift`) -> Clip -> Sigmoid -> Mul(scalar) -> Clip -> QuantizeLinear (uint8, or int8
// with `signed_output`; without `requantize`, a float value that float ops read).
// The clips and products repeat, which oneDNN's post-ops take only as binary ops.
GraphBuilder qdq_conv_chain(bool requantize, bool depthwise, bool scalar_shift = false, bool signed_output = false) {
  GraphBuilder q = qdq_conv(false, depthwise);
  q.graph()->outputs.clear();
  std::vector<float> shift;
  for (int64_t o = 0; o < 16; ++o) shift.push_back(-0.5f + 0.07f * static_cast<float>(o));
  q.init("k", Tensor::scalar<float>(1.7f))
      .init("shift", scalar_shift ? Tensor::scalar<float>(-0.3f) : Tensor::from_vector<float>({1, 16, 1, 1}, shift))
      .init("lo", Tensor::scalar<float>(-1.0f))
      .init("hi", Tensor::scalar<float>(1.2f))
      .init("two", Tensor::scalar<float>(2.0f))
      .init("lo2", Tensor::scalar<float>(0.1f))
      .init("hi2", Tensor::scalar<float>(1.9f))
      .init("zs", Tensor::scalar<float>(0.0071f))
      .init("zz", signed_output ? Tensor::scalar<int8_t>(-100) : Tensor::scalar<uint8_t>(3))
      .node("DequantizeLinear", {"yq", "ys", "yz"}, {"yf"})
      .node("Mul", {"yf", "k"}, {"m1"})
      .node("Add", {"m1", "shift"}, {"a1"})
      .node("Clip", {"a1", "lo", "hi"}, {"c1"})
      .node("Sigmoid", {"c1"}, {"s1"})
      .node("Mul", {"s1", "two"}, {"m2"})
      .node("Clip", {"m2", "lo2", "hi2"}, {"c2"});
  // A float output is read like a squeeze-excite block does: a pool and a broadcast product.
  if (requantize) q.node("QuantizeLinear", {"c2", "zs", "zz"}, {"zq"}).output("zq");
  else q.node("GlobalAveragePool", {"c2"}, {"g"}).node("Mul", {"c2", "g"}, {"se"}).output("se");
  return q;
}

TEST(CpuBackendInt8, QuantizedConvAbsorbsTheFloatChainAfterIt) {
  REQUIRE_CPU();
  for (auto [requantize, depthwise] : {std::pair{true, false}, {false, false}, {true, true}, {false, true}}) {
    SCOPED_TRACE(std::string(requantize ? "requantized" : "float output") + (depthwise ? ", depthwise" : ""));
    const GraphBuilder q = qdq_conv_chain(requantize, depthwise);
    const std::string text = describe_cpu(q);
    const std::string chain = "fused: DequantizeLinear + Conv + QuantizeLinear + DequantizeLinear + Mul + Add + Clip + "
                              "Sigmoid + Mul + Clip" + std::string(requantize ? " + QuantizeLinear" : "");
    EXPECT_NE(text.find("[QLinearConv 'Conv3']  " + chain), std::string::npos) << text;
    EXPECT_NE(text.find("0 steps on reference kernels"), std::string::npos) << text;
    // One oneDNN primitive (without VNNI the product may run on the own integer kernel instead).
    if (text.find("own integer kernel") == std::string::npos) {
      EXPECT_NE(text.find("[QLinearConv 'Conv3']  -> 1x16x10x5"), std::string::npos) << text;
      EXPECT_EQ(text.find("tail)"), std::string::npos) << "one oneDNN primitive:\n" << text;
    }
    for (int threads : {1, 2}) {
      Runs r = run_both(q, threads);
      ASSERT_EQ(r.cpu.size(), 1u);
      if (requantize) {
        ASSERT_EQ(r.cpu[0].tensor.dtype(), DataType::uint8);
        const int64_t differ = expect_within_units(r.ref[0], r.cpu[0], 1, "absorbed chain");
        EXPECT_LE(differ, r.cpu[0].tensor.numel() / 50) << "more than 2% of outputs off by one";
        std::set<int> levels(r.cpu[0].tensor.data<uint8_t>(), r.cpu[0].tensor.data<uint8_t>() + r.cpu[0].tensor.numel());
        EXPECT_GT(levels.size(), 50u) << "the outputs exercise the arithmetic";
      } else {
        // Float outputs: the same quantized intermediate, then float32 ops (merged multiply-adds
        // may differ in the last bit; an intermediate one unit off moves by one step's worth).
        const Status close = compare_values(r.ref[0], r.cpu[0], Tolerance{0, 2.0f * (0.011f * 1.7f * 0.5f + 1e-5f)});
        EXPECT_TRUE(close.is_ok()) << close.to_string();
      }
    }
  }
}

// The same chain with a scalar shift: every operand a scalar, so the chain is a function of the
// product's 8-bit output.
GraphBuilder qdq_conv_scalar_chain(bool depthwise, bool signed_output, bool float_output = false) {
  return qdq_conv_chain(!float_output, depthwise, true, signed_output);
}

// qdq_conv_scalar_chain's graph: the QLinearConv step absorbed the whole chain and, where oneDNN
// runs the product, maps its output through a table (`kernel`: "(byte table)" or "(float table)").
void expect_table_step(const GraphBuilder& q, bool requantized, const std::string& kernel) {
  const std::string text = describe_cpu(q);
  EXPECT_NE(text.find("[QLinearConv 'Conv3']  fused: DequantizeLinear + Conv + QuantizeLinear + DequantizeLinear + "
                      "Mul + Add + Clip + Sigmoid + Mul + Clip" +
                      std::string(requantized ? " + QuantizeLinear" : "")),
            std::string::npos)
      << text;
  if (text.find("own integer kernel") == std::string::npos) {
    EXPECT_NE(text.find(kernel), std::string::npos) << "the chain is a table lookup:\n" << text;
  }
}

TEST(CpuBackendInt8, QuantizedChainOfScalarOpsBecomesAByteTable) {
  REQUIRE_CPU();
  for (auto [depthwise, signed_output] : {std::pair{false, false}, {true, false}, {false, true}}) {
    SCOPED_TRACE(std::string(depthwise ? "depthwise" : "dense") + (signed_output ? ", int8 output" : ", uint8 output"));
    const GraphBuilder q = qdq_conv_scalar_chain(depthwise, signed_output);
    expect_table_step(q, true, "(byte table)");
    for (int threads : {1, 2}) {
      Runs r = run_both(q, threads);
      ASSERT_EQ(r.cpu.size(), 1u);
      ASSERT_EQ(r.cpu[0].tensor.dtype(), signed_output ? DataType::int8 : DataType::uint8);
      // Each table entry is the nodes' own arithmetic; only the product's float32 scale (the
      // reference multiplies in double) can put a half-integer one unit away.
      const int64_t differ = expect_within_units(r.ref[0], r.cpu[0], 1, "byte table");
      EXPECT_LE(differ, r.cpu[0].tensor.numel() / 200) << "more than 0.5% of outputs off by one";
      const auto* bytes = static_cast<const uint8_t*>(r.cpu[0].tensor.raw_data());
      std::set<uint8_t> levels(bytes, bytes + r.cpu[0].tensor.numel());
      EXPECT_GT(levels.size(), 30u) << "the outputs exercise the table";
    }
  }
}

TEST(CpuBackendInt8, FloatChainOfScalarOpsBecomesAFloatTable) {
  REQUIRE_CPU();
  for (bool depthwise : {false, true}) {
    SCOPED_TRACE(depthwise ? "depthwise" : "dense");
    const GraphBuilder q = qdq_conv_scalar_chain(depthwise, false, true);
    expect_table_step(q, false, "(float table)");
    for (int threads : {1, 2}) {
      Runs r = run_both(q, threads);
      ASSERT_EQ(r.cpu.size(), 1u);
      // The same quantized intermediate (up to one unit, see above), then the nodes' float ops.
      const Status close = compare_values(r.ref[0], r.cpu[0], Tolerance{1e-6f, 2.0f * (0.011f * 1.7f * 0.5f + 1e-5f)});
      EXPECT_TRUE(close.is_ok()) << close.to_string();
    }
  }
}

TEST(CpuBackendInt8, IntegerConvolutionsRunInFloat32OnlyWhereThatIsExact) {
  REQUIRE_CPU();
  // Weights that leave int8 (uint8 with zero point 0): a 2-D convolution whose partial sums stay
  // within 2^24 (255 * sum |w| per output channel) runs as a float32 convolution of the integers;
  // one with 360 taps of weights near 255 could pass 2^24 and keeps the direct integer loops.
  // Both match the reference exactly.
  GraphBuilder q;
  q.input("a", random_ints<uint8_t>({1, 4, 9, 8}, 0, 255, 51))
      .input("b", random_ints<uint8_t>({1, 40, 6, 5}, 0, 255, 52))
      .init("xz", Tensor::scalar<uint8_t>(3))
      .init("w1", random_ints<uint8_t>({10, 4, 3, 3}, 0, 255, 53))
      .init("w2", random_ints<uint8_t>({3, 40, 3, 3}, 200, 255, 54))
      .init("wz", Tensor::scalar<uint8_t>(0))
      .node("ConvInteger", {"a", "w1", "xz", "wz"}, {"c1"}, {{"pads", attr_ints({1, 0, 1, 2})}})
      .node("ConvInteger", {"b", "w2", "xz", "wz"}, {"c2"}, {{"pads", attr_ints({1, 1, 1, 1})}})
      .output("c1").output("c2");
  const std::string text = describe_cpu(q);
  if (cpu_isa_level_of(text) >= 1) {
    EXPECT_NE(text.find("[ConvInteger 'ConvInteger0'] (integer product in float32)"), std::string::npos) << text;
  }
  EXPECT_NE(text.find("[ConvInteger 'ConvInteger1'] (own integer kernel)"), std::string::npos) << text;
  Runs r = run_both(q);
  ASSERT_EQ(r.cpu.size(), 2u);
  EXPECT_EQ(expect_within_units(r.ref[0], r.cpu[0], 0, "float32 route"), 0);
  EXPECT_EQ(expect_within_units(r.ref[1], r.cpu[1], 0, "direct loops"), 0);
}

TEST(CpuBackendInt8, ChainAfterTheOwnIntegerKernelRunsUnfused) {
  REQUIRE_CPU();
  // uint8 weights with zero point 0 and values over 127 leave int8: the product runs on the
  // backend's own kernel, which writes the unrounded requantized value for the chain.
  GraphBuilder q;
  q.input("xq", random_ints<uint8_t>({1, 4, 6, 6}, 0, 255, 21))
      .init("xs", Tensor::scalar<float>(0.02f))
      .init("xz", Tensor::scalar<uint8_t>(128))
      .init("wq", random_ints<uint8_t>({5, 4, 3, 3}, 0, 255, 22))
      .init("ws", Tensor::scalar<float>(0.003f))
      .init("wz", Tensor::scalar<uint8_t>(0))
      .init("ys", Tensor::scalar<float>(0.9f))
      .init("yz", Tensor::scalar<uint8_t>(100))
      .init("zs", Tensor::scalar<float>(0.05f))
      .init("zz", Tensor::scalar<int8_t>(-4))
      .node("QLinearConv", {"xq", "xs", "xz", "wq", "ws", "wz", "ys", "yz"}, {"yq"}, {{"pads", attr_ints({1, 1, 1, 1})}})
      .node("DequantizeLinear", {"yq", "ys", "yz"}, {"yf"})
      .node("LeakyRelu", {"yf"}, {"r"}, {{"alpha", testing::attr_float(0.1f)}})
      .node("QuantizeLinear", {"r", "zs", "zz"}, {"zq"})
      .output("zq");
  const std::string text = describe_cpu(q);
  EXPECT_NE(text.find("[QLinearConv 'QLinearConv0']  fused: QLinearConv + DequantizeLinear + LeakyRelu + QuantizeLinear"),
            std::string::npos)
      << text;
  Runs r = run_both(q);
  ASSERT_EQ(r.cpu.size(), 1u);
  ASSERT_EQ(r.cpu[0].tensor.dtype(), DataType::int8);
  const int64_t differ = expect_within_units(r.ref[0], r.cpu[0], 1, "chain after the own kernel");
  EXPECT_LE(differ, r.cpu[0].tensor.numel() / 50);
}


TEST(CpuBackendInt8, ConvIntegerAbsorbsCastScalesBiasAndActivation) {
  REQUIRE_CPU();
  for (auto [C, O, K] : {std::tuple<int64_t, int64_t, int64_t>{8, 16, 3}, {8, 16, 1}, {96, 96, 1}, {96, 96, 3}, {48, 24, 1}}) {
  // Dynamic quantization's layer: ConvInteger -> Cast -> Mul(x_scale * w_scale) -> Add(bias) ->
  // Relu. The runtime scale (one, or one per output channel) becomes oneDNN's runtime output
  // scales, the rest post-ops: one step, float outputs as the separate nodes compute them.
  for (bool per_channel : {true, false}) {
    SCOPED_TRACE(std::string(per_channel ? "per-channel weight scales" : "one weight scale") + ", C=" +
                 std::to_string(C) + ", O=" + std::to_string(O) + ", K=" + std::to_string(K));
    std::vector<float> ws, bias;
    for (int o = 0; o < O; ++o) {
      ws.push_back(0.003f + 0.0004f * static_cast<float>(o % 5));
      bias.push_back(-0.3f + 0.04f * static_cast<float>(o));
    }
    GraphBuilder q;
    q.input("x", random_floats({1, C, 12, 12}, 31, -0.9f, 1.4f))
        .init("w", random_ints<uint8_t>({O, C, K, K}, 128 - onednn_weight_max(), 128 + onednn_weight_max(), 32))
        .init("wz", Tensor::scalar<uint8_t>(128))
        .init("ws", per_channel ? Tensor::from_vector<float>({O, 1, 1}, ws) : Tensor::scalar<float>(0.004f))
        .init("b", Tensor::from_vector<float>({O, 1, 1}, bias))
        .node("DynamicQuantizeLinear", {"x"}, {"xq", "xs", "xz"})
        .node("Mul", {"xs", "ws"}, {"s"})
        .node("ConvInteger", {"xq", "w", "xz", "wz"}, {"c"}, {{"pads", attr_ints(std::vector<int64_t>(4, K / 2))}})
        .node("Cast", {"c"}, {"cf"}, {{"to", attr_int(1)}})
        .node("Mul", {"cf", "s"}, {"y"})
        .node("Add", {"y", "b"}, {"yb"})
        .node("Relu", {"yb"}, {"r"})
        .output("r");
    const std::string text = describe_cpu(q);
    EXPECT_NE(text.find("[ConvInteger 'ConvInteger2']  fused: ConvInteger + Cast + Mul + Add + Relu"), std::string::npos)
        << text;
    // One oneDNN primitive (where oneDNN runs the product: without VNNI, weights this large go
    // to the own integer kernel, and the tail runs after it).
    if (text.find("own integer kernel") == std::string::npos) {
      EXPECT_NE(text.find("[ConvInteger 'ConvInteger2']  -> 1x" + std::to_string(O) + "x12x12"), std::string::npos) << text;
      EXPECT_EQ(text.find("tail)"), std::string::npos) << text;
    }
    for (int threads : {1, 2}) {
      Runs r = run_both(q, threads);
      ASSERT_EQ(r.cpu.size(), 1u);
      const Status close = compare_values(r.ref[0], r.cpu[0], Tolerance{1e-6, 1e-6});
      EXPECT_TRUE(close.is_ok()) << close.to_string();
      int positive = 0;
      for (int64_t i = 0; i < r.cpu[0].tensor.numel(); ++i) positive += r.cpu[0].tensor.data<float>()[i] > 0;
      EXPECT_GT(positive, r.cpu[0].tensor.numel() / 5) << "the outputs exercise the arithmetic";
    }
  }
  }
}


TEST(CpuBackendInt8, DynamicLayersPassChannelsLastValuesWithoutReorders) {
  REQUIRE_CPU();
  // Two dynamically quantized layers: the first one's float tail is read only by the second
  // DynamicQuantizeLinear, whose 8-bit output only the second convolution reads, so both stay
  // channels-last (no layout reorder between the layers).
  GraphBuilder q;
  q.input("x", random_floats({1, 8, 10, 10}, 41, -1.0f, 1.0f))
      .init("w1", random_ints<int8_t>({16, 8, 3, 3}, -onednn_weight_max(), onednn_weight_max(), 42))
      .init("w2", random_ints<int8_t>({8, 16, 1, 1}, -onednn_weight_max(), onednn_weight_max(), 43))
      .init("ws", Tensor::scalar<float>(0.004f))
      .node("DynamicQuantizeLinear", {"x"}, {"xq", "xs", "xz"})
      .node("ConvInteger", {"xq", "w1", "xz"}, {"c1"}, {{"pads", attr_ints({1, 1, 1, 1})}})
      .node("Cast", {"c1"}, {"f1"}, {{"to", attr_int(1)}})
      .node("Mul", {"xs", "ws"}, {"s1"})
      .node("Mul", {"f1", "s1"}, {"y1"})
      .node("Relu", {"y1"}, {"r1"})
      .node("DynamicQuantizeLinear", {"r1"}, {"rq", "rs", "rz"})
      .node("ConvInteger", {"rq", "w2", "rz"}, {"c2"})
      .node("Cast", {"c2"}, {"f2"}, {{"to", attr_int(1)}})
      .node("Mul", {"rs", "ws"}, {"s2"})
      .node("Mul", {"f2", "s2"}, {"y2"})
      .output("y2");
  const std::string text = describe_cpu(q);
  if (text.find("own integer kernel") == std::string::npos) {
    EXPECT_NE(text.find("[DynamicQuantizeLinear 'DynamicQuantizeLinear6']  -> 1x16x10x10 nhwc uint8"), std::string::npos)
        << text;
    EXPECT_EQ(text.find("layout reorder of 'r1'"), std::string::npos) << text;
    EXPECT_EQ(text.find("layout reorder of 'rq'"), std::string::npos) << text;
  }
  Runs r = run_both(q);
  ASSERT_EQ(r.cpu.size(), 1u);
  const Status close = compare_values(r.ref[0], r.cpu[0], Tolerance{1e-6, 1e-6});
  EXPECT_TRUE(close.is_ok()) << close.to_string();
}

}  // namespace
}  // namespace tandem
