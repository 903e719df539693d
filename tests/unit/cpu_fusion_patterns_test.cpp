// cpu_fusion_patterns_test.cpp (CpuBackendFusionPatterns): decomposed activations that exporters
// write out op by op and the cpu backend rewrites into one step (fusion.cpp, "Patterns"), which
// the product before them then takes as a post-op. Here: the exact Gelu of PyTorch and Hugging
// Face exports before opset 20 and its tanh approximation (GPT-2's), in their groupings and
// spellings, after a MatMul, and Mish written as x * Tanh(Softplus(x)) after a Conv; forms that
// differ (another constant, an intermediate read elsewhere) are left alone. Results must match
// the reference backend either way. Also: a nearest Resize read by an elementwise step only, two
// ConvTransposes in a row, and Swish (x * Sigmoid(x)) ending a product's chain, which runs after
// the product over its result instead of as oneDNN's post-op.
#include <gtest/gtest.h>

#include <string>

#include "core/compare.h"
#include "cpu_int8_test_util.h"
#include "op_test_util.h"
#include "scoped_env.h"

namespace tandem {
namespace {

using namespace int8_test;
using testing::attr_ints;
using testing::attr_string;

struct GeluForm {
  bool half_first = false;    // Mul(Mul(x, 0.5), branch) instead of Mul(Mul(x, branch), 0.5)
  bool by_mul = false;        // x * 0.70710678 instead of x / 1.4142135
  bool swapped = false;       // constants and operands on the other side
  float sqrt2 = 1.4142135f;   // the divisor (another value: not a Gelu)
  bool extra_reader = false;  // the Erf's result is also a graph output
};

GraphBuilder matmul_gelu(const GeluForm& g) {
  GraphBuilder q(13);
  q.input("a", random_floats({2, 5, 24}, 1, -2.0f, 2.0f))
      .init("w", random_floats({24, 16}, 2, -0.5f, 0.5f))
      .init("half", Tensor::scalar<float>(0.5f))
      .init("one", Tensor::scalar<float>(1.0f))
      .init("c", Tensor::scalar<float>(g.by_mul ? 1.0f / g.sqrt2 : g.sqrt2));
  q.node("MatMul", {"a", "w"}, {"x"});
  q.node(g.by_mul ? "Mul" : "Div", {"x", "c"}, {"d"});
  if (g.by_mul && g.swapped) q.graph()->nodes.back().inputs = {"c", "x"};
  q.node("Erf", {"d"}, {"e"});
  q.node("Add", g.swapped ? std::vector<std::string>{"one", "e"} : std::vector<std::string>{"e", "one"}, {"b"});
  if (g.half_first) {
    q.node("Mul", g.swapped ? std::vector<std::string>{"half", "x"} : std::vector<std::string>{"x", "half"}, {"h"});
    q.node("Mul", g.swapped ? std::vector<std::string>{"b", "h"} : std::vector<std::string>{"h", "b"}, {"y"});
  } else {
    q.node("Mul", g.swapped ? std::vector<std::string>{"b", "x"} : std::vector<std::string>{"x", "b"}, {"m"});
    q.node("Mul", g.swapped ? std::vector<std::string>{"half", "m"} : std::vector<std::string>{"m", "half"}, {"y"});
  }
  q.output("y");
  if (g.extra_reader) q.output("e");
  return q;
}

void expect_gelu(const GeluForm& g, bool fused, const std::string& what) {
  SCOPED_TRACE(what);
  GraphBuilder q = matmul_gelu(g);
  auto placed = PlacedModel::create(q.graph(), {cpu_backend()});
  ASSERT_TRUE(placed.is_ok()) << placed.status().to_string();
  const std::string text = (*placed)->describe();
  // Fused, the MatMul's step stands for all six nodes and no Erf step is left.
  EXPECT_EQ(text.find("6 nodes -> 1 steps") != std::string::npos, fused) << text;
  Runs r = run_both(q);
  ASSERT_EQ(r.cpu.size(), r.ref.size());
  for (size_t i = 0; i < r.cpu.size(); ++i) {
    Status c = compare_values(r.ref[i], r.cpu[i], Tolerance{1e-5, 1e-5});
    EXPECT_TRUE(c.is_ok()) << c.message();
  }
}

TEST(CpuBackendFusionPatterns, DecomposedGeluAfterAMatMulBecomesItsPostOp) {
  REQUIRE_CPU();
  for (bool half_first : {false, true})
    for (bool by_mul : {false, true})
      for (bool swapped : {false, true}) {
        GeluForm g;
        g.half_first = half_first;
        g.by_mul = by_mul;
        g.swapped = swapped;
        expect_gelu(g, true,
                    std::string(half_first ? "x * 0.5 first" : "x * branch first") +
                        (by_mul ? ", x * 1/sqrt(2)" : ", x / sqrt(2)") + (swapped ? ", swapped" : ""));
      }
}

TEST(CpuBackendFusionPatterns, GeluLookalikesAreLeftAsTheyAre) {
  REQUIRE_CPU();
  GeluForm other;
  other.sqrt2 = 2.0f;
  expect_gelu(other, false, "x / 2 is not a Gelu");
  GeluForm shared;
  shared.extra_reader = true;
  expect_gelu(shared, false, "the Erf is read elsewhere");
}

struct TanhGeluForm {
  bool half_first = false;        // Mul(Mul(x, 0.5), branch) instead of Mul(Mul(x, branch), 0.5)
  bool cube_by_mul = false;       // Mul(Mul(x, x), x) instead of Pow(x, 3)
  bool swapped = false;           // constants and operands on the other side
  float exponent = 3.0f;          // Pow's exponent (another value: not a Gelu)
  float coefficient = 0.044715f;  // of the cube (another value: not a Gelu)
  bool extra_reader = false;      // the Tanh's result is also a graph output
};

// 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3))) after a MatMul; returns the graph
// and, in *nodes, how many nodes it has.
GraphBuilder matmul_tanh_gelu(const TanhGeluForm& g, int* nodes) {
  GraphBuilder q(13);
  q.input("a", random_floats({2, 5, 24}, 3, -2.0f, 2.0f))
      .init("w", random_floats({24, 16}, 4, -0.5f, 0.5f))
      .init("half", Tensor::scalar<float>(0.5f))
      .init("one", Tensor::scalar<float>(1.0f))
      .init("three", Tensor::scalar<float>(g.exponent))
      .init("c", Tensor::scalar<float>(g.coefficient))
      .init("k", Tensor::scalar<float>(0.7978845608f));
  auto pair = [&](const char* a, const char* b) {
    return g.swapped ? std::vector<std::string>{b, a} : std::vector<std::string>{a, b};
  };
  q.node("MatMul", {"a", "w"}, {"x"});
  if (g.cube_by_mul) {
    q.node("Mul", {"x", "x"}, {"x2"});
    q.node("Mul", pair("x2", "x"), {"x3"});
  } else {
    q.node("Pow", {"x", "three"}, {"x3"});
  }
  q.node("Mul", pair("x3", "c"), {"cx3"});
  q.node("Add", pair("x", "cx3"), {"u"});
  q.node("Mul", pair("u", "k"), {"s"});
  q.node("Tanh", {"s"}, {"t"});
  q.node("Add", pair("t", "one"), {"b"});
  if (g.half_first) {
    q.node("Mul", pair("x", "half"), {"h"});
    q.node("Mul", pair("h", "b"), {"y"});
  } else {
    q.node("Mul", pair("x", "b"), {"m"});
    q.node("Mul", pair("m", "half"), {"y"});
  }
  q.output("y");
  if (g.extra_reader) q.output("t");
  *nodes = g.cube_by_mul ? 10 : 9;
  return q;
}

void expect_tanh_gelu(const TanhGeluForm& g, bool fused, const std::string& what) {
  SCOPED_TRACE(what);
  int nodes = 0;
  GraphBuilder q = matmul_tanh_gelu(g, &nodes);
  auto placed = PlacedModel::create(q.graph(), {cpu_backend()});
  ASSERT_TRUE(placed.is_ok()) << placed.status().to_string();
  const std::string text = (*placed)->describe();
  EXPECT_EQ(text.find(std::to_string(nodes) + " nodes -> 1 steps") != std::string::npos, fused) << text;
  Runs r = run_both(q);
  ASSERT_EQ(r.cpu.size(), r.ref.size());
  for (size_t i = 0; i < r.cpu.size(); ++i) {
    Status c = compare_values(r.ref[i], r.cpu[i], Tolerance{1e-5, 1e-5});
    EXPECT_TRUE(c.is_ok()) << c.message();
  }
}

TEST(CpuBackendFusionPatterns, TanhApproximatedGeluAfterAMatMulBecomesItsPostOp) {
  REQUIRE_CPU();
  for (bool half_first : {false, true})
    for (bool cube_by_mul : {false, true})
      for (bool swapped : {false, true}) {
        TanhGeluForm g;
        g.half_first = half_first;
        g.cube_by_mul = cube_by_mul;
        g.swapped = swapped;
        expect_tanh_gelu(g, true,
                         std::string(half_first ? "x * 0.5 first" : "x * branch first") +
                             (cube_by_mul ? ", x * x * x" : ", Pow(x, 3)") + (swapped ? ", swapped" : ""));
      }
}

TEST(CpuBackendFusionPatterns, TanhGeluLookalikesAreLeftAsTheyAre) {
  REQUIRE_CPU();
  TanhGeluForm square;
  square.exponent = 2.0f;
  expect_tanh_gelu(square, false, "x^2 is not a Gelu");
  TanhGeluForm coefficient;
  coefficient.coefficient = 0.05f;
  expect_tanh_gelu(coefficient, false, "0.05 * x^3 is not a Gelu");
  TanhGeluForm shared;
  shared.extra_reader = true;
  expect_tanh_gelu(shared, false, "the Tanh is read elsewhere");
}

// Conv, then x * Tanh(Softplus(x)) with x the Conv's output (operands in either order), or the
// Mish op itself (opset 18).
GraphBuilder conv_mish(bool decomposed, bool swapped, bool extra_reader) {
  GraphBuilder q(18);
  q.input("a", random_floats({1, 3, 9, 11}, 5, -2.0f, 2.0f))
      .init("w", random_floats({8, 3, 3, 3}, 6, -0.5f, 0.5f))
      .init("b", random_floats({8}, 7, -0.5f, 0.5f));
  Attribute pads;
  pads.type = AttrType::ints;
  pads.ints = {1, 1, 1, 1};
  q.node("Conv", {"a", "w", "b"}, {"x"}, {{"pads", pads}});
  if (decomposed) {
    q.node("Softplus", {"x"}, {"sp"});
    q.node("Tanh", {"sp"}, {"t"});
    q.node("Mul", swapped ? std::vector<std::string>{"t", "x"} : std::vector<std::string>{"x", "t"}, {"y"});
  } else {
    q.node("Mish", {"x"}, {"y"});
  }
  q.output("y");
  if (extra_reader) q.output("sp");
  return q;
}

TEST(CpuBackendFusionPatterns, MishAfterAConvBecomesItsPostOp) {
  REQUIRE_CPU();
  struct Form {
    bool decomposed, swapped, extra_reader;
    const char* expected;  // in the placement text
    const char* what;
  };
  for (const Form& form : {Form{false, false, false, "2 nodes -> 1 steps", "the Mish op"},
                           Form{true, false, false, "4 nodes -> 1 steps", "x * Tanh(Softplus(x))"},
                           Form{true, true, false, "4 nodes -> 1 steps", "Tanh(Softplus(x)) * x"},
                           Form{true, false, true, "4 nodes -> 3 steps", "the Softplus read elsewhere"}}) {
    SCOPED_TRACE(form.what);
    GraphBuilder q = conv_mish(form.decomposed, form.swapped, form.extra_reader);
    auto placed = PlacedModel::create(q.graph(), {cpu_backend()});
    ASSERT_TRUE(placed.is_ok()) << placed.status().to_string();
    const std::string text = (*placed)->describe();
    EXPECT_NE(text.find(form.expected), std::string::npos) << text;
    Runs r = run_both(q);
    ASSERT_EQ(r.cpu.size(), r.ref.size());
    for (size_t i = 0; i < r.cpu.size(); ++i) {
      Status c = compare_values(r.ref[i], r.cpu[i], Tolerance{1e-5, 1e-5});
      EXPECT_TRUE(c.is_ok()) << c.message();
    }
  }
}

// An FPN's top-down path: a nearest Resize whose output only a sum reads. The sum reads the
// Resize's input through its index tables, so no upsampled copy is written; blocked (from a
// convolution) and plain, integer and fractional scales, the coordinate rules Resize has.
struct UpsampleForm {
  int64_t channels;
  std::vector<float> scales;
  const char* coordinates;
  const char* nearest;
  bool from_conv;  // blocked source (a 1x1 convolution's output) or a plain input
};

// x [2, C, 6, 7] (through an identity 1x1 convolution when `from_conv`) upsampled by `u` into
// "up", and y [2, C, OH, OW] of the upsampled size; seeds from `seed`.
GraphBuilder upsampled_graph(const UpsampleForm& u, uint32_t seed) {
  const int64_t C = u.channels, H = 6, W = 7;
  const int64_t OH = static_cast<int64_t>(H * u.scales[2]), OW = static_cast<int64_t>(W * u.scales[3]);
  GraphBuilder q;
  q.input("x", random_floats({2, C, H, W}, seed, -1.0f, 1.0f))
      .input("y", random_floats({2, C, OH, OW}, seed + 1, -1.0f, 1.0f))
      .init("roi", Tensor::from_vector<float>({0}, {}))
      .init("scales", Tensor::from_vector<float>({4}, u.scales));
  std::string src = "x";
  if (u.from_conv) {
    q.init("w", identity_conv_weights(C)).node("Conv", {"x", "w"}, {"c"}, {{"kernel_shape", attr_ints({1, 1})}});
    src = "c";
  }
  q.node("Resize", {src, "roi", "scales"}, {"up"},
         {{"mode", attr_string("nearest")},
          {"coordinate_transformation_mode", attr_string(u.coordinates)},
          {"nearest_mode", attr_string(u.nearest)}});
  return q;
}

TEST(CpuBackendFusionPatterns, ASumReadsANearestResizeFromItsInput) {
  REQUIRE_CPU();
  for (const UpsampleForm& u :
       {UpsampleForm{24, {1, 1, 2, 2}, "asymmetric", "floor", true},
        UpsampleForm{32, {1, 1, 2, 2}, "asymmetric", "floor", true},
        UpsampleForm{5, {1, 1, 1.5f, 2.5f}, "half_pixel", "round_prefer_floor", true},
        UpsampleForm{3, {1, 1, 2, 3}, "align_corners", "round_prefer_ceil", false},
        UpsampleForm{16, {1, 1, 0.5f, 2}, "pytorch_half_pixel", "ceil", false}}) {
    SCOPED_TRACE(std::to_string(u.channels) + " channels, " + u.coordinates);
    GraphBuilder q = upsampled_graph(u, 121);
    q.node("Add", {"up", "y"}, {"s"})
        .node("Relu", {"s"}, {"out"})
        .output("out");
    const std::string text = describe_cpu(q);
    EXPECT_NE(text.find("fused: Resize + Add + Relu"), std::string::npos) << text;
    EXPECT_NE(text.find("(upsampled operand)"), std::string::npos) << text;
    EXPECT_EQ(text.find("generic path"), std::string::npos) << text;
    for (int threads : {1, 2}) {
      Runs r = run_both(q, threads);
      ASSERT_EQ(r.cpu.size(), 1u);
      expect_same_floats(r.ref[0], r.cpu[0], "sum of an upsampled operand");
    }
  }
}

// The same path where the sum is a convolution's post-op (a feature pyramid adding the
// upsampled coarser map to a lateral 1x1 convolution): the Resize joins the convolution's step
// and the elementwise kernel after the product reads its source; the ops before the sum stay
// oneDNN post-ops. Blocked and plain sources, partial channel blocks, fractional scales.
TEST(CpuBackendFusionPatterns, AConvolutionsPostOpsReadANearestResizeFromItsInput) {
  REQUIRE_CPU();
  for (const UpsampleForm& u : {UpsampleForm{24, {1, 1, 2, 2}, "asymmetric", "floor", true},
                                UpsampleForm{32, {1, 1, 2, 2}, "asymmetric", "floor", false},
                                UpsampleForm{5, {1, 1, 1.5f, 2.5f}, "half_pixel", "round_prefer_floor", true}}) {
    SCOPED_TRACE(std::to_string(u.channels) + " channels, " + u.coordinates);
    GraphBuilder q = upsampled_graph(u, 123);
    q.init("wl", random_floats({u.channels, u.channels, 1, 1}, 125, -0.5f, 0.5f))
        .node("Conv", {"y", "wl"}, {"lateral"}, {{"kernel_shape", attr_ints({1, 1})}})
        .node("Relu", {"lateral"}, {"lr"})
        .node("Add", {"lr", "up"}, {"out"})
        .output("out");
    const std::string text = describe_cpu(q);
    EXPECT_NE(text.find("fused: Resize + Conv + Relu + Add"), std::string::npos) << text;
    EXPECT_NE(text.find("(post-ops, upsampled operand)"), std::string::npos) << text;
    EXPECT_EQ(text.find("generic path"), std::string::npos) << text;
    for (int threads : {1, 2}) {
      Runs r = run_both(q, threads);
      ASSERT_EQ(r.cpu.size(), 1u);
      EXPECT_LT(error_stats(r.ref[0].tensor, r.cpu[0].tensor).max_abs, 1e-5) << threads << " thread(s)";
    }
  }
}

// A feature pyramid's merge: Concat along channels of maps brought to one size by nearest
// Resizes. The Concat reads each Resize's source through its tables, in the Concat's input
// order (upsampled inputs first, as in a text detector's neck), channel counts that are not
// multiples of the block, integer and fractional scales; on the blocked float path only.
TEST(CpuBackendFusionPatterns, AChannelConcatReadsNearestResizesFromTheirInputs) {
  REQUIRE_CPU();
  for (int64_t C : {24, 16}) {
    SCOPED_TRACE(std::to_string(C) + " channels per input");
    GraphBuilder q;
    q.input("a", random_floats({2, C, 3, 2}, 126, -1.0f, 1.0f))
        .input("b", random_floats({2, C, 6, 5}, 127, -1.0f, 1.0f))
        .input("c", random_floats({2, C, 12, 10}, 128, -1.0f, 1.0f))
        .init("roi", Tensor::from_vector<float>({0}, {}))
        .init("four", Tensor::from_vector<float>({4}, {1, 1, 4, 5}))
        .init("two", Tensor::from_vector<float>({4}, {1, 1, 2, 2}))
        .init("w", identity_conv_weights(C));
    // Each map through a 1x1 convolution: blocked sources, as in the network.
    for (const char* v : {"a", "b", "c"})
      q.node("Conv", {v, "w"}, {std::string(v) + "c"}, {{"kernel_shape", attr_ints({1, 1})}});
    q.node("Resize", {"ac", "roi", "four"}, {"au"}, {{"mode", attr_string("nearest")}})
        .node("Resize", {"bc", "roi", "two"}, {"bu"},
              {{"mode", attr_string("nearest")}, {"coordinate_transformation_mode", attr_string("half_pixel")}})
        .node("Concat", {"au", "bu", "cc"}, {"cat"}, {{"axis", testing::attr_int(1)}})
        .output("cat");
    const std::string text = describe_cpu(q);
    // On the blocked float path (AVX2 and up); the baseline's plain path keeps the Resizes.
    if (cpu_isa_level_of(text) >= 1) {
      EXPECT_NE(text.find("fused: Resize + Resize + Concat"), std::string::npos) << text;
      EXPECT_NE(text.find("(upsampled input)"), std::string::npos) << text;
    }
    EXPECT_EQ(text.find("generic path"), std::string::npos) << text;
    for (int threads : {1, 2}) {
      Runs r = run_both(q, threads);
      ASSERT_EQ(r.cpu.size(), 1u);
      expect_same_floats(r.ref[0], r.cpu[0], "a concatenation of upsampled maps");
    }
  }
}

// A segmentation or text-detection head: ConvTranspose -> (bias, BatchNormalization, Relu) ->
// ConvTranspose -> Sigmoid, both with kernel = stride. The second reads the first's patches in
// the kernel's scratchpad, so one step runs both. Few and many channels between (the second's
// channels on the AVX-512 path and the portable one), a blocked final output, kernels of 1 to
// 4, batches, widths that are not a multiple of the pixels per step; second stages of 1 to 8
// values per pixel, which take 16 pixels across the lanes. A second ConvTranspose
// whose patches overlap, or an intermediate that is also a graph output, stays a step of its own.
struct DeconvPair {
  int64_t C, O1, O2, k1, k2, N, H, W;
  bool overlapping_second = false;
  bool intermediate_output = false;
};

TEST(CpuBackendFusionPatterns, TwoConvTransposesInARowRunAsOneStep) {
  REQUIRE_CPU();
  for (const DeconvPair& d : {DeconvPair{24, 24, 1, 2, 2, 1, 6, 7}, DeconvPair{7, 5, 3, 3, 2, 2, 4, 5},
                              DeconvPair{16, 12, 16, 2, 2, 1, 5, 9}, DeconvPair{20, 40, 2, 2, 4, 1, 3, 11},
                              DeconvPair{8, 16, 40, 2, 2, 1, 3, 5}, DeconvPair{16, 24, 1, 2, 2, 2, 3, 13},
                              DeconvPair{8, 5, 2, 2, 2, 1, 4, 9}, DeconvPair{6, 20, 1, 2, 1, 1, 3, 10},
                              DeconvPair{16, 8, 1, 2, 3, 1, 4, 4, true}, DeconvPair{16, 8, 1, 2, 2, 1, 4, 4, false, true}}) {
    SCOPED_TRACE("C " + std::to_string(d.C) + ", O1 " + std::to_string(d.O1) + ", O2 " + std::to_string(d.O2));
    GraphBuilder q;
    const int64_t k2 = d.k2, s2 = d.overlapping_second ? 2 : k2;
    q.input("x", random_floats({d.N, d.C, d.H, d.W}, 131, -1.0f, 1.0f))
        .init("w1", random_floats({d.C, d.O1, d.k1, d.k1}, 132, -0.5f, 0.5f))
        .init("b1", random_floats({1, d.O1, 1, 1}, 133, -0.5f, 0.5f))
        .init("g", random_floats({d.O1}, 134, 0.5f, 1.5f))
        .init("be", random_floats({d.O1}, 135, -0.5f, 0.5f))
        .init("m", random_floats({d.O1}, 136, -0.5f, 0.5f))
        .init("v", random_floats({d.O1}, 137, 0.5f, 1.5f))
        .init("w2", random_floats({d.O1, d.O2, k2, k2}, 138, -0.5f, 0.5f))
        .init("b2", random_floats({d.O2}, 139, -0.5f, 0.5f));
    q.node("ConvTranspose", {"x", "w1"}, {"t1"},
           {{"kernel_shape", attr_ints({d.k1, d.k1})}, {"strides", attr_ints({d.k1, d.k1})}})
        .node("Add", {"t1", "b1"}, {"a1"})
        .node("BatchNormalization", {"a1", "g", "be", "m", "v"}, {"n1"})
        .node("Relu", {"n1"}, {"r1"})
        .node("ConvTranspose", {"r1", "w2", "b2"}, {"t2"},
              {{"kernel_shape", attr_ints({k2, k2})}, {"strides", attr_ints({s2, s2})}})
        .node("Sigmoid", {"t2"}, {"y"})
        .output("y");
    if (d.intermediate_output) q.output("r1");
    const std::string text = describe_cpu(q);
    // (The baseline path keeps plain activations, which the patch kernel does not read.)
    const bool blocked_path = text.find("cpu isa: baseline") == std::string::npos;
    const bool one_step = blocked_path && !d.overlapping_second && !d.intermediate_output;
    EXPECT_EQ(text.find("fused: ConvTranspose + Add + BatchNormalization + Relu + ConvTranspose + Sigmoid") !=
                  std::string::npos,
              one_step)
        << text;
    EXPECT_EQ(text.find("generic path"), std::string::npos) << text;
    // A second stage of at most 8 values per pixel, plain, on AVX-512: pixels across the lanes.
    if (one_step && text.find("cpu isa: avx512") != std::string::npos) {
      EXPECT_EQ(text.find("(second stage: pixels across the lanes)") != std::string::npos, d.O2 * k2 * k2 <= 8)
          << text;
    }
    for (int threads : {1, 2}) {
      Runs r = run_both(q, threads);
      ASSERT_EQ(r.cpu.size(), r.ref.size());
      for (size_t i = 0; i < r.cpu.size(); ++i) {
        Status c = compare_values(r.ref[i], r.cpu[i], Tolerance{1e-5, 1e-5});
        EXPECT_TRUE(c.is_ok()) << c.message();
      }
    }
  }
}

// A convolution or MatMul whose chain ends in Swish: the product runs without it, then the
// swish kernel over its result in place (the placement text says so); with an op after the
// Swish it stays a oneDNN post-op. Results large enough for the pass to split over two
// threads, channels that leave a partial block, and a per-channel shift before the Swish.
// (Strided, so that no Winograd kernel, which takes fewer post-ops, is timed in.)
TEST(CpuBackendFusionPatterns, SwishEndingAProductsChainRunsOverItsResult) {
  REQUIRE_CPU();
  struct Form {
    bool matmul, shift_first, scale_after;
    const char* what;
  };
  for (const Form& form :
       {Form{false, false, false, "conv -> swish"}, Form{false, true, false, "conv -> add -> swish"},
        Form{false, false, true, "conv -> swish -> mul"}, Form{true, false, false, "matmul -> swish"},
        Form{true, true, false, "matmul -> add -> swish"}, Form{true, false, true, "matmul -> swish -> mul"}}) {
    SCOPED_TRACE(form.what);
    GraphBuilder q(13);
    const int64_t O = 40;
    const std::vector<int64_t> per_channel = form.matmul ? std::vector<int64_t>{O} : std::vector<int64_t>{O, 1, 1};
    if (form.matmul) {
      q.input("x", random_floats({2, 300, 64}, 1, -2.0f, 2.0f)).init("w", random_floats({64, O}, 2, -0.5f, 0.5f));
      q.node("MatMul", {"x", "w"}, {"c"});
    } else {
      q.input("x", random_floats({1, 24, 96, 80}, 1, -2.0f, 2.0f))
          .init("w", random_floats({O, 24, 3, 3}, 2, -0.3f, 0.3f))
          .init("b", random_floats({O}, 3, -0.5f, 0.5f));
      q.node("Conv", {"x", "w", "b"}, {"c"}, {{"pads", attr_ints({1, 1, 1, 1})}, {"strides", attr_ints({2, 2})}});
    }
    q.init("k", random_floats(per_channel, 4, -3.0f, 3.0f));
    std::string v = "c";
    if (form.shift_first) {
      q.node("Add", {v, "k"}, {"a"});
      v = "a";
    }
    q.node("Sigmoid", {v}, {"s"}).node("Mul", {v, "s"}, {form.scale_after ? "m" : "y"});
    if (form.scale_after) q.node("Mul", {"m", "k"}, {"y"});
    q.output("y");
    const std::string text = describe_cpu(q);
    EXPECT_NE(text.find(" 1 steps"), std::string::npos) << text;
    EXPECT_EQ(text.find("(post-ops)"), std::string::npos) << text;
    EXPECT_EQ(text.find("then swish in place") != std::string::npos, !form.scale_after) << text;
    {
      const testing::ScopedEnv off("TANDEM_CPU_SWISH_AFTER", "0");  // the switch keeps oneDNN's post-op
      const std::string fused = describe_cpu(q);
      EXPECT_EQ(fused.find("then swish in place"), std::string::npos) << fused;
      EXPECT_EQ(fused.find("(post-ops)"), std::string::npos) << fused;
    }
    for (int threads : {1, 2}) {
      Runs r = run_both(q, threads);
      ASSERT_EQ(r.cpu.size(), 1u);
      EXPECT_EQ(nodes_on(r.report, "reference"), 0);
      const Status c = compare_values(r.ref[0], r.cpu[0], Tolerance{1e-5, 1e-5});
      EXPECT_TRUE(c.is_ok()) << threads << " threads: " << c.message();
    }
  }
}

}  // namespace
}  // namespace tandem
