// Unit tests for the reference quantization kernels.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "op_test_util.h"

namespace tandem {
namespace {

using testing::attr_int;
using testing::f32;
using testing::i32;
using testing::run_op1;
using testing::run_op;
using testing::s8;
using testing::u8;
using testing::values_of;

Status run_status(const std::string& op, const std::vector<Tensor>& in,
                  const std::map<std::string, Attribute>& attrs = {}, int64_t opset = 13) {
  std::vector<Value> outs;
  return run_op(op, in, attrs, &outs, 1, opset);
}

TEST(QuantizeTest, QuantizeLinearRoundsHalfToEvenAndSaturates) {
  Tensor x = f32({8}, {0, 2, 3, 1000, -254, -1000, 5, 7});
  Tensor y = run_op1("QuantizeLinear", {x, f32({}, {2}), u8({}, {128})}, {}, 13);
  // x/2 = 0, 1, 1.5->2, 500, -127, -500, 2.5->2, 3.5->4; + 128, saturated.
  EXPECT_EQ(values_of<uint8_t>(y), (std::vector<uint8_t>{128, 129, 130, 255, 1, 0, 130, 132}));
  Tensor z = run_op1("QuantizeLinear", {f32({3}, {-300, 0.5f, 300}), f32({}, {1}), s8({}, {0})}, {}, 13);
  EXPECT_EQ(z.dtype(), DataType::int8);
  EXPECT_EQ(values_of<int8_t>(z), (std::vector<int8_t>{-128, 0, 127}));
  // No zero point: uint8 with zero point 0.
  Tensor w = run_op1("QuantizeLinear", {f32({2}, {-3, 3}), f32({}, {1})}, {}, 10);
  EXPECT_EQ(w.dtype(), DataType::uint8);
  EXPECT_EQ(values_of<uint8_t>(w), (std::vector<uint8_t>{0, 3}));
}

TEST(QuantizeTest, QuantizeLinearPerAxis) {
  Tensor x = f32({1, 3, 2}, {-162, 10, -100, 232, -20, -50});
  Tensor y = run_op1("QuantizeLinear", {x, f32({3}, {2, 4, 5}), u8({3}, {84, 24, 196})}, {}, 13);
  EXPECT_EQ(values_of<uint8_t>(y), (std::vector<uint8_t>{3, 89, 0, 82, 192, 186}));
  Tensor y0 = run_op1("QuantizeLinear", {f32({2, 2}, {2, 4, 6, 8}), f32({2}, {2, 1}), u8({2}, {0, 1})},
                      {{"axis", attr_int(0)}}, 13);
  EXPECT_EQ(values_of<uint8_t>(y0), (std::vector<uint8_t>{1, 2, 7, 9}));
  EXPECT_FALSE(run_status("QuantizeLinear", {x, f32({2}, {1, 1}), u8({2}, {0, 0})}).is_ok());
  EXPECT_FALSE(run_status("QuantizeLinear", {x, f32({3}, {1, 1, 1}), u8({2}, {0, 0})}).is_ok());
  EXPECT_FALSE(run_status("QuantizeLinear", {x, f32({3}, {1, 1, 1})}, {{"axis", attr_int(5)}}).is_ok());
  EXPECT_FALSE(run_status("QuantizeLinear", {x}).is_ok());
}

TEST(QuantizeTest, DequantizeLinear) {
  Tensor y = run_op1("DequantizeLinear", {u8({4}, {0, 3, 128, 255}), f32({}, {2}), u8({}, {128})}, {}, 13);
  EXPECT_EQ(y.dtype(), DataType::float32);
  EXPECT_EQ(values_of<float>(y), (std::vector<float>{-256, -250, 0, 254}));
  Tensor pa = run_op1("DequantizeLinear", {u8({1, 3, 2}, {3, 89, 34, 200, 74, 59}), f32({3}, {2, 4, 5}),
                                           u8({3}, {84, 24, 196})}, {}, 13);
  EXPECT_EQ(values_of<float>(pa), (std::vector<float>{-162, 10, 40, 704, -610, -685}));
  Tensor i = run_op1("DequantizeLinear", {i32({2}, {-5, 100000}), f32({}, {0.5f})}, {}, 13);
  EXPECT_EQ(values_of<float>(i), (std::vector<float>{-2.5f, 50000}));
  EXPECT_FALSE(run_status("DequantizeLinear", {i32({2}, {1, 2}), f32({}, {1}), i32({}, {1})}).is_ok());
  EXPECT_FALSE(run_status("DequantizeLinear", {f32({2}, {1, 2}), f32({}, {1})}).is_ok());
  EXPECT_FALSE(run_status("DequantizeLinear", {u8({2}, {1, 2}), f32({}, {1}), s8({}, {1})}).is_ok());
}

// Opset 21 (and ONNX Runtime's com.microsoft forms) quantize to 16-bit integers as well.
TEST(QuantizeTest, SixteenBitTypesQuantizeAndDequantize) {
  const auto u16 = [](Shape s, std::vector<uint16_t> v) { return Tensor::from_vector<uint16_t>(std::move(s), v); };
  const auto s16 = [](Shape s, std::vector<int16_t> v) { return Tensor::from_vector<int16_t>(std::move(s), v); };
  Tensor x = f32({7}, {0, 2, 3, 1000, -254, -100000, 200000});
  // x / 2 = 0, 1, 1.5 -> 2, 500, -127, -50000, 100000; + 32767, saturated to [0, 65535].
  Tensor y = run_op1("QuantizeLinear", {x, f32({}, {2}), u16({}, {32767})}, {}, 21);
  EXPECT_EQ(y.dtype(), DataType::uint16);
  EXPECT_EQ(values_of<uint16_t>(y), (std::vector<uint16_t>{32767, 32768, 32769, 33267, 32640, 0, 65535}));
  // int16, zero point -3: saturates to [-32768, 32767].
  Tensor z = run_op1("QuantizeLinear", {x, f32({}, {2}), s16({}, {-3})}, {}, 21);
  EXPECT_EQ(z.dtype(), DataType::int16);
  EXPECT_EQ(values_of<int16_t>(z), (std::vector<int16_t>{-3, -2, -1, 497, -130, -32768, 32767}));
  // No zero point: output_dtype names the type (zero point 0).
  Tensor w = run_op1("QuantizeLinear", {f32({3}, {-70000, 1.5f, 70000}), f32({}, {1})},
                     {{"output_dtype", attr_int(static_cast<int64_t>(DataType::int16))}}, 21);
  EXPECT_EQ(w.dtype(), DataType::int16);
  EXPECT_EQ(values_of<int16_t>(w), (std::vector<int16_t>{-32768, 2, 32767}));
  // Per axis, and back.
  Tensor pa = run_op1("QuantizeLinear", {f32({2, 2}, {1, -1, 4, 0.25f}), f32({2}, {0.5f, 0.25f}), u16({2}, {1000, 60000})},
                      {{"axis", attr_int(1)}}, 21);
  EXPECT_EQ(values_of<uint16_t>(pa), (std::vector<uint16_t>{1002, 59996, 1008, 60001}));
  Tensor back = run_op1("DequantizeLinear", {pa, f32({2}, {0.5f, 0.25f}), u16({2}, {1000, 60000})},
                        {{"axis", attr_int(1)}}, 21);
  EXPECT_EQ(values_of<float>(back), (std::vector<float>{1, -1, 4, 0.25f}));
  Tensor d = run_op1("DequantizeLinear", {s16({3}, {-32768, 0, 32767}), f32({}, {0.5f}), s16({}, {-2})}, {}, 21);
  EXPECT_EQ(values_of<float>(d), (std::vector<float>{-16383, 1, 16384.5f}));
  EXPECT_FALSE(run_status("DequantizeLinear", {u16({2}, {1, 2}), f32({}, {1}), s16({}, {1})}, {}, 21).is_ok());
}

TEST(QuantizeTest, DynamicQuantizeLinear) {
  std::vector<Value> outs;
  Status s = run_op("DynamicQuantizeLinear", {f32({6}, {0, 2, -3, -2.5f, 1.34f, 0.5f})}, {}, &outs, 3, 11);
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  EXPECT_EQ(values_of<uint8_t>(outs[0].tensor), (std::vector<uint8_t>{153, 255, 0, 26, 221, 179}));
  EXPECT_FLOAT_EQ(values_of<float>(outs[1].tensor)[0], 0.019607844f);
  EXPECT_EQ(values_of<uint8_t>(outs[2].tensor), (std::vector<uint8_t>{153}));
  // All zeros: scale 0, every output 0, no NaNs.
  s = run_op("DynamicQuantizeLinear", {f32({2}, {0, 0})}, {}, &outs, 3, 11);
  ASSERT_TRUE(s.is_ok());
  EXPECT_EQ(values_of<uint8_t>(outs[0].tensor), (std::vector<uint8_t>{0, 0}));
  EXPECT_FALSE(run_op("DynamicQuantizeLinear", {i32({2}, {1, 2})}, {}, &outs, 3, 11).is_ok());
}

}  // namespace
}  // namespace tandem
