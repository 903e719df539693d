// qdq_fusion.cpp: QDQ-format products become integer products at compile time.
//
//   DequantizeLinear(x_q, x_scale, x_zp) -> Conv(., DequantizeLinear(W_q, w_scale, w_zp), [bias])
//     -> QuantizeLinear(., y_scale, y_zp)
// becomes one QLinearConv step (qconv.cpp), the same chain around a 2-D ConvTranspose (one group)
// one int8 deconvolution step (qdeconv.cpp), and around MatMul (no bias) one QLinearMatMul step
// (qmatmul.cpp). Conditions: the product's output has the QuantizeLinear as
// its only reader; the activation's scales and zero points are per-tensor constants; the
// weights are float constants that are exactly int8 times a scale per output channel (Conv:
// [O, ...]; MatMul: 2-D, per column). The weight's DequantizeLinear is folded to a float
// constant before the backend sees it (prepare's constant folding), so its int8 values and
// scales are recovered from the floats and checked bit for bit (weight_params).
// A float Conv bias becomes int32 at scale x_scale * w_scale[o] (float32 product), rounded half
// to even; a bias that leaves int32 or a zero scale declines the fusion.
// The activation's DequantizeLinear step is absorbed when the product is its only reader and
// otherwise stays for its other readers.
//
// A DequantizeLinear -> Conv whose output no QuantizeLinear closes (float ops or graph outputs
// read it: a QDQ model written without output quantization) becomes one ConvInteger step whose
// int32 product is scaled by x_scale * w_scale[o] and biased in float32; the float ops after it
// can then join it as post-ops. A MatMul likewise becomes a MatMulInteger step scaled per
// column. Same conditions on the activation and the weights.
//
// The ops that QDQ models wrap the same way without weights become the com.microsoft quantized
// ops the backend runs on 8-bit data (qelementwise.cpp, qpool.cpp), when every data input is a
// DequantizeLinear of 8-bit data that is not made by a QuantizeLinear of float values in this
// segment (it comes from an integer op, or from outside), and the output's only reader a
// QuantizeLinear, all per-tensor constants of one 8-bit type:
//   Add, Mul -> QLinearAdd, QLinearMul        Sigmoid, LeakyRelu -> QLinearSigmoid, QLinearLeakyRelu
//   GlobalAveragePool -> QLinearGlobalAveragePool   AveragePool -> QLinearAveragePool
//   Concat -> QLinearConcat
// Their kernels requantize from the exact real value (in double), where the float path rounds
// each step to float32: results can differ by one unit where a value lies within a float32
// rounding of a half-integer. Anything else keeps the float path.
//
// A DequantizeLinear -> Gemm -> QuantizeLinear with weights and bias as for MatMul (per output
// column; transB transposes them) becomes one com.microsoft QGemm step.
//
// Ops that only move or select values (Transpose, Reshape, Flatten, Squeeze, Unsqueeze,
// Identity, Slice, Gather, Expand, Tile, DepthToSpace, SpaceToDepth, MaxPool, nearest Resize,
// Pad) between a DequantizeLinear and a QuantizeLinear with the same per-tensor constants, as ONNX
// Runtime's QDQ tool writes them, run on the 8-bit values: exactly what the float path gives (a
// constant Pad pads with the byte its QuantizeLinear makes of the value).
// A linear Resize between them (any per-tensor constants) runs on the 8-bit values with the
// float path's arithmetic, a row at a time (resize_bytes.cpp): the same bytes again.
//
// What is left of the QDQ format after that: qdq_round_trips.cpp.
// ONNX Runtime's com.microsoft QuantizeLinear and DequantizeLinear are the standard ops under
// another domain (its tool writes them for 16-bit types before opset 21) and are taken alike.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "backends/cpu/elementwise.h"
#include "backends/cpu/fusion.h"
#include "backends/cpu/int8.h"
#include "backends/cpu/op_family.h"
#include "backends/cpu/requant_chain.h"
#include "backends/cpu/resize.h"

namespace tandem::cpu {

namespace {

// A DequantizeLinear or QuantizeLinear node with its parameters.
struct QParams {
  const Node* node = nullptr;
  int data = -1, scale = -1, zero_point = -1;  // value ids
};

bool is_f32(const Tensor* t) { return t && t->dtype() == DataType::float32; }
bool is_q8(const Tensor* t) { return t && (t->dtype() == DataType::uint8 || t->dtype() == DataType::int8); }

// Per-tensor scale and zero point, both constants of the expected types (zero point `like`'s
// type when `like` is known).
bool per_tensor_constants(const FusionContext& f, const QParams& p, DataType* zp_type) {
  const Tensor *s = f.constant(p.scale), *z = f.constant(p.zero_point);
  if (!is_f32(s) || !is_q8(z) || s->numel() != 1 || z->numel() != 1) return false;
  if (!(s->data<float>()[0] > 0.0f) || !std::isfinite(s->data<float>()[0])) return false;
  *zp_type = z->dtype();
  return true;
}

class QdqFuser {
 public:
  explicit QdqFuser(CompiledGraph& g) : g_(g), f_{g} {}

  // When step `q` is a plain QuantizeLinear with per-tensor constant parameters (`*y`, of type
  // `*y_type`) and the only reader of its producer's output: that producer's step; else -1.
  int closing_quantize(int q, QParams* y, DataType* y_type) {
    const Step& qs = g_.steps[q];
    if (qs.dead || qs.originals.size() != 1 || !plain_quant_node(*qs.node, "QuantizeLinear")) return -1;
    *y = QParams{qs.node, qs.inputs[0], qs.inputs[1], qs.inputs[2]};
    if (!per_tensor_constants(f_, *y, y_type)) return -1;
    const int p = g_.values[y->data].producer;
    return p >= 0 && f_.sole_reader(y->data) == q ? p : -1;
  }

  // The step `closing_quantize(q)` finds, when it is one default-domain node with one output:
  // its index (else -1).
  int closed_op(int q, QParams* y, DataType* y_type) {
    const int p = closing_quantize(q, y, y_type);
    if (p < 0) return -1;
    const Step& ps = g_.steps[p];
    if (ps.dead || ps.originals.size() != 1 || !canonical_domain(ps.node->domain).empty() || ps.outputs.size() != 1)
      return -1;
    return p;
  }

  // A node that stands for `from` (name, index for messages; attributes) as op `op`.
  static Node node_like(const Node& from, const std::string& op, const std::string& domain, int opset) {
    Node n;
    n.name = from.name;
    n.index = from.index;
    n.op_type = op;
    n.domain = domain;
    n.opset = opset;
    n.attrs = from.attrs;
    return n;
  }

  // Tries DequantizeLinear -> Gemm (constant float weights exact as int8 per output column, an
  // optional constant bias) -> QuantizeLinear step `q`: one com.microsoft QGemm step (qgemm.cpp)
  // whose int32 bias is beta * C / (alpha * x_scale * w_scale[n]) rounded half to even; true
  // when rewritten.
  bool try_gemm_at(int q) {
    QParams y;
    DataType y_type;
    const int p = closed_op(q, &y, &y_type);
    if (p < 0) return false;
    const Step& ps = g_.steps[p];
    if (ps.node->op_type != "Gemm" || ps.inputs.size() < 2) return false;
    const Node& gn = *ps.node;
    const float alpha = gn.attr_float("alpha", 1.0f), beta = gn.attr_float("beta", 1.0f);
    const bool trans_b = gn.attr_int("transB", 0) != 0;
    if (!(alpha > 0.0f) || !std::isfinite(alpha) || !std::isfinite(beta)) return false;
    int dx;
    QParams x;
    DataType x_type;
    if (!dequantized_activation(ps.inputs[0], &dx, &x, &x_type)) return false;
    QParams w;
    if (!weight_params(ps.inputs[1], false, &w, trans_b)) return false;
    const Tensor* wsc = f_.constant(w.scale);
    const int64_t n_cols = wsc->numel();
    std::vector<int32_t> qb(static_cast<size_t>(n_cols), 0);
    if (ps.inputs.size() > 2 && ps.inputs[2] >= 0) {
      // A bias per column ([N] or [1, N]) or one for all; a bias per row needs the float path.
      const Tensor* bt = f_.constant(ps.inputs[2]);
      if (!is_f32(bt) || (bt->numel() != n_cols && bt->numel() != 1) || (bt->rank() == 2 && bt->shape()[0] != 1))
        return false;
      const double xs = f_.constant(x.scale)->data<float>()[0];
      for (int64_t c = 0; c < n_cols; ++c) {
        const double s = static_cast<double>(alpha) * xs * static_cast<double>(wsc->data<float>()[c]);
        const double v = std::nearbyint(static_cast<double>(beta) * bt->data<float>()[bt->numel() == 1 ? 0 : c] / s);
        if (!(s > 0.0) || !(std::fabs(v) <= static_cast<double>(std::numeric_limits<int32_t>::max()))) return false;
        qb[static_cast<size_t>(c)] = static_cast<int32_t>(v);
      }
    }
    const int bias = f_.add_constant(Tensor::from_vector<int32_t>({n_cols}, qb));
    Node n = node_like(gn, "QGemm", kMicrosoftDomain, 1);  // alpha, transA, transB
    n.attrs.erase("beta");
    const std::vector<int> inputs{x.data,       x.scale, x.zero_point, w.data, w.scale,
                                  w.zero_point, bias,    y.scale,      y.zero_point};
    return rewrite_step(q, p, {dx}, std::move(n), inputs);
  }

  // Tries DequantizeLinear -> an op that only moves or selects values -> QuantizeLinear step `q`
  // with the same per-tensor constants on both sides (see the header), or a linear Resize
  // between any per-tensor constants: one Resize step on the 8-bit data with the four parameters
  // after Resize's inputs, run by make_qdq_linear_resize (resize.h) with the float path's
  // arithmetic; true when rewritten.
  bool try_byte_movement_at(int q) {
    QParams y;
    DataType y_type;
    const int p = closed_op(q, &y, &y_type);
    if (p < 0 || g_.steps[p].inputs.empty()) return false;
    const Step& ps = g_.steps[p];
    const Node& pn = *ps.node;
    static const std::set<std::string> kMoves = {"Transpose",    "Reshape",      "Flatten", "Squeeze", "Unsqueeze",
                                                 "Identity",     "Slice",        "Gather",  "Expand",  "Tile",
                                                 "DepthToSpace", "SpaceToDepth", "MaxPool", "Resize",  "Pad"};
    const std::string mode = pn.attr_string("mode", "nearest");
    const bool linear_resize = (pn.op_type == "Resize" || pn.op_type == "Upsample") &&
                               (mode == "linear" || mode == "bilinear");
    if (!kMoves.count(pn.op_type) && !linear_resize) return false;
    if (pn.op_type == "MaxPool" && pn.outputs.size() > 1 && !pn.outputs[1].empty()) return false;  // Indices
    int d;
    QParams x;
    DataType x_type;
    if (!dequantized_activation(ps.inputs[0], &d, &x, &x_type)) return false;
    std::vector<int> inputs = ps.inputs;
    inputs[0] = x.data;
    if (linear_resize) {
      inputs.insert(inputs.end(), {x.scale, x.zero_point, y.scale, y.zero_point});
      return rewrite_step(q, p, {d}, node_like(pn, pn.op_type, pn.domain, pn.opset), inputs, make_qdq_linear_resize());
    }
    if (pn.op_type == "Resize" && mode != "nearest") return false;
    if (x_type != y_type) return false;
    // The same scale and zero point: QuantizeLinear(DequantizeLinear(b)) is b for every byte
    // (the float32 round trip of an integer of at most 9 bits times the scale is within 2^-16 of
    // it), and the op commutes with the monotonic DequantizeLinear (MaxPool's maximum included).
    const Tensor &xs = *f_.constant(x.scale), &ys = *f_.constant(y.scale);
    const Tensor &xz = *f_.constant(x.zero_point), &yz = *f_.constant(y.zero_point);
    if (std::memcmp(xs.data<float>(), ys.data<float>(), sizeof(float)) != 0 ||
        std::memcmp(xz.raw_data(), yz.raw_data(), 1) != 0)
      return false;
    if (pn.op_type == "Pad" && !byte_padding(pn, x_type, ys.data<float>()[0], xz, &inputs)) return false;
    return rewrite_step(q, p, {d}, node_like(pn, pn.op_type, pn.domain, pn.opset), inputs);
  }

  // A Pad (opset 11 and later) moved onto the bytes: mode constant pads with what the float
  // path's QuantizeLinear makes of the constant value (0 when omitted), saturate(round(value /
  // scale) + zero point), given as a constant of the 8-bit type; the other modes copy values.
  bool byte_padding(const Node& pad, DataType type, float scale, const Tensor& zero_point, std::vector<int>* inputs) {
    if (pad.opset < 11) return false;  // the value is an attribute there
    if (pad.attr_string("mode", "constant") != "constant") return true;
    float value = 0.0f;
    if (inputs->size() > 2 && (*inputs)[2] >= 0) {
      const Tensor* v = f_.constant((*inputs)[2]);
      if (!is_f32(v) || v->numel() > 1) return false;
      if (v->numel() == 1) value = v->data<float>()[0];
    }
    if (!std::isfinite(value)) return false;
    const bool s8 = type == DataType::int8;
    const float zp = s8 ? zero_point.data<int8_t>()[0] : zero_point.data<uint8_t>()[0];
    const float q = std::clamp(std::nearbyint(value / scale) + zp, s8 ? -128.0f : 0.0f, s8 ? 127.0f : 255.0f);
    const int fill = f_.add_constant(s8 ? Tensor::scalar<int8_t>(static_cast<int8_t>(q))
                                        : Tensor::scalar<uint8_t>(static_cast<uint8_t>(q)));
    if (inputs->size() < 3) inputs->resize(3, -1);
    (*inputs)[2] = fill;
    return true;
  }

  // Tries DequantizeLinear inputs -> an op without weights -> QuantizeLinear step `q` (see the
  // header); true when rewritten.
  bool try_quantized_op_at(int q) {
    QParams y;
    DataType y_type;
    const int p = closed_op(q, &y, &y_type);
    if (p < 0) return false;
    const Step& ps = g_.steps[p];
    const std::string& op = ps.node->op_type;
    static const std::map<std::string, std::string> kQuantized = {
        {"Add", "QLinearAdd"},
        {"Mul", "QLinearMul"},
        {"Sigmoid", "QLinearSigmoid"},
        {"LeakyRelu", "QLinearLeakyRelu"},
        {"GlobalAveragePool", "QLinearGlobalAveragePool"},
        {"AveragePool", "QLinearAveragePool"},
        {"Concat", "QLinearConcat"}};
    auto it = kQuantized.find(op);
    if (it == kQuantized.end()) return false;
    if (op == "AveragePool" && ps.node->has_attr("dilations")) {  // QLinearAveragePool has none
      const std::vector<int64_t> d = ps.node->attr_ints("dilations");
      if (std::any_of(d.begin(), d.end(), [](int64_t v) { return v != 1; })) return false;
    }
    const size_t data_inputs = op == "Concat" ? ps.inputs.size() : op == "Add" || op == "Mul" ? 2 : 1;
    if (ps.inputs.size() != data_inputs || data_inputs == 0) return false;
    // Every data input: a live DequantizeLinear of the output's 8-bit type.
    std::vector<int> dqs;
    std::vector<QParams> xs;
    for (int v : ps.inputs) {
      const int d = v >= 0 ? g_.values[v].producer : -1;
      if (d < 0 || g_.steps[d].dead || g_.steps[d].originals.size() != 1) return false;
      const Step& ds = g_.steps[d];
      if (!plain_quant_node(*ds.node, "DequantizeLinear")) return false;
      // 8-bit data that a QuantizeLinear makes from float values here keeps the float path:
      // the pair becomes a round trip on the float values (fuse_qdq_round_trips), and no 8-bit
      // tensor is written for this op alone.
      const int src = ds.inputs[0] >= 0 ? g_.values[ds.inputs[0]].producer : -1;
      if (src >= 0 && !g_.steps[src].dead && g_.steps[src].originals.size() == 1 &&
          plain_quant_node(*g_.steps[src].node, "QuantizeLinear"))
        return false;
      QParams x{ds.node, ds.inputs[0], ds.inputs[1], ds.inputs[2]};
      DataType x_type;
      if (!per_tensor_constants(f_, x, &x_type) || x_type != y_type) return false;
      dqs.push_back(d);
      xs.push_back(x);
    }
    std::vector<int> inputs;
    if (op == "Concat") {
      inputs = {y.scale, y.zero_point};
      for (const QParams& x : xs) inputs.insert(inputs.end(), {x.data, x.scale, x.zero_point});
    } else {
      for (const QParams& x : xs) inputs.insert(inputs.end(), {x.data, x.scale, x.zero_point});
      inputs.insert(inputs.end(), {y.scale, y.zero_point});
    }
    // alpha, axis, the pool's window (channels_last defaults to 0)
    return rewrite_step(q, p, dqs, node_like(*ps.node, it->second, kMicrosoftDomain, 1), inputs);
  }

  // Tries the chain ending in QuantizeLinear step `q`; true when rewritten.
  bool try_at(int q) {
    QParams y;
    DataType y_type;
    const int p = closing_quantize(q, &y, &y_type);
    if (p < 0) return false;
    Step& ps = g_.steps[p];
    if (ps.dead || ps.originals.size() != 1 || !canonical_domain(ps.node->domain).empty()) return false;
    const std::string& op = ps.node->op_type;
    const bool deconv = op == "ConvTranspose";
    const bool conv = op == "Conv" || deconv;
    if (!conv && op != "MatMul") return false;
    if (ps.inputs.size() < 2 || ps.outputs.size() != 1) return false;
    if (!conv && ps.inputs.size() != 2) return false;
    int dx;
    QParams x;
    DataType x_type;
    if (!dequantized_activation(ps.inputs[0], &dx, &x, &x_type)) return false;
    // The weights: exact int8 per output channel (a ConvTranspose's, transposed to [O, C, k...]).
    int weights = ps.inputs[1];
    if (deconv) {
      // 2-D, one group; without VNNI oneDNN halves the weights of a signed source (qconv.cpp).
      if (ps.node->attr_int("group", 1) != 1 || (x_type == DataType::int8 && !onednn_has_vnni())) return false;
      weights = transposed_deconv_weights(ps.inputs[1]);
      if (weights < 0) return false;
    }
    QParams w;
    if (!weight_params(weights, conv, &w, false, !deconv && uint8_weights_fit(weights, conv))) return false;
    const Tensor* wsc = f_.constant(w.scale);
    const int64_t channels = wsc->numel();
    // The bias, quantized.
    int bias = -1;
    if (conv && ps.inputs.size() > 2 && ps.inputs[2] >= 0) {
      const Tensor* bt = f_.constant(ps.inputs[2]);
      if (!is_f32(bt) || bt->numel() != channels) return false;
      const float xs = f_.constant(x.scale)->data<float>()[0];
      std::vector<int32_t> qb(static_cast<size_t>(channels));
      for (int64_t o = 0; o < channels; ++o) {
        const float s = xs * wsc->data<float>()[wsc->numel() == 1 ? 0 : o];
        if (!(s > 0.0f)) return false;
        const double v = std::nearbyint(static_cast<double>(bt->data<float>()[o]) / static_cast<double>(s));
        if (!(std::fabs(v) <= static_cast<double>(std::numeric_limits<int32_t>::max()))) return false;
        qb[static_cast<size_t>(o)] = static_cast<int32_t>(v);
      }
      bias = f_.add_constant(Tensor::from_vector<int32_t>({channels}, qb));
    }
    if (deconv) {
      std::vector<int> inputs{x.data, x.scale, x.zero_point, w.data, w.scale, w.zero_point, y.scale, y.zero_point};
      if (bias >= 0) inputs.push_back(bias);
      return rewrite_step(q, p, {dx}, node_like(*ps.node, op, "", ps.node->opset), inputs, make_qdq_conv_transpose());
    }
    return rewrite(q, p, dx, x, w, y, bias, conv);
  }

  // A 2-D ConvTranspose's constant float weights [C, O, kh, kw] as a new constant [O, C, kh,
  // kw] (deconv_weights_as_conv); -1 when they are not such a constant.
  int transposed_deconv_weights(int v) {
    const Tensor* wf = f_.constant(v);
    if (!is_f32(wf) || wf->rank() != 4) return -1;
    return f_.add_constant(deconv_weights_as_conv(*wf));
  }

  // Tries DequantizeLinear -> Conv at step `p` whose float output has no closing QuantizeLinear
  // (float ops or graph outputs read it; a QDQ model written without output quantization):
  // the product runs in 8 bits as ConvInteger, its int32 result times x_scale * w_scale[o] plus
  // the float bias in float32 (make_conv_integer_to_float), which the float ops after it can
  // join as post-ops. A MatMul (constant 2-D weights) likewise becomes MatMulInteger scaled per
  // column (make_matmul_integer_to_float). True when rewritten.
  bool try_float_product_at(int p) {
    const Step& ps = g_.steps[p];
    if (ps.dead || !ps.spec || ps.originals.size() != 1 || !canonical_domain(ps.node->domain).empty() ||
        ps.inputs.size() < 2 || ps.outputs.size() != 1 || ps.outputs[0] < 0)
      return false;
    const bool conv = ps.node->op_type == "Conv";
    if (!conv && (ps.node->op_type != "MatMul" || ps.inputs.size() != 2)) return false;
    int dx;
    QParams x;
    DataType x_type;
    if (!dequantized_activation(ps.inputs[0], &dx, &x, &x_type)) return false;
    const Step& dxs = g_.steps[dx];
    // Without VNNI a signed source would take the exact integer kernel, slower than the float
    // path (qconv.cpp). (oneDNN's matrix products widen first: exact either way.)
    if (conv && x_type == DataType::int8 && !onednn_has_vnni()) return false;
    QParams w;
    // Conv: [O, C/group, k...]; MatMul: [K, N]
    if (!weight_params(ps.inputs[1], conv, &w, false, uint8_weights_fit(ps.inputs[1], conv))) return false;
    const Tensor* wsc = f_.constant(w.scale);
    const int64_t channels = wsc->numel();
    // Conv: per output channel, shaped [O, 1, ...] to broadcast against [N, O, spatial...].
    // MatMul: per column, [N] against [..., N].
    Shape per_channel = {channels};
    if (conv) per_channel.resize(f_.constant(w.data)->rank() - 1, 1);
    const float xs = f_.constant(x.scale)->data<float>()[0];
    std::vector<float> scales(static_cast<size_t>(channels));
    for (int64_t o = 0; o < channels; ++o) scales[static_cast<size_t>(o)] = xs * wsc->data<float>()[o];
    EwProgram post;
    post.operands.push_back(f_.add_constant(Tensor::from_vector<float>(per_channel, scales)));
    post.ops.push_back(EwOp{Ew::mul, 0, 0, 0});
    if (conv && ps.inputs.size() > 2 && ps.inputs[2] >= 0) {
      const Tensor* bt = f_.constant(ps.inputs[2]);
      if (!is_f32(bt) || bt->numel() != channels) return false;
      std::vector<float> bias(bt->data<float>(), bt->data<float>() + channels);
      post.operands.push_back(f_.add_constant(Tensor::from_vector<float>(per_channel, bias)));
      post.ops.push_back(EwOp{Ew::add, 1, 0, 0});
    }
    Node n = node_like(*ps.node, conv ? "ConvInteger" : "MatMulInteger", "", 10);
    if (!conv) n.attrs.clear();
    n.outputs = ps.node->outputs;
    const std::vector<int> inputs{x.data, w.data, x.zero_point, w.zero_point};
    for (int v : inputs) n.inputs.push_back(g_.name_of(v));
    const OpEntry* e = cpu_ops().find("", n.op_type);
    if (!e || !e->supports(n).is_ok()) return false;
    g_.synthesized.push_back(std::move(n));
    Step fused;
    fused.node = &g_.synthesized.back();
    fused.inputs = inputs;
    fused.outputs = ps.outputs;
    fused.spec = conv ? make_conv_integer_to_float(fused, std::move(post)) : make_matmul_integer_to_float(fused, std::move(post));
    const bool absorb_dq = read_only_by(dx, p);
    if (absorb_dq) fused.originals.push_back(dxs.node);
    fused.originals.push_back(ps.node);
    if (absorb_dq) {
      g_.steps[dx] = Step{};
      g_.steps[dx].dead = true;
    }
    g_.steps[p] = std::move(fused);
    g_.relink();
    return true;
  }

 private:
  // When value `v` is made by a live DequantizeLinear step (*dx) with per-tensor constant
  // parameters (*x; the 8-bit data's type *x_type): true.
  bool dequantized_activation(int v, int* dx, QParams* x, DataType* x_type) {
    *dx = v >= 0 ? g_.values[v].producer : -1;
    if (*dx < 0 || g_.steps[*dx].dead || g_.steps[*dx].originals.size() != 1) return false;
    const Step& ds = g_.steps[*dx];
    if (!plain_quant_node(*ds.node, "DequantizeLinear")) return false;
    *x = QParams{ds.node, ds.inputs[0], ds.inputs[1], ds.inputs[2]};
    return per_tensor_constants(f_, *x, x_type);
  }

  // True when a product with weights `v` may take them as asymmetric uint8: a MatMul's (2-D,
  // the weight-offset route of qmatmul.cpp), or a 2-D convolution's, where the weight-offset
  // route (one group) or the exact float32 route (grouped) runs it with 8-bit values around it
  // (det 640 QDQ with such weights, two threads: 20.8 ms against 23.3 as the float path the
  // graph describes).
  bool uint8_weights_fit(int v, bool conv) const {
    const Tensor* wf = f_.constant(v);
    return !conv || (wf && wf->rank() == 4);
  }

  // Float weights `v` (a constant: an initializer, or a DequantizeLinear of int8 weights folded
  // at prepare or compile) as int8 with one scale per output channel and zero point 0, when
  // that is exact (exact_int8_weights, int8.h), or as uint8 with zero points (exact_uint8_weights:
  // asymmetric weights, when `asymmetric`): the integer product then computes with the
  // very weights the float one would. `conv`: channels along the leading dim (Conv's [O, ...]),
  // else a 2-D [rows, cols] weight by column (MatMul), or by row with `by_row` (Gemm's
  // transposed B, [N, K]).
  bool weight_params(int v, bool conv, QParams* w, bool by_row = false, bool asymmetric = false) {
    const Tensor* wf = f_.constant(v);
    if (!is_f32(wf) || wf->numel() == 0) return false;
    if (conv ? wf->rank() < 3 : wf->rank() != 2) return false;
    Tensor q;
    std::vector<float> scales;
    if (exact_int8_weights(*wf, conv || by_row, &q, &scales)) {
      const int64_t channels = static_cast<int64_t>(scales.size());
      w->data = f_.add_constant(std::move(q));
      w->scale = f_.add_constant(Tensor::from_vector<float>({channels}, scales));
      w->zero_point = f_.add_constant(Tensor::from_vector<int8_t>({channels}, std::vector<int8_t>(channels, 0)));
      return true;
    }
    // Asymmetric uint8 weights (a zero point for all channels, or one each): the weight-offset
    // route.
    std::vector<uint8_t> zero_points;
    if (!asymmetric || !exact_uint8_weights(*wf, conv || by_row, &q, &scales, &zero_points)) return false;
    const auto channels = static_cast<int64_t>(scales.size());
    w->data = f_.add_constant(std::move(q));
    w->scale = f_.add_constant(Tensor::from_vector<float>({channels}, scales));
    w->zero_point = f_.add_constant(zero_points.size() == 1 ? Tensor::scalar<uint8_t>(zero_points[0])
                                                            : Tensor::from_vector<uint8_t>({channels}, zero_points));
    return true;
  }

  bool rewrite(int q, int p, int dx, const QParams& x, const QParams& w, const QParams& y, int bias, bool conv) {
    const Step& ps = g_.steps[p];
    Node n = node_like(*ps.node, conv ? "QLinearConv" : "QLinearMatMul", "", 10);
    if (!conv) n.attrs.clear();
    std::vector<int> inputs{x.data, x.scale, x.zero_point, w.data, w.scale, w.zero_point, y.scale, y.zero_point};
    if (bias >= 0) inputs.push_back(bias);
    return rewrite_step(q, p, {dx}, std::move(n), inputs);
  }

  // True when step `dx`'s output is no graph output and step `p` is its only reader, so that
  // `dx` can go into the step that replaces `p`.
  bool read_only_by(int dx, int p) const {
    const CompiledValue& v = g_.values[g_.steps[dx].outputs[0]];
    return !v.is_output && std::all_of(v.readers.begin(), v.readers.end(), [&](int r) { return r == p; });
  }

  // Replaces step `p` and its reader `q` (a QuantizeLinear) by one step running node `n` (op,
  // name, attributes set; inputs given as value ids) whose output is q's; each
  // DequantizeLinear step in `dqs` goes with it when `p` is its only reader.
  // `own`: the step's spec, where the op table's entry for n's op is not the one (a QDQ
  // ConvTranspose keeps its op type and runs qdeconv.cpp's spec).
  bool rewrite_step(int q, int p, const std::vector<int>& dqs, Node n, const std::vector<int>& inputs,
                    std::unique_ptr<OpSpec> own = nullptr) {
    const OpEntry* e = own ? nullptr : cpu_ops().find(canonical_domain(n.domain), n.op_type);
    if (!own && (!e || !e->make)) return false;
    n.outputs = g_.steps[q].node->outputs;
    for (int v : inputs) n.inputs.push_back(g_.name_of(v));
    if (e && !e->supports(n).is_ok()) return false;
    g_.synthesized.push_back(std::move(n));
    Step fused;
    fused.node = &g_.synthesized.back();
    fused.inputs = inputs;
    fused.outputs = g_.steps[q].outputs;
    if (own) {
      fused.spec = std::move(own);
    } else {
      auto spec = e->make(f_, fused);
      if (!spec.is_ok() || !*spec) {
        g_.synthesized.pop_back();
        return false;
      }
      fused.spec = std::move(spec).value();
    }
    // A DequantizeLinear goes with the step when nothing else reads it (the same one may feed
    // several inputs: x + x).
    std::vector<int> absorbed;
    for (int dx : dqs) {
      if (std::find(absorbed.begin(), absorbed.end(), dx) != absorbed.end() || !read_only_by(dx, p)) continue;
      absorbed.push_back(dx);
      fused.originals.push_back(g_.steps[dx].node);
    }
    fused.originals.push_back(g_.steps[p].node);
    fused.originals.push_back(g_.steps[q].node);
    for (int dx : absorbed) {
      g_.steps[dx] = Step{};
      g_.steps[dx].dead = true;
    }
    g_.steps[p] = Step{};
    g_.steps[p].dead = true;
    g_.steps[q] = std::move(fused);
    g_.relink();
    return true;
  }

  CompiledGraph& g_;
  FusionContext f_;
};

}  // namespace

bool per_tensor_quant_step(const FusionContext& f, const Step& s, const char* op, PerTensorQuant* q) {
  if (s.dead || !s.node || s.originals.size() != 1 || !plain_quant_node(*s.node, op)) return false;
  const QParams p{s.node, s.inputs[0], s.inputs[1], s.inputs[2]};
  if (p.data < 0 || p.scale < 0 || p.zero_point < 0) return false;
  DataType type;
  if (!per_tensor_constants(f, p, &type)) return false;
  const Tensor* z = f.constant(p.zero_point);
  q->data = p.data;
  q->scale = f.constant(p.scale)->data<float>()[0];
  q->zero_point = type == DataType::uint8 ? int32_t{z->data<uint8_t>()[0]} : int32_t{z->data<int8_t>()[0]};
  q->type = type;
  return true;
}

int fuse_qdq_products(CompiledGraph& g) {
  qdq_shapes_read_the_bytes(g);
  g.relink();
  QdqFuser fuser(g);
  int fused = 0;
  for (size_t i = 0; i < g.steps.size(); ++i)
    if (g.steps[i].spec && (fuser.try_at(static_cast<int>(i)) || fuser.try_quantized_op_at(static_cast<int>(i)) ||
                            fuser.try_byte_movement_at(static_cast<int>(i)) ||
                            fuser.try_gemm_at(static_cast<int>(i))))
      ++fused;
  // Products whose output no QuantizeLinear closes, once every closed chain has been taken.
  for (size_t i = 0; i < g.steps.size(); ++i)
    if (g.steps[i].spec && fuser.try_float_product_at(static_cast<int>(i))) ++fused;
  if (fused > 0 && verbose()) note("fusion: " + std::to_string(fused) + " QDQ chain(s) -> quantized ops");
  return fused;
}

}  // namespace tandem::cpu
