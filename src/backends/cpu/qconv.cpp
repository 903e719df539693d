// qconv.cpp: QLinearConv and ConvInteger on oneDNN's int8 convolution (1-D to 3-D, groups,
// strides, pads, dilations, auto_pad).
//
// At instance build: the weights (constant, or a small input the instance is keyed by) minus their
// zero points become int8 (int8.h: signed_weights) and are packed in the format oneDNN picks.
// Weights whose differences leave int8 (e.g. uint8 weights with zero point 0 and values over 127),
// or could saturate oneDNN's int16 pair sums on CPUs without VNNI, run on the backend's own integer
// kernel instead (qdirect.cpp: exact, much slower); few output channels, which oneDNN would pad,
// on its own VNNI kernel (qconv_narrow.h). The source zero point is oneDNN's common source zero
// point (known, or a runtime scalar such as DynamicQuantizeLinear's), the bias an int32 vector
// added to the int32 accumulator, and QLinearConv's requantization x_scale * w_scale[m] / y_scale
// (formed in float32, like the reference kernel) oneDNN's output scales fixed at primitive
// creation, per tensor or per output channel (mask 2); y_zero_point is the destination zero point.
// oneDNN rounds the float32 product to nearest even and saturates; the reference multiplies in
// double, so a product within a float32 rounding of a half-integer may differ by one unit.
// ConvInteger with a float tail (dynamic quantization, or a QDQ Conv whose output stays float)
// takes the tail's per-channel affine head (scale, bias, folded normalization; known, or with
// dynamic quantization's runtime scale) as oneDNN's output scales and float32 bias
// (product_affine.h), so only the ops after it become post-ops. Activations are channels-last
// (nwc, nhwc, ndhwc), the layout of oneDNN's int8 kernels; chains of 2-D quantized convolutions
// keep it and readers of other layouts get one reorder. What the step absorbs at compile is in
// qconv_fusion.cpp (qconv_spec.h); a ConvInteger that absorbed a closing DynamicQuantizeLinear
// runs its primitive on bands of rows with the quantization in the same kernel where its tail
// fuses (qconv_dynamic.h), else the quantization kernel follows the product.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>

#include "backends/cpu/int8.h"
#include "backends/cpu/op_family.h"
#include "backends/cpu/product_affine.h"
#include "backends/cpu/qconv_dynamic.h"
#include "backends/cpu/qconv_narrow.h"
#include "backends/cpu/qconv_spec.h"
#include "backends/cpu/requant_chain.h"
#include "graph/window_geometry.h"

namespace tandem::cpu {

namespace {
using dt = dnnl::memory::data_type;
}  // namespace

Status QConvSpec::prepare(Builder& b, const Step& step) const {
  if (!dynamic) return prepare_product(b, step, step.outputs[0], nullptr);
  // A closing DynamicQuantizeLinear: the product writes the float result and the quantization
  // reads it, in one banded kernel where the product allows (qconv_dynamic.h), else apart.
  bool quantized = false;
  TANDEM_RETURN_IF_ERROR(prepare_product(b, step, float_value, &quantized));
  if (quantized) return Status::ok();
  return add_dynamic_quantize_step(b, float_value, step.outputs, step.originals.back()->label());
}

Status QConvSpec::prepare_product(Builder& b, const Step& step, int out, bool* quantized) const {
  const Node& n = *step.node;
  const std::string label = n.label();
  auto in = [&](size_t i) { return i < node_inputs && i < step.inputs.size() ? step.inputs[i] : -1; };
  const int x = in(0), w = in(qlinear ? 3 : 1);
  const int x_zp = in(2), w_zp = in(qlinear ? 5 : 3);
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

  FloatTail tail = chain.dequantized ? chain.tail()
                  : to_float          ? float_tail(post, requantized, z_scale, z_zero_point)
                                      : FloatTail{};

  // A chain that ends quantized and reads only scalars: the product writes y_q as a
  // QLinearConv, and a byte table maps it to the chain's result (requant_chain.h).
  // A chain that ends in float likewise, through a table of floats that also reorders the
  // channels-last bytes to the layout float readers take. Both routes below use them.
  auto constant = [&](int v) { return b.known(v); };
  uint8_t table[256];
  float float_table[256];
  const bool tabled = qlinear && tail.active && tail.quantized && feature_enabled("QTABLE") &&
                      chain.byte_table(constant, b.val(out).dtype, table);
  const bool float_tabled = qlinear && tail.active && !tail.quantized && xs.size() == 4 &&
                            feature_enabled("QTABLE") && chain.float_table(constant, float_table);

  // Weights oneDNN cannot take exactly, and cases it has no int8 kernel for, run on the
  // backend's own integer kernel.
  auto own_kernel = [&]() -> Status {
    IntegerProduct p;
    p.label = label;
    p.weights = shifted_weights(*wt, wzp, ZeroPointAxis::leading);
    if (bias.defined()) p.bias.assign(bias.data<int32_t>(), bias.data<int32_t>() + O);
    // 2-D: channels-last 8-bit values in and out, which the float32 route reads and writes
    // without reordering (add_integer_conv converts for the direct loops).
    const bool four_d = xs.size() == 4;
    if (four_d && b.val(x).layout == Layout::nhwc) {
      p.src = x;
    } else {
      TANDEM_ASSIGN_OR_RETURN(p.src, b.require(x, Layout::plain));
    }
    TANDEM_ASSIGN_OR_RETURN(p.src_zp, read_zero_point(b, x_zp, label + " x zero point", &p.reads));
    if (qlinear) {
      TANDEM_ASSIGN_OR_RETURN(p.scales, add_scale_kernel(b, in(1), in(4), in(6), O, label, &p.scale_count));
      TANDEM_ASSIGN_OR_RETURN(p.dst_zp, read_zero_point(b, in(7), label + " y zero point", &p.reads));
    }
    // A tabled chain: the product writes y_q as a QLinearConv would and the table maps it (the
    // float tail's elementwise kernel costs several times the product here).
    if (tabled || float_tabled) {
      const int yq = b.add_temp(chain.y_type, dst, four_d ? Layout::nhwc : Layout::plain);
      p.out = yq;
      TANDEM_RETURN_IF_ERROR(add_integer_conv(b, std::move(p), xs, ws, dst, win->strides, win->dilations, win->pad_begin, G));
      if (tabled) return add_byte_map(b, yq, out, table, label + " (byte table)");
      TANDEM_ASSIGN_OR_RETURN(int yq_nhwc, b.require(yq, Layout::nhwc));
      return add_byte_to_float(b, yq_nhwc, out, float_table, label + " (float table)");
    }
    if (!tail.active) {
      b.define(out, four_d && is_8bit(b.val(out).dtype) ? Layout::nhwc : Layout::plain);
      p.out = out;
      return add_integer_conv(b, std::move(p), xs, ws, dst, win->strides, win->dilations, win->pad_begin, G);
    }
    // ConvInteger's Cast and the float ops after it: post-ops of the float32 route, whose
    // product is the exact integer the Cast would give.
    if (!qlinear && xs.size() == 4 && !tail.quantized) {
      FloatTailOps ops;
      if (to_post_ops(b, tail.fused, dst, 1, Layout::blocked, &ops.ops, &ops.args) ==
          static_cast<int>(tail.fused.ops.size())) {
        p.out = out;
        Status fast = add_integer_conv_float(b, p, xs, ws, dst, win->strides, win->dilations, win->pad_begin, G, &ops);
        if (fast.is_ok() || fast.code() != StatusCode::unsupported) return fast;
      }
    }
    // An absorbed tail: the kernel writes v in float32 (QLinearConv: requantized, unrounded).
    p.dst_zp = ZeroPoint{};
    p.out = b.add_temp(DataType::float32, dst, Layout::plain);
    const int v = p.out;
    TANDEM_RETURN_IF_ERROR(add_integer_conv(b, std::move(p), xs, ws, dst, win->strides, win->dilations, win->pad_begin, G));
    return add_tail_unfused(b, tail, v, out, label);
  };
  // Without VNNI, oneDNN's convolutions of a signed 8-bit source halve the weights (its s8 x s8
  // "scale adjustment" of 0.5, which rounds odd weights away) and are not exact: such a source
  // takes the exact routes below. (Its matrix products are exact: their gemm widens first.)
  if (b.val(x).dtype == DataType::int8 && !onednn_has_vnni()) {
    if (verbose()) note(label + " int8 source without VNNI: oneDNN would halve the weights");
    return own_kernel();
  }
  Result<Tensor> int8_weights = signed_weights(*wt, wzp, ZeroPointAxis::leading, label);
  // Weights off int8 by an offset per channel (asymmetric uint8 weights): the product runs on
  // the int8 part and a post-op adds the offsets' share (qconv_offset.cpp). TANDEM_CPU_QOFFSET=0:
  // not.
  std::vector<int32_t> offsets;
  // (QLinearConv: with known scales, whose requantization factors the share is scaled by.)
  const bool known_requantization = !qlinear || (b.known(in(1)) && b.known(in(4)) && b.known(in(6)));
  if (!int8_weights && (qlinear || tail.active) && known_requantization && xs.size() == 4 && G == 1 &&
      feature_enabled_now("QOFFSET")) {
    Result<OffsetWeights> split = offset_weights(*wt, wzp, label);
    if (split) {
      offsets = std::move(split->offsets);
      int8_weights = std::move(split->w8);
    } else if (verbose()) {
      note(split.status().message());
    }
  }
  if (!int8_weights) {
    if (verbose()) note(int8_weights.status().message());
    return own_kernel();
  }
  Tensor w8 = std::move(int8_weights).value();

  // Few output channels, which oneDNN would pad to its 16-lane blocks: the backend's own kernel
  // with pixels across the lanes (qconv_narrow.h), exact like the reference.
  if (qlinear && (!tail.active || tabled || float_tabled) && offsets.empty() &&
      narrow_qconv_fits(xs, ws, dst, win->strides, win->dilations, G, b.val(x).dtype)) {
    const Status made = add_narrow_qlinear_conv(b, NarrowQConvValues{x, in(1), x_zp, in(4), in(6), in(7), out}, w8, bias,
                                                win->pad_begin, xs, ws, dst, tabled ? table : nullptr,
                                                float_tabled ? float_table : nullptr, chain.y_type, label);
    if (made.is_ok() || made.code() != StatusCode::unsupported) return made;
    if (verbose()) note(made.message());
  }
  // ConvInteger's float tail likewise, the tail's per-channel products and sums computed as the
  // separate nodes do (exact), channels-last floats reordered where a reader needs it.
  NarrowFloatTail narrow_tail;
  if (!qlinear && tail.active && !tail.quantized && offsets.empty() &&
      narrow_qconv_fits(xs, ws, dst, win->strides, win->dilations, G, b.val(x).dtype) &&
      narrow_float_tail(b, tail.fused, O, &narrow_tail)) {
    const int into = dynamic || b.readers_take_channels_last_floats(out) ? out : b.add_temp(DataType::float32, dst, Layout::nhwc);
    const Status made = add_narrow_conv_integer(b, x, x_zp, w8, std::move(narrow_tail), win->pad_begin, xs, ws, dst, into, label);
    if (made.is_ok() && into != out) {
      const bool blocked = float_path_blocked();
      b.define(out, blocked ? Layout::blocked : Layout::plain);
      return add_reorder(b, into, out, label + (blocked ? " (to blocked)" : " (to plain)"));
    }
    if (made.is_ok() || made.code() != StatusCode::unsupported) return made;
    if (verbose()) note(made.message());
  }

  // Layouts: channels-last (nwc, nhwc, ndhwc), the only one oneDNN's int8 convolutions have
  // fast kernels for (plain 1-D and 3-D ones run its reference loops, ~1000x slower). 2-D
  // values stay channels-last between quantized convolutions; 1-D and 3-D ones are reordered in
  // and out here, since the other kernels take channels-last values as 4-D only.
  const bool keep_channels_last = xs.size() == 4;
  IValue src_probe = b.val(x);  // the source as the primitive reads it (converted below)
  src_probe.layout = Layout::nhwc;
  const DataType out_type = b.val(out).dtype;
  if (tabled || float_tabled) tail.active = false;
  dnnl::memory::dims wd;
  if (G == 1) wd = {O, ws[1]};
  else wd = {G, O / G, ws[1]};
  for (size_t i = 2; i < ws.size(); ++i) wd.push_back(ws[i]);
  const dnnl::memory::desc w_plain = plain_md(Shape(wd.begin(), wd.end()), dt::s8);

  bool src_zero = true;
  TANDEM_ASSIGN_OR_RETURN(DnnlKernel::Arg src_zp, zero_point_arg(b, x_zp, DNNL_ARG_SRC, label + " x", &src_zero));
  // Zero points keep oneDNN 2.6 off its brgemm convolutions (1x1 ones run twice as long on the
  // older kernels). Without padding, a constant source zero point x_z costs each output
  // channel the constant x_z * sum(w[o]), which the int32 bias takes (the same integers oneDNN
  // would subtract); a constant destination zero point is added by a post-op below.
  const bool unpadded = std::all_of(win->pad_begin.begin(), win->pad_begin.end(), [](int64_t p) { return p == 0; }) &&
                        std::all_of(win->pad_end.begin(), win->pad_end.end(), [](int64_t p) { return p == 0; });
  // (`bias` stays as it is for the own kernel, which the primitive may still fall back to.)
  Tensor dnnl_bias = bias;
  if (!src_zero && src_zp.value < 0 && unpadded) {
    Result<Tensor> folded =
        bias_with_source_zero_point(w8, bias, *static_cast<const int32_t*>(src_zp.memory.get_data_handle()), O);
    if (folded) {
      dnnl_bias = std::move(folded).value();
      src_zero = true;
    }
  }
  std::vector<int32_t> int_bias;
  if (dnnl_bias.defined()) int_bias.assign(dnnl_bias.data<int32_t>(), dnnl_bias.data<int32_t>() + O);

  // ConvInteger's tail opens with a per-channel affine head (the product's scale x_scale *
  // w_scale, known or a runtime value, then often a bias and a folded batch normalization):
  // oneDNN's output scales and float32 bias (product_affine.h), which its kernel applies as it
  // converts the accumulator, cost nothing, where each binary post-op reads a vector per output
  // block (a dynamically quantized 1x1 convolution ran 1.5-2x as long). In case the head keeps
  // oneDNN off its fast kernels on some CPU, the primitive is created with the head first and,
  // where that fails or gives only reference loops, without it. TANDEM_CPU_QAFFINE=0: never.
  ProductAffine head;
  if (tail.active && !qlinear && feature_enabled("QAFFINE"))
    head = leading_product_affine(b, tail.fused, dst, 1, post.ops.size());
  const auto strides = to_dims(win->strides), pl = to_dims(win->pad_begin), pr = to_dims(win->pad_end);
  auto dil = to_dims(win->dilations);
  for (auto& d : dil) --d;  // oneDNN counts the gaps between taps
  const double work = static_cast<double>(shape_numel(dst)) * static_cast<double>(shape_numel(ws) / O);
  const int kthreads = threads_for(b, work);
  ThreadScope scope(kthreads);
  const auto src_md = value_md(src_probe);
  const dnnl::memory::desc w_any(wd, dt::s8, dnnl::memory::format_tag::any);
  // One way to create the primitive. An absorbed tail becomes post-ops (the destination zero
  // point is then the closing QuantizeLinear's); unfused, the product writes v in float32.
  // (QLinearConv's runtime zero point and scales add kernels here; it has no head, so it is
  // attempted once.)
  struct Attempt {
    ProductAffine head;
    dnnl::post_ops tail_ops;
    std::vector<DnnlKernel::Arg> tail_args;
    bool tail_fused = false;
    IValue dst_probe;
    DnnlKernel::Arg dst_zp, scales;
    bool dst_zero = true, runtime_scales = false;
    dnnl::memory::desc b_md;
    bool with_bias = false;
    dnnl::convolution_forward::primitive_desc pd;
    bool created = false;
    int offset_post_op = -1;  // the post-op adding the weight offset's share, or -1
    bool offset_sum = false;  // that post-op is a sum: the share is written into dst first
    bool fold = false, binary_tail = false;  // how it was attempted
  };
  IValue offset_probe;  // the weight offset's share, as that post-op reads it
  offset_probe.dtype = DataType::float32;
  offset_probe.shape = dst;
  offset_probe.layout = Layout::nhwc;
  // `binary_tail` false: no post-op reads an operand (per-channel binary ops, the runtime
  // scale's scalar): such a tail is not fused, and a runtime head is not folded.
  struct Geometry {  // the primitive's source, output shape and padding (a band's, or the whole)
    dnnl::memory::desc src;
    Shape dst;
    dnnl::memory::dims pl, pr;
  };
  const Geometry whole{src_md, dst, pl, pr};
  auto attempt = [&](bool fold, bool binary_tail, Attempt* a, const Geometry& g) -> Status {
    a->fold = fold;
    a->binary_tail = binary_tail;
    a->dst_probe.dtype = tabled || float_tabled ? chain.y_type : out_type;
    a->dst_probe.shape = g.dst;
    a->dst_probe.layout = Layout::nhwc;
    if (fold) a->head = head;
    dnnl::primitive_attr attr;
    if (a->head.ops > 0) set_product_affine(a->head, O, 1 << 1, g.dst.size(), &attr, &a->tail_ops);
    // The offset's share joins the accumulator right after the head (in its units): written
    // into a float32 dst beforehand and added by a sum post-op (no second map to read, and
    // oneDNN keeps its brgemm kernels), else read from a map of its own by a binary post-op.
    auto add_offset_post_op = [&] {
      if (offsets.empty()) return;
      a->offset_post_op = a->tail_ops.len();
      a->offset_sum = a->dst_probe.dtype == DataType::float32;
      if (a->offset_sum) {
        a->tail_ops.append_sum(1.0f);
      } else {
        a->tail_ops.append_binary(dnnl::algorithm::binary_add, value_md(offset_probe));
      }
    };
    add_offset_post_op();
    if (tail.active) {
      EwProgram rest = tail.fused;
      rest.ops.erase(rest.ops.begin(), rest.ops.begin() + static_cast<std::ptrdiff_t>(a->head.ops));
      a->tail_fused = to_post_ops(b, rest, g.dst, 1, a->dst_probe.layout, &a->tail_ops, &a->tail_args) ==
                      static_cast<int>(rest.ops.size());
      if (!binary_tail && !a->tail_args.empty()) a->tail_fused = false;
      // Not all of it fuses: the product writes v in float32 and the whole tail runs after it.
      if (!a->tail_fused) {
        if (a->head.ops > 0) return unsupported(label + " the ops after the affine head do not fuse");
        a->tail_ops = dnnl::post_ops();
        a->tail_args.clear();
        a->dst_probe.dtype = DataType::float32;
        add_offset_post_op();
      }
    }
    if (qlinear && !tail.active) {
      TANDEM_ASSIGN_OR_RETURN(a->dst_zp, zero_point_arg(b, in(7), DNNL_ARG_DST, label + " y", &a->dst_zero));
    } else if (a->tail_fused && tail.quantized && tail.zero_point != 0) {
      dnnl::memory zm(dnnl::memory::desc({1}, dt::s32, dnnl::memory::format_tag::x), cpu_engine());
      std::memcpy(zm.get_data_handle(), &tail.zero_point, sizeof(int32_t));
      a->dst_zp = {DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_DST, -1, zm.get_desc(), zm};
      a->dst_zero = false;
    }
    if (a->tail_fused) {
      attr.set_post_ops(a->tail_ops);
    } else if (!tail.active && !a->dst_zero) {
      // oneDNN adds the destination zero point before it rounds: rounding first (a cheap
      // post-op) keeps a value within a float32 rounding of a half-integer from landing one
      // unit away from the reference's round(v) + zero_point. A constant zero point is then
      // added by a second post-op (exact on the rounded value) rather than as oneDNN's.
      dnnl::post_ops round = a->tail_ops;  // (empty, or the weight offset's share)
      round.append_eltwise(1.0f, dnnl::algorithm::eltwise_round, 0.0f, 0.0f);
      if (a->dst_zp.value < 0) {
        const int32_t zy = *static_cast<const int32_t*>(a->dst_zp.memory.get_data_handle());
        round.append_eltwise(1.0f, dnnl::algorithm::eltwise_linear, 1.0f, static_cast<float>(zy));
        a->dst_zero = true;
      }
      attr.set_post_ops(round);
    } else if (a->tail_ops.len() > 0) {
      attr.set_post_ops(a->tail_ops);  // the weight offset's share alone
    }
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    // Requantization: one scale per output channel (dst dim 1), or one for all.
    if (qlinear) {
      TANDEM_ASSIGN_OR_RETURN(a->scales,
                              output_scales(b, in(1), in(4), in(6), O, 1 << 1, label, &attr, &a->runtime_scales));
    }
    if (!src_zero) attr.set_zero_points(DNNL_ARG_SRC, 0, {DNNL_RUNTIME_S32_VAL});
    if (!a->dst_zero) attr.set_zero_points(DNNL_ARG_DST, 0, {DNNL_RUNTIME_S32_VAL});
    const bool float_bias = a->head.has_shift();
    a->with_bias = float_bias || dnnl_bias.defined();
    a->b_md = dnnl::memory::desc({O}, float_bias ? dt::f32 : dt::s32, dnnl::memory::format_tag::x);
    const auto dst_md = value_md(a->dst_probe);
    auto d = a->with_bias ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference,
                                                           dnnl::algorithm::convolution_direct, g.src, w_any, a->b_md,
                                                           dst_md, strides, dil, g.pl, g.pr)
                          : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference,
                                                           dnnl::algorithm::convolution_direct, g.src, w_any, dst_md,
                                                           strides, dil, g.pl, g.pr);
    try {
      a->pd = dnnl::convolution_forward::primitive_desc(d, attr, cpu_engine());
    } catch (const dnnl::error& e) {
      return unsupported(label + " oneDNN has no int8 convolution for this case: " + e.what());
    }
    return Status::ok();
  };
  Attempt chosen;
  auto choose = [&](bool binary_tail) {
    chosen = Attempt{};
    for (bool fold : {true, false}) {
      if (fold && (head.ops == 0 || (!binary_tail && head.runtime >= 0))) continue;
      Attempt a;
      const Status made = attempt(fold, binary_tail, &a, whole);
      if (!made.is_ok()) {
        if (verbose()) note(made.message());
        continue;
      }
      chosen = std::move(a);
      chosen.created = true;
      if (std::string(chosen.pd.impl_info_str()).rfind("ref", 0) != 0) break;
    }
  };
  choose(/*binary_tail=*/true);
  // oneDNN 2.6's gemm-based int8 convolution reads the operands of binary post-ops at the wrong
  // channels in some grouped convolutions (outputs off by the size of the values with groups of
  // 17 to 25 odd output channels, right with 9 to 15 or even ones; fixed in later oneDNN): in
  // any grouped one there the tail runs after the product instead.
  // Its AVX2 and SSE4.1 kernel (jit_uni_int8) applies binary post-ops wrongly to depthwise
  // convolutions whose channel count is not a multiple of its vector (20, 30 or 60 channels
  // were off by the size of the values on AVX2, 24 or 64 right; the AVX-512 kernels are right):
  // there no post-op reads an operand.
  const bool binary_post_ops = !chosen.tail_args.empty() || (chosen.head.ops > 0 && chosen.head.runtime >= 0);
  const std::string first_impl = chosen.created ? chosen.pd.impl_info_str() : "";
  const bool depthwise = G > 1 && G == O && ws[1] == 1;
  if (chosen.created && G > 1 && !chosen.tail_args.empty() && first_impl.find("gemm") != std::string::npos) {
    if (verbose()) note(label + " grouped gemm convolution: the tail's binary post-ops run unfused");
    choose(/*binary_tail=*/false);
  } else if (chosen.created && depthwise && O % 8 != 0 && binary_post_ops && first_impl.rfind("jit_uni_int8", 0) == 0) {
    if (verbose()) note(label + " depthwise " + first_impl + " convolution of " + std::to_string(O) +
                        " channels: no binary post-ops");
    choose(/*binary_tail=*/false);
  }
  if (!chosen.created) return own_kernel();
  const dnnl::convolution_forward::primitive_desc pd = chosen.pd;
  IValue& dst_probe = chosen.dst_probe;
  const bool tail_fused = chosen.tail_fused;
  const std::string impl = pd.impl_info_str();
  // oneDNN's reference loops (odd channel counts per group, 3-D depthwise) are slower than the
  // own kernel, which runs such products as float32 convolutions where that is exact.
  if (impl.rfind("ref", 0) == 0) {
    if (verbose()) note(label + " oneDNN has only its reference int8 convolution for this case");
    return own_kernel();
  }
  // A runtime head's scalar and bias are computed before the product runs.
  std::vector<DnnlKernel::Arg> head_args;
  if (chosen.head.ops > 0)
    TANDEM_RETURN_IF_ERROR(add_product_affine(b, chosen.head, int_bias, O, dst.size(), label, &head_args));
  const bool head_bias = std::any_of(head_args.begin(), head_args.end(),
                                     [](const DnnlKernel::Arg& a) { return a.arg == DNNL_ARG_BIAS; });
  TANDEM_ASSIGN_OR_RETURN(const int src, b.require(x, Layout::nhwc));
  // Without the fused tail: the float32 product, then the tail in the elementwise kernel.
  // Float values outside the quantized kernels are plain (or blocked), never channels-last: a
  // fused tail's float output is reordered.
  // (Unless every reader takes channels-last floats as they lie: DynamicQuantizeLinear, a
  // quantized Concat, elementwise programs, global pooling.)
  // (And a dynamic step's float result, which its DynamicQuantizeLinear reads as it lies.)
  const bool float_nhwc = tail_fused && !tail.quantized && dst_probe.layout == Layout::nhwc && !dynamic &&
                          !b.readers_take_channels_last_floats(out);
  const int conv_out = !keep_channels_last || (tail.active && !tail_fused) || float_nhwc || tabled || float_tabled
                           ? b.add_temp(dst_probe.dtype, dst, dst_probe.layout)
                           : out;
  if (verbose())
    note(label + " " + shape_to_string(xs) + " -> " + shape_to_string(dst) + ": " + impl + " int8" +
         (chosen.runtime_scales ? ", runtime scales" : "") + (chosen.head.runtime >= 0 ? ", runtime scale as a post-op" : "") +
         (chosen.head.ops > 0 ? ", " + std::to_string(chosen.head.ops) + " tail ops as scales and bias" : "") +
         (!offsets.empty() ? ", weight offsets " + describe_offsets(offsets) +
                                 (chosen.offset_sum ? " (a sum post-op)" : " (a binary post-op)")
                           : ""));

  // The int8 weights packed in the format a primitive takes (the reorder adds the compensation
  // oneDNN's format carries), and the kernel running it on source `s_md` into `into`.
  // (Band primitives that take the same weight format share one packed copy.)
  std::vector<dnnl::memory> packs;
  auto make_kernel = [&](const Attempt& at, const dnnl::memory::desc& s_md, int into, const DnnlKernel::Arg& share) {
    auto same = std::find_if(packs.begin(), packs.end(),
                             [&](const dnnl::memory& m) { return m.get_desc() == at.pd.weights_desc(); });
    if (same == packs.end()) {
      dnnl::memory fresh(at.pd.weights_desc(), cpu_engine());
      dnnl::memory plain(w_plain, cpu_engine(), w8.raw_data());
      dnnl::stream s(cpu_engine());
      dnnl::reorder(plain, fresh).execute(s, plain, fresh);
      s.wait();
      packs.push_back(fresh);
      same = packs.end() - 1;
    }
    const dnnl::memory packed = *same;
    auto k = std::make_unique<DnnlKernel>();
    k->label = label;
    k->threads = kthreads;
    attach_primitive(b, *k, dnnl::convolution_forward(at.pd), at.pd.scratchpad_desc());
    k->args.push_back({DNNL_ARG_SRC, src, s_md, {}});
    k->reads.push_back(src);
    k->args.push_back({DNNL_ARG_WEIGHTS, -1, at.pd.weights_desc(), packed});
    if (!head_bias && dnnl_bias.defined()) {
      dnnl::memory bm(at.b_md, cpu_engine());
      std::memcpy(bm.get_data_handle(), dnnl_bias.raw_data(), dnnl_bias.nbytes());
      k->args.push_back({DNNL_ARG_BIAS, -1, at.b_md, bm});
    }
    k->args.push_back({DNNL_ARG_DST, into, value_md(at.dst_probe), {}});
    std::vector<DnnlKernel::Arg> extra = head_args;
    extra.insert(extra.end(), at.tail_args.begin(), at.tail_args.end());
    if (at.runtime_scales) extra.push_back(at.scales);
    if (share.value >= 0) extra.push_back(share);
    if (!src_zero) extra.push_back(src_zp);
    if (!at.dst_zero) extra.push_back(at.dst_zp);
    for (const DnnlKernel::Arg& arg : extra) {
      k->args.push_back(arg);
      if (arg.value >= 0) k->reads.push_back(arg.value);
    }
    k->writes = {into};
    if (at.offset_sum) k->reads.push_back(into);
    return k;
  };
  DnnlKernel::Arg offset_share{-1, -1, value_md(offset_probe), {}};

  // A closing DynamicQuantizeLinear whose data only integer convolutions read, after a fused
  // tail of per-channel operands: the product in bands of rows, each band's range taken as it
  // is written, then quantized (qconv_dynamic.h).
  const bool per_channel_tail = std::all_of(chosen.tail_args.begin(), chosen.tail_args.end(), [](const DnnlKernel::Arg& a) {
    const auto d = a.md.dims();
    return std::all_of(d.begin() + std::min<size_t>(2, d.size()), d.end(), [](int64_t v) { return v == 1; });
  });
  // (Kept bands gain only from the threads' own bands: on one thread they are the separate
  // kernels in one.)
  const int y = quantized ? step.outputs[0] : -1;
  const bool recompute = conv_band_recompute(shape_numel(ws) / O, G, shape_numel(dst) * 4);
  if (quantized && keep_channels_last && conv_out == out && tail_fused && offsets.empty() && chosen.dst_zero &&
      per_channel_tail && (recompute || b.threads() > 1) && (y < 0 || only_read_by(b, y, {"ConvInteger", "QLinearConv"}))) {
    ConvBandPlan plan = plan_conv_bands(xs, dst, 1, kernel[0], win->strides[0], win->dilations[0], win->pad_begin[0],
                                        recompute, b.threads());
    // (Recomputed bands go to a buffer per thread; the float result is never written.)
    const int floats = recompute && !plan.kinds.empty()
                           ? b.add_temp(DataType::float32, {plan.threads * plan.band_floats}, Layout::plain)
                           : out;
    std::vector<std::unique_ptr<DnnlKernel>> kinds;
    ThreadScope one(1);  // each band runs on one thread
    for (const ConvBandKind& kind : plan.kinds) {
      IValue band_src = src_probe;
      band_src.shape = {1, xs[1], kind.in_rows, xs[3]};
      const Geometry g{value_md(band_src), {1, O, kind.rows, dst[3]}, {kind.pad_top, pl[1]}, {kind.pad_bottom, pr[1]}};
      Attempt a;
      if (!attempt(chosen.fold, chosen.binary_tail, &a, g).is_ok() || !a.tail_fused ||
          std::string(a.pd.impl_info_str()).rfind("ref", 0) == 0)
        break;
      kinds.push_back(make_kernel(a, g.src, floats, offset_share));
    }
    if (!kinds.empty() && kinds.size() == plan.kinds.size()) {
      *quantized = true;
      return add_banded_dynamic_quantize(b, std::move(kinds), std::move(plan), floats, dst, step.outputs, label);
    }
  }

  if (conv_out == out) b.define(out, dst_probe.layout);
  if (!offsets.empty()) {
    OffsetCorrection oc;
    oc.src = src;
    oc.offsets = std::move(offsets);
    oc.kernel = kernel;
    oc.strides = win->strides;
    oc.dilations = win->dilations;
    oc.pad_begin = win->pad_begin;
    const int into = chosen.offset_sum ? conv_out : -1;
    TANDEM_ASSIGN_OR_RETURN(offset_share.value,
                            add_offset_share(b, std::move(oc), x_zp, chosen.head, qlinear ? in(1) : -1, in(4), in(6),
                                             xs, dst, into, label));
    offset_share.arg = DNNL_ARG_ATTR_MULTIPLE_POST_OP(chosen.offset_post_op) | DNNL_ARG_SRC_1;
    if (chosen.offset_sum) offset_share.value = -1;  // dst itself holds it
  }
  std::unique_ptr<DnnlKernel> k = make_kernel(chosen, src_md, conv_out, offset_share);
  b.add_kernel(std::move(k));
  if (conv_out == out) return Status::ok();
  if (tabled) {
    // (The table's output takes its input's layout: plain outside 2-D.)
    TANDEM_ASSIGN_OR_RETURN(int yq, b.require(conv_out, keep_channels_last ? Layout::nhwc : Layout::plain));
    return add_byte_map(b, yq, out, table, label + " (byte table)");
  }
  if (float_tabled) return add_byte_to_float(b, conv_out, out, float_table, label + " (float table)");
  if (tail.active && !tail_fused) return add_tail_unfused(b, tail, conv_out, out, label);
  // A 2-D float output goes to the blocked layout where the float path has it (its
  // convolutions, pooling, Resize and elementwise kernels take it; from channels-last it is a
  // cheaper reorder than to plain), else plain.
  const bool blocked = keep_channels_last && dst_probe.dtype == DataType::float32 && float_path_blocked();
  b.define(out, blocked ? Layout::blocked : Layout::plain);
  return add_reorder(b, conv_out, out, label + (blocked ? " (to blocked)" : " (to plain)"));
}

}  // namespace tandem::cpu
