// cpu_resize_bytes_test.cpp (CpuResizeBytes, also run under each TANDEM_CPU_ISA cap by ctest):
// linear Resize of 8-bit tensors on the cpu backend (resize_bytes.cpp).
// - A uint8 or int8 Resize in mode linear (a QOperator model's) runs on the cpu backend and
//   gives the reference backend's bytes exactly, from plain and from channels-last sources, by
//   scales and by sizes, up and down, in every coordinate mode the backend takes.
// - DequantizeLinear -> Resize (linear) -> QuantizeLinear (a QDQ model's) becomes one step on
//   the bytes that gives exactly the bytes of the same three steps unfused on the cpu backend,
//   and agrees with the reference backend within one unit; a Shape that reads the
//   DequantizeLinear (an upsampling sized to the map it joins) reads the bytes instead.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "cpu_int8_test_util.h"
#include "op_test_util.h"

namespace tandem {
namespace {

using namespace int8_test;
using testing::attr_int;
using testing::attr_ints;
using testing::attr_string;

struct ResizeCase {
  std::string name;
  Shape input;
  std::vector<float> scales;   // empty: by sizes
  std::vector<int64_t> sizes;  // used when scales is empty
  std::string coordinates;
};

std::vector<ResizeCase> resize_cases() {
  return {
      {"up by 2, half_pixel", {2, 16, 33, 41}, {1, 1, 2, 2}, {}, "half_pixel"},
      {"down, align_corners", {1, 24, 40, 52}, {1, 1, 0.6f, 0.75f}, {}, "align_corners"},
      {"to sizes, asymmetric", {1, 8, 9, 11}, {}, {1, 8, 17, 5}, "asymmetric"},
      {"up by 1.5, pytorch_half_pixel", {1, 40, 20, 20}, {1, 1, 1.5f, 1.5f}, {}, "pytorch_half_pixel"},
      {"one column to many, half_pixel", {1, 32, 6, 1}, {}, {1, 32, 13, 70}, "half_pixel"},
  };
}

// Adds the Resize of `from` into `to` for case `c` (its roi, scales or sizes as initializers).
void add_resize(GraphBuilder& q, const ResizeCase& c, const std::string& from, const std::string& to) {
  q.init("roi", Tensor::from_vector<float>({0}, {}));
  std::map<std::string, Attribute> attrs{{"mode", attr_string("linear")},
                                         {"coordinate_transformation_mode", attr_string(c.coordinates)}};
  if (!c.scales.empty()) {
    q.init("scales", Tensor::from_vector<float>({4}, c.scales)).node("Resize", {from, "roi", "scales"}, {to}, attrs);
  } else {
    q.init("sizes", Tensor::from_vector<int64_t>({4}, c.sizes)).node("Resize", {from, "roi", "", "sizes"}, {to}, attrs);
  }
}

// 8-bit input `name` of `type`: as given (plain), or passed through a QDQ 1x1 convolution with
// identity weights and the same scale on both sides, whose output is exactly its input in the
// channels-last layout the backend's integer convolutions write.
std::string byte_source(GraphBuilder& q, const std::string& name, DataType type, const Shape& shape, bool channels_last,
                        uint32_t seed) {
  const bool is_signed = type == DataType::int8;
  q.input(name, is_signed ? random_ints<int8_t>(shape, -128, 127, seed) : random_ints<uint8_t>(shape, 0, 255, seed));
  if (!channels_last) return name;
  q.init("id_s", Tensor::scalar<float>(0.02f))
      .init("id_z", is_signed ? Tensor::scalar<int8_t>(0) : Tensor::scalar<uint8_t>(128))
      .init("id_w", identity_conv_weights(shape[1]))
      .node("DequantizeLinear", {name, "id_s", "id_z"}, {"id_f"})
      .node("Conv", {"id_f", "id_w"}, {"id_c"})
      .node("QuantizeLinear", {"id_c", "id_s", "id_z"}, {"id_q"});
  return "id_q";
}

TEST(CpuResizeBytes, LinearResizeOfBytesGivesTheReferenceBytes) {
  REQUIRE_CPU();
  uint32_t seed = 300;
  for (const ResizeCase& c : resize_cases())
    for (DataType type : {DataType::uint8, DataType::int8})
      for (bool channels_last : {false, true}) {
        SCOPED_TRACE(c.name + (type == DataType::int8 ? ", int8" : ", uint8") +
                     (channels_last ? ", channels-last source" : ", plain source"));
        GraphBuilder q;
        const std::string src = byte_source(q, "x", type, c.input, channels_last, seed++);
        add_resize(q, c, src, "y");
        q.output("y");
        if (channels_last) q.output(src);  // the identity's output, to check it is the input
        for (int threads : {1, 2}) {
          Runs r = run_both(q, threads);
          ASSERT_FALSE(r.cpu.empty());
          EXPECT_EQ(nodes_on(r.report, "reference"), 0) << "the Resize must run on the cpu backend";
          for (size_t i = 0; i < r.cpu.size(); ++i)
            expect_within_units(r.ref[i], r.cpu[i], 0, "output " + std::to_string(i));
        }
      }
}

// DequantizeLinear -> Resize (linear) -> QuantizeLinear of case `c`; `unfused` also makes the
// Resize's float output a graph output, which keeps the three steps apart.
// `same`: the output quantized as the input is (ONNX Runtime's tool writes Resize so).
GraphBuilder qdq_resize(const ResizeCase& c, DataType in_type, DataType out_type, bool same, bool channels_last,
                        bool unfused, uint32_t seed) {
  GraphBuilder q;
  const std::string src = byte_source(q, "x", in_type, c.input, channels_last, seed);
  const bool s8 = in_type == DataType::int8;
  q.init("xs", Tensor::scalar<float>(0.037f))
      .init("xz", s8 ? Tensor::scalar<int8_t>(-9) : Tensor::scalar<uint8_t>(117))
      .init("ys", Tensor::scalar<float>(same ? 0.037f : 0.029f))
      .init("yz", same                         ? (s8 ? Tensor::scalar<int8_t>(-9) : Tensor::scalar<uint8_t>(117))
                  : out_type == DataType::int8 ? Tensor::scalar<int8_t>(5)
                                               : Tensor::scalar<uint8_t>(121))
      .node("DequantizeLinear", {src, "xs", "xz"}, {"xf"});
  add_resize(q, c, "xf", "yf");
  q.node("QuantizeLinear", {"yf", "ys", "yz"}, {"y"}).output("y");
  if (unfused) q.output("yf");
  return q;
}

TEST(CpuResizeBytes, QdqLinearResizeRunsOnTheBytesWithTheFloatPathsArithmetic) {
  REQUIRE_CPU();
  struct Types {
    DataType in, out;
    bool same;
  };
  uint32_t seed = 400;
  for (const ResizeCase& c : resize_cases())
    for (Types t : {Types{DataType::uint8, DataType::uint8, false}, Types{DataType::int8, DataType::int8, false},
                    Types{DataType::uint8, DataType::int8, false}, Types{DataType::uint8, DataType::uint8, true},
                    Types{DataType::int8, DataType::int8, true}})
      for (bool channels_last : {false, true}) {
        SCOPED_TRACE(c.name + (t.in == DataType::int8 ? ", int8" : ", uint8") + " to " +
                     (t.out == DataType::int8 ? "int8" : "uint8") + (t.same ? " (same quantization)" : "") +
                     (channels_last ? ", channels-last" : ", plain"));
        const GraphBuilder fused = qdq_resize(c, t.in, t.out, t.same, channels_last, false, seed);
        const GraphBuilder apart = qdq_resize(c, t.in, t.out, t.same, channels_last, true, seed++);
        const std::string text = describe_cpu(fused);
        EXPECT_NE(text.find("fused: DequantizeLinear + Resize + QuantizeLinear"), std::string::npos) << text;
        EXPECT_EQ(describe_cpu(apart).find("fused: DequantizeLinear + Resize + QuantizeLinear"), std::string::npos);
        for (int threads : {1, 2}) {
          Runs f = run_both(fused, threads), a = run_both(apart, threads);
          ASSERT_EQ(f.cpu.size(), 1u);
          ASSERT_EQ(a.cpu.size(), 2u);
          // With the same quantization on both sides the step computes in quantization units,
          // where an upsampling's blends often fall on exact half-integers (a 2x one: in
          // sixteenths): rounded half to even there, where the float path's roundings decide.
          const int64_t differ =
              expect_within_units(a.cpu[0], f.cpu[0], t.same ? 1 : 0, "fused against the three steps apart");
          EXPECT_LE(differ, f.cpu[0].tensor.numel() / (t.same ? 20 : 100));
          expect_within_units(f.ref[0], f.cpu[0], 1, "fused against the reference");
          // Not a degenerate case: the output spreads over many values.
          std::vector<bool> seen(256, false);
          int distinct = 0;
          const Tensor& y = f.cpu[0].tensor;
          for (int64_t i = 0; i < y.numel(); ++i) {
            const int v = y.dtype() == DataType::int8 ? y.data<int8_t>()[i] + 128 : y.data<uint8_t>()[i];
            distinct += !seen[v] && (seen[v] = true);
          }
          EXPECT_GT(distinct, 100);
        }
      }
}

// ONNX Runtime's QDQ format has every reader of a quantized map read its DequantizeLinear, the
// Shape that sizes an upsampling to the map it joins included. The Shape reads the bytes instead
// (their shape is the same): no DequantizeLinear stays behind to make float32 maps for it, the
// upsampling and the concatenation run on the bytes, and the answer is the reference's.
TEST(CpuResizeBytes, AnUpsamplingSizedByTheShapeOfADequantizedMapRunsOnTheBytes) {
  REQUIRE_CPU();
  GraphBuilder q;
  q.input("skip", random_ints<uint8_t>({1, 8, 20, 24}, 0, 255, 600))
      .input("coarse", random_ints<uint8_t>({1, 8, 10, 12}, 0, 255, 601))
      .init("s", Tensor::scalar<float>(0.04f))
      .init("z", Tensor::scalar<uint8_t>(120))
      .init("roi", Tensor::from_vector<float>({0}, {}))
      .node("DequantizeLinear", {"skip", "s", "z"}, {"skip_f"})
      .node("DequantizeLinear", {"coarse", "s", "z"}, {"coarse_f"})
      .node("Shape", {"skip_f"}, {"size"})
      .node("Resize", {"coarse_f", "roi", "", "size"}, {"up_f"}, {{"mode", attr_string("linear")}})
      .node("QuantizeLinear", {"up_f", "s", "z"}, {"up"})
      .node("DequantizeLinear", {"up", "s", "z"}, {"up_df"})
      .node("Concat", {"up_df", "skip_f"}, {"cat_f"}, {{"axis", attr_int(1)}})
      .node("QuantizeLinear", {"cat_f", "s", "z"}, {"cat"})
      .output("cat");
  // Spatial dims left symbolic, so that the Shape is not folded before the backend sees it.
  for (ValueInfo& in : q.graph()->inputs) {
    in.type.dims[2] = Dim{-1, in.name + "_h"};
    in.type.dims[3] = Dim{-1, in.name + "_w"};
  }
  const std::string text = describe_cpu(q);
  EXPECT_NE(text.find("[Shape"), std::string::npos) << text;
  EXPECT_NE(text.find("fused: DequantizeLinear + Resize + QuantizeLinear"), std::string::npos) << text;
  EXPECT_NE(text.find("fused: DequantizeLinear + DequantizeLinear + Concat + QuantizeLinear"), std::string::npos)
      << text;
  EXPECT_EQ(text.find("[DequantizeLinear"), std::string::npos) << "a DequantizeLinear stayed for the Shape:\n" << text;
  for (int threads : {1, 2}) {
    Runs r = run_both(q, threads);
    ASSERT_EQ(r.cpu.size(), 1u);
    EXPECT_EQ(nodes_on(r.report, "reference"), 0);
    expect_within_units(r.ref[0], r.cpu[0], 1, "concatenation of the upsampled map");
  }
}

}  // namespace
}  // namespace tandem
