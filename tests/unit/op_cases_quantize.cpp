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
  // 16-bit QuantizeLinear / DequantizeLinear (opset 21): per tensor and per axis.
  for (DataType t : {DataType::uint16, DataType::int16}) {
    const bool u = t == DataType::uint16;
    const std::string name = u ? "u16" : "s16";
    const Shape s = rng.shape(3, 1, 6);
    const Tensor zp = u ? Tensor::scalar<uint16_t>(30000) : Tensor::scalar<int16_t>(-700);
    cases.push_back(with_opset(op_case("QuantizeLinear", {rng.tensor(s, -4, 4), scale(rng, 1e-4f, 3e-4f), zp}, {},
                                       "per tensor " + name),
                               21));
    const Tensor data = u ? rng.ints(s, 0, 65535, t) : rng.ints(s, -32768, 32767, t);
    const Tensor zps = u ? rng.ints({s[1]}, 20000, 40000, t) : rng.ints({s[1]}, -900, 900, t);
    cases.push_back(with_opset(op_case("DequantizeLinear", {data, scale(rng, 1e-4f, 3e-4f, {s[1]}), zps},
                                       {{"axis", attr_int(1)}}, "per axis " + name),
                               21));
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
  const size_t first = cases.size();
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
    // Channels last, one channel block large enough to be split across threads, 24 channels
    // (rows summed two at a time) and an odd pixel count.
    cases.push_back(ms_case("QLinearGlobalAveragePool",
                            {q8(rng, {1, 71, 69, 24}, t), scale(rng, 0.02f, 0.05f), zero_point(rng, t),
                             scale(rng, 0.01f, 0.04f), zero_point(rng, t)},
                            {{"channels_last", attr_int(1)}}, ty + " channels last, 24 channels, split"));
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
  // The cpu backend runs every other com.microsoft op on its own kernels: declining fails.
  for (size_t i = first; i < cases.size(); ++i)
    if (cases[i].op != "QuantizeLinear" && cases[i].op != "DequantizeLinear") cases[i] = on_every_backend(cases[i]);
}

// Cases for the cpu backend's own contrib kernels (qelementwise.cpp, qpool.cpp, qgemm.cpp): every
// 8-bit data input has more than 64 elements, so that no backend keys its instance by the
// data's value and folds the node, and each special path of those kernels is taken: broadcast
// kinds (same shapes, scalar, per channel first and last, general), tables built at build time
// (known parameters) or per run (scales as graph inputs), identity parts of QLinearConcat,
// channel blocks of channels-last pools, 1-D and 3-D windows, QGemm's transposes and C shapes.
void contrib_kernel_cases(CaseRng& rng, std::vector<OpCase>& cases) {
  const size_t first = cases.size();
  for (DataType t : {kU8, kS8}) {
    const std::string ty = type_name(t);
    for (const char* op : {"QLinearAdd", "QLinearMul"}) {
      const bool mul = std::string(op) == "QLinearMul";
      auto binary = [&](const Shape& a, const Shape& b, uint32_t constants, const std::string& note) {
        cases.push_back(with_constants(
            ms_case(op,
                    {q8(rng, a, t), scale(rng, 0.01f, 0.03f), zero_point(rng, t), q8(rng, b, t), scale(rng, 0.01f, 0.03f),
                     zero_point(rng, t), scale(rng, mul ? 0.002f : 0.02f, mul ? 0.01f : 0.05f), zero_point(rng, t)},
                    {}, note + " " + ty),
            constants));
      };
      const uint32_t known = 0xF6u, runtime_scales = 0xA4u;  // zero points only as initializers
      binary({2, 3, 17, 9}, {2, 3, 17, 9}, known, "same shapes, known parameters");
      binary({3, 77}, {3, 77}, runtime_scales, "same shapes, runtime scales");
      binary({5, 7, 11}, {}, known, "scalar B");
      binary({1}, {4, 9, 13}, runtime_scales, "scalar A");
      binary({2, 6, 5, 7}, {6, 1, 1}, known, "per channel, channels first");
      binary({2, 5, 7, 6}, {6}, runtime_scales, "per channel, channels last");
      binary({2, 1, 5, 7}, {3, 1, 7}, known, "general broadcast");
      binary({4, 1, 33}, {1, 5, 1}, runtime_scales, "outer product");
      // Runs of 1024 and more with one operand fixed: a table of the 256 results per run.
      binary({3, 20, 30}, {1}, known, "long run, scalar B");
      binary({}, {2, 900}, runtime_scales, "long run, scalar A");
      binary({1, 4, 33, 40}, {4, 1, 1}, known, "long runs, per channel");
      // 16384 elements and more of one shape, known parameters: the byte-pair table.
      binary({2, 3, 64, 50}, {2, 3, 64, 50}, known, "same shapes, byte-pair table");
    }
    for (bool known : {true, false}) {
      const std::string how = known ? " known parameters" : " runtime scales";
      cases.push_back(with_constants(ms_case("QLinearSigmoid",
                                             {q8(rng, {3, 7, 11}, t), scale(rng, 0.02f, 0.08f), zero_point(rng, t),
                                              scale(rng, 0.002f, 0.005f), zero_point(rng, t)},
                                             {}, ty + how),
                                     known ? 0x1Eu : 0x14u));
      cases.push_back(with_constants(ms_case("QLinearLeakyRelu",
                                             {q8(rng, {2, 131}, t), scale(rng, 0.02f, 0.06f), zero_point(rng, t),
                                              scale(rng, 0.02f, 0.05f), zero_point(rng, t)},
                                             {{"alpha", attr_float(0.3f)}}, ty + how),
                                     known ? 0x1Eu : 0x14u));
    }
    // QLinearConcat: input 1 shares Y's parameters (an identity copy) when they are known.
    for (int64_t axis : {0, 1, -1}) {
      const Shape s{3, 4, 9};
      const size_t ax = static_cast<size_t>(axis < 0 ? axis + 3 : axis);
      const Tensor ys = scale(rng, 0.02f, 0.05f), yz = zero_point(rng, t);
      std::vector<Tensor> in{ys, yz};
      for (int i = 0; i < 3; ++i) {
        Shape si = s;
        si[ax] = rng.dim(2, 6);
        in.push_back(q8(rng, si, t));
        in.push_back(i == 1 ? ys : scale(rng, 0.01f, 0.06f));
        in.push_back(i == 1 ? yz : zero_point(rng, t));
      }
      const bool known = axis != -1;
      cases.push_back(with_constants(ms_case("QLinearConcat", in, {{"axis", attr_int(axis)}},
                                             "axis " + std::to_string(axis) + (known ? " known" : " runtime scales") + " " + ty),
                                     known ? 0x6DBu : 0x492u));
    }
    // Pools: both layouts, a channels-last tensor wider than one channel block, runtime scales.
    for (int64_t last : {0, 1}) {
      const std::string layout = last ? " channels last" : "";
      cases.push_back(with_constants(ms_case("QLinearGlobalAveragePool",
                                             {q8(rng, last ? Shape{2, 5, 7, 300} : Shape{2, 300, 5, 7}, t),
                                              scale(rng, 0.02f, 0.05f), zero_point(rng, t), scale(rng, 0.01f, 0.04f),
                                              zero_point(rng, t)},
                                             {{"channels_last", attr_int(last)}}, ty + " 300 channels" + layout),
                                     0x1Eu));
      cases.push_back(with_constants(ms_case("QLinearGlobalAveragePool",
                                             {q8(rng, last ? Shape{1, 6, 4, 3, 5} : Shape{1, 5, 6, 4, 3},
                                                 t), scale(rng, 0.02f, 0.05f), zero_point(rng, t), scale(rng, 0.01f, 0.04f),
                                              zero_point(rng, t)},
                                             {{"channels_last", attr_int(last)}}, ty + " 3-D, runtime scales" + layout),
                                     0x14u));
      auto pool = [&](const Shape& s, Attrs a, uint32_t constants, const std::string& note) {
        a["channels_last"] = attr_int(last);
        cases.push_back(with_constants(ms_case("QLinearAveragePool",
                                               {q8(rng, s, t), scale(rng, 0.02f, 0.05f), zero_point(rng, t),
                                                scale(rng, 0.02f, 0.05f), zero_point(rng, t)},
                                               a, ty + " " + note + layout),
                                       constants));
      };
      const Shape s2 = last ? Shape{2, 11, 9, 5} : Shape{2, 5, 11, 9};
      pool(s2, {{"kernel_shape", attr_ints({3, 3})}, {"strides", attr_ints({1, 1})}, {"pads", attr_ints({1, 1, 1, 1})}},
           0x1Eu, "3x3 s1 pads");
      pool(s2,
           {{"kernel_shape", attr_ints({3, 3})},
            {"strides", attr_ints({2, 2})},
            {"pads", attr_ints({1, 1, 1, 1})},
            {"count_include_pad", attr_int(1)}},
           0x14u, "3x3 s2 count_include_pad, runtime scales");
      pool(s2,
           {{"kernel_shape", attr_ints({2, 4})},
            {"strides", attr_ints({2, 3})},
            {"pads", attr_ints({0, 1, 1, 2})},
            {"ceil_mode", attr_int(1)},
            {"count_include_pad", attr_int(1)}},
           0x1Eu, "2x4 ceil_mode count_include_pad");
      pool(last ? Shape{3, 40, 4} : Shape{3, 4, 40}, {{"kernel_shape", attr_ints({5})}, {"strides", attr_ints({3})}},
           0x1Eu, "1-D");
      pool(last ? Shape{1, 5, 6, 7, 3} : Shape{1, 3, 5, 6, 7},
           {{"kernel_shape", attr_ints({2, 3, 2})}, {"auto_pad", attr_string("SAME_LOWER")}}, 0x1Eu, "3-D SAME_LOWER");
      // Channels last with rows of more than 4096 values: per output position, blocks of 256
      // channels (with known parameters, and with runtime scales).
      if (last) {
        pool({1, 4, 20, 300}, {{"kernel_shape", attr_ints({2, 3})}, {"strides", attr_ints({1, 2})}}, 0x1Eu,
             "wide rows, 300 channels");
        pool({1, 3, 16, 260}, {{"kernel_shape", attr_ints({2, 2})}, {"pads", attr_ints({1, 0, 0, 1})}}, 0x14u,
             "wide rows, runtime scales");
      }
    }
  }
  // QGemm: larger products, each transpose alone, C per row, per element and scalar, runtime
  // a_scale, 8-bit outputs of the other type.
  for (auto [ta, tb] : kTypePairs) {
    const int64_t m = 23, k = 37, n = 19;
    const std::string ty = type_name(ta) + "/" + type_name(tb);
    const Tensor bz = tb == kS8 ? zeros8(tb, {n}) : zero_point(rng, tb, {n});
    const std::vector<std::pair<Shape, std::string>> cs{{{m, 1}, "C per row"}, {{m, n}, "C per element"}, {{}, "scalar C"}};
    for (int form = 0; form < 3; ++form) {
      const bool trans_a = form == 1, trans_b = form == 2;
      std::vector<Tensor> in{q8(rng, trans_a ? Shape{k, m} : Shape{m, k}, ta), scale(rng, 0.01f, 0.03f), zero_point(rng, ta),
                             q8(rng, trans_b ? Shape{n, k} : Shape{k, n}, tb), scale(rng, 0.002f, 0.01f, {n}), bz,
                             rng.ints(cs[form].first, -3000, 3000, DataType::int32), scale(rng, 0.05f, 0.2f),
                             zero_point(rng, form == 2 ? (ta == kU8 ? kS8 : kU8) : ta)};
      const Attrs a{{"transA", attr_int(trans_a)}, {"transB", attr_int(trans_b)}, {"alpha", attr_float(form == 0 ? 1.0f : 0.75f)}};
      const std::string note = ty + (trans_a ? " transA" : trans_b ? " transB" : "") + ", " + cs[form].second;
      cases.push_back(with_constants(ms_case("QGemm", in, a, note + ", quantized out"), 0x1FCu));  // runtime a_scale
      in.resize(7);
      cases.push_back(with_constants(ms_case("QGemm", in, a, note + ", float out"), 0x7Eu));
    }
  }
  for (DataType tb : {kU8, kS8}) {
    const std::string ty = type_name(tb);
    cases.push_back(with_constants(ms_case("DynamicQuantizeMatMul",
                                           {rng.tensor({3, 17, 29}, -3, 2), q8(rng, {29, 21}, tb),
                                            scale(rng, 0.002f, 0.01f, {21}), tb == kS8 ? zeros8(tb, {21}) : zero_point(rng, tb, {21}),
                                            rng.tensor({21})},
                                           {}, ty + " batched, per column, bias"),
                                   0x1Eu));
    cases.push_back(with_constants(ms_case("MatMulIntegerToFloat",
                                           {q8(rng, {2, 13, 31}, kU8), q8(rng, {31, 18}, tb), scale(rng, 0.01f, 0.03f),
                                            scale(rng, 0.002f, 0.01f), zero_point(rng, kU8), zeros8(tb, {}), rng.tensor({18})},
                                           {}, "u8/" + ty + " runtime a_scale, bias"),
                                   0x7Au));
  }
  // Float outputs too are formed as the reference forms them: no tolerance.
  for (size_t i = first; i < cases.size(); ++i) cases[i] = with_tol(on_every_backend(cases[i]), 0.0, 0.0);
}

}  // namespace

std::vector<OpCase> quantize_cases() {
  CaseRng rng(9119);
  std::vector<OpCase> cases;
  standard_cases(rng, cases);
  contrib_cases(rng, cases);
  contrib_kernel_cases(rng, cases);
  return cases;
}

}  // namespace tandem::testing
