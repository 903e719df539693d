// qconv.cpp: QLinearConv and ConvInteger on oneDNN's int8 convolution (1-D to 3-D, groups,
// strides, pads, dilations, auto_pad).
//
// At instance build: the weights (constant, or a small input the instance is keyed by) minus
// their zero points become int8 (int8.h: signed_weights) and are packed in the format oneDNN
// picks. Weights whose differences leave int8 (e.g. uint8 weights with zero point 0 and values
// over 127), or could saturate oneDNN's int16 pair sums on CPUs without VNNI, run on the
// backend's own integer kernel instead (qdirect.cpp: exact, much slower). The source zero point is oneDNN's common source zero point (known, or a
// runtime scalar such as DynamicQuantizeLinear's), the bias an int32 vector added to the int32
// accumulator, and QLinearConv's requantization x_scale * w_scale[m] / y_scale (formed in
// float32, like the reference kernel) oneDNN's output scales fixed at primitive creation, per
// tensor or per output channel (mask 2); y_zero_point is the destination zero point. oneDNN
// rounds the float32 product to nearest even and saturates; the reference multiplies in double,
// so a product within a float32 rounding of a half-integer may differ by one unit.
// 2-D activations are channels-last (nhwc), the layout of oneDNN's int8 kernels; chains of
// quantized convolutions keep it and readers of other layouts get one reorder.
#include <cmath>
#include <cstring>

#include "backends/cpu/int8.h"
#include "backends/cpu/op_family.h"
#include "backends/cpu/requant_chain.h"
#include "graph/window_geometry.h"

namespace tandem::cpu {

namespace {

using dt = dnnl::memory::data_type;

dnnl::memory::dims as_dims(const std::vector<int64_t>& v, int64_t minus = 0) {
  dnnl::memory::dims d;
  for (int64_t x : v) d.push_back(x - minus);
  return d;
}

class QConvSpec final : public OpSpec {
 public:
  bool qlinear = false;  // QLinearConv; otherwise ConvInteger
  size_t node_inputs = 0;  // the node's own inputs (absorbed readers append theirs)
  RequantChain chain;      // QLinearConv: DequantizeLinear -> elementwise -> [QuantizeLinear]
  Status prepare(Builder& b, const Step& step) const override;
  bool absorb(FusionContext& f, Step& self, const Step& reader, int acc_input) override {
    return qlinear && node_inputs > 7 && chain.absorb(f, self.inputs[7], reader, acc_input);
  }
};

// The unfused form of an absorbed chain: `v` (float32, the requantized product before
// rounding) through the chain's program in the elementwise kernel, then, for a quantized
// output, a saturating conversion into `out`.
Status add_chain_fallback(Builder& b, const RequantChain& chain, int v, int out, const std::string& label) {
  const EwProgram prog = chain.fallback_program();
  TANDEM_ASSIGN_OR_RETURN(v, b.require(v, Layout::plain));
  if (!chain.requantized) return add_elementwise(b, prog, v, out, label + " (dequantized chain)");
  const int f = b.add_temp(DataType::float32, b.val(v).shape, b.val(v).layout);
  TANDEM_RETURN_IF_ERROR(add_elementwise(b, prog, v, f, label + " (requantized chain)"));
  b.define(out, b.val(f).layout);
  return add_reorder(b, f, out, label + " (requantized chain)");
}

Status QConvSpec::prepare(Builder& b, const Step& step) const {
  const Node& n = *step.node;
  const std::string label = n.label();
  auto in = [&](size_t i) { return i < node_inputs && i < step.inputs.size() ? step.inputs[i] : -1; };
  const int x = in(0), w = in(qlinear ? 3 : 1);
  const int x_zp = in(2), w_zp = in(qlinear ? 5 : 3);
  const int out = step.outputs[0];
  if (!b.typed(x) || !b.typed(out)) return unsupported(label + " shape unknown");
  // A copy (shares the data): the builder's values move as values are added.
  const Tensor* known_w = b.known(w);
  if (!known_w) return unsupported(label + " weights are not known when the plan is built");
  const Tensor weights = *known_w;
  const Tensor* wt = &weights;
  const Shape xs = b.val(x).shape, ws = wt->shape();
  if (xs.size() < 3 || xs.size() > 5 || ws.size() != xs.size()) return unsupported(label + " only 1-D to 3-D convolutions");
  if (shape_numel(xs) == 0 || shape_numel(ws) == 0) return unsupported(label + " empty tensor");
  const int64_t G = n.attr_int("group", 1), O = ws[0];
  if (G < 1 || ws[1] * G != xs[1] || O % G != 0) return unsupported(label + " channels do not match the groups");

  const Shape in_spatial(xs.begin() + 2, xs.end());
  const std::vector<int64_t> kernel(ws.begin() + 2, ws.end());
  Result<WindowGeometry> win = window_geometry(n, in_spatial, kernel, WindowOptions{});
  if (!win) return unsupported(win.status().message());
  Shape dst = {xs[0], O};
  for (int64_t d : win->out) dst.push_back(d);
  if (b.val(out).shape != dst)
    return unsupported(label + " output shape " + shape_to_string(dst) + " differs from inference " +
                       shape_to_string(b.val(out).shape));

  TANDEM_ASSIGN_OR_RETURN(std::vector<int32_t> wzp, known_zero_points(b, w_zp, O, label + " w_zero_point"));

  Tensor bias;
  if (qlinear && in(8) >= 0) {
    const Tensor* bt = b.known(in(8));
    if (!bt) return unsupported(label + " bias is not known when the plan is built");
    if (bt->dtype() != DataType::int32 || bt->numel() != O) return unsupported(label + " bias must be int32 [O]");
    bias = *bt;
  }

  // Weights oneDNN cannot take exactly, and cases it has no int8 kernel for, run on the
  // backend's own integer kernel.
  auto own_kernel = [&]() -> Status {
    IntegerProduct p;
    p.label = label;
    p.weights = shifted_weights(*wt, wzp, ZeroPointAxis::leading);
    if (bias.defined()) p.bias.assign(bias.data<int32_t>(), bias.data<int32_t>() + O);
    TANDEM_ASSIGN_OR_RETURN(p.src, b.require(x, Layout::plain));
    TANDEM_ASSIGN_OR_RETURN(p.src_zp, read_zero_point(b, x_zp, label + " x zero point", &p.reads));
    if (qlinear) {
      TANDEM_ASSIGN_OR_RETURN(p.scales, add_scale_kernel(b, in(1), in(4), in(6), O, label, &p.scale_count));
      TANDEM_ASSIGN_OR_RETURN(p.dst_zp, read_zero_point(b, in(7), label + " y zero point", &p.reads));
    }
    if (!chain.dequantized) {
      b.define(out, Layout::plain);
      p.out = out;
      return add_integer_conv(b, std::move(p), xs, ws, dst, win->strides, win->dilations, win->pad_begin, G);
    }
    // The absorbed chain: the kernel writes the requantized product unrounded, in float32.
    p.dst_zp = ZeroPoint{};
    p.out = b.add_temp(DataType::float32, dst, Layout::plain);
    const int v = p.out;
    TANDEM_RETURN_IF_ERROR(add_integer_conv(b, std::move(p), xs, ws, dst, win->strides, win->dilations, win->pad_begin, G));
    return add_chain_fallback(b, chain, v, out, label);
  };
  Result<Tensor> int8_weights = signed_weights(*wt, wzp, ZeroPointAxis::leading, label);
  if (!int8_weights) {
    if (verbose()) note(int8_weights.status().message());
    return own_kernel();
  }
  Tensor w8 = std::move(int8_weights).value();

  // Layouts: channels-last for 2-D activations, plain otherwise.
  const bool nhwc = xs.size() == 4;
  int src = x;
  if (nhwc) {
    TANDEM_ASSIGN_OR_RETURN(src, b.require(x, Layout::nhwc));
  } else {
    TANDEM_ASSIGN_OR_RETURN(src, b.require(x, Layout::plain));
  }
  const DataType out_type = b.val(out).dtype;
  IValue dst_probe;
  dst_probe.dtype = out_type;
  dst_probe.shape = dst;
  dst_probe.layout = nhwc ? Layout::nhwc : Layout::plain;
  // An absorbed chain (requant_chain.h) as post-ops; the destination zero point is then the
  // closing QuantizeLinear's.
  dnnl::post_ops chain_ops;
  std::vector<DnnlKernel::Arg> chain_args;
  bool chain_fused = false;
  if (chain.dequantized) {
    const EwProgram prog = chain.program();
    chain_fused = to_post_ops(b, prog, dst, 1, dst_probe.layout, &chain_ops, &chain_args) ==
                  static_cast<int>(prog.ops.size());
    if (!chain_fused) dst_probe.dtype = DataType::float32;
  }

  dnnl::memory::dims wd;
  if (G == 1) wd = {O, ws[1]};
  else wd = {G, O / G, ws[1]};
  for (size_t i = 2; i < ws.size(); ++i) wd.push_back(ws[i]);
  const dnnl::memory::desc w_plain = plain_md(Shape(wd.begin(), wd.end()), dt::s8);

  bool src_zero = true, dst_zero = true;
  TANDEM_ASSIGN_OR_RETURN(DnnlKernel::Arg src_zp, zero_point_arg(b, x_zp, DNNL_ARG_SRC, label + " x", &src_zero));
  DnnlKernel::Arg dst_zp;
  if (qlinear && !chain.dequantized) {
    TANDEM_ASSIGN_OR_RETURN(dst_zp, zero_point_arg(b, in(7), DNNL_ARG_DST, label + " y", &dst_zero));
  } else if (chain_fused && chain.requantized && chain.z_zero_point != 0) {
    dnnl::memory zm(dnnl::memory::desc({1}, dt::s32, dnnl::memory::format_tag::x), cpu_engine());
    std::memcpy(zm.get_data_handle(), &chain.z_zero_point, sizeof(int32_t));
    dst_zp = {DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_DST, -1, zm.get_desc(), zm};
    dst_zero = false;
  }
  dnnl::primitive_attr attr;
  if (chain_fused) attr.set_post_ops(chain_ops);
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  // Requantization: one scale per output channel (dst dim 1), or one for all.
  bool runtime_scales = false;
  DnnlKernel::Arg scales;
  if (qlinear) {
    TANDEM_ASSIGN_OR_RETURN(scales, output_scales(b, in(1), in(4), in(6), O, 1 << 1, label, &attr, &runtime_scales));
  }
  if (!src_zero) attr.set_zero_points(DNNL_ARG_SRC, 0, {DNNL_RUNTIME_S32_VAL});
  if (!dst_zero) attr.set_zero_points(DNNL_ARG_DST, 0, {DNNL_RUNTIME_S32_VAL});

  const auto src_md = value_md(b.val(src)), dst_md = value_md(dst_probe);
  const dnnl::memory::desc w_any(wd, dt::s8, dnnl::memory::format_tag::any);
  const dnnl::memory::desc b_md({O}, dt::s32, dnnl::memory::format_tag::x);
  const auto strides = as_dims(win->strides), dil = as_dims(win->dilations, 1);
  const auto pl = as_dims(win->pad_begin), pr = as_dims(win->pad_end);
  const double work = static_cast<double>(shape_numel(dst)) * static_cast<double>(shape_numel(ws) / O);
  const int kthreads = threads_for(b, work);
  ThreadScope scope(kthreads);
  auto d = bias.defined()
               ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                                 src_md, w_any, b_md, dst_md, strides, dil, pl, pr)
               : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                                 src_md, w_any, dst_md, strides, dil, pl, pr);
  dnnl::convolution_forward::primitive_desc pd;
  try {
    pd = dnnl::convolution_forward::primitive_desc(d, attr, cpu_engine());
  } catch (const dnnl::error& e) {
    if (verbose()) note(label + " oneDNN has no int8 convolution for this case: " + e.what());
    return own_kernel();
  }
  // Without the fused chain: the float32 product, then the chain in the elementwise kernel.
  // Float values outside the quantized kernels are plain (or blocked), never channels-last: a
  // fused chain's float output is reordered.
  const bool float_nhwc = chain_fused && !chain.requantized && dst_probe.layout == Layout::nhwc;
  const int conv_out = (chain.dequantized && !chain_fused) || float_nhwc
                           ? b.add_temp(dst_probe.dtype, dst, dst_probe.layout)
                           : out;
  const std::string impl = pd.impl_info_str();
  if (verbose())
    note(label + " " + shape_to_string(xs) + " -> " + shape_to_string(dst) + ": " + impl + " int8" +
         (runtime_scales ? ", runtime scales" : ""));

  // Pack the int8 weights (the reorder adds the compensation oneDNN's format carries).
  dnnl::memory packed(pd.weights_desc(), cpu_engine());
  {
    dnnl::memory plain(w_plain, cpu_engine(), w8.raw_data());
    dnnl::stream s(cpu_engine());
    dnnl::reorder(plain, packed).execute(s, plain, packed);
    s.wait();
  }

  if (conv_out == out) b.define(out, dst_probe.layout);
  auto k = std::make_unique<DnnlKernel>();
  k->label = label;
  k->threads = kthreads;
  attach_primitive(b, *k, dnnl::convolution_forward(pd), pd.scratchpad_desc());
  k->args.push_back({DNNL_ARG_SRC, src, src_md, {}});
  k->reads.push_back(src);
  k->args.push_back({DNNL_ARG_WEIGHTS, -1, pd.weights_desc(), packed});
  if (bias.defined()) {
    dnnl::memory bm(b_md, cpu_engine());
    std::memcpy(bm.get_data_handle(), bias.raw_data(), bias.nbytes());
    k->args.push_back({DNNL_ARG_BIAS, -1, b_md, bm});
  }
  k->args.push_back({DNNL_ARG_DST, conv_out, dst_md, {}});
  for (const auto& arg : chain_args) {
    k->args.push_back(arg);
    if (arg.value >= 0) k->reads.push_back(arg.value);
  }
  if (runtime_scales) {
    k->args.push_back(scales);
    k->reads.push_back(scales.value);
  }
  for (const DnnlKernel::Arg* zp : {&src_zp, &dst_zp}) {
    if ((zp == &src_zp && src_zero) || (zp == &dst_zp && dst_zero)) continue;
    k->args.push_back(*zp);
    if (zp->value >= 0) k->reads.push_back(zp->value);
  }
  k->writes = {conv_out};
  b.add_kernel(std::move(k));
  if (conv_out == out) return Status::ok();
  if (!chain_fused) return add_chain_fallback(b, chain, conv_out, out, label);
  b.define(out, Layout::plain);
  return add_reorder(b, conv_out, out, label + " (to plain)");
}

Status supports_qconv(const Node& n) {
  if (!read_auto_pad(n)) return unsupported(n.label() + " auto_pad '" + n.attr_string("auto_pad", "NOTSET") + "'");
  const size_t w = n.op_type == "QLinearConv" ? 3 : 1;
  if (n.inputs.size() <= w || n.inputs[0].empty() || n.inputs[w].empty())
    return unsupported(n.label() + " missing input or weight");
  if (n.op_type == "QLinearConv")
    for (size_t i : {1, 2, 4, 6})
      if (n.inputs.size() <= i || n.inputs[i].empty()) return unsupported(n.label() + " missing input " + std::to_string(i));
  return Status::ok();
}

Result<std::unique_ptr<OpSpec>> make_qconv(FusionContext&, const Step& st) {
  auto s = std::make_unique<QConvSpec>();
  s->qlinear = st.node->op_type == "QLinearConv";
  s->node_inputs = st.inputs.size();
  return std::unique_ptr<OpSpec>(std::move(s));
}

}  // namespace

void register_qconv_ops(OpTable& t) {
  t.add("QLinearConv", &supports_qconv, &make_qconv);
  t.add("ConvInteger", &supports_qconv, &make_qconv);
}

}  // namespace tandem::cpu
