// cpu_backend_test.cpp: the cpu backend's own behaviour against the reference backend: the
// fused chains it builds (Conv + BN + activation + affine + residual, elementwise chains,
// decomposed LayerNorm), blocked layouts, placement by element type, reduced precision, plans
// (new shapes, threads, concurrency) and the PaddleOCR models. Outputs must match the
// reference within rtol 1e-3 / atol 1e-4. Single ops over random shapes are compared in the
// generic op suite (op_suite_test.cpp).
//
// The suite is skipped when the build has no cpu backend (oneDNN not found).
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backends/backend.h"
#include "core/compare.h"
#include "core/npy.h"
#include "engine/placement.h"
#include "onnx/loader.h"
#include "graph_build_util.h"
#include "op_test_util.h"
#include "tandem/engine.h"

namespace tandem {
namespace {

using testing::GraphBuilder;

using testing::attr_float;
using testing::attr_int;
using testing::attr_ints;
using testing::attr_string;
using testing::to_half;

constexpr Tolerance kTol{1e-3, 1e-4};

Backend* cpu() { return find_backend("cpu"); }
Backend* ref() { return find_backend("reference"); }

#define REQUIRE_CPU() \
  if (!cpu()) GTEST_SKIP() << "this build has no cpu backend"

Tensor random_tensor(const Shape& shape, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  Tensor t(DataType::float32, shape);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = d(rng);
  return t;
}

// Runs the graph on the cpu backend alone (every node must be accepted) and on the reference
// backend, and compares every output. `cpu_only` false allows reference fallback.
void expect_matches_reference(const GraphBuilder& b, const std::string& what, bool cpu_only = true,
                              Tolerance tol = kTol, int threads = 0) {
  SCOPED_TRACE(what);
  std::vector<Backend*> backends{cpu()};
  if (!cpu_only) backends.push_back(ref());
  CompileOptions opts;
  opts.threads = threads;
  auto fast = PlacedModel::create(b.graph(), backends, opts);
  ASSERT_TRUE(fast.is_ok()) << fast.status().to_string();
  auto slow = PlacedModel::create(b.graph(), {ref()});
  ASSERT_TRUE(slow.is_ok()) << slow.status().to_string();
  std::vector<Value> got, want;
  Status s = (*fast)->run(b.feeds(), &got);
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  s = (*slow)->run(b.feeds(), &want);
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    Status c = compare_values(want[i], got[i], tol);
    EXPECT_TRUE(c.is_ok()) << "output " << b.graph()->outputs[i].name << ": " << c.message();
  }
  // A second run reuses the cached instance and must give the same answer.
  std::vector<Value> again;
  s = (*fast)->run(b.feeds(), &again);
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  for (size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(compare_values(got[i], again[i], Tolerance{0, 0}).is_ok());
}

// --- Conv ---------------------------------------------------------------------------------------

struct ConvCase {
  int64_t n, c, h, w, o, kh, kw, sh, sw, ph0, pw0, ph1, pw1, dh, dw, group;
  std::string auto_pad = "NOTSET";
};

GraphBuilder conv_graph(const ConvCase& cc, uint32_t seed, bool bias, bool const_weights, bool typed = true) {
  GraphBuilder b(11);
  b.input("x", random_tensor({cc.n, cc.c, cc.h, cc.w}, seed), typed);
  Tensor w = random_tensor({cc.o, cc.c / cc.group, cc.kh, cc.kw}, seed + 1, -0.5f, 0.5f);
  if (const_weights) b.init("w", w);
  else b.input("w", w);
  std::vector<std::string> in{"x", "w"};
  if (bias) {
    b.init("b", random_tensor({cc.o}, seed + 2));
    in.push_back("b");
  }
  std::map<std::string, Attribute> a{{"kernel_shape", attr_ints({cc.kh, cc.kw})},
                                     {"strides", attr_ints({cc.sh, cc.sw})},
                                     {"dilations", attr_ints({cc.dh, cc.dw})},
                                     {"group", attr_int(cc.group)}};
  if (cc.auto_pad == "NOTSET") a["pads"] = attr_ints({cc.ph0, cc.pw0, cc.ph1, cc.pw1});
  else a["auto_pad"] = attr_string(cc.auto_pad);
  b.node("Conv", in, {"y"}, a).output("y");
  return b;
}

// A conv whose input type is undeclared, as between segments: the plan learns it at run time.
TEST(CpuBackendConv, UntypedInput) {
  REQUIRE_CPU();
  expect_matches_reference(conv_graph({1, 16, 15, 15, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 16}, 98, true, true, false),
                           "untyped input");
}

// Conv followed by the chains the backend fuses.
TEST(CpuBackendConv, FusedChains) {
  REQUIRE_CPU();
  const int64_t C = 20, O = 24, H = 11, W = 13;
  auto base = [&](uint32_t seed) {
    GraphBuilder b(11);
    b.input("x", random_tensor({1, C, H, W}, seed))
        .init("w", random_tensor({O, C, 3, 3}, seed + 1, -0.3f, 0.3f))
        .init("b", random_tensor({O}, seed + 2));
    b.node("Conv", {"x", "w", "b"}, {"c"}, {{"pads", attr_ints({1, 1, 1, 1})}});
    return b;
  };
  auto scalar = [](float v) { return Tensor::from_vector<float>({1}, {v}); };
  {  // BatchNormalization + Relu
    GraphBuilder b = base(20);
    b.init("g", random_tensor({O}, 30, 0.5f, 1.5f)).init("be", random_tensor({O}, 31));
    b.init("m", random_tensor({O}, 32)).init("v", random_tensor({O}, 33, 0.1f, 2.0f));
    b.node("BatchNormalization", {"c", "g", "be", "m", "v"}, {"bn"}, {{"epsilon", attr_float(1e-5f)}});
    b.node("Relu", {"bn"}, {"y"}).output("y");
    expect_matches_reference(b, "conv+bn+relu");
  }
  {  // per-channel and scalar affine, decomposed HardSwish, affine after the activation
    GraphBuilder b = base(40);
    b.init("s", random_tensor({1, O, 1, 1}, 41)).init("t", scalar(0.25f));
    b.init("three", Tensor::scalar<float>(3.0f)).init("zero", Tensor::scalar<float>(0.0f));
    b.init("six", Tensor::scalar<float>(6.0f)).init("a", scalar(1.5f)).init("c2", random_tensor({O, 1, 1}, 42));
    b.node("Mul", {"s", "c"}, {"m1"}).node("Add", {"m1", "t"}, {"a1"});
    b.node("Add", {"a1", "three"}, {"p3"}).node("Clip", {"p3", "zero", "six"}, {"cl"});
    b.node("Mul", {"a1", "cl"}, {"mm"}).node("Div", {"mm", "six"}, {"hs"});
    b.node("Mul", {"a", "hs"}, {"m2"}).node("Add", {"m2", "c2"}, {"y"}).output("y");
    expect_matches_reference(b, "conv+affine+hardswish+affine");
  }
  {  // HardSigmoid, then x * HardSigmoid(x) style gating by another tensor, then residual
    GraphBuilder b = base(50);
    b.input("r", random_tensor({1, O, H, W}, 51));
    b.node("HardSigmoid", {"c"}, {"h"}, {{"alpha", attr_float(0.2f)}, {"beta", attr_float(0.5f)}});
    b.node("Add", {"h", "r"}, {"y"}).output("y");
    expect_matches_reference(b, "conv+hardsigmoid+residual");
  }
  {  // Clip (attributes, opset 6 style), LeakyRelu, Sigmoid, Swish pattern
    for (const char* act : {"Clip", "LeakyRelu", "Sigmoid", "Tanh", "Swish"}) {
      GraphBuilder b = base(60);
      if (std::string(act) == "Clip") {
        b.init("lo", Tensor::scalar<float>(-0.5f)).init("hi", Tensor::scalar<float>(0.7f));
        b.node("Clip", {"c", "lo", "hi"}, {"y"});
      } else if (std::string(act) == "LeakyRelu") {
        b.node("LeakyRelu", {"c"}, {"y"}, {{"alpha", attr_float(0.1f)}});
      } else if (std::string(act) == "Swish") {
        b.node("Sigmoid", {"c"}, {"sg"}).node("Mul", {"c", "sg"}, {"y"});
      } else {
        b.node(act, {"c"}, {"y"});
      }
      b.output("y");
      expect_matches_reference(b, std::string("conv+") + act);
    }
  }
  {  // squeeze-excite: GAP -> conv -> relu -> conv -> hardsigmoid -> mul with the input -> add
    GraphBuilder b = base(70);
    b.init("w1", random_tensor({6, O, 1, 1}, 71)).init("b1", random_tensor({6}, 72));
    b.init("w2", random_tensor({O, 6, 1, 1}, 73)).init("b2", random_tensor({O}, 74));
    b.node("GlobalAveragePool", {"c"}, {"g"});
    b.node("Conv", {"g", "w1", "b1"}, {"s1"}).node("Relu", {"s1"}, {"r1"});
    b.node("Conv", {"r1", "w2", "b2"}, {"s2"});
    b.node("HardSigmoid", {"s2"}, {"hs"}, {{"alpha", attr_float(0.2f)}, {"beta", attr_float(0.5f)}});
    b.node("Mul", {"c", "hs"}, {"se"}).node("Add", {"c", "se"}, {"y"}).output("y");
    expect_matches_reference(b, "squeeze-excite");
  }
  {  // an intermediate of a chain is also a graph output: no fusion past it
    GraphBuilder b = base(80);
    b.node("Relu", {"c"}, {"r"}).node("Sigmoid", {"r"}, {"y"}).output("r").output("y");
    expect_matches_reference(b, "intermediate output");
  }
  // Global pooling of a blocked result (two channel blocks, the second partial; 143 pixels, so
  // the four partial sums leave a remainder), at one and two threads.
  for (const char* pool : {"GlobalAveragePool", "GlobalMaxPool"}) {
    for (int threads : {1, 2}) {
      GraphBuilder b = base(90);
      b.node(pool, {"c"}, {"y"}).output("y");
      expect_matches_reference(b, std::string("conv+") + pool + " at " + std::to_string(threads) + " threads", true,
                               kTol, threads);
    }
  }
}

// --- ConvTranspose ------------------------------------------------------------------------------

TEST(CpuBackendConvTranspose, Variants) {
  REQUIRE_CPU();
  struct Case {
    int64_t c, o, h, w, k, s, pad, opad, group, dil;
    bool bias;
  };
  const std::vector<Case> cases = {
      {24, 24, 9, 7, 2, 2, 0, 0, 1, 1, true},   // non-overlapping patches (own kernel), blocked out
      {24, 1, 10, 10, 2, 2, 0, 0, 1, 1, true},  // one output channel, plain out
      {7, 5, 6, 5, 3, 3, 0, 0, 1, 1, false},    // patches, odd channels
      {8, 6, 5, 6, 3, 2, 1, 1, 1, 1, true},     // overlapping, output_padding
      {8, 8, 4, 4, 4, 2, 1, 0, 2, 1, true},     // groups
      {4, 6, 5, 5, 3, 1, 1, 0, 1, 2, false},    // dilation
  };
  uint32_t seed = 200;
  for (const Case& cc : cases) {
    GraphBuilder b(11);
    b.input("x", random_tensor({1, cc.c, cc.h, cc.w}, seed++));
    b.init("w", random_tensor({cc.c, cc.o / cc.group, cc.k, cc.k}, seed++, -0.5f, 0.5f));
    std::vector<std::string> in{"x", "w"};
    if (cc.bias) {
      b.init("b", random_tensor({cc.o}, seed++));
      in.push_back("b");
    }
    b.node("ConvTranspose", in, {"t"},
           {{"kernel_shape", attr_ints({cc.k, cc.k})}, {"strides", attr_ints({cc.s, cc.s})},
            {"pads", attr_ints({cc.pad, cc.pad, cc.pad, cc.pad})}, {"output_padding", attr_ints({cc.opad, cc.opad})},
            {"group", attr_int(cc.group)}, {"dilations", attr_ints({cc.dil, cc.dil})}});
    b.node("Sigmoid", {"t"}, {"y"}).output("y");
    expect_matches_reference(b, "convtranspose c=" + std::to_string(cc.c) + " o=" + std::to_string(cc.o));
  }
  {  // the det head: ConvTranspose -> Add(bias [1,C,1,1]) -> BN -> Relu
    GraphBuilder b(11);
    const int64_t C = 24;
    b.input("x", random_tensor({1, C, 6, 7}, 300)).init("w", random_tensor({C, C, 2, 2}, 301));
    b.init("b", random_tensor({1, C, 1, 1}, 302));
    b.init("g", random_tensor({C}, 303, 0.5f, 1.5f)).init("be", random_tensor({C}, 304));
    b.init("m", random_tensor({C}, 305)).init("v", random_tensor({C}, 306, 0.5f, 1.5f));
    b.node("ConvTranspose", {"x", "w"}, {"t"}, {{"kernel_shape", attr_ints({2, 2})}, {"strides", attr_ints({2, 2})}});
    b.node("Add", {"t", "b"}, {"tb"}).node("BatchNormalization", {"tb", "g", "be", "m", "v"}, {"bn"});
    b.node("Relu", {"bn"}, {"y"}).output("y");
    expect_matches_reference(b, "det head");
  }
}

// --- MatMul / Gemm ------------------------------------------------------------------------------

TEST(CpuBackendMatMul, ConstantWeightsBiasAndActivation) {
  REQUIRE_CPU();
  for (Shape a : {Shape{5, 7}, Shape{2, 3, 7}, Shape{7}, Shape{1, 4, 9, 7}}) {
    GraphBuilder b(13);
    b.input("a", random_tensor(a, 400)).init("w", random_tensor({7, 11}, 401)).init("bias", random_tensor({11}, 402));
    b.node("MatMul", {"a", "w"}, {"m"}).node("Add", {"m", "bias"}, {"s"}).node("Relu", {"s"}, {"y"}).output("y");
    expect_matches_reference(b, "matmul a=" + shape_to_string(a));
  }
}

// --- Pooling ------------------------------------------------------------------------------------

// Pools and global pools on a blocked (conv) output.
TEST(CpuBackendPool, BlockedInputs) {
  REQUIRE_CPU();
  uint32_t seed = 500;
  for (const char* op : {"MaxPool", "GlobalAveragePool", "GlobalMaxPool"}) {
    GraphBuilder b(12);
    b.input("x", random_tensor({1, 8, 9, 10}, seed++));
    b.init("w", random_tensor({20, 8, 1, 1}, seed++));
    b.node("Conv", {"x", "w"}, {"c"});
    if (std::string(op) == "MaxPool") b.node(op, {"c"}, {"y"}, {{"kernel_shape", attr_ints({3, 3})}});
    else b.node(op, {"c"}, {"y"});
    b.output("y");
    expect_matches_reference(b, std::string("blocked ") + op);
  }
}

// --- Elementwise --------------------------------------------------------------------------------

// Elementwise ops on blocked conv outputs, broadcasting every way, channels not a multiple of 16.
TEST(CpuBackendElementwise, BlockedLayoutOperands) {
  REQUIRE_CPU();
  const int64_t C = 20, H = 5, W = 6;
  const std::vector<Shape> other = {{1, C, H, W}, {1, C, 1, 1}, {C, 1, 1}, {1, 1, H, W}, {W}, {}, {1, 1, 1, W}};
  uint32_t seed = 800;
  for (const char* op : {"Add", "Mul", "Sub", "Div"})
    for (const Shape& s : other)
      for (bool constant : {false, true}) {
        GraphBuilder b(13);
        b.input("x", random_tensor({1, 7, H, W}, seed++));
        b.init("w", random_tensor({C, 7, 3, 3}, seed++));
        b.node("Conv", {"x", "w"}, {"c"}, {{"pads", attr_ints({1, 1, 1, 1})}});
        b.node("Conv", {"x", "w"}, {"d"}, {{"pads", attr_ints({1, 1, 1, 1})}});  // a second blocked value
        Tensor t = random_tensor(s, seed++, 0.5f, 1.5f);
        if (constant) b.init("o", t);
        else b.input("o", t);
        b.node(op, {"c", "o"}, {"e"}).node("Add", {"e", "d"}, {"f"}).node("Relu", {"f"}, {"y"}).output("y");
        expect_matches_reference(b, std::string(op) + " blocked with " + shape_to_string(s) +
                                        (constant ? " constant" : " runtime"));
      }
}

// Element types decide placement: the cpu backend declines integer arithmetic, placement puts
// it on reference and says why, and the answer is still right.
TEST(CpuBackendElementwise, NonFloatTypesArePlacedOnReference) {
  REQUIRE_CPU();
  GraphBuilder b(13);
  Tensor a(DataType::int32, {2, 3}), c(DataType::int32, {3});
  for (int i = 0; i < 6; ++i) a.data<int32_t>()[i] = i * 7 - 5;
  for (int i = 0; i < 3; ++i) c.data<int32_t>()[i] = i + 1;
  b.input("a", a).input("c", c).node("Mul", {"a", "c"}, {"m"}).node("Relu", {"m"}, {"y"}).output("y");
  auto placed = PlacedModel::create(b.graph(), {cpu(), ref()});
  ASSERT_TRUE(placed.is_ok()) << placed.status().to_string();
  const PlacementReport& report = (*placed)->report();
  ASSERT_EQ(report.nodes.size(), 2u);
  for (const NodePlacement& np : report.nodes) {
    EXPECT_EQ(np.backend, "reference") << np.node;
    ASSERT_EQ(np.declined.size(), 1u);
    EXPECT_NE(np.declined[0].second.find("int32"), std::string::npos) << np.declined[0].second;
  }
  expect_matches_reference(b, "int32 chain", /*cpu_only=*/false);
  // Without the reference backend nothing can run it: an unsupported error, not a slow path.
  auto alone = PlacedModel::create(b.graph(), {cpu()});
  EXPECT_EQ(alone.status().code(), StatusCode::unsupported);
}

TEST(CpuBackendTypes, SupportsFollowsElementTypes) {
  REQUIRE_CPU();
  Node n;
  n.op_type = "Conv";
  n.name = "c";
  n.inputs = {"x", "w"};
  n.outputs = {"y"};
  auto types = [](std::vector<DataType> in, std::vector<DataType> out) { return NodeTypes{std::move(in), std::move(out)}; };
  EXPECT_TRUE(cpu()->supports(n, types({DataType::float32, DataType::float32}, {DataType::float32})).is_ok());
  EXPECT_TRUE(cpu()->supports(n, types({DataType::float16, DataType::float16}, {DataType::float16})).is_ok());
  EXPECT_EQ(cpu()->supports(n, types({DataType::float64, DataType::float64}, {DataType::float64})).code(),
            StatusCode::unsupported);
  EXPECT_EQ(cpu()->supports(n, types({DataType::bfloat16, DataType::bfloat16}, {DataType::bfloat16})).code(),
            StatusCode::unsupported);
  n.op_type = "Reshape";
  n.inputs = {"x", "s"};
  EXPECT_TRUE(cpu()->supports(n, types({DataType::int64, DataType::int64}, {DataType::int64})).is_ok());
  EXPECT_EQ(cpu()->supports(n, types({DataType::string, DataType::int64}, {DataType::string})).code(),
            StatusCode::unsupported);
  n.op_type = "Cast";
  n.inputs = {"x"};
  EXPECT_TRUE(cpu()->supports(n, types({DataType::int64}, {DataType::int32})).is_ok());
  EXPECT_TRUE(cpu()->supports(n, types({DataType::float16}, {DataType::float32})).is_ok());
  Status s = cpu()->supports(n, types({DataType::float64}, {DataType::float32}));
  EXPECT_EQ(s.code(), StatusCode::unsupported);
  EXPECT_NE(s.message().find("float64"), std::string::npos) << s.message();
}

// A float16 model (inputs, weights, outputs) runs wholly on the cpu backend, computing in
// float32: within float16 rounding of the reference's float16 answer, and its outputs stay
// float16 at the API.
TEST(CpuBackendHalf, HalfModelRunsOnCpuInFloat32) {
  REQUIRE_CPU();
  for (bool keep_io : {false, true}) {
    GraphBuilder b(13);
    Tensor x = random_tensor({1, 8, 9, 11}, 950);
    if (keep_io) {
      b.input("x", x).node("Cast", {"x"}, {"xh"}, {{"to", attr_int(static_cast<int64_t>(DataType::float16))}});
    } else {
      b.input("xh", to_half(x));
    }
    b.init("w", to_half(random_tensor({16, 8, 3, 3}, 951))).init("bias", to_half(random_tensor({16}, 952)));
    b.init("w2", to_half(random_tensor({4, 16, 1, 1}, 953)));
    b.node("Conv", {"xh", "w", "bias"}, {"c"}, {{"pads", attr_ints({1, 1, 1, 1})}});
    b.node("Relu", {"c"}, {"r"}).node("Conv", {"r", "w2"}, {"c2"}).node("Sigmoid", {"c2"}, {"s"});
    if (keep_io) {
      b.node("Cast", {"s"}, {"y"}, {{"to", attr_int(static_cast<int64_t>(DataType::float32))}}).output("y");
    } else {
      b.node("Identity", {"s"}, {"y"}).output("y");
    }
    auto placed = PlacedModel::create(b.graph(), {cpu()});
    ASSERT_TRUE(placed.is_ok()) << placed.status().to_string();
    const std::string text = (*placed)->describe();
    EXPECT_NE(text.find("0 steps on reference kernels"), std::string::npos) << text;
    std::vector<Value> got;
    ASSERT_TRUE((*placed)->run(b.feeds(), &got).is_ok());
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].tensor.dtype(), keep_io ? DataType::float32 : DataType::float16);
    expect_matches_reference(b, keep_io ? "fp16 inside, fp32 io" : "fp16 io", true, Tolerance{1e-2, 1e-2});
  }
}

// Casts between shape arithmetic's integer types run on the cpu backend's own kernel.
TEST(CpuBackendHalf, IntegerCastsRunOnCpu) {
  REQUIRE_CPU();
  GraphBuilder b(13);
  Tensor a(DataType::int64, {5});
  for (int i = 0; i < 5; ++i) a.data<int64_t>()[i] = i * 3 - 4;
  b.input("a", a).node("Cast", {"a"}, {"i"}, {{"to", attr_int(static_cast<int64_t>(DataType::int32))}});
  b.node("Cast", {"i"}, {"f"}, {{"to", attr_int(static_cast<int64_t>(DataType::float32))}});
  b.node("Cast", {"f"}, {"y"}, {{"to", attr_int(static_cast<int64_t>(DataType::boolean))}}).output("y");
  expect_matches_reference(b, "int64 -> int32 -> float32 -> bool");
}

// --- Normalization, softmax, reductions ---------------------------------------------------------

// The cpu plan's description of `b`'s graph (steps after fusion), compiled alone.
std::string cpu_plan_description(const GraphBuilder& b) {
  auto plan = cpu()->compile(*b.graph(), CompileOptions{});
  EXPECT_TRUE(plan.is_ok()) << plan.status().to_string();
  return plan.is_ok() ? (*plan)->describe() : std::string();
}

TEST(CpuBackendNormalization, LayerNormStandalone) {
  REQUIRE_CPU();
  struct Case {
    Shape x;
    int64_t axis;
    bool bias, constant;
    Shape scale_shape, bias_shape;  // empty: the normalized shape
  };
  const std::vector<Case> cases = {
      {{5, 37}, -1, true, true, {}, {}},
      {{3, 7, 13}, -1, false, false, {}, {}},
      {{3, 7, 13}, 1, true, true, {}, {}},
      {{2, 3, 5, 17}, 1, true, false, {}, {}},
      {{2, 3, 5, 17}, -1, false, true, {}, {}},
      {{2, 3, 5, 17}, 3, true, false, {}, {}},
      {{2, 3, 5, 17}, -3, true, true, {}, {}},
      {{4, 67}, 0, true, true, {}, {}},
      {{1, 9, 1}, -1, true, true, {}, {}},       // rows of one element
      {{3, 7, 13}, 1, true, true, {13}, {1}},    // Scale over the last dim only, scalar B
      {{3, 7, 13}, 1, true, false, {1, 13}, {7, 13}},
      {{3, 7, 13}, 1, true, true, {7, 1}, {}},   // not a suffix: the generic path
  };
  uint32_t seed = 950;
  for (const Case& c : cases) {
    const int64_t rank = static_cast<int64_t>(c.x.size());
    const int64_t axis = c.axis < 0 ? c.axis + rank : c.axis;
    const Shape norm(c.x.begin() + axis, c.x.end());
    GraphBuilder b(17);
    b.input("x", random_tensor(c.x, seed++, -2.0f, 3.0f));
    Tensor scale = random_tensor(c.scale_shape.empty() ? norm : c.scale_shape, seed++, 0.5f, 1.5f);
    Tensor bias = random_tensor(c.bias_shape.empty() ? norm : c.bias_shape, seed++);
    std::vector<std::string> in{"x", "s"};
    if (c.constant) b.init("s", scale);
    else b.input("s", scale);
    if (c.bias) {
      in.push_back("b");
      if (c.constant) b.init("b", bias);
      else b.input("b", bias);
    }
    b.node("LayerNormalization", in, {"ln"}, {{"axis", attr_int(c.axis)}, {"epsilon", attr_float(1e-3f)}});
    b.node("Relu", {"ln"}, {"y"}).output("y").output("ln");
    expect_matches_reference(b, "layernorm " + shape_to_string(c.x) + " axis " + std::to_string(c.axis) +
                                    (c.bias ? " bias" : "") + (c.constant ? " constant" : " runtime") + " scale " +
                                    shape_to_string(scale.shape()));
  }
  {  // large enough to run on two threads (the MatMul lifts the plan over the small-model limit)
    GraphBuilder b(17);
    b.input("a", random_tensor({600, 100}, seed)).init("w", random_tensor({100, 700}, seed + 1));
    b.init("s", random_tensor({700}, seed + 2)).init("b", random_tensor({700}, seed + 5));
    b.node("MatMul", {"a", "w"}, {"x"}).node("LayerNormalization", {"x", "s", "b"}, {"y"}).output("y");
    expect_matches_reference(b, "layernorm two threads", true, kTol, 2);
  }
  {  // after a Conv (blocked layout): reordered to plain first, over [C, H, W] and over W
    for (int64_t axis : {1, -1}) {
      GraphBuilder b(17);
      b.input("x", random_tensor({1, 5, 9, 11}, seed + 6)).init("w", random_tensor({20, 5, 3, 3}, seed + 7));
      const Shape norm = axis == 1 ? Shape{20, 9, 11} : Shape{11};
      b.init("s", random_tensor(norm, seed + 8)).init("b", random_tensor(norm, seed + 9));
      b.node("Conv", {"x", "w"}, {"c"}, {{"pads", attr_ints({1, 1, 1, 1})}});
      b.node("LayerNormalization", {"c", "s", "b"}, {"y"}, {{"axis", attr_int(axis)}}).output("y");
      expect_matches_reference(b, "conv + layernorm axis " + std::to_string(axis));
    }
  }
  {  // Mean/InvStdDev requested: declined by the cpu backend, run on the reference backend
    GraphBuilder b(17);
    b.input("x", random_tensor({3, 11}, seed + 3)).init("s", random_tensor({11}, seed + 4));
    b.node("LayerNormalization", {"x", "s"}, {"y", "mean", "inv"}).output("y").output("mean").output("inv");
    EXPECT_EQ(cpu()->supports(b.graph()->nodes[0], NodeTypes{}).code(), StatusCode::unsupported);
    expect_matches_reference(b, "layernorm with statistics", false);
  }
}

// The decomposed LayerNorm exporters emit, on x [2, 7, 37] (gamma, beta [37]):
// ReduceMean, Sub, Pow (or Mul(d, d)), ReduceMean, Add eps, Sqrt, Div, [Mul gamma], [Add beta].
struct LnPattern {
  int64_t opset = 13;      // 18: ReduceMean axes as a constant input
  bool swapped = false;    // commutative operands in the other order
  bool mul = true, add = true;
  bool square_by_mul = false;
  std::vector<int64_t> axes{-1};
  bool typed = true;       // x's type declared
  std::string extra_reader;  // an intermediate also read by another node (a graph output)
};

GraphBuilder layer_norm_pattern(const LnPattern& p, uint32_t seed) {
  GraphBuilder b(p.opset);
  b.input("x", random_tensor({2, 7, 37}, seed, 1.0f, 3.0f), p.typed);
  Shape norm{37};
  if (p.axes.size() == 2) norm = {7, 37};
  b.init("two", Tensor::scalar<float>(2.0f)).init("eps", Tensor::scalar<float>(1e-5f));
  b.init("gamma", random_tensor(norm, seed + 1, 0.5f, 1.5f)).init("beta", random_tensor(norm, seed + 2));
  auto mean = [&](const std::string& in, const std::string& out) {
    if (p.opset >= 18) {
      b.init("axes_" + out, Tensor::from_vector<int64_t>({static_cast<int64_t>(p.axes.size())}, p.axes));
      b.node("ReduceMean", {in, "axes_" + out}, {out});
    } else {
      b.node("ReduceMean", {in}, {out}, {{"axes", attr_ints(p.axes)}});
    }
  };
  auto both = [&](const char* op, const std::string& a, const std::string& c, const std::string& out) {
    if (p.swapped) b.node(op, {c, a}, {out});
    else b.node(op, {a, c}, {out});
  };
  mean("x", "m");
  b.node("Sub", {"x", "m"}, {"d"});
  if (p.square_by_mul) b.node("Mul", {"d", "d"}, {"p"});
  else b.node("Pow", {"d", "two"}, {"p"});
  mean("p", "v");
  both("Add", "v", "eps", "e");
  b.node("Sqrt", {"e"}, {"s"}).node("Div", {"d", "s"}, {"n"});
  std::string last = "n";
  if (p.mul) {
    both("Mul", "n", "gamma", "g");
    last = "g";
  }
  if (p.add) {
    both("Add", last, "beta", "z");
    last = "z";
  }
  b.node("Relu", {last}, {"y"}).output("y");
  if (!p.extra_reader.empty()) b.node("Neg", {p.extra_reader}, {"side"}).output("side");
  return b;
}

TEST(CpuBackendNormalization, DecomposedLayerNormIsFused) {
  REQUIRE_CPU();
  auto check = [](const LnPattern& p, bool fused, const std::string& what) {
    GraphBuilder b = layer_norm_pattern(p, 970);
    expect_matches_reference(b, what);
    const std::string d = cpu_plan_description(b);
    const bool has = d.find("LayerNormalization") != std::string::npos &&
                     d.find("fused: ReduceMean + Sub + ") != std::string::npos;
    EXPECT_EQ(has, fused) << what << "\n" << d;
  };
  for (int64_t opset : {13, 18})
    for (bool swapped : {false, true})
      for (int affine = 0; affine < 4; ++affine) {
        LnPattern p;
        p.opset = opset;
        p.swapped = swapped;
        p.mul = affine & 1;
        p.add = affine & 2;
        check(p, true, "opset " + std::to_string(opset) + (swapped ? " swapped" : "") + (p.mul ? " mul" : "") +
                           (p.add ? " add" : ""));
      }
  LnPattern p;
  p.square_by_mul = true;
  check(p, true, "Mul(d, d)");
  p = LnPattern{};
  p.axes = {-2, -1};
  check(p, true, "axes -2, -1");
  p.axes = {2};
  check(p, true, "axes 2, rank declared");
  p.typed = false;
  check(p, false, "axes 2, rank unknown");
  // An intermediate with another reader: no rewrite, same answer.
  for (const char* v : {"m", "d", "p", "v", "e", "s"}) {
    p = LnPattern{};
    p.extra_reader = v;
    check(p, false, std::string("second reader of ") + v);
  }
  // A shared value after the Div: the rewrite stops there (n or g stays visible).
  for (const auto& [v, ops] : {std::pair<const char*, const char*>{"n", "Div  "}, {"g", "Div + Mul  "}}) {
    p = LnPattern{};
    p.extra_reader = v;
    GraphBuilder b = layer_norm_pattern(p, 980);
    expect_matches_reference(b, std::string("second reader of ") + v);
    const std::string d = cpu_plan_description(b);
    const std::string fused = std::string("fused: ReduceMean + Sub + Pow + ReduceMean + Add + Sqrt + ") + ops;
    EXPECT_NE(d.find(fused), std::string::npos) << d;
  }
}

// --- Data movement ------------------------------------------------------------------------------

TEST(CpuBackendShape, ViewChainAndBlockedConcat) {
  REQUIRE_CPU();
  uint32_t seed = 1100;
  {
    GraphBuilder b(13);
    b.input("x", random_tensor({2, 3, 4, 5}, seed++)).init("shape", Tensor::from_vector<int64_t>({3}, {2, -1, 5}));
    b.init("axes", Tensor::from_vector<int64_t>({1}, {1}));
    b.node("Reshape", {"x", "shape"}, {"r"}).node("Unsqueeze", {"r", "axes"}, {"u"}).node("Squeeze", {"u", "axes"}, {"s"});
    b.node("Flatten", {"s"}, {"f"}, {{"axis", attr_int(1)}}).node("Relu", {"f"}, {"y"});
    b.output("y").output("r");
    expect_matches_reference(b, "views");
  }
  for (int64_t c1 : {16, 24}) {  // blocked inputs: aligned (block copies) and unaligned channels
    GraphBuilder b(13);
    b.input("x", random_tensor({1, 8, 5, 6}, seed++));
    b.init("w1", random_tensor({c1, 8, 1, 1}, seed++));
    b.init("w2", random_tensor({20, 8, 1, 1}, seed++));
    b.node("Conv", {"x", "w1"}, {"c1"}).node("Conv", {"x", "w2"}, {"c2"});
    b.node("Concat", {"c1", "c2"}, {"cat"}, {{"axis", attr_int(1)}});
    b.init("w3", random_tensor({16, c1 + 20, 3, 3}, seed++));
    b.node("Conv", {"cat", "w3"}, {"y"}).output("y").output("cat");
    expect_matches_reference(b, "blocked concat c1=" + std::to_string(c1));
  }
  // Many narrow inputs: the first output block gathers lanes from six of them (more than the
  // lane shuffle holds in registers), the second from one.
  for (int64_t inputs : {4, 6}) {
    GraphBuilder b(13);
    b.input("x", random_tensor({1, 8, 5, 6}, seed++));
    std::vector<std::string> parts;
    for (int64_t i = 0; i < inputs; ++i) {
      const std::string w = "w" + std::to_string(i), c = "c" + std::to_string(i);
      b.init(w, random_tensor({3, 8, 1, 1}, seed++));
      b.node("Conv", {"x", w}, {c});
      parts.push_back(c);
    }
    b.node("Concat", parts, {"cat"}, {{"axis", attr_int(1)}});
    b.init("wy", random_tensor({16, 3 * inputs, 3, 3}, seed++));
    b.node("Conv", {"cat", "wy"}, {"y"}).output("y").output("cat");
    expect_matches_reference(b, "blocked concat of " + std::to_string(inputs) + " narrow inputs");
  }
}

// Resize of a blocked (conv) output.
TEST(CpuBackendResize, BlockedInputs) {
  REQUIRE_CPU();
  uint32_t seed = 1200;
  struct Case {
    const char* mode;
    const char* ctm;
    const char* nearest;
  };
  const std::vector<Case> cases = {
      {"nearest", "asymmetric", "floor"},          {"nearest", "half_pixel", "round_prefer_floor"},
      {"nearest", "align_corners", "round_prefer_ceil"}, {"nearest", "pytorch_half_pixel", "ceil"},
      {"linear", "half_pixel", ""},                {"linear", "align_corners", ""},
      {"linear", "asymmetric", ""},                {"linear", "pytorch_half_pixel", ""},
  };
  for (const Case& cc : cases)
    for (std::vector<float> scales : {std::vector<float>{1, 1, 2, 2}, {1, 1, 0.5f, 1.5f}, {1, 1, 3, 1.7f}}) {
      GraphBuilder b(13);
      b.input("x", random_tensor({1, 5, 6, 7}, seed++));
      b.init("w", random_tensor({20, 5, 1, 1}, seed++));
      b.node("Conv", {"x", "w"}, {"c"});
      b.init("roi", Tensor(DataType::float32, {0})).init("scales", Tensor::from_vector<float>({4}, scales));
      std::map<std::string, Attribute> a{{"mode", attr_string(cc.mode)},
                                         {"coordinate_transformation_mode", attr_string(cc.ctm)}};
      if (*cc.nearest) a["nearest_mode"] = attr_string(cc.nearest);
      b.node("Resize", {"c", "roi", "scales"}, {"y"}, a).output("y");
      expect_matches_reference(b, std::string(cc.mode) + "/" + cc.ctm + " blocked");
    }
}

// --- Plans: instances, threads, concurrency -----------------------------------------------------

TEST(CpuBackendPlan, NewInputShapesAndConcurrentRuns) {
  REQUIRE_CPU();
  GraphBuilder b(11);
  b.input("x", random_tensor({1, 3, 16, 16}, 1300), false).init("w", random_tensor({16, 3, 3, 3}, 1301));
  b.init("w2", random_tensor({8, 16, 1, 1}, 1302));
  b.node("Conv", {"x", "w"}, {"c"}, {{"pads", attr_ints({1, 1, 1, 1})}}).node("Relu", {"c"}, {"r"});
  b.node("Conv", {"r", "w2"}, {"d"}).node("GlobalAveragePool", {"d"}, {"g"}).node("Flatten", {"g"}, {"y"});
  b.output("y").output("d");
  CompileOptions one;
  one.threads = 1;
  auto fast = PlacedModel::create(b.graph(), {cpu()}, one);
  ASSERT_TRUE(fast.is_ok()) << fast.status().to_string();
  auto slow = PlacedModel::create(b.graph(), {ref()});
  ASSERT_TRUE(slow.is_ok());
  // Several shapes, each checked, then revisited (cached instances).
  const std::vector<Shape> shapes = {{1, 3, 16, 16}, {2, 3, 9, 13}, {1, 3, 31, 5}, {1, 3, 16, 16}};
  for (size_t i = 0; i < shapes.size(); ++i) {
    std::vector<Value> in{Value::of(random_tensor(shapes[i], 1310 + static_cast<uint32_t>(i)))};
    std::vector<Value> got, want;
    ASSERT_TRUE((*fast)->run(in, &got).is_ok());
    ASSERT_TRUE((*slow)->run(in, &want).is_ok());
    for (size_t k = 0; k < got.size(); ++k)
      EXPECT_TRUE(compare_values(want[k], got[k], kTol).is_ok()) << "shape " << shape_to_string(shapes[i]);
  }
  // Four threads run the same plan at once on different inputs.
  std::vector<std::vector<Value>> inputs(4), outputs(4), expected(4);
  for (int t = 0; t < 4; ++t) {
    inputs[t] = {Value::of(random_tensor(shapes[t % 3], 1320 + t))};
    ASSERT_TRUE((*slow)->run(inputs[t], &expected[t]).is_ok());
  }
  std::vector<std::thread> pool;
  std::vector<Status> status(4);
  for (int t = 0; t < 4; ++t)
    pool.emplace_back([&, t] {
      for (int rep = 0; rep < 5 && status[t].is_ok(); ++rep) status[t] = (*fast)->run(inputs[t], &outputs[t]);
    });
  for (auto& th : pool) th.join();
  for (int t = 0; t < 4; ++t) {
    ASSERT_TRUE(status[t].is_ok()) << status[t].to_string();
    for (size_t k = 0; k < outputs[t].size(); ++k) EXPECT_TRUE(compare_values(expected[t][k], outputs[t][k], kTol).is_ok());
  }
}

TEST(CpuBackendPlan, TwoThreadsMatchOneThread) {
  REQUIRE_CPU();
  ConvCase cc{1, 16, 40, 40, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  GraphBuilder b = conv_graph(cc, 1400, true, true);
  expect_matches_reference(b, "threads 1", true, kTol, 1);
  expect_matches_reference(b, "threads 2", true, kTol, 2);
}

TEST(CpuBackendPlan, SupportsRejectsWhatItCannotRun) {
  REQUIRE_CPU();
  Node n;
  n.op_type = "MaxPool";
  n.name = "p";
  n.inputs = {"x"};
  n.outputs = {"y", "idx"};
  n.attrs["kernel_shape"] = attr_ints({2, 2});
  EXPECT_EQ(cpu()->supports(n, NodeTypes{}).code(), StatusCode::unsupported);
  n.op_type = "Resize";
  n.outputs = {"y"};
  n.opset = 13;
  n.attrs["mode"] = attr_string("cubic");
  EXPECT_EQ(cpu()->supports(n, NodeTypes{}).code(), StatusCode::unsupported);
  n.op_type = "NonMaxSuppression";
  EXPECT_EQ(cpu()->supports(n, NodeTypes{}).code(), StatusCode::unsupported);
  n.op_type = "Conv";
  n.inputs = {"x", "w"};
  n.attrs.clear();
  EXPECT_TRUE(cpu()->supports(n, NodeTypes{}).is_ok());
}

// --- The PaddleOCR models -----------------------------------------------------------------------

void expect_model_matches(const std::string& file, const Shape& shape) {
  namespace fs = std::filesystem;
  const fs::path path = fs::path(TANDEM_SOURCE_DIR) / "models" / file;
  ASSERT_TRUE(fs::exists(path)) << path.string() << " is missing: run scripts/setup to fetch the models";
  auto model = load_model(path);
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  auto fast = PlacedModel::create(model->graph, {cpu(), ref()});
  ASSERT_TRUE(fast.is_ok()) << fast.status().to_string();
  auto slow = PlacedModel::create(model->graph, {ref()});
  ASSERT_TRUE(slow.is_ok()) << slow.status().to_string();
  std::vector<Value> in{Value::of(random_tensor(shape, 7, 0.0f, 1.0f))};
  std::vector<Value> got, want;
  Status s = (*fast)->run(in, &got);
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  s = (*slow)->run(in, &want);
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    Status c = compare_values(want[i], got[i], kTol);
    EXPECT_TRUE(c.is_ok()) << file << " output " << i << ": " << c.message();
  }
}

TEST(CpuBackendModels, DetMatchesReference) {
  REQUIRE_CPU();
  expect_model_matches("ch_PP-OCRv4_det_infer.onnx", {1, 3, 160, 160});
}

TEST(CpuBackendModels, RecMatchesReference) {
  REQUIRE_CPU();
  expect_model_matches("ch_PP-OCRv4_rec_infer.onnx", {1, 3, 48, 320});
}

TEST(CpuBackendModels, ClsMatchesReference) {
  REQUIRE_CPU();
  expect_model_matches("ch_ppocr_mobile_v2.0_cls_infer.onnx", {1, 3, 48, 192});
}

// The cpu backend (with reference fallback) also reproduces ONNX Runtime's outputs stored in
// tests/golden/ (see tests/golden/README.md).
void expect_golden(const std::string& file, const std::string& case_dir, const std::string& output) {
  namespace fs = std::filesystem;
  const fs::path model_path = fs::path(TANDEM_SOURCE_DIR) / "models" / file;
  const fs::path dir = fs::path(TANDEM_SOURCE_DIR) / "tests" / "golden" / case_dir;
  ASSERT_TRUE(fs::exists(model_path)) << model_path.string() << " is missing: run scripts/setup to fetch the models";
  auto model = load_model(model_path);
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  auto x = read_npy(dir / "input_x.npy");
  ASSERT_TRUE(x.is_ok()) << x.status().to_string();
  auto expected = read_npy(dir / (output + ".npy"));
  ASSERT_TRUE(expected.is_ok()) << expected.status().to_string();
  auto fast = PlacedModel::create(model->graph, {cpu(), ref()});
  ASSERT_TRUE(fast.is_ok()) << fast.status().to_string();
  std::vector<Value> got;
  Status s = (*fast)->run({Value::of(*x)}, &got);
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  ASSERT_EQ(got.size(), 1u);
  Status c = compare_tensors(*expected, got[0].tensor, kTol);
  EXPECT_TRUE(c.is_ok()) << case_dir << ": " << c.message();
}

TEST(CpuBackendModels, OnnxRuntimeGoldens) {
  REQUIRE_CPU();
  expect_golden("ch_PP-OCRv4_det_infer.onnx", "det", "sigmoid_0.tmp_0");
  expect_golden("ch_PP-OCRv4_det_infer.onnx", "det_text", "sigmoid_0.tmp_0");
  expect_golden("ch_PP-OCRv4_rec_infer.onnx", "rec", "softmax_11.tmp_0");
  expect_golden("ch_ppocr_mobile_v2.0_cls_infer.onnx", "cls", "softmax_0.tmp_0");
}

}  // namespace
}  // namespace tandem

// --- Reduced precision ---------------------------------------------------------------------------

namespace tandem {
namespace {

// Runs `b` on cpu at `precision` and on reference; returns the max abs difference of output 0.
double max_abs_against_reference(const GraphBuilder& b, Precision precision) {
  CompileOptions opts;
  opts.precision = precision;
  auto fast = PlacedModel::create(b.graph(), {cpu()}, opts);
  EXPECT_TRUE(fast.is_ok()) << fast.status().to_string();
  auto slow = PlacedModel::create(b.graph(), {ref()});
  if (!fast.is_ok() || !slow.is_ok()) return INFINITY;
  std::vector<Value> got, want;
  EXPECT_TRUE((*fast)->run(b.feeds(), &got).is_ok());
  EXPECT_TRUE((*slow)->run(b.feeds(), &want).is_ok());
  if (got.empty() || want.empty()) return INFINITY;
  return error_stats(want[0].tensor, got[0].tensor).max_abs;
}

GraphBuilder conv_then_matmul_graph() {
  GraphBuilder b(13);
  b.input("x", random_tensor({1, 64, 24, 24}, 1200));
  b.init("w", random_tensor({64, 64, 3, 3}, 1201, -0.05f, 0.05f)).init("bias", random_tensor({64}, 1202));
  b.init("m", random_tensor({24, 256}, 1203, -0.1f, 0.1f));
  b.node("Conv", {"x", "w", "bias"}, {"c"}, {{"pads", attr_ints({1, 1, 1, 1})}});
  b.node("Relu", {"c"}, {"r"}).node("MatMul", {"r", "m"}, {"y"}).output("y");
  return b;
}

// bf16 where the CPU has it: convolutions and products really run on bfloat16 operands (the
// answer moves off the exact one) and stay within the bf16 parity budget.
TEST(CpuBackendPrecision, Bf16StaysWithinItsBudget) {
  REQUIRE_CPU();
  if (!cpu()->supports_precision(Precision::bf16).is_ok()) GTEST_SKIP() << "no native bf16 on this CPU";
  // Every candidate in bf16, even where this CPU runs it slower than float32 (bf16_choice.h).
  setenv("TANDEM_CPU_BF16", "always", 1);
  const GraphBuilder b = conv_then_matmul_graph();
  const double fp32 = max_abs_against_reference(b, Precision::fp32);
  const double bf16 = max_abs_against_reference(b, Precision::bf16);
  EXPECT_LT(fp32, 1e-4);
  EXPECT_GT(bf16, 10 * fp32) << "bf16 made no difference: was it used?";
  EXPECT_LT(bf16, default_parity_budget(Precision::bf16).max_abs);
  std::printf("bf16 max abs %.3g (fp32 %.3g)\n", bf16, fp32);
  unsetenv("TANDEM_CPU_BF16");
}

// Without native support the backend refuses the precision, saying why, rather than emulate.
TEST(CpuBackendPrecision, UnsupportedPrecisionIsRefusedAtCompile) {
  REQUIRE_CPU();
  Status fp16 = cpu()->supports_precision(Precision::fp16);
  EXPECT_EQ(fp16.code(), StatusCode::unsupported);
  EXPECT_NE(fp16.message().find("fp16"), std::string::npos) << fp16.message();
  CompileOptions opts;
  opts.precision = Precision::fp16;
  auto placed = PlacedModel::create(conv_then_matmul_graph().graph(), {cpu(), ref()}, opts);
  EXPECT_EQ(placed.status().code(), StatusCode::unsupported);
  EXPECT_TRUE(ref()->supports_precision(Precision::fp16).is_ok()) << "reference computes exactly at any precision";
  EXPECT_TRUE(cpu()->supports_precision(Precision::fp32).is_ok());
}

TEST(ParityBudgets, FollowThePrecision) {
  EXPECT_DOUBLE_EQ(default_parity_budget(Precision::fp32).max_abs, 1e-3);
  EXPECT_DOUBLE_EQ(default_parity_budget(Precision::fp32).rmse, 1e-4);
  for (Precision p : {Precision::bf16, Precision::fp16}) {
    EXPECT_DOUBLE_EQ(default_parity_budget(p).max_abs, 1e-2);
    EXPECT_DOUBLE_EQ(default_parity_budget(p).rmse, 1e-3);
  }
}

}  // namespace
}  // namespace tandem

namespace tandem {
namespace {

// A node the cpu backend accepts by op and type but cannot run on its own kernels for the
// shapes known at compile (ReduceSum over axes that are not contiguous) is moved to reference
// by placement, with the reason; the cpu plan then replays nothing on reference kernels.
TEST(CpuBackendPlacement, NodesTheCpuPlanCannotRunMoveToReference) {
  REQUIRE_CPU();
  GraphBuilder b(13);
  b.input("x", random_tensor({2, 3, 4, 5}, 1300));
  b.init("axes", Tensor::from_vector<int64_t>({2}, {1, 3}));
  b.node("Relu", {"x"}, {"r"}).node("ReduceSum", {"r", "axes"}, {"s"}).node("Sigmoid", {"s"}, {"y"}).output("y");
  auto placed = PlacedModel::create(b.graph(), {cpu(), ref()});
  ASSERT_TRUE(placed.is_ok()) << placed.status().to_string();
  const PlacementReport& report = (*placed)->report();
  ASSERT_EQ(report.nodes.size(), 3u);
  EXPECT_EQ(report.nodes[0].backend, "cpu");
  EXPECT_EQ(report.nodes[1].backend, "reference");
  ASSERT_FALSE(report.nodes[1].declined.empty());
  EXPECT_EQ(report.nodes[1].declined.back().first, "cpu");
  EXPECT_NE(report.nodes[1].declined.back().second.find("axes"), std::string::npos) << report.nodes[1].declined.back().second;
  EXPECT_EQ(report.nodes[2].backend, "cpu");
  EXPECT_EQ(report.segments, 3);
  const std::string text = (*placed)->describe();
  EXPECT_EQ(text.find("steps on reference kernels") == std::string::npos ? 0 : 1, 1) << text;
  EXPECT_EQ(text.find("1 steps on reference kernels"), std::string::npos) << text;
  expect_matches_reference(b, "ReduceSum over axes 1 and 3", /*cpu_only=*/false);
}

}  // namespace
}  // namespace tandem

namespace tandem {
namespace {

// A float16 graph over the op families the cpu backend runs (convolution, transposed
// convolution, pooling, resize, normalization, reductions, softmax, matrix products, shape
// ops, elementwise chains) runs wholly on the cpu backend's own kernels.
TEST(CpuBackendHalf, EveryFamilyRunsInFloat32WithoutReferenceKernels) {
  REQUIRE_CPU();
  GraphBuilder b(13);
  b.input("x", to_half(random_tensor({1, 4, 8, 8}, 1400)));
  b.init("w", to_half(random_tensor({8, 4, 3, 3}, 1401, -0.3f, 0.3f)));
  b.init("wt", to_half(random_tensor({8, 4, 2, 2}, 1402, -0.3f, 0.3f)));
  b.init("g", to_half(random_tensor({4}, 1403, 0.5f, 1.5f))).init("be", to_half(random_tensor({4}, 1404)));
  b.init("m", to_half(random_tensor({4}, 1405))).init("v", to_half(random_tensor({4}, 1406, 0.5f, 1.5f)));
  b.init("scales", Tensor::from_vector<float>({4}, {1, 1, 2, 2}));
  b.init("fc", to_half(random_tensor({16, 5}, 1407, -0.3f, 0.3f)));
  b.init("shape", Tensor::from_vector<int64_t>({3}, {1, 4, 16}));
  b.init("axes", Tensor::from_vector<int64_t>({1}, {2}));
  b.node("Conv", {"x", "w"}, {"c"}, {{"pads", attr_ints({1, 1, 1, 1})}});
  b.node("HardSwish", {"c"}, {"h"});
  b.node("ConvTranspose", {"h", "wt"}, {"ct"}, {{"strides", attr_ints({2, 2})}});
  b.node("MaxPool", {"ct"}, {"p"}, {{"kernel_shape", attr_ints({2, 2})}, {"strides", attr_ints({2, 2})}});
  b.node("BatchNormalization", {"p", "g", "be", "m", "v"}, {"bn"});
  b.node("Resize", {"bn", "", "scales"}, {"rs"}, {{"mode", attr_string("nearest")}});
  b.node("AveragePool", {"rs"}, {"ap"}, {{"kernel_shape", attr_ints({4, 4})}, {"strides", attr_ints({4, 4})}});
  b.node("Reshape", {"ap", "shape"}, {"flat"});
  b.node("MatMul", {"flat", "fc"}, {"mm"});
  b.node("Softmax", {"mm"}, {"sm"}, {{"axis", attr_int(-1)}});
  b.node("ReduceSum", {"sm", "axes"}, {"rsum"}, {{"keepdims", attr_int(1)}});
  b.node("Sub", {"sm", "rsum"}, {"d"}).node("Tanh", {"d"}, {"y"}).output("y");
  auto placed = PlacedModel::create(b.graph(), {cpu(), ref()});
  ASSERT_TRUE(placed.is_ok()) << placed.status().to_string();
  for (const NodePlacement& np : (*placed)->report().nodes) EXPECT_EQ(np.backend, "cpu") << np.node;
  const std::string text = (*placed)->describe();
  EXPECT_NE(text.find(" 0 steps on reference kernels"), std::string::npos) << text;
  expect_matches_reference(b, "fp16 families", true, Tolerance{2e-2, 2e-2});
}

}  // namespace
}  // namespace tandem
