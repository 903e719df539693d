// op_cases_nn.cpp: op-suite cases for convolutions, matrix products, pooling, normalization,
// resizing and recurrent layers: odd sizes, strides, asymmetric pads, dilations, groups,
// auto_pad forms, batch broadcasting, constant and run-time weights.
#include "op_suite_util.h"

namespace tandem::testing {
namespace {

struct ConvShape {
  int64_t n, c, h, w, o, kh, kw, sh, sw, ph0, pw0, ph1, pw1, dh, dw, group;
  const char* auto_pad = "NOTSET";
};

OpCase conv_case(CaseRng& rng, const ConvShape& s, bool bias, bool constant_weights) {
  std::vector<Tensor> in{rng.tensor({s.n, s.c, s.h, s.w}), rng.tensor({s.o, s.c / s.group, s.kh, s.kw}, -0.5f, 0.5f)};
  if (bias) in.push_back(rng.tensor({s.o}));
  Attrs a{{"kernel_shape", attr_ints({s.kh, s.kw})},
          {"strides", attr_ints({s.sh, s.sw})},
          {"dilations", attr_ints({s.dh, s.dw})},
          {"group", attr_int(s.group)}};
  if (std::string(s.auto_pad) == "NOTSET")
    a["pads"] = attr_ints({s.ph0, s.pw0, s.ph1, s.pw1});
  else
    a["auto_pad"] = attr_string(s.auto_pad);
  OpCase c = op_case("Conv", in, a,
                     "c=" + std::to_string(s.c) + " o=" + std::to_string(s.o) + " k=" + std::to_string(s.kh) + "x" +
                         std::to_string(s.kw) + " " + s.auto_pad + (bias ? " bias" : "") +
                         (constant_weights ? "" : " runtime weights"));
  return on_every_backend(with_constants(c, constant_weights ? 6u : 0u));
}

}  // namespace

std::vector<OpCase> nn_cases() {
  CaseRng rng(3003);
  std::vector<OpCase> cases;
  // --- Conv
  const std::vector<ConvShape> convs = {
      {1, 3, 17, 23, 8, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1},     // first layer, odd sizes
      {1, 16, 15, 15, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 16},  // depthwise
      {2, 24, 9, 11, 24, 5, 5, 2, 1, 2, 2, 2, 2, 1, 1, 24},   // depthwise 5x5, mixed stride, batch 2
      {1, 12, 10, 10, 20, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1},   // 1x1, channels not a multiple of 16
      {1, 8, 13, 9, 12, 3, 2, 1, 2, 0, 1, 2, 0, 2, 1, 4},     // grouped, asymmetric pads, dilation
      {1, 5, 7, 7, 3, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1},       // few channels, stride 3
      {1, 32, 6, 6, 48, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 2},     // dilation 2, groups 2
      {1, 4, 8, 8, 4, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1, "SAME_UPPER"},
      {1, 4, 9, 8, 6, 4, 3, 2, 2, 0, 0, 0, 0, 1, 1, 2, "SAME_LOWER"},
      {1, 6, 9, 9, 6, 3, 3, 2, 2, 0, 0, 0, 0, 1, 1, 1, "VALID"},
      {1, 32, 10, 10, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 8},   // 4 channels per group: the cpu backend's channels-last route
  };
  for (const ConvShape& s : convs)
    for (bool bias : {true, false}) cases.push_back(conv_case(rng, s, bias, true));
  cases.push_back(conv_case(rng, convs[4], true, false));
  cases.push_back(conv_case(rng, convs[0], false, false));
  {  // random shapes: any kernel, stride, pad and dilation that leaves an output
    for (int i = 0; i < 4; ++i) {
      ConvShape s{};
      s.n = rng.dim(1, 2);
      s.h = rng.dim(5, 14);
      s.w = rng.dim(5, 14);
      s.kh = rng.dim(1, 3);
      s.kw = rng.dim(1, 3);
      s.sh = rng.dim(1, 2);
      s.sw = rng.dim(1, 3);
      s.ph0 = rng.dim(0, 1);
      s.pw0 = rng.dim(0, 1);
      s.ph1 = rng.dim(0, 1);
      s.pw1 = rng.dim(0, 1);
      s.dh = rng.dim(1, 2);
      s.dw = 1;
      s.group = rng.dim(1, 3);
      s.c = s.group * rng.dim(1, 5);
      s.o = s.group * rng.dim(1, 5);
      cases.push_back(conv_case(rng, s, i % 2 == 0, true));
    }
  }
  cases.push_back(on_every_backend(
      with_opset(op_case("Conv", {rng.tensor({2, 6, 19}), rng.tensor({10, 3, 4}), rng.tensor({10})},
                         {{"strides", attr_ints({2})}, {"pads", attr_ints({1, 2})}, {"group", attr_int(2)}}, "1-D"),
                 11)));
  cases.push_back(
      on_every_backend(with_constants(op_case("Conv", {rng.tensor({1, 4, 5, 6, 7}), rng.tensor({8, 4, 3, 3, 3})},
                                              {{"pads", attr_ints({1, 1, 1, 1, 1, 1})}}, "3-D"),
                                      2)));
  cases.push_back(with_tol(with_constants(op_case("Conv",
                                                  {rng.tensor({1, 8, 9, 9}, -1, 1, DataType::float16),
                                                   rng.tensor({8, 8, 3, 3}, -0.3f, 0.3f, DataType::float16)},
                                                  {{"pads", attr_ints({1, 1, 1, 1})}}, "float16"),
                                          2),
                           2e-2, 2e-2));
  cases.push_back(op_case(
      "Conv", {rng.tensor({1, 2, 6, 5}, -1, 1, DataType::float64), rng.tensor({3, 2, 3, 3}, -1, 1, DataType::float64)},
      {}, "float64"));
  // --- ConvTranspose
  struct DeconvShape {
    int64_t c, o, h, w, k, s, pad, opad, group, dil;
    bool bias;
  };
  for (const DeconvShape& d : std::vector<DeconvShape>{
           {24, 24, 9, 7, 2, 2, 0, 0, 1, 1, true},   // non-overlapping patches
           {24, 1, 10, 10, 2, 2, 0, 0, 1, 1, true},  // one output channel
           {7, 5, 6, 5, 3, 3, 0, 0, 1, 1, false},    // patches, odd channels
           {8, 6, 5, 6, 3, 2, 1, 1, 1, 1, true},     // overlapping, output_padding
           {8, 8, 4, 4, 4, 2, 1, 0, 2, 1, true},     // groups
           {4, 6, 5, 5, 3, 1, 1, 0, 1, 2, false},    // dilation
       }) {
    std::vector<Tensor> in{rng.tensor({1, d.c, d.h, d.w}), rng.tensor({d.c, d.o / d.group, d.k, d.k}, -0.5f, 0.5f)};
    if (d.bias) in.push_back(rng.tensor({d.o}));
    cases.push_back(on_every_backend(
        with_constants(op_case("ConvTranspose", in,
                               {{"kernel_shape", attr_ints({d.k, d.k})},
                                {"strides", attr_ints({d.s, d.s})},
                                {"pads", attr_ints({d.pad, d.pad, d.pad, d.pad})},
                                {"output_padding", attr_ints({d.opad, d.opad})},
                                {"group", attr_int(d.group)},
                                {"dilations", attr_ints({d.dil, d.dil})}},
                               "c=" + std::to_string(d.c) + " o=" + std::to_string(d.o) + " k=" + std::to_string(d.k)),
                       6)));
  }
  cases.push_back(on_every_backend(
      with_constants(op_case("ConvTranspose", {rng.tensor({1, 3, 5, 5}), rng.tensor({3, 4, 3, 3})},
                             {{"strides", attr_ints({2, 2})}, {"output_shape", attr_ints({10, 11})}}, "output_shape"),
                     2)));
  cases.push_back(op_case("ConvTranspose", {rng.tensor({1, 2, 4, 3}), rng.tensor({2, 3, 3, 3})},
                          {{"strides", attr_ints({2, 2})}, {"auto_pad", attr_string("SAME_UPPER")}},
                          "SAME_UPPER, runtime weights"));
  cases.push_back(
      op_case("ConvTranspose", {rng.tensor({2, 3, 7}), rng.tensor({3, 2, 4})}, {{"strides", attr_ints({3})}}, "1-D"));
  // 1-D and 3-D layers with constant weights (the cpu backend's channels-last route): a
  // vocoder's upsampling ConvTranspose, a dilated grouped 1-D convolution, a strided 3-D one
  // and a 3-D ConvTranspose.
  cases.push_back(on_every_backend(with_constants(
      op_case("ConvTranspose", {rng.tensor({1, 24, 13}), rng.tensor({24, 16, 8}, -0.3f, 0.3f), rng.tensor({16})},
              {{"strides", attr_ints({4})}, {"pads", attr_ints({2, 2})}, {"output_padding", attr_ints({1})}},
              "1-D, constant weights"),
      6)));
  cases.push_back(on_every_backend(with_constants(
      op_case("Conv", {rng.tensor({2, 32, 29}), rng.tensor({32, 8, 5}, -0.3f, 0.3f), rng.tensor({32})},
              {{"group", attr_int(4)}, {"dilations", attr_ints({3})}, {"pads", attr_ints({6, 5})}},
              "1-D, dilated, grouped, constant weights"),
      6)));
  cases.push_back(on_every_backend(with_constants(
      op_case("Conv", {rng.tensor({1, 16, 6, 9, 7}), rng.tensor({24, 16, 3, 3, 3}, -0.3f, 0.3f)},
              {{"strides", attr_ints({1, 2, 2})}, {"pads", attr_ints({1, 1, 0, 1, 1, 1})}}, "3-D, strided"),
      2)));
  cases.push_back(on_every_backend(with_constants(
      op_case("ConvTranspose", {rng.tensor({1, 16, 3, 4, 5}), rng.tensor({16, 8, 2, 2, 2}, -0.3f, 0.3f)},
              {{"strides", attr_ints({2, 2, 2})}}, "3-D"),
      2)));
  // --- Quantized convolution and products (reference only)
  cases.push_back(op_case("ConvInteger",
                          {rng.ints({1, 2, 5, 5}, 0, 255, DataType::uint8),
                           rng.ints({3, 2, 3, 3}, 0, 255, DataType::uint8), u8({}, {128}), u8({}, {120})},
                          {{"pads", attr_ints({1, 0, 1, 0})}}));
  cases.push_back(op_case("QLinearConv", {rng.ints({1, 2, 5, 4}, 0, 255, DataType::uint8), f32_scalar(0.05f),
                                          u8({}, {100}), rng.ints({3, 2, 2, 2}, 0, 255, DataType::uint8),
                                          f32({3}, {0.01f, 0.02f, 0.015f}), u8({3}, {120, 128, 130}), f32_scalar(0.3f),
                                          u8({}, {90}), Tensor::from_vector<int32_t>({3}, {10, -200, 37})}));
  cases.push_back(op_case("MatMulInteger", {rng.ints({2, 3, 4}, 0, 255, DataType::uint8),
                                            rng.ints({4, 5}, 0, 255, DataType::uint8), u8({}, {12}), u8({}, {200})}));
  cases.push_back(op_case("QLinearMatMul", {rng.ints({3, 4}, 0, 255, DataType::uint8), f32_scalar(0.02f), u8({}, {128}),
                                            rng.ints({4, 6}, 0, 255, DataType::uint8), f32_scalar(0.03f), u8({}, {100}),
                                            f32_scalar(0.5f), u8({}, {120})}));
  // --- MatMul and Gemm
  const std::vector<std::pair<Shape, Shape>> products = {
      {{3, 4}, {4, 5}},
      {{2, 3, 4}, {2, 4, 5}},
      {{2, 1, 3, 4}, {3, 4, 6}},
      {{4}, {4, 3}},
      {{2, 5, 4}, {4}},
      {{1, 2, 6, 8}, {1, 2, 8, 6}},
      {{3, 1, 5, 2}, {1, 4, 2, 3}},
      {{5, 7}, {7, 11}},
      {{1, 4, 9, 7}, {7, 11}},
      {{7}, {7}},
  };
  for (const auto& [sa, sb] : products) {
    cases.push_back(on_every_backend(
        op_case("MatMul", {rng.tensor(sa), rng.tensor(sb)}, {}, shape_to_string(sa) + " x " + shape_to_string(sb))));
    if (sb.size() == 2)
      cases.push_back(on_every_backend(with_constants(
          op_case("MatMul", {rng.tensor(sa), rng.tensor(sb)}, {}, "constant " + shape_to_string(sb)), 2)));
  }
  // Constant weights whose rows the cpu backend lays out longer than they are (N a multiple of
  // 256; matmul.cpp), with a bias and an activation as post-ops.
  cases.push_back(on_every_backend(with_constants(
      op_case("Gemm", {rng.tensor({5, 24}), rng.tensor({24, 512}), rng.tensor({512})}, {}, "constant 24x512 weights"),
      6)));
  cases.push_back(on_every_backend(with_constants(
      op_case("MatMul", {rng.tensor({2, 3, 16}), rng.tensor({16, 256})}, {}, "constant 16x256 weights"), 2)));
  {
    const int64_t m = rng.dim(1, 17), k = rng.dim(1, 33), n = rng.dim(1, 17);
    cases.push_back(op_case("MatMul", {rng.tensor({2, m, k}), rng.tensor({k, n})}, {}, "random sizes"));
  }
  cases.push_back(op_case(
      "MatMul", {rng.ints({2, 3}, -5, 5, DataType::int32), rng.ints({3, 4}, -5, 5, DataType::int32)}, {}, "int32"));
  cases.push_back(with_tol(
      op_case("MatMul", {rng.tensor({4, 16}, -1, 1, DataType::float16), rng.tensor({16, 8}, -1, 1, DataType::float16)},
              {}, "float16"),
      2e-2, 2e-2));
  for (int ta : {0, 1})
    for (int tb : {0, 1})
      for (bool const_b : {true, false})
        for (const Shape& cs : {Shape{6}, Shape{1, 6}, Shape{4, 6}, Shape{1}, Shape{}}) {
          std::vector<Tensor> in{rng.tensor(ta ? Shape{5, 4} : Shape{4, 5}),
                                 rng.tensor(tb ? Shape{6, 5} : Shape{5, 6})};
          if (!cs.empty()) in.push_back(rng.tensor(cs));
          cases.push_back(on_every_backend(with_constants(
              op_case("Gemm", in,
                      {{"transA", attr_int(ta)},
                       {"transB", attr_int(tb)},
                       {"alpha", attr_float(0.7f)},
                       {"beta", attr_float(1.3f)}},
                      "transA " + std::to_string(ta) + " transB " + std::to_string(tb) + " C " +
                          (cs.empty() ? std::string("none") : shape_to_string(cs)) + (const_b ? " constant B" : "")),
              const_b ? 2u : 0u)));
        }
  // Einsum: two-operand contractions run everywhere, in place through strided views or through
  // gathered copies (subscripts that do not merge: "ikj" against "kj", outputs in another
  // order), with broadcast batch subscripts, ellipses and implied outputs; diagonals, single
  // operands, three operands and sums within one operand may be declined.
  struct Contraction {
    std::string equation;
    Shape a, b;
  };
  const std::vector<Contraction> contractions = {
      {"bij,bjk->bik", {2, 3, 4}, {2, 4, 5}},
      {"bhqd,bhkd->bhqk", {2, 3, 5, 8}, {2, 3, 6, 8}},
      {"bhqk,bhkd->bhqd", {2, 3, 5, 6}, {2, 3, 6, 8}},
      {"bqhd,bkhd->bhqk", {2, 5, 3, 8}, {2, 6, 3, 8}},
      {"bhqk,bkhd->bqhd", {2, 3, 5, 6}, {2, 6, 3, 8}},
      {"bsh,hd->bsd", {2, 7, 6}, {6, 9}},
      {"bsh,dh->bds", {2, 7, 6}, {9, 6}},
      {"ij,j->i", {3, 5}, {5}},
      {"i,i", {7}, {7}},
      {"i,j->ij", {4}, {3}},
      {"ij,jk", {3, 4}, {4, 5}},
      {"ikj,kj->ji", {3, 4, 5}, {4, 5}},
      {"abcd,cdbe->ae", {2, 3, 4, 5}, {4, 5, 3, 6}},
      {"...ij,...jk->...ik", {2, 3, 4, 5}, {3, 5, 6}},
      {"bij,xjk->bxik", {2, 3, 4}, {3, 4, 2}},
      {"bij,bjk->bik", {1, 3, 4}, {4, 4, 2}},
  };
  for (const Contraction& c : contractions)
    cases.push_back(on_every_backend(
        op_case("Einsum", {rng.tensor(c.a), rng.tensor(c.b)}, {{"equation", attr_string(c.equation)}}, c.equation)));
  cases.push_back(op_case("Einsum", {rng.tensor({4, 4})}, {{"equation", attr_string("ii->i")}}, "diagonal"));
  cases.push_back(op_case("Einsum", {rng.tensor({3, 4})}, {{"equation", attr_string("ij->ji")}}, "one operand"));
  cases.push_back(op_case("Einsum", {rng.tensor({3, 4}), rng.tensor({4, 4})}, {{"equation", attr_string("ij,jj->i")}},
                          "diagonal of the second operand"));
  cases.push_back(op_case("Einsum", {rng.tensor({3, 4}), rng.tensor({4, 5})}, {{"equation", attr_string("ij,kl->ik")}},
                          "sums within one operand"));
  cases.push_back(op_case("Einsum", {rng.tensor({2, 3}), rng.tensor({3, 4}), rng.tensor({4, 2})},
                          {{"equation", attr_string("ij,jk,kl->il")}}, "three operands"));
  cases.push_back(op_case("Det", {rng.tensor({2, 3, 3})}));
  // --- Pooling
  struct Pool {
    const char* op;
    int64_t c, h, w, k, s, pad, ceil, include_pad, dil;
  };
  for (const Pool& p : std::vector<Pool>{{"MaxPool", 3, 11, 13, 3, 2, 1, 0, 0, 1},
                                         {"MaxPool", 20, 9, 9, 2, 2, 0, 1, 0, 1},
                                         {"MaxPool", 4, 10, 10, 3, 1, 0, 0, 0, 2},
                                         {"AveragePool", 5, 12, 7, 3, 3, 1, 0, 0, 1},
                                         {"AveragePool", 6, 12, 7, 3, 2, 1, 0, 1, 1},
                                         {"AveragePool", 17, 9, 8, 2, 2, 0, 1, 0, 1},
                                         {"AveragePool", 3, 48, 20, 3, 3, 0, 0, 0, 1}}) {
    Attrs a{{"kernel_shape", attr_ints({p.k, p.k})},
            {"strides", attr_ints({p.s, p.s})},
            {"pads", attr_ints({p.pad, p.pad, p.pad, p.pad})},
            {"ceil_mode", attr_int(p.ceil)}};
    if (std::string(p.op) == "AveragePool")
      a["count_include_pad"] = attr_int(p.include_pad);
    else
      a["dilations"] = attr_ints({p.dil, p.dil});
    cases.push_back(on_every_backend(
        with_opset(op_case(p.op, {rng.tensor({2, p.c, p.h, p.w})}, a, "c=" + std::to_string(p.c)), 12)));
  }
  cases.push_back(op_case("MaxPool", {rng.tensor({1, 3, 9, 8})},
                          {{"kernel_shape", attr_ints({2, 3})}, {"auto_pad", attr_string("SAME_UPPER")}},
                          "SAME_UPPER"));
  cases.push_back(op_case("AveragePool", {rng.tensor({2, 3, 11})},
                          {{"kernel_shape", attr_ints({3})}, {"strides", attr_ints({2})}}, "1-D"));
  cases.push_back(op_case("MaxPool", {rng.tensor({1, 2, 5, 6, 7})}, {{"kernel_shape", attr_ints({2, 2, 2})}}, "3-D"));
  cases.push_back(
      with_outputs(op_case("MaxPool", {rng.tensor({1, 2, 6, 7})},
                           {{"kernel_shape", attr_ints({2, 2})}, {"strides", attr_ints({2, 2})}}, "with indices"),
                   2));
  for (const char* op : {"GlobalAveragePool", "GlobalMaxPool"}) {
    cases.push_back(on_every_backend(op_case(op, {rng.tensor({2, 3, 7, 9})})));
    cases.push_back(op_case(op, {rng.tensor({1, 5, 11})}, {}, "1-D"));
  }
  cases.push_back(with_opset(
      op_case("LpPool", {rng.tensor({1, 2, 6, 5})}, {{"kernel_shape", attr_ints({2, 2})}, {"p", attr_int(2)}}), 18));
  cases.push_back(op_case("GlobalLpPool", {rng.tensor({2, 3, 4, 5})}, {{"p", attr_int(3)}}));
  cases.push_back(op_case("MaxUnpool", {rng.tensor({1, 1, 2, 2}), i64({1, 1, 2, 2}, {5, 7, 13, 15})},
                          {{"kernel_shape", attr_ints({2, 2})}, {"strides", attr_ints({2, 2})}}));
  // --- Normalization
  for (const Shape& s : {Shape{2, 5}, Shape{2, 5, 7}, Shape{1, 5, 4, 6}})
    cases.push_back(on_every_backend(with_opset(
        with_constants(
            op_case("BatchNormalization",
                    {rng.tensor(s), rng.tensor({5}), rng.tensor({5}), rng.tensor({5}), rng.tensor({5}, 0.2f, 2)},
                    {{"epsilon", attr_float(1e-3f)}}, shape_to_string(s)),
            30),
        15)));
  cases.push_back(with_opset(
      op_case("BatchNormalization",
              {rng.tensor({2, 3, 4}), rng.tensor({3}), rng.tensor({3}), rng.tensor({3}), rng.tensor({3}, 0.2f, 2)}, {},
              "runtime statistics"),
      15));
  struct Ln {
    Shape x;
    int64_t axis;
    bool bias, constant;
    Shape scale_shape, bias_shape;  // empty: the normalized shape
  };
  for (const Ln& l : std::vector<Ln>{{{5, 37}, -1, true, true, {}, {}},
                                     {{3, 7, 13}, -1, false, false, {}, {}},
                                     {{3, 7, 13}, 1, true, true, {}, {}},
                                     {{2, 3, 5, 17}, 1, true, false, {}, {}},
                                     {{2, 3, 5, 17}, -1, false, true, {}, {}},
                                     {{2, 3, 5, 17}, 3, true, false, {}, {}},
                                     {{2, 3, 5, 17}, -3, true, true, {}, {}},
                                     {{4, 67}, 0, true, true, {}, {}},
                                     {{1, 9, 1}, -1, true, true, {}, {}},     // rows of one element
                                     {{3, 7, 13}, 1, true, true, {13}, {1}},  // scale over the last dim only
                                     {{3, 7, 13}, 1, true, false, {1, 13}, {7, 13}},
                                     {{3, 7, 13}, 1, true, true, {7, 1}, {}}}) {
    const int64_t axis = l.axis < 0 ? l.axis + static_cast<int64_t>(l.x.size()) : l.axis;
    const Shape norm(l.x.begin() + axis, l.x.end());
    std::vector<Tensor> in{rng.tensor(l.x, -2, 3),
                           rng.tensor(l.scale_shape.empty() ? norm : l.scale_shape, 0.5f, 1.5f)};
    if (l.bias) in.push_back(rng.tensor(l.bias_shape.empty() ? norm : l.bias_shape));
    OpCase c =
        with_constants(op_case("LayerNormalization", in, {{"axis", attr_int(l.axis)}, {"epsilon", attr_float(1e-3f)}},
                               shape_to_string(l.x) + " axis " + std::to_string(l.axis)),
                       l.constant ? 6u : 0u);
    // A scale that does not broadcast from the trailing dims may take a backend's generic path.
    cases.push_back(on_every_backend(c, l.scale_shape != Shape{7, 1}));
  }
  cases.push_back(
      with_outputs(op_case("LayerNormalization", {rng.tensor({3, 11}), rng.tensor({11})}, {}, "with statistics"), 3));
  cases.push_back(op_case("InstanceNormalization", {rng.tensor({2, 3, 4, 5}), rng.tensor({3}), rng.tensor({3})}));
  cases.push_back(op_case("LRN", {rng.tensor({1, 5, 4, 4})},
                          {{"size", attr_int(3)}, {"alpha", attr_float(1e-3f)}, {"beta", attr_float(0.75f)}}));
  cases.push_back(op_case("MeanVarianceNormalization", {rng.tensor({2, 3, 4, 5})}));
  // GroupNormalization: parameters per group (opset 18) and per channel (opset 21), from one
  // group (LayerNorm-like) to a group per channel (InstanceNorm-like), 3-D and 4-D inputs.
  for (int64_t opset : {18, 21})
    for (const auto& [shape, groups] : std::vector<std::pair<Shape, int64_t>>{
             {{2, 6, 5, 7}, 3}, {{1, 8, 9}, 8}, {{2, 4, 3, 3}, 1}, {{1, 32, 16, 16}, 8}}) {
      const int64_t params = opset >= 21 ? shape[1] : groups;
      cases.push_back(on_every_backend(with_opset(
          op_case("GroupNormalization", {rng.tensor(shape, -2, 3), rng.tensor({params}, 0.5f, 1.5f), rng.tensor({params})},
                  {{"num_groups", attr_int(groups)}, {"epsilon", attr_float(1e-4f)}},
                  "opset " + std::to_string(opset) + ", " + std::to_string(groups) + " groups of " + shape_to_string(shape)),
          opset)));
    }
  cases.push_back(op_case("LpNormalization", {rng.tensor({2, 3, 4, 5})}, {}, "p 2, last axis"));
  cases.push_back(op_case("LpNormalization", {rng.tensor({2, 3, 4, 5})}, {{"axis", attr_int(1)}, {"p", attr_int(1)}}, "p 1, channels"));
  // --- Resize and friends
  struct Rs {
    const char* mode;
    const char* ctm;
    const char* nearest;
  };
  for (const Rs& r : std::vector<Rs>{{"nearest", "asymmetric", "floor"},
                                     {"nearest", "half_pixel", "round_prefer_floor"},
                                     {"nearest", "align_corners", "round_prefer_ceil"},
                                     {"nearest", "pytorch_half_pixel", "ceil"},
                                     {"linear", "half_pixel", ""},
                                     {"linear", "align_corners", ""},
                                     {"linear", "asymmetric", ""},
                                     {"linear", "pytorch_half_pixel", ""},
                                     {"cubic", "half_pixel", ""}})
    for (const std::vector<float>& scales : {std::vector<float>{1, 1, 2, 2}, {1, 1, 0.5f, 1.5f}, {1, 1, 3, 1.7f}}) {
      Attrs a{{"mode", attr_string(r.mode)}, {"coordinate_transformation_mode", attr_string(r.ctm)}};
      if (*r.nearest) a["nearest_mode"] = attr_string(r.nearest);
      OpCase c = with_constants(
          with_opset(op_case("Resize", {rng.tensor({1, 5, 6, 7}), Tensor(DataType::float32, {0}), f32({4}, scales)}, a,
                             std::string(r.mode) + "/" + r.ctm),
                     13),
          6);
      cases.push_back(on_every_backend(c, std::string(r.mode) != "cubic"));
    }
  cases.push_back(
      with_constants(with_opset(op_case("Resize", {rng.tensor({2, 3, 5, 4}), Tensor(), Tensor(), i64({2, 3, 9, 7})},
                                        {{"mode", attr_string("linear")}}, "sizes"),
                                13),
                     8));
  // The legacy forms (Upsample 7 and 9, Resize 10): asymmetric coordinates, nearest by the
  // legacy rule (floor up, ceil down), linear; integer and fractional scales.
  for (const char* mode : {"nearest", "linear"})
    for (const std::vector<float>& scales : {std::vector<float>{1, 1, 2, 3}, {1, 1, 1.5f, 2.5f}, {1, 1, 0.5f, 0.75f}}) {
      const std::string note = std::string(mode) + " scales " + std::to_string(scales[2]) + "x" + std::to_string(scales[3]);
      const Attrs a{{"mode", attr_string(mode)}};
      cases.push_back(on_every_backend(
          with_constants(with_opset(op_case("Upsample", {rng.tensor({1, 3, 6, 8}), f32({4}, scales)}, a, note), 9), 2)));
      cases.push_back(on_every_backend(with_constants(
          with_opset(op_case("Resize", {rng.tensor({2, 3, 6, 8}), f32({4}, scales)}, a, "opset 10, " + note), 10), 2)));
      Attrs seven = a;
      seven["scales"] = attr_floats(scales);
      if (scales[2] >= 1) cases.push_back(on_every_backend(with_opset(op_case("Upsample", {rng.tensor({1, 2, 5, 4})}, seven, "opset 7, " + note), 7)));
    }
  cases.push_back(with_opset(
      op_case("Upsample", {rng.tensor({1, 2, 3, 4}), f32({4}, {1, 1, 2, 3})}, {{"mode", attr_string("nearest")}}), 9));
  cases.push_back(with_opset(op_case("GridSample", {rng.tensor({1, 2, 4, 5}), rng.tensor({1, 3, 3, 2}, -1, 1)}), 16));
  cases.push_back(with_opset(
      op_case("RoiAlign", {rng.tensor({1, 2, 8, 8}), f32({2, 4}, {0.5f, 1, 6, 5.5f, 2, 2.5f, 7, 7}), i64({0, 0})},
              {{"output_height", attr_int(3)}, {"output_width", attr_int(2)}, {"sampling_ratio", attr_int(2)}}),
      16));
  return cases;
}

}  // namespace tandem::testing
