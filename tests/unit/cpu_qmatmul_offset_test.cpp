// cpu_qmatmul_offset_test.cpp (CpuQMatMulOffset, also run under each TANDEM_CPU_ISA cap by ctest):
// MatMulInteger products whose uint8 weights sit around a zero point far from 128, as ONNX
// Runtime's dynamic quantization writes them with uint8 weights, followed by the Cast and the
// scale and bias arithmetic (src/backends/cpu/qconv_offset.cpp, add_offset_row_share): the
// product runs on the weights' int8 part and a sum post-op adds the offset's share, against the
// reference backend. Zero points 0, 60 and 200 (offsets of both signs and the largest), and one
// per column (an offset each); a runtime scalar scale (which
// oneDNN takes as its output scale: the share is scaled to match), a runtime per-column scale
// and a tail that opens with Relu (the share in accumulator units), constant per-column scales;
// left operands of rank 1 to 3, inner sizes below and above 258. QLinearMatMul (the share from a
// map, added before the result is rounded), and QDQ MatMuls of such weights with 8-bit and float
// outputs.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "backends/backend.h"
#include "core/compare.h"
#include "cpu_int8_test_util.h"
#include "cpu_offset_test_util.h"
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

void expect_offset_route(const Product& p) {
  SCOPED_TRACE(trace(p));
  const GraphBuilder q = product(p);
  const std::string text = describe_cpu(q);
  // Without VNNI oneDNN's int8 kernels need 7-bit weights: these take another route.
  EXPECT_EQ(offset_route(text), tandem::cpu::onednn_has_vnni()) << text;
  expect_floats_match_reference(q, 0.25);
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

// QLinearMatMul (QOperator files written with uint8 weights): the share is scaled by the
// requantization a_scale * b_scale[n] / y_scale and added before the result is rounded.
GraphBuilder qlinear_product(bool signed_source, bool per_column, uint8_t y_zero_point, uint32_t seed) {
  const int64_t M = 37, K = 300, N = 40;
  std::vector<float> bs;
  std::vector<uint8_t> bz;
  for (int64_t n = 0; n < N; ++n) {
    bs.push_back(per_column ? 0.0004f + 0.00005f * static_cast<float>(n % 5) : 0.0005f);
    bz.push_back(per_column ? static_cast<uint8_t>((n * 53) % 256) : 70);
  }
  GraphBuilder q;
  if (signed_source) {
    q.input("a", random_ints<int8_t>({M, K}, -128, 127, seed)).init("az", Tensor::scalar<int8_t>(-8));
  } else {
    q.input("a", random_ints<uint8_t>({M, K}, 0, 255, seed)).init("az", Tensor::scalar<uint8_t>(120));
  }
  q.init("as", Tensor::scalar<float>(0.02f))
      .init("b", random_ints<uint8_t>({K, N}, 0, 255, seed + 1))
      .init("bs", per_column ? Tensor::from_vector<float>({N}, bs) : Tensor::scalar<float>(bs[0]))
      .init("bz", per_column ? Tensor::from_vector<uint8_t>({N}, bz) : Tensor::scalar<uint8_t>(bz[0]))
      .init("ys", Tensor::scalar<float>(0.5f))
      .init("yz", Tensor::scalar<uint8_t>(y_zero_point))
      .node("QLinearMatMul", {"a", "as", "az", "b", "bs", "bz", "ys", "yz"}, {"y"})
      .output("y");
  return q;
}

TEST(CpuQMatMulOffset, AQLinearMatMulAddsTheShareBeforeItRounds) {
  REQUIRE_CPU();
  uint32_t seed = 150;
  for (bool signed_source : {false, true})
    for (bool per_column : {false, true})
      for (uint8_t yz : {uint8_t{0}, uint8_t{110}}) {
        SCOPED_TRACE(std::string(signed_source ? "int8" : "uint8") + " source, " +
                     (per_column ? "per-column" : "per-tensor") + " scales and zero points, y zero point " +
                     std::to_string(yz));
        const GraphBuilder q = qlinear_product(signed_source, per_column, yz, seed += 3);
        EXPECT_EQ(offset_route(describe_cpu(q)), tandem::cpu::onednn_has_vnni());
        // Neither saturated, for a good share of them (with y zero point 0 the negative half is 0).
        EXPECT_GT(expect_8bit_matches_reference(q, "QLinearMatMul output", 0, 255), 0.4)
            << "the outputs exercise the arithmetic";
      }
}

// QDQ files with asymmetric uint8 weights: DequantizeLinear(x) and DequantizeLinear(w, zero
// points per tensor or per column) into a MatMul, then QuantizeLinear, or a float output
// through Relu. The fusion recovers the uint8 grid from the folded float weights; the products
// run in 8 bits on the weight-offset route (with VNNI).
GraphBuilder qdq_product(bool per_column, bool float_output, uint32_t seed) {
  const int64_t K = 64, N = 48;
  std::vector<float> ws;
  std::vector<uint8_t> wz;
  for (int64_t n = 0; n < N; ++n) {
    ws.push_back(per_column ? 0.0002f + 0.00002f * static_cast<float>(n % 4) : 0.0003f);
    wz.push_back(per_column ? static_cast<uint8_t>(20 + (n * 41) % 200) : 60);
  }
  GraphBuilder q;
  q.input("x", random_floats({3, 5, K}, seed, -1.0f, 2.0f))
      .init("xs", Tensor::scalar<float>(0.012f))
      .init("xz", Tensor::scalar<uint8_t>(85))
      .init("wq", random_ints<uint8_t>({K, N}, 0, 255, seed + 1))
      .init("ws", per_column ? Tensor::from_vector<float>({N}, ws) : Tensor::scalar<float>(ws[0]))
      .init("wz", per_column ? Tensor::from_vector<uint8_t>({N}, wz) : Tensor::scalar<uint8_t>(wz[0]))
      .init("ys", Tensor::scalar<float>(0.02f))
      .init("yz", Tensor::scalar<uint8_t>(100))
      .node("QuantizeLinear", {"x", "xs", "xz"}, {"xq"})
      .node("DequantizeLinear", {"xq", "xs", "xz"}, {"xf"})
      .node("DequantizeLinear", {"wq", "ws", "wz"}, {"wf"}, {{"axis", attr_int(1)}})
      .node("MatMul", {"xf", "wf"}, {"c"});
  if (float_output) {
    q.node("Relu", {"c"}, {"y"}).output("y");
  } else {
    q.node("QuantizeLinear", {"c", "ys", "yz"}, {"y"}).output("y");
  }
  return q;
}

TEST(CpuQMatMulOffset, QdqMatMulsWithAsymmetricUint8WeightsRunIn8Bits) {
  REQUIRE_CPU();
  uint32_t seed = 190;
  for (bool per_column : {false, true})
    for (bool float_output : {false, true}) {
      SCOPED_TRACE(std::string(per_column ? "per-column" : "per-tensor") + " weight zero points, " +
                   (float_output ? "float output" : "8-bit output"));
      const GraphBuilder q = qdq_product(per_column, float_output, seed += 5);
      const std::string text = describe_cpu(q);
      EXPECT_NE(text.find("0 steps on reference kernels"), std::string::npos) << text;
      if (tandem::cpu::onednn_has_vnni()) {
        EXPECT_NE(text.find(float_output ? "MatMulInteger" : "QLinearMatMul"), std::string::npos) << text;
        EXPECT_TRUE(offset_route(text)) << text;
      }
      if (float_output) {
        expect_floats_match_reference(q, 0.25);
      } else {
        EXPECT_GT(expect_8bit_matches_reference(q, "QDQ output", 0, 255), 0.5) << "the outputs exercise the arithmetic";
      }
    }
}

}  // namespace
}  // namespace tandem
