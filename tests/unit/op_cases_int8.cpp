// op_cases_int8.cpp: op-suite cases for the quantized ops in the forms fast backends run
// natively: int8 weights (or uint8 weights whose zero point brings them into int8), parameters
// given as initializers or as graph inputs read at run time, per-tensor and per-channel scales,
// groups, strides and pads, 1-D and batched products. The reference backend defines the answer;
// integer outputs must match it exactly.
#include <cmath>

#include "op_suite_util.h"
#include "tensor_build_util.h"

namespace tandem::testing {

std::vector<OpCase> int8_cases() {
  CaseRng rng(8088);
  std::vector<OpCase> cases;
  const DataType u8t = DataType::uint8, s8t = DataType::int8;
  // --- QuantizeLinear / DequantizeLinear / DynamicQuantizeLinear
  cases.push_back(with_constants(
      op_case("QuantizeLinear", {rng.tensor({2, 3, 17}, -3, 3), f32_scalar(0.02f), Tensor::scalar<uint8_t>(128)}, {},
              "constant scale"),
      0b110));
  cases.push_back(op_case("QuantizeLinear", {rng.tensor({3, 40}, -2, 2), f32_scalar(0.015f), Tensor::scalar<int8_t>(-5)},
                          {}, "runtime scale, int8"));
  cases.push_back(with_constants(
      op_case("QuantizeLinear", {rng.tensor({2, 4, 3, 5}, -3, 3), f32({4}, {0.01f, 0.05f, 0.1f, 0.02f}),
                                 s8({4}, {0, -4, 7, 100})},
              {{"axis", attr_int(1)}}, "per axis, int8"),
      0b110));
  cases.push_back(op_case("QuantizeLinear", {rng.tensor({3, 6}, -1, 1), f32({6}, {0.01f, 0.02f, 0.03f, 0.04f, 0.05f, 0.06f})},
                          {{"axis", attr_int(-1)}}, "per last axis, runtime scales, no zero point"));
  cases.push_back(with_constants(
      op_case("DequantizeLinear", {rng.ints({2, 70}, 0, 255, u8t), f32_scalar(0.1f), Tensor::scalar<uint8_t>(10)}, {},
              "constant parameters"),
      0b110));
  cases.push_back(op_case("DequantizeLinear",
                          {rng.ints({3, 4, 5}, -128, 127, s8t), f32({4}, {0.5f, 0.25f, 2.0f, 0.01f}), s8({4}, {1, -2, 3, 0})},
                          {{"axis", attr_int(1)}}, "per axis, runtime scales"));
  cases.push_back(op_case("DequantizeLinear", {i32({4}, {-9, 0, 7, 16777217}), f32_scalar(0.5f)}, {}, "int32"));
  cases.push_back(with_outputs(op_case("DynamicQuantizeLinear", {rng.tensor({5, 37}, -0.3f, 4)}, {}, "positive range"), 3));
  // --- QLinearConv: int8 weights, per-channel scales, bias
  cases.push_back(with_constants(
      op_case("QLinearConv",
              {rng.ints({1, 4, 7, 6}, 0, 255, u8t), f32_scalar(0.05f), u8({}, {100}), rng.ints({6, 4, 3, 3}, -127, 127, s8t),
               f32({6}, {0.01f, 0.02f, 0.015f, 0.005f, 0.03f, 0.01f}), s8({6}, {0, 0, 0, 0, 0, 0}), f32_scalar(0.8f),
               u8({}, {90}), i32({6}, {10, -200, 37, 0, 5000, -5000})},
              {{"pads", attr_ints({1, 1, 1, 1})}}, "per-channel scales, bias, constants"),
      0b111111000));
  cases.push_back(op_case("QLinearConv",
                          {rng.ints({2, 6, 5, 8}, -128, 127, s8t), f32_scalar(0.04f), s8({}, {-3}),
                           rng.ints({4, 3, 2, 3}, 0, 255, u8t), f32_scalar(0.02f), u8({}, {128}), f32_scalar(0.5f),
                           s8({}, {7})},
                          {{"group", attr_int(2)}, {"strides", attr_ints({2, 1})}, {"pads", attr_ints({0, 1, 1, 0})}},
                          "int8 data, uint8 weights around 128, groups, runtime scales"));
  cases.push_back(with_constants(
      op_case("QLinearConv",
              {rng.ints({1, 3, 9}, 0, 255, u8t), f32_scalar(0.1f), u8({}, {128}), rng.ints({5, 3, 3}, -60, 60, s8t),
               f32_scalar(0.01f), s8({}, {0}), f32_scalar(0.2f), u8({}, {128})},
              {{"dilations", attr_ints({2})}, {"auto_pad", attr_string("SAME_UPPER")}}, "1-D, dilated, SAME_UPPER"),
      0b11111110));
  // --- ConvInteger
  cases.push_back(with_constants(
      op_case("ConvInteger",
              {rng.ints({1, 3, 6, 6}, 0, 255, u8t), rng.ints({8, 3, 3, 3}, -127, 127, s8t), u8({}, {131})},
              {{"pads", attr_ints({1, 0, 1, 0})}}, "int8 weights, x zero point"),
      0b110));
  cases.push_back(op_case("ConvInteger", {rng.ints({1, 2, 5, 5}, 0, 255, u8t), rng.ints({2, 2, 2, 2}, 0, 255, u8t),
                                          u8({}, {0}), u8({}, {128})},
                          {}, "uint8 weights around 128"));
  // --- QLinearMatMul / MatMulInteger
  cases.push_back(with_constants(
      op_case("QLinearMatMul",
              {rng.ints({2, 5, 16}, 0, 255, u8t), f32_scalar(0.02f), u8({}, {128}), rng.ints({16, 6}, -127, 127, s8t),
               f32({6}, {0.01f, 0.03f, 0.02f, 0.02f, 0.05f, 0.01f}), s8({6}, {0, 0, 0, 0, 0, 0}), f32_scalar(0.4f),
               u8({}, {120})},
              {}, "per-column scales, constants"),
      0b11111110));
  cases.push_back(op_case("QLinearMatMul",
                          {rng.ints({2, 3, 4}, -128, 127, s8t), f32_scalar(0.05f), s8({}, {2}),
                           rng.ints({2, 4, 3}, -100, 100, s8t), f32_scalar(0.02f), s8({}, {0}), f32_scalar(0.1f),
                           s8({}, {-1})},
                          {}, "batched, int8, runtime scales"));
  // Right operands of more than 64 elements are not keyed: known only at run time (attention).
  cases.push_back(op_case("QLinearMatMul",
                          {rng.ints({1, 3, 7, 12}, 0, 255, u8t), f32_scalar(0.03f), u8({}, {121}),
                           rng.ints({1, 3, 12, 9}, 0, 255, u8t), f32_scalar(0.011f), u8({}, {133}), f32_scalar(0.37f),
                           u8({}, {128})},
                          {}, "runtime uint8 right operand, batched"));
  std::vector<int8_t> column_zp(300);
  for (size_t j = 0; j < column_zp.size(); ++j) column_zp[j] = static_cast<int8_t>(static_cast<int>(j % 7) - 3);
  cases.push_back(with_constants(
      op_case("QLinearMatMul",
              {rng.ints({5, 20}, -128, 127, s8t), f32_scalar(0.02f), s8({}, {3}), rng.ints({20, 300}, -100, 100, s8t),
               f32_scalar(0.013f), s8({300}, column_zp), f32_scalar(0.9f), s8({}, {-2})},
              {}, "runtime int8 right operand, constant zero points, more columns than a row block"),
      0b01100110));
  cases.push_back(op_case("MatMulInteger", {rng.ints({2, 4, 33}, 0, 255, u8t), rng.ints({33, 6}, -128, 127, s8t),
                                            u8({}, {17}), s8({}, {-3})},
                          {}, "runtime int8 right operand, runtime zero points"));
  cases.push_back(op_case("MatMulInteger", {rng.ints({3, 4}, 0, 255, u8t), rng.ints({4, 5}, 0, 255, u8t), u8({}, {12}),
                                            u8({}, {128})},
                          {}, "uint8 weights around 128"));
  // Attention-like products with both operands at run time: rows of 37 columns (two whole
  // vectors and a partial one) and of 300 (a 256-column block and a partial one).
  cases.push_back(op_case("MatMulInteger", {rng.ints({2, 5, 30}, 0, 255, u8t), rng.ints({2, 30, 37}, 0, 255, u8t),
                                            u8({}, {128}), u8({}, {120})},
                          {}, "batched runtime uint8 operands, 37 columns"));
  cases.push_back(op_case("MatMulInteger", {rng.ints({3, 19}, -128, 127, s8t), rng.ints({19, 300}, -128, 127, s8t),
                                            s8({}, {5}), s8({}, {-7})},
                          {}, "runtime int8 operands, 300 columns"));
  cases.push_back(with_constants(op_case("MatMulInteger", {rng.ints({7, 32}, -128, 127, s8t), rng.ints({32}, -127, 127, s8t)},
                                         {}, "int8, 1-D right operand"),
                                 0b10));
  // Scales that are not round decimals: requantized products then rarely sit on a float32
  // rounding of a half-integer, where oneDNN (float32) and the reference (double) may round
  // differently (docs/cpu-backend.md, Exactness).
  cases.push_back(op_case("QLinearConv",
                          {rng.ints({1, 2, 5, 5}, 0, 255, u8t), f32_scalar(0.0312f), u8({}, {128}),
                           rng.ints({3, 2, 3, 3}, -50, 50, s8t), f32({3}, {0.0217f, 0.0113f, 0.0391f}), s8({3}, {0, 0, 0}),
                           f32_scalar(0.2531f), u8({}, {128})},
                          {{"pads", attr_ints({1, 1, 1, 1})}}, "small input keyed by value, runtime scales"));
  // --- Cast to and from the 8-bit types (truncation toward zero, then wrapping; NaN to 0)
  cases.push_back(op_case("Cast", {f32({8}, {-3.7f, -0.5f, 0.9f, 17.5f, 254.99f, 300.0f, -1e9f, std::nanf("")})},
                          {{"to", attr_int(2)}}, "float32 to uint8"));
  cases.push_back(op_case("Cast", {i32({5}, {-1000, -128, 0, 127, 70000})}, {{"to", attr_int(3)}}, "int32 to int8"));
  cases.push_back(op_case("Cast", {rng.ints({3, 5}, 0, 255, u8t)}, {{"to", attr_int(1)}}, "uint8 to float32"));
  return cases;
}

}  // namespace tandem::testing
