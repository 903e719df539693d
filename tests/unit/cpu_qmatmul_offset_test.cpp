// cpu_qmatmul_offset_test.cpp (CpuQMatMulOffset, also run under each TANDEM_CPU_ISA cap by ctest):
// MatMulInteger products whose uint8 weights sit around a zero point far from 128, as ONNX
// Runtime's dynamic quantization writes them with uint8 weights, followed by the Cast and the
// scale and bias arithmetic (src/backends/cpu/qconv_offset.cpp, add_offset_row_share): the
// product runs on the weights' int8 part and a sum post-op adds the offset's share, against the
// reference backend. Zero points 0, 60 and 200 (offsets of both signs and the largest), and one
// per column (an offset each); a runtime scalar scale (which
// oneDNN takes as its output scale: the share is scaled to match), a runtime per-column scale
// and a tail that opens with Relu (the share in accumulator units), constant per-column scales;
// left operands of rank 1 to 3, inner sizes below and above 258.
#include <gtest/gtest.h>

#include <set>
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
using testing::GraphBuilder;

using namespace int8_test;

enum class ScaleKind { runtime_scalar, runtime_columns, known_columns };

struct Product {
  Shape a = {2, 7, 40};  // the left operand; its last dim is K
  int64_t N = 24;
  int zero_point = 60;  // of the weights; -1: one per column, spread 50..75; -2: spread 0..255
  ScaleKind scale = ScaleKind::runtime_scalar;
  bool relu_first = false;  // the tail opens with Relu (no output scale to fold into)
};

std::string trace(const Product& p) {
  static const char* kinds[] = {"runtime scalar scale", "runtime per-column scale", "known per-column scale"};
  return "a " + shape_to_string(p.a) + " N=" + std::to_string(p.N) + " w_zero_point=" + std::to_string(p.zero_point) +
         ", " + kinds[static_cast<int>(p.scale)] + (p.relu_first ? ", Relu first" : "");
}

// [DynamicQuantizeLinear ->] MatMulInteger -> Cast -> Mul(scale) -> Add(bias), or Relu right
// after the Cast. Weights uniform over 0..255.
GraphBuilder product(const Product& p) {
  const int64_t K = p.a.back(), N = p.N;
  std::vector<float> ws, bias;
  for (int64_t n = 0; n < N; ++n) {
    ws.push_back((n % 2 == 1 ? -1.0f : 1.0f) * (0.002f + 0.0003f * static_cast<float>(n % 7)));
    bias.push_back(-0.2f + 0.03f * static_cast<float>(n));
  }
  Tensor zp;
  if (p.zero_point >= 0) {
    zp = Tensor::scalar<uint8_t>(static_cast<uint8_t>(p.zero_point));
  } else {
    std::vector<uint8_t> z;
    for (int64_t n = 0; n < N; ++n)
      z.push_back(static_cast<uint8_t>(p.zero_point == -1 ? 50 + (n * 7) % 26 : (n * 97) % 256));
    zp = Tensor::from_vector<uint8_t>({N}, z);
  }
  GraphBuilder q;
  q.init("w", random_ints<uint8_t>({K, N}, 0, 255, 61)).init("wz", zp).init("b", Tensor::from_vector<float>({N}, bias));
  if (p.scale == ScaleKind::known_columns) {
    std::vector<float> s;
    for (float w : ws) s.push_back(w * 0.01f);
    q.input("xq", random_ints<uint8_t>(p.a, 0, 255, 67))
        .init("xz", Tensor::scalar<uint8_t>(100))
        .init("s", Tensor::from_vector<float>({N}, s));
  } else {
    q.input("x", random_floats(p.a, 63, -0.7f, 1.3f))
        .node("DynamicQuantizeLinear", {"x"}, {"xq", "xs", "xz"})
        .init("ws", p.scale == ScaleKind::runtime_scalar ? Tensor::from_vector<float>({1}, {ws[0]})
                                                          : Tensor::from_vector<float>({N}, ws))
        .node("Mul", {"xs", "ws"}, {"s"});
  }
  q.node("MatMulInteger", {"xq", "w", "xz", "wz"}, {"c"}).node("Cast", {"c"}, {"cf"}, {{"to", attr_int(1)}});
  if (p.relu_first) {
    q.node("Relu", {"cf"}, {"r"}).node("Mul", {"r", "s"}, {"y"}).node("Add", {"y", "b"}, {"out"});
  } else {
    q.node("Mul", {"cf", "s"}, {"y"}).node("Add", {"y", "b"}, {"out"});
  }
  return q.output("out");
}

bool offset_route(const std::string& describe_text) { return describe_text.find("weight offset") != std::string::npos; }

// The cpu backend's outputs at one and two threads against the reference's. The accumulator
// reaches the float tail as two float32 terms (the int8 part's product and the offset's share)
// instead of one exact integer: a rounding of each, relative to the terms' size.
void expect_matches_reference(const GraphBuilder& q) {
  for (int threads : {1, 2}) {
    Runs r = run_both(q, threads);
    EXPECT_EQ(nodes_on(r.report, "reference"), 0);
    ASSERT_EQ(r.cpu.size(), 1u);
    ASSERT_EQ(r.ref.size(), 1u);
    const Status close = compare_values(r.ref[0], r.cpu[0], Tolerance{2e-5, 2e-5});
    EXPECT_TRUE(close.is_ok()) << threads << " thread(s): " << close.to_string();
    // Outputs that vary per row and column (a Relu that zeroed every product would leave the
    // bias alone: one value per column).
    const Tensor& y = r.cpu[0].tensor;
    std::set<float> distinct(y.data<float>(), y.data<float>() + y.numel());
    EXPECT_GT(static_cast<int64_t>(distinct.size()), y.numel() / 4) << "the outputs exercise the arithmetic";
  }
}

void expect_offset_route(const Product& p) {
  SCOPED_TRACE(trace(p));
  const GraphBuilder q = product(p);
  const std::string text = describe_cpu(q);
  // Without VNNI oneDNN's int8 kernels need 7-bit weights: these take another route.
  EXPECT_EQ(offset_route(text), tandem::cpu::onednn_has_vnni()) << text;
  expect_matches_reference(q);
}

TEST(CpuQMatMulOffset, AsymmetricUint8WeightsRunOnTheInt8PartPlusTheOffsetsShare) {
  REQUIRE_CPU();
  for (int zp : {0, 60, 200})
    for (ScaleKind scale : {ScaleKind::runtime_scalar, ScaleKind::runtime_columns, ScaleKind::known_columns}) {
      Product p;
      p.zero_point = zp;
      p.scale = scale;
      expect_offset_route(p);
    }
}

TEST(CpuQMatMulOffset, LeftOperandsOfAnyRankAndWideInnerSizes) {
  REQUIRE_CPU();
  for (const Shape& a : {Shape{40}, Shape{5, 40}, Shape{3, 33, 300}, Shape{1, 128, 384}}) {
    Product p;
    p.a = a;
    p.N = a.back() == 384 ? 96 : 24;
    p.zero_point = 190;
    expect_offset_route(p);
  }
}

TEST(CpuQMatMulOffset, ATailWithoutAScaleFirstTakesTheShareInAccumulatorUnits) {
  REQUIRE_CPU();
  for (ScaleKind scale : {ScaleKind::runtime_scalar, ScaleKind::runtime_columns}) {
    Product p;
    p.scale = scale;
    p.relu_first = true;
    expect_offset_route(p);
  }
}

// One zero point per column, close together or spread over 0..255: each column's weights minus
// its zero point span at most 256 values, so each takes an offset of its own.
TEST(CpuQMatMulOffset, PerColumnZeroPointsTakeAnOffsetEach) {
  REQUIRE_CPU();
  for (int spread : {-1, -2})
    for (ScaleKind scale : {ScaleKind::runtime_scalar, ScaleKind::runtime_columns, ScaleKind::known_columns}) {
      Product p;
      p.zero_point = spread;
      p.scale = scale;
      expect_offset_route(p);
    }
}

}  // namespace
}  // namespace tandem
