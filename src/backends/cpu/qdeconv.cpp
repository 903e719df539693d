// qdeconv.cpp: a QDQ-format ConvTranspose on oneDNN's int8 deconvolution.
//
//   DequantizeLinear(x_q, x_scale, x_zp) -> ConvTranspose(., W, [bias]) -> QuantizeLinear(., y_scale, y_zp)
//
// qdq_fusion.cpp rewrites that chain into one step of this spec when W is exactly int8 times a
// scale per output channel (as DequantizeLinear of symmetric int8 weights along the output
// axis makes it) and the activation's parameters are per-tensor constants. Its inputs are
// QLinearConv's, with the weights transposed to [O, C, k...] at the rewrite:
//   x_q, x_scale, x_zp, w_q [O, C, k...], w_scale [O], w_zp [O] (zeros), y_scale, y_zp, [bias int32 [O]]
// and its node is the ConvTranspose's (attributes: strides, pads, output_padding, dilations,
// auto_pad, output_shape; one group).
//
// The source is u8 or s8 channels-last with oneDNN's common source zero point, the weights s8,
// the bias int32 (the float bias divided by x_scale * w_scale[o], rounded half to even), the
// requantization x_scale * w_scale[o] / y_scale oneDNN's output scales (per output channel) and
// y_zp its destination zero point, added after a rounding post-op (as qconv.cpp does: the
// reference rounds the real value, then adds the zero point). Results match the float chain
// the QDQ graph describes to within one unit where a value lies within a float32 rounding of a
// half-integer. 2-D (4-D values) only; other ranks keep the float path.
#include <cstring>
#include <utility>

#include "backends/cpu/conv_geometry.h"
#include "backends/cpu/int8.h"
#include "backends/cpu/op_family.h"

namespace tandem::cpu {

namespace {

using dt = dnnl::memory::data_type;

class QDeconvSpec final : public OpSpec {
 public:
  Status prepare(Builder& b, const Step& step) const override;
};

Status QDeconvSpec::prepare(Builder& b, const Step& step) const {
  const Node& n = *step.node;
  const std::string label = n.label();
  auto in = [&](size_t i) { return i < step.inputs.size() ? step.inputs[i] : -1; };
  const int x = in(0), w = in(3), bias_v = in(8), out = step.outputs[0];
  if (!b.typed(x) || !b.typed(out)) return unsupported(label + " shape unknown");
  // Copies (sharing the data): the builder's values move as values are added.
  const Tensor* known_w = b.known(w);
  if (!known_w || known_w->dtype() != DataType::int8) return unsupported(label + " int8 weights expected");
  const Tensor weights = *known_w;
  const Shape xs = b.val(x).shape, ws = weights.shape();
  if (xs.size() != 4 || ws.size() != 4 || ws[1] != xs[1]) return unsupported(label + " 2-D, one group only");
  const int64_t O = ws[0];
  // The geometry takes ONNX's [C, O, k...] weight dims.
  Geometry geo;
  TANDEM_RETURN_IF_ERROR(deconv_geometry(n, xs, {ws[1], ws[0], ws[2], ws[3]}, 1, &geo));
  if (b.val(out).shape != geo.dst)
    return unsupported(label + " output shape " + shape_to_string(geo.dst) + " differs from inference " +
                       shape_to_string(b.val(out).shape));

  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  bool runtime_scales = false;
  TANDEM_ASSIGN_OR_RETURN(DnnlKernel::Arg scales, output_scales(b, in(1), in(4), in(6), O, 1 << 1, label, &attr,
                                                                &runtime_scales));
  bool src_zero = true, dst_zero = true;
  TANDEM_ASSIGN_OR_RETURN(DnnlKernel::Arg src_zp, zero_point_arg(b, in(2), DNNL_ARG_SRC, label + " x", &src_zero));
  TANDEM_ASSIGN_OR_RETURN(DnnlKernel::Arg dst_zp, zero_point_arg(b, in(7), DNNL_ARG_DST, label + " y", &dst_zero));
  if (!src_zero) attr.set_zero_points(DNNL_ARG_SRC, 0, {DNNL_RUNTIME_S32_VAL});
  // Round, then add a known destination zero point exactly (oneDNN would add it before it rounds).
  dnnl::post_ops round;
  round.append_eltwise(1.0f, dnnl::algorithm::eltwise_round, 0.0f, 0.0f);
  if (!dst_zero && dst_zp.value < 0) {
    const int32_t zy = *static_cast<const int32_t*>(dst_zp.memory.get_data_handle());
    round.append_eltwise(1.0f, dnnl::algorithm::eltwise_linear, 1.0f, static_cast<float>(zy));
    dst_zero = true;
  }
  attr.set_post_ops(round);
  if (!dst_zero) attr.set_zero_points(DNNL_ARG_DST, 0, {DNNL_RUNTIME_S32_VAL});

  IValue src_probe = b.val(x), dst_probe = b.val(out);
  src_probe.layout = dst_probe.layout = Layout::nhwc;
  const dnnl::memory::dims wd = to_dims(ws);
  const dnnl::memory::desc w_any(wd, dt::s8, dnnl::memory::format_tag::any);
  const dnnl::memory::desc b_md({O}, dt::s32, dnnl::memory::format_tag::x);
  auto dims = [](const std::vector<int64_t>& v, int64_t minus) {
    dnnl::memory::dims d;
    for (int64_t e : v) d.push_back(e - minus);
    return d;
  };
  const bool with_bias = bias_v >= 0;
  Tensor bias;
  if (with_bias) {
    const Tensor* known_b = b.known(bias_v);
    if (!known_b || known_b->dtype() != DataType::int32 || known_b->numel() != O)
      return unsupported(label + " bias must be a known int32 [O]");
    bias = *known_b;
  }
  const double work = static_cast<double>(shape_numel(xs)) * static_cast<double>(shape_numel(ws) / ws[1]);
  const int kthreads = threads_for(b, work);
  ThreadScope scope(kthreads);
  dnnl::deconvolution_forward::primitive_desc pd;
  try {
    const auto kind = dnnl::prop_kind::forward_inference;
    const auto alg = dnnl::algorithm::deconvolution_direct;
    const auto src_md = value_md(src_probe), dst_md = value_md(dst_probe);
    const auto strides = dims(geo.strides, 0), dil = dims(geo.dilations, 1);
    const auto pl = dims(geo.pads_begin, 0), pr = dims(geo.pads_end, 0);
    auto d = with_bias ? dnnl::deconvolution_forward::desc(kind, alg, src_md, w_any, b_md, dst_md, strides, dil, pl, pr)
                       : dnnl::deconvolution_forward::desc(kind, alg, src_md, w_any, dst_md, strides, dil, pl, pr);
    pd = dnnl::deconvolution_forward::primitive_desc(d, attr, cpu_engine());
  } catch (const dnnl::error& e) {
    return unsupported(label + " oneDNN has no int8 deconvolution for this case: " + e.what());
  }
  const std::string impl = pd.impl_info_str();
  if (verbose()) note(label + " " + shape_to_string(xs) + " -> " + shape_to_string(geo.dst) + ": " + impl + " int8");

  // Pack the int8 weights (the reorder adds the compensation oneDNN's format carries).
  dnnl::memory packed(pd.weights_desc(), cpu_engine());
  {
    dnnl::memory plain(plain_md(ws, dt::s8), cpu_engine(), const_cast<void*>(weights.raw_data()));
    dnnl::stream s(cpu_engine());
    dnnl::reorder(plain, packed).execute(s, plain, packed);
    s.wait();
  }
  TANDEM_ASSIGN_OR_RETURN(const int src, b.require(x, Layout::nhwc));
  b.define(out, Layout::nhwc);
  auto k = std::make_unique<DnnlKernel>();
  k->label = label;
  k->threads = kthreads;
  attach_primitive(b, *k, dnnl::deconvolution_forward(pd), pd.scratchpad_desc());
  k->args.push_back({DNNL_ARG_SRC, src, value_md(src_probe), {}});
  k->reads.push_back(src);
  k->args.push_back({DNNL_ARG_WEIGHTS, -1, pd.weights_desc(), packed});
  if (with_bias) {
    dnnl::memory bm(b_md, cpu_engine());
    std::memcpy(bm.get_data_handle(), bias.raw_data(), bias.nbytes());
    k->args.push_back({DNNL_ARG_BIAS, -1, b_md, bm});
  }
  k->args.push_back({DNNL_ARG_DST, out, value_md(dst_probe), {}});
  std::vector<DnnlKernel::Arg> extra;
  if (runtime_scales) extra.push_back(scales);
  if (!src_zero) extra.push_back(src_zp);
  if (!dst_zero) extra.push_back(dst_zp);
  for (const DnnlKernel::Arg& arg : extra) {
    k->args.push_back(arg);
    if (arg.value >= 0) k->reads.push_back(arg.value);
  }
  k->writes = {out};
  b.add_kernel(std::move(k));
  return Status::ok();
}

}  // namespace

std::unique_ptr<OpSpec> make_qdq_conv_transpose() { return std::make_unique<QDeconvSpec>(); }

Tensor deconv_weights_as_conv(const Tensor& w) {
  const int64_t C = w.dim(0), O = w.dim(1), K = w.numel() / (C * O);
  Shape shape = w.shape();
  std::swap(shape[0], shape[1]);
  Tensor t(DataType::float32, shape);
  const float* src = w.data<float>();
  float* dst = t.data<float>();
  for (int64_t c = 0; c < C; ++c)
    for (int64_t o = 0; o < O; ++o) std::memcpy(dst + (o * C + c) * K, src + (c * O + o) * K, K * sizeof(float));
  return t;
}

}  // namespace tandem::cpu
