// op_cases_quantize.cpp: op-suite cases for 8-bit quantization: the standard ops
// (QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, QLinearConv, QLinearMatMul,
// ConvInteger, MatMulInteger) and ONNX Runtime's com.microsoft quantized ops (QuantizeLinear,
// DequantizeLinear, QLinearAdd/Mul,
// QLinearSigmoid/LeakyRelu, the quantized pools, QLinearConcat, QGemm, DynamicQuantizeMatMul,
// MatMulIntegerToFloat). Random odd shapes, uint8 and int8, per-tensor and per-axis (per output
// channel, per column) parameters, weights as initializers the way quantized models hold them.
// 8-bit outputs must match the reference exactly on every backend that runs them.
#include <string>
#include <utility>
#include <vector>

#include "op_suite_util.h"

namespace tandem::testing {
namespace {

const DataType kU8 = DataType::uint8;
const DataType kS8 = DataType::int8;
const std::vector<std::pair<DataType, DataType>> kTypePairs = {{kU8, kS8}, {kU8, kU8}, {kS8, kS8}};

std::string type_name(DataType t) { return t == kU8 ? "u8" : "s8"; }

// Random 8-bit data over the whole range of the type.
Tensor q8(CaseRng& rng, const Shape& s, DataType t) {
  return t == kU8 ? rng.ints(s, 0, 255, kU8) : rng.ints(s, -128, 127, kS8);
}
// A zero point (or one per channel) near the middle of the type's range.
Tensor zero_point(CaseRng& rng, DataType t, const Shape& s = {}) {
  return t == kU8 ? rng.ints(s, 100, 160, kU8) : rng.ints(s, -20, 20, kS8);
}
// A symmetric (all-zero) int8 zero point, as weight quantization writes it.
Tensor zeros8(DataType t, const Shape& s) { return t == kU8 ? Tensor(kU8, s) : Tensor(kS8, s); }
Tensor scale(CaseRng& rng, float lo, float hi, const Shape& s = {}) { return rng.tensor(s, lo, hi); }

OpCase ms_case(std::string op, std::vector<Tensor> inputs, Attrs attrs, std::string note) {
  return with_domain(with_opset(op_case(std::move(op), std::move(inputs), std::move(attrs), std::move(note)), 1),
                     "com.microsoft");
}

void standard_cases(CaseRng& rng, std::vector<OpCase>& cases) {
  // QuantizeLinear / DequantizeLinear: per tensor and per axis, both types.
  for (DataType t : {kU8, kS8}) {
    const Shape s = rng.shape(4, 1, 7);
    cases.push_back(op_case("QuantizeLinear", {rng.tensor(s, -4, 4), scale(rng, 0.01f, 0.05f), zero_point(rng, t)}, {},
                            "per tensor " + type_name(t)));
    for (int64_t axis : {1, 0, -1}) {
      const int64_t c = s[static_cast<size_t>(axis < 0 ? axis + 4 : axis)];
      cases.push_back(op_case("QuantizeLinear",
                              {rng.tensor(s, -4, 4), scale(rng, 0.01f, 0.05f, {c}), zero_point(rng, t, {c})},
                              {{"axis", attr_int(axis)}}, "per axis " + std::to_string(axis) + " " + type_name(t)));
      cases.push_back(with_constants(op_case("DequantizeLinear", {q8(rng, s, t), scale(rng, 0.01f, 0.05f, {c}), zero_point(rng, t, {c})},
                              {{"axis", attr_int(axis)}}, "per axis " + std::to_string(axis) + " " + type_name(t)),
                                     axis == 0 ? 0x7u : 0x6u));  // axis 0: weights, constant
    }
    cases.push_back(op_case("DequantizeLinear", {q8(rng, rng.shape(3), t), scale(rng, 0.01f, 0.05f), zero_point(rng, t)},
                            {}, "per tensor " + type_name(t)));
  }
  // DynamicQuantizeLinear: mixed, all-positive and all-negative ranges.
  for (auto [lo, hi] : std::vector<std::pair<float, float>>{{-3, 5}, {0.5f, 2}, {-7, -1}})
    cases.push_back(with_outputs(op_case("DynamicQuantizeLinear", {rng.tensor(rng.shape(3), lo, hi)}, {},
                                         "range " + std::to_string(lo) + ".." + std::to_string(hi)),
                                 3));

  // QLinearConv: uint8 activations with int8 per-channel weights (the common form), and the
  // other type pairs per tensor; strides, pads, dilations, groups, bias.
  struct QConv {
    DataType x, w;
    bool per_channel, bias;
    int64_t n, c, h, wd, m, k, stride, pad, dilation, group;
  };
  const std::vector<QConv> convs = {
      {kU8, kS8, true, true, 1, 3, 11, 13, 8, 3, 2, 1, 1, 1},
      {kU8, kS8, true, false, 2, 8, 7, 9, 8, 3, 1, 1, 1, 8},  // depthwise
      {kU8, kU8, false, true, 1, 4, 9, 8, 6, 1, 1, 0, 1, 1},  // pointwise
      {kS8, kS8, true, true, 1, 6, 10, 7, 4, 3, 1, 2, 2, 2},  // grouped, dilated
      {kS8, kS8, false, false, 1, 5, 6, 6, 7, 2, 2, 0, 1, 1},
  };
  for (const QConv& q : convs) {
    const Shape ws{q.m, q.c / q.group, q.k, q.k};
    const Shape ch = q.per_channel ? Shape{q.m} : Shape{};
    std::vector<Tensor> in{q8(rng, {q.n, q.c, q.h, q.wd}, q.x), scale(rng, 0.01f, 0.03f), zero_point(rng, q.x),
                           q8(rng, ws, q.w), scale(rng, 0.002f, 0.01f, ch),
                           q.w == kS8 ? zeros8(q.w, ch) : zero_point(rng, q.w, ch), scale(rng, 0.05f, 0.2f),
                           zero_point(rng, q.x)};
    if (q.bias) in.push_back(rng.ints({q.m}, -2000, 2000, DataType::int32));
    Attrs a{{"kernel_shape", attr_ints({q.k, q.k})},
            {"strides", attr_ints({q.stride, q.stride})},
            {"pads", attr_ints({q.pad, q.pad, q.pad, q.pad})},
            {"dilations", attr_ints({q.dilation, q.dilation})},
            {"group", attr_int(q.group)}};
    const std::string note = type_name(q.x) + "/" + type_name(q.w) + (q.per_channel ? " per channel" : " per tensor") +
                             " group " + std::to_string(q.group) + (q.bias ? " bias" : "");
    cases.push_back(with_constants(op_case("QLinearConv", in, a, note), 0x1FEu));  // all but x
  }
  cases.push_back(with_constants(
      op_case("QLinearConv",
              {q8(rng, {1, 4, 8, 9}, kU8), scale(rng, 0.01f, 0.03f), zero_point(rng, kU8), q8(rng, {5, 4, 3, 3}, kS8),
               scale(rng, 0.002f, 0.01f, {5}), zeros8(kS8, {5}), scale(rng, 0.05f, 0.2f), zero_point(rng, kU8)},
              {{"auto_pad", attr_string("SAME_UPPER")}, {"strides", attr_ints({2, 2})}}, "SAME_UPPER u8/s8"),
      0xFEu));

  // ConvInteger: per-tensor and per-output-channel weight zero points.
  cases.push_back(with_constants(op_case("ConvInteger",
                                         {q8(rng, {1, 3, 9, 7}, kU8), q8(rng, {4, 3, 3, 3}, kU8), zero_point(rng, kU8),
                                          zero_point(rng, kU8, {4})},
                                         {{"pads", attr_ints({1, 1, 1, 1})}, {"strides", attr_ints({2, 1})}},
                                         "u8 per-channel w_zero_point"),
                                 0xAu));
  cases.push_back(op_case("ConvInteger", {q8(rng, {2, 4, 6, 6}, kS8), q8(rng, {6, 2, 2, 2}, kS8), zero_point(rng, kS8)},
                          {{"group", attr_int(2)}, {"dilations", attr_ints({2, 2})}}, "s8 grouped"));

  // QLinearMatMul: per tensor, per column of B, batched, mixed types.
  for (auto [ta, tb] : kTypePairs) {
    const int64_t m = rng.dim(1, 9), k = rng.dim(2, 33), n = rng.dim(1, 17);
    cases.push_back(with_constants(
        op_case("QLinearMatMul",
                {q8(rng, {m, k}, ta), scale(rng, 0.01f, 0.03f), zero_point(rng, ta), q8(rng, {k, n}, tb),
                 scale(rng, 0.002f, 0.01f), zero_point(rng, tb), scale(rng, 0.1f, 0.4f), zero_point(rng, ta)},
                {}, "per tensor " + type_name(ta) + "/" + type_name(tb)),
        0xFEu));
    cases.push_back(with_constants(
        op_case("QLinearMatMul",
                {q8(rng, {2, m, k}, ta), scale(rng, 0.01f, 0.03f), zero_point(rng, ta), q8(rng, {k, n}, tb),
                 scale(rng, 0.002f, 0.01f, {n}), zero_point(rng, tb, {n}), scale(rng, 0.1f, 0.4f), zero_point(rng, ta)},
                {}, "batched, per column " + type_name(ta) + "/" + type_name(tb)),
        0xFEu));
  }
  // MatMulInteger: per-column b_zero_point, batched B.
  cases.push_back(op_case("MatMulInteger", {q8(rng, {3, 5, 7}, kU8), q8(rng, {7, 6}, kS8), zero_point(rng, kU8),
                                            zero_point(rng, kS8, {6})},
                          {}, "u8/s8 per-column b_zero_point"));
  cases.push_back(op_case("MatMulInteger", {q8(rng, {4, 9}, kS8), q8(rng, {2, 9, 3}, kS8)}, {}, "s8 batched B, no zero points"));
}

void contrib_cases(CaseRng& rng, std::vector<OpCase>& cases) {
  // The com.microsoft QuantizeLinear / DequantizeLinear of QDQ models.
  for (DataType t : {kU8, kS8}) {
    const Shape s = rng.shape(3, 1, 7);
    cases.push_back(with_constants(ms_case("QuantizeLinear", {rng.tensor(s, -4, 4), scale(rng, 0.01f, 0.05f), zero_point(rng, t)},
                                           {}, "per tensor " + type_name(t)),
                                   0x6u));
    cases.push_back(with_constants(ms_case("DequantizeLinear",
                                           {q8(rng, s, t), scale(rng, 0.01f, 0.05f, {s[1]}), zero_point(rng, t, {s[1]})},
                                           {{"axis", attr_int(1)}}, "per axis " + type_name(t)),
                                   0x6u));
  }
  for (DataType t : {kU8, kS8}) {
    const std::string ty = type_name(t);
    // QLinearAdd / QLinearMul: same shapes and broadcasting.
    for (const char* op : {"QLinearAdd", "QLinearMul"}) {
      const Shape s = rng.shape(4, 1, 7);
      const bool mul = std::string(op) == "QLinearMul";
      const float out_lo = mul ? 0.05f : 0.02f, out_hi = mul ? 0.1f : 0.05f;
      cases.push_back(ms_case(op,
                              {q8(rng, s, t), scale(rng, 0.01f, 0.03f), zero_point(rng, t), q8(rng, s, t),
                               scale(rng, 0.01f, 0.03f), zero_point(rng, t), scale(rng, out_lo, out_hi), zero_point(rng, t)},
                              {}, "same shapes " + ty));
      cases.back() = with_constants(cases.back(), 0xF6u);  // parameters as initializers
      cases.push_back(ms_case(op,
                              {q8(rng, {s[0], s[1], 1, s[3]}, t), scale(rng, 0.01f, 0.03f), zero_point(rng, t),
                               q8(rng, {s[1], s[2], 1}, t), scale(rng, 0.01f, 0.03f), Tensor(),
                               scale(rng, out_lo, out_hi), zero_point(rng, t)},
                              {}, "broadcast, no B zero point " + ty));
    }
    // QLinearSigmoid / QLinearLeakyRelu.
    cases.push_back(ms_case("QLinearSigmoid",
                            {q8(rng, rng.shape(3), t), scale(rng, 0.02f, 0.06f), zero_point(rng, t),
                             Tensor::scalar<float>(1.0f / 256), t == kU8 ? Tensor::scalar<uint8_t>(0) : Tensor::scalar<int8_t>(-128)},
                            {}, ty));
    cases.push_back(ms_case("QLinearLeakyRelu",
                            {q8(rng, rng.shape(4, 1, 6), t), scale(rng, 0.02f, 0.06f), zero_point(rng, t),
                             scale(rng, 0.02f, 0.05f), zero_point(rng, t)},
                            {{"alpha", attr_float(0.1f)}}, ty));
    cases.back() = with_constants(cases.back(), 0x1Eu);
    // QLinearGlobalAveragePool: channels first and last.
    for (int64_t last : {0, 1})
      cases.push_back(ms_case("QLinearGlobalAveragePool",
                              {q8(rng, rng.shape(4, 1, 9), t), scale(rng, 0.02f, 0.05f), zero_point(rng, t),
                               scale(rng, 0.01f, 0.04f), zero_point(rng, t)},
                              {{"channels_last", attr_int(last)}}, ty + (last ? " channels last" : "")));
    // QLinearAveragePool: pads, strides, ceil_mode, count_include_pad, SAME_UPPER, both layouts.
    for (int64_t last : {0, 1}) {
      const int64_t n = rng.dim(1, 2), c = rng.dim(1, 5), h = rng.dim(5, 12), w = rng.dim(5, 12);
      const Shape s = last ? Shape{n, h, w, c} : Shape{n, c, h, w};
      const std::vector<Tensor> params{scale(rng, 0.02f, 0.05f), zero_point(rng, t), scale(rng, 0.02f, 0.05f),
                                       zero_point(rng, t)};
      auto pool = [&](Attrs a, const std::string& note) {
        a["channels_last"] = attr_int(last);
        cases.push_back(with_constants(ms_case("QLinearAveragePool", {q8(rng, s, t), params[0], params[1], params[2],
                                                                      params[3]},
                                               a, ty + " " + note + (last ? " channels last" : "")),
                                       0x1Eu));
      };
      pool({{"kernel_shape", attr_ints({3, 3})}, {"strides", attr_ints({2, 2})}, {"pads", attr_ints({1, 0, 1, 1})}},
           "3x3 s2 pads");
      pool({{"kernel_shape", attr_ints({3, 2})},
            {"strides", attr_ints({2, 2})},
            {"pads", attr_ints({1, 1, 1, 1})},
            {"count_include_pad", attr_int(1)},
            {"ceil_mode", attr_int(1)}},
           "count_include_pad ceil_mode");
      pool({{"kernel_shape", attr_ints({2, 3})}, {"auto_pad", attr_string("SAME_UPPER")}}, "SAME_UPPER");
    }
    // QLinearConcat: three inputs with their own parameters.
    {
      const Shape s = rng.shape(3, 1, 6);
      std::vector<Tensor> in{scale(rng, 0.02f, 0.05f), zero_point(rng, t)};
      for (int i = 0; i < 3; ++i) {
        Shape si = s;
        si[1] = rng.dim(1, 5);
        in.push_back(q8(rng, si, t));
        in.push_back(scale(rng, 0.01f, 0.06f));
        in.push_back(zero_point(rng, t));
      }
      cases.push_back(with_constants(ms_case("QLinearConcat", in, {{"axis", attr_int(1)}}, "axis 1 " + ty), 0x6DBu));
      std::vector<Tensor> last{scale(rng, 0.02f, 0.05f), zero_point(rng, t)};
      for (int i = 0; i < 2; ++i) {
        Shape si = s;
        si[2] = rng.dim(1, 5);
        last.push_back(q8(rng, si, t));
        last.push_back(scale(rng, 0.01f, 0.06f));
        last.push_back(zero_point(rng, t));
      }
      cases.push_back(ms_case("QLinearConcat", last, {{"axis", attr_int(-1)}}, "axis -1 " + ty));
    }
  }
  // QGemm: float and quantized outputs, per-column B parameters, transposes, int32 bias C.
  for (auto [ta, tb] : kTypePairs) {
    const int64_t m = rng.dim(1, 9), k = rng.dim(2, 40), n = rng.dim(1, 17);
    const std::string ty = type_name(ta) + "/" + type_name(tb);
    for (bool trans : {false, true}) {
      std::vector<Tensor> in{q8(rng, trans ? Shape{k, m} : Shape{m, k}, ta),
                             scale(rng, 0.01f, 0.03f),
                             zero_point(rng, ta),
                             q8(rng, trans ? Shape{n, k} : Shape{k, n}, tb),
                             scale(rng, 0.002f, 0.01f, {n}),
                             tb == kS8 ? zeros8(tb, {n}) : zero_point(rng, tb, {n}),
                             rng.ints({n}, -3000, 3000, DataType::int32)};
      const Attrs a{{"transA", attr_int(trans)}, {"transB", attr_int(trans)}, {"alpha", attr_float(trans ? 0.5f : 1.0f)}};
      const std::string note = ty + (trans ? " transposed, alpha" : "") + " per column";
      cases.push_back(with_constants(ms_case("QGemm", in, a, note + ", float out"), 0x7Eu));
      in.push_back(scale(rng, 0.05f, 0.2f));
      in.push_back(zero_point(rng, ta));
      cases.push_back(with_constants(ms_case("QGemm", in, a, note + ", quantized out"), 0x1FEu));
    }
    cases.push_back(with_constants(
        ms_case("QGemm",
                {q8(rng, {m, k}, ta), scale(rng, 0.01f, 0.03f), zero_point(rng, ta), q8(rng, {k, n}, tb),
                 scale(rng, 0.002f, 0.01f), zero_point(rng, tb), Tensor(), scale(rng, 0.05f, 0.2f), zero_point(rng, ta)},
                {}, ty + " per tensor, no C, quantized out"),
        0x1BEu));
  }
  // DynamicQuantizeMatMul and MatMulIntegerToFloat: per-column and per-tensor B, bias, batches.
  for (DataType tb : {kU8, kS8}) {
    const int64_t m = rng.dim(1, 9), k = rng.dim(2, 40), n = rng.dim(1, 17);
    const std::string ty = type_name(tb);
    cases.push_back(with_constants(ms_case("DynamicQuantizeMatMul",
                                           {rng.tensor({m, k}, -3, 2), q8(rng, {k, n}, tb), scale(rng, 0.002f, 0.01f, {n}),
                                            zero_point(rng, tb, {n}), rng.tensor({n})},
                                           {}, ty + " per column, bias"),
                                   0x1Eu));
    cases.push_back(with_constants(ms_case("DynamicQuantizeMatMul",
                                           {rng.tensor({2, m, k}, 0, 4), q8(rng, {k, n}, tb), scale(rng, 0.002f, 0.01f)},
                                           {}, ty + " batched, per tensor"),
                                   0x6u));
    for (DataType ta : {kU8, kS8})
      cases.push_back(with_constants(
          ms_case("MatMulIntegerToFloat",
                  {q8(rng, {2, m, k}, ta), q8(rng, {k, n}, tb), scale(rng, 0.01f, 0.03f), scale(rng, 0.002f, 0.01f, {n}),
                   zero_point(rng, ta), zero_point(rng, tb, {n}), rng.tensor({n})},
                  {}, type_name(ta) + "/" + ty + " per column, bias"),
          0x6Au));
    cases.push_back(ms_case("MatMulIntegerToFloat",
                            {q8(rng, {m, k}, kU8), q8(rng, {k, n}, tb), scale(rng, 0.01f, 0.03f), scale(rng, 0.002f, 0.01f)},
                            {}, "u8/" + ty + " per tensor, no zero points"));
  }
}

}  // namespace

std::vector<OpCase> quantize_cases() {
  CaseRng rng(9119);
  std::vector<OpCase> cases;
  standard_cases(rng, cases);
  contrib_cases(rng, cases);
  return cases;
}

}  // namespace tandem::testing
