// conv.cpp: Conv and ConvTranspose on oneDNN (1-D, 2-D and 3-D; groups, depthwise, strides,
// pads, dilations, auto_pad; ConvTranspose output_padding/output_shape).
//
// Compile time (conv_fusion.cpp): constant weights are copied once and BatchNormalization /
// per-channel Mul, Add, Sub, Div that follow the op (before any nonlinearity) are folded into
// them and the bias. Later elementwise ops (activations, scalar affine ops, per-channel
// constants, a residual tensor of the same shape) become oneDNN post-ops where possible; the
// rest runs in the elementwise program kernel right after.
// Instance time: the primitive is created for the concrete shapes with oneDNN choosing the
// weight format; packed weights are cached per format and shared by all instances. 2-D
// activations use the blocked layout (nChw16c on the AVX-512 path, nChw8c on the AVX2 one: the
// layouts of oneDNN's direct convolutions) when they have 8 or more channels; 1-D and 3-D ones
// compute on channels-last values (nwc, ndhwc), converted within the step unless the producer or
// the readers take them so (OpSpec::reads_channels_last_floats). A ConvTranspose
// whose patches do not overlap runs the backend's own kernel (deconv_patch.h).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <mutex>

#include "backends/cpu/bf16_choice.h"
#include "backends/cpu/cast.h"
#include "backends/cpu/conv_geometry.h"
#include "backends/cpu/conv_spec.h"
#include "backends/cpu/conv_winograd.h"
#include "backends/cpu/deconv_patch.h"
#include "backends/cpu/op_family.h"
#include "backends/cpu/resize.h"
#include "graph/window_geometry.h"

namespace tandem::cpu {

namespace {

using dt = dnnl::memory::data_type;

// Winograd is kept when its time <= kMinWinogradGain x the direct kernel's, or
// kMinWinogradGainApart x when its post-ops must run in a pass of their own.
constexpr double kMinWinogradGain = 0.9;
constexpr double kMinWinogradGainApart = 0.75;

// TANDEM_CPU_WINOGRAD=always, read at each compile.
bool winograd_always() {
  const char* e = std::getenv("TANDEM_CPU_WINOGRAD");
  return e && std::string(e) == "always";
}

dnnl::memory::dims dnnl_dims(const std::vector<int64_t>& v, int64_t minus = 0) {
  dnnl::memory::dims d;
  for (int64_t x : v) d.push_back(x - minus);
  return d;
}

// precision=bf16 keeps a convolution on bfloat16 operands only where that is faster on this
// machine (bf16_choice.h). `make_pd(ops, wany)` builds the primitive in bf16 while `*bf16` is
// true and in float32 otherwise; both forms are timed without post-ops, the bf16 one with the
// narrowing of its source (unless another reader already narrows it) and, on the nhwc route,
// the reorder back. A form oneDNN lacks, or runs on its reference loops, is left to the
// build loop's fallbacks (*bf16 stays true), never timed.
template <typename MakePd>
void choose_bf16(Builder& b, int x, Layout src_layout, Layout bf16_layout, const IValue& dst_probe, bool dst_bf16,
                 const std::string& key, bool wany, const MakePd& make_pd, bool* bf16) {
  auto reference = [](const auto& made) { return std::get<3>(made).rfind("ref", 0) == 0; };
  try {
    *bf16 = true;
    const auto as_bf16 = make_pd(dnnl::post_ops(), wany);
    *bf16 = false;
    const auto as_fp32 = make_pd(dnnl::post_ops(), wany);
    *bf16 = true;
    if (reference(as_bf16) || reference(as_fp32)) return;
    // A float32 value -> its bf16 twin, as the project's kernel or a oneDNN reorder makes it.
    auto narrowing = [](const IValue& from, Layout to_layout, std::vector<dnnl::primitive>* prims, double* ms) {
      IValue to = from;
      to.dtype = DataType::bfloat16;
      to.layout = to_layout;
      if (narrows_to_bf16_natively(from, to_layout))
        *ms += time_bf16_narrowing_ms(from);
      else
        prims->emplace_back(
            dnnl::reorder(dnnl::reorder::primitive_desc(cpu_engine(), value_md(from), cpu_engine(), value_md(to))));
    };
    Bf16Extras extra;
    IValue from = b.val(x);
    from.dtype = DataType::float32;
    from.layout = src_layout;
    if (src_layout != b.val(x).layout || !b.has_bf16(x, bf16_layout)) narrowing(from, bf16_layout, &extra.bf16, &extra.bf16_ms);
    if (b.val(x).handed_off)  // held in bf16: the float32 form reads a widened copy
      extra.fp32.emplace_back(dnnl::reorder(
          dnnl::reorder::primitive_desc(cpu_engine(), value_md(b.val(x)), cpu_engine(), value_md(from))));
    if (dst_bf16)  // the bf16 form hands its result off; in float32 its readers narrow it
      narrowing(dst_probe, dst_probe.layout, &extra.fp32, &extra.fp32_ms);
    if (bf16_layout != dst_probe.layout) {
      IValue wide = dst_probe;
      wide.layout = bf16_layout;
      extra.bf16.emplace_back(
          dnnl::reorder(dnnl::reorder::primitive_desc(cpu_engine(), value_md(wide), cpu_engine(), value_md(dst_probe))));
    }
    *bf16 = bf16_pays_off(key, std::get<0>(as_bf16), std::get<0>(as_fp32), extra);
  } catch (const dnnl::error&) {
    *bf16 = true;
  }
}

}  // namespace

dnnl::memory ConvSpec::packed(const dnnl::memory::desc& md, const dnnl::memory::desc& src_md) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [d, m] : packed_)
    if (d == md) return m;
  dnnl::memory dst(md, cpu_engine());
  dnnl::memory src(src_md, cpu_engine(), const_cast<void*>(wc.raw_data()));
  dnnl::stream s(cpu_engine());
  dnnl::reorder(src, dst).execute(s, src, dst);
  s.wait();
  packed_.emplace_back(md, dst);
  return dst;
}

Status ConvSpec::prepare(Builder& b, const Step& step) const {
  const std::string label = step.node->label();
  std::vector<int> all_internal = internal;
  if (next) all_internal.insert(all_internal.end(), next->internal.begin(), next->internal.end());
  if (!all_float32(b, step, all_internal)) return unsupported(label + " not float32");
  // The convolution itself: absorbed Resizes come before it in the step's nodes.
  const Node& n = *step.originals[resized.size()];
  const IValue& xv = b.val(x);
  if (!b.typed(x)) return unsupported(label + " input shape unknown");
  const Shape xs = xv.shape;
  if (xs.size() < 3 || xs.size() > 5) return unsupported(label + " only 1-D to 3-D convolutions");
  Shape ws;
  if (wc.defined()) ws = wc.shape();
  else if (b.typed(w)) ws = b.val(w).shape;
  else return unsupported(label + " weight shape unknown");
  if (ws.size() != xs.size()) return unsupported(label + " weight rank differs from input rank");
  if (shape_numel(xs) == 0 || shape_numel(ws) == 0) return unsupported(label + " empty tensor");
  const int64_t G = group;
  Geometry geo;
  if (!transposed) {
    if (ws[1] * G != xs[1] || ws[0] % G != 0) return unsupported(label + " channels do not match the groups");
    TANDEM_RETURN_IF_ERROR(conv_geometry(n, xs, ws, &geo));
  } else {
    if (ws[0] != xs[1] || xs[1] % G != 0) return unsupported(label + " channels do not match the groups");
    TANDEM_RETURN_IF_ERROR(deconv_geometry(n, xs, ws, G, &geo));
  }
  const Shape dst = geo.dst;
  const int64_t O = dst[1];
  // The op's own output must be what shape inference says.
  int head_out = b.graph().find(n.outputs[0]);
  if (head_out >= 0 && b.typed(head_out) && b.val(head_out).shape != dst)
    return unsupported(label + " output shape " + shape_to_string(dst) + " differs from inference " +
                       shape_to_string(b.val(head_out).shape));
  const int out = step.outputs[0];
  if (!b.typed(out)) return unsupported(label + " output shape unknown");

  // Layouts. The blocked layout is that of oneDNN's direct convolutions on this ISA path
  // (channel_block(): nChw16c for AVX-512, nChw8c for AVX2); on plain activations oneDNN takes
  // its gemm convolution, several times slower. The baseline path stays plain: oneDNN's SSE4.1
  // 1x1 kernels refuse channel counts that are not multiples of 8 and would fall to its
  // reference convolution.
  const bool two_d = xs.size() == 4 && float_path_blocked();
  const Layout x_layout = xv.layout;
  Layout src_layout = two_d && x_layout == Layout::plain && xs[1] >= 8 ? Layout::blocked : x_layout;
  // Blocked output for every 2-D convolution: oneDNN's fast kernels want it even for few
  // channels (the reorder to plain, when a plain reader needs one, is cheap).
  Layout dst_layout = two_d ? Layout::blocked : Layout::plain;
  IValue dst_probe;
  dst_probe.dtype = DataType::float32;
  dst_probe.shape = dst;
  dst_probe.layout = dst_layout;

  // ConvTranspose whose patches do not overlap: the backend's own kernel, alone or with the
  // patch ConvTranspose that reads it.
  // With precision bf16 it computes on bf16 products where patch_computes_bf16() allows, and
  // reads a source handed off in bfloat16 as it lies (reads_bf16_source).
  const PatchStage first{O, ws[2], &wc, &bc, &post};
  const bool patch_bf16 =
      b.precision() == Precision::bf16 &&
      patch_computes_bf16(O, ws[2], next ? next->out_channels : 0, next && next->wc.defined() ? next->wc.dim(2) : 0);
  auto patch_source = [&]() -> Result<int> {
    if (xv.handed_off && patch_bf16 && x_layout == Layout::blocked) return x;
    return b.require(x, patch_source_layout(x_layout));
  };
  if (next) {
    const int64_t k2 = next->wc.dim(2);
    const Shape dst2 = {dst[0], next->out_channels, dst[2] * k2, dst[3] * k2};
    if (!(two_d && G == 1 && patch_geometry(xs, ws, geo) && b.val(out).shape == dst2))
      return unsupported(label + " chained ConvTranspose: input or output shape differs from the patch geometry");
    const PatchStage second{next->out_channels, k2, &next->wc, &next->bc, &next->post};
    TANDEM_ASSIGN_OR_RETURN(int src, patch_source());
    return add_patch_deconv(b, src, out, xs, first, &second, label, patch_bf16);
  }
  if (transposed && two_d && wc.defined() && G == 1 && ew_pointwise(post) && b.val(out).shape == dst &&
      patch_geometry(xs, ws, geo)) {
    TANDEM_ASSIGN_OR_RETURN(int src, patch_source());
    return add_patch_deconv(b, src, out, xs, first, nullptr, label, patch_bf16);
  }

  // precision=bf16: 2-D convolutions with constant weights and enough arithmetic per element
  // moved run on bfloat16 operands: the source is narrowed to bf16 (one conversion per value,
  // shared by its readers), the packed weights are bf16, and accumulation, bias and post-ops
  // are float32. With AMX tiles that is oneDNN's brgemm convolution, which wants channels-last:
  // the source is narrowed into nhwc and the float32 nhwc result reordered into the layout the
  // rest of the graph uses. Without AMX (AVX512_BF16 dot products only) oneDNN's direct bf16
  // kernel reads and writes the graph's own blocked layout, which saves both reorders. Below
  // kMinBf16Intensity multiply-adds per element read or written, the two conversions cost more
  // than bf16 saves, and the convolution stays float32 (measured on PP-OCRv4 det: 1x1
  // convolutions of 48 channels lose, 3x3 of 96 and 1x1 of 192 gain several times).
  constexpr double kMinBf16Intensity = 64;
  const double macs_per_out = static_cast<double>(shape_numel(ws)) / static_cast<double>(ws[0]);
  const double moved = static_cast<double>(shape_numel(xs) + shape_numel(dst));
  const double intensity = static_cast<double>(shape_numel(dst)) * macs_per_out / moved;
  constexpr double kMinBf16Macs = 2e6;  // smaller ones (squeeze-excite 1x1 on 1x1) gain nothing
  const double macs = static_cast<double>(shape_numel(dst)) * macs_per_out;
  //
  // bf16 hand-off: where every reader of the result is such a convolution too
  // (reads_bf16_source), the bf16 form writes its result in bfloat16 and the readers compute on
  // it as it lies: no float32 result, no narrowing, half the bytes between the two. Memory-bound
  // convolutions (depthwise, narrow 1x1) below the intensity rule gain from that too, so a
  // convolution that reads a handed-off source or could hand its result off is a candidate
  // whatever its intensity; the timing weighs the widening or narrowing the float32 form would
  // need instead. On the nhwc route (AMX) results go back through a reorder and are not handed
  // off. TANDEM_CPU_BF16_HANDOFF=0 turns it off.
  const bool bf16_able = b.precision() == Precision::bf16 && wc.defined() && two_d && !transposed;
  const bool x_handed_off = xv.handed_off;
  const bool may_hand_off = bf16_able && b.may_hand_off_bf16() && b.readers_take_bf16(out) && b.val(out).shape == dst;
  bool bf16 = bf16_able && ((intensity >= kMinBf16Intensity && macs >= kMinBf16Macs) || x_handed_off || may_hand_off);
  const Layout bf16_layout = dst_layout == Layout::blocked && src_layout == Layout::blocked && !has_amx_tiles() &&
                                     feature_enabled("BF16_BLOCKED")
                                 ? Layout::blocked
                                 : Layout::nhwc;
  const bool bf16_reorders = bf16_layout != dst_layout;  // the result goes back through a reorder
  bool dst_bf16 = may_hand_off && !bf16_reorders;        // the bf16 form writes bfloat16 (hand-off)
  // Float32 on channels-last activations, the result reordered into the blocked layout: for
  // grouped convolutions whose channels per group oneDNN's blocked kernels do not take (below).
  bool nhwc_route = false;
  // 1-D and 3-D convolutions and ConvTransposes: oneDNN's direct or brgemm kernels on
  // channels-last activations (nwc, ndhwc), the source reordered in and the result out within
  // the step unless they already are or stay so; on plain activations oneDNN has only its gemm
  // convolution (im2col), two to seven times slower (docs/cpu-backend.md). A layer of few
  // multiply-adds per output (a speech encoder's first, over one channel) costs less than the
  // reorders and stays plain. TANDEM_CPU_CHANNELS_LAST_1D3D=0 keeps them all plain.
  constexpr double kMinChannelsLastMacs = 16;
  const double macs_per_dst = static_cast<double>(shape_numel(transposed ? xs : dst)) *
                              static_cast<double>(shape_numel(ws) / ws[0]) / static_cast<double>(shape_numel(dst));
  if (!two_d && float_path_blocked() && feature_enabled_now("CHANNELS_LAST_1D3D") &&
      (x_layout == Layout::nhwc || macs_per_dst >= kMinChannelsLastMacs || b.readers_take_channels_last_floats(out))) {
    nhwc_route = true;
    src_layout = Layout::nhwc;
  }
  // On that route a residual of the result's shape joins the post-ops channels-last (converted
  // here unless it already is: the previous layer's result on the same route).
  EwProgram channels_last_post;
  if (nhwc_route && !two_d) {
    channels_last_post = post;
    for (int& v : channels_last_post.operands)
      if (v >= 0 && !b.known(v) && b.typed(v) && b.val(v).dtype == DataType::float32 && b.val(v).shape == dst &&
          b.val(v).layout == Layout::plain && !b.val(v).handed_off) {
        TANDEM_ASSIGN_OR_RETURN(v, b.require(v, Layout::nhwc));
      }
  }
  const EwProgram& post_program = nhwc_route && !two_d ? channels_last_post : post;
  // Upsampled post-op operands (absorbed nearest Resizes): the elementwise kernel after the
  // product reads their sources; oneDNN's post-ops take only the ops before the first of them.
  std::vector<EwUpsampled> upsampled;
  for (const Resized& r : resized) {
    TANDEM_ASSIGN_OR_RETURN(NearestResize t, nearest_resize(b, *r.node, r.inputs, r.value));
    upsampled.push_back(EwUpsampled{r.value, r.inputs[0], std::move(t.rows), std::move(t.cols), {}});
  }
  EwProgram post_head = post_program;
  for (size_t i = 0; i < post_head.ops.size() && !upsampled.empty(); ++i) {
    const int operand = post_head.ops[i].operand;
    if (operand < 0) continue;
    const int v = post_head.operands[static_cast<size_t>(operand)];
    if (std::any_of(upsampled.begin(), upsampled.end(), [&](const EwUpsampled& u) { return u.value == v; })) {
      post_head.ops.resize(i);
      break;
    }
  }

  // Weights as oneDNN sees them, over the ONNX layout.
  dnnl::memory::dims wd;
  if (G == 1) wd = {transposed ? O : ws[0], transposed ? ws[0] : ws[1]};
  else wd = {G, transposed ? ws[1] : ws[0] / G, transposed ? ws[0] / G : ws[1]};
  for (size_t i = 2; i < ws.size(); ++i) wd.push_back(ws[i]);
  dnnl::memory::desc wsrc_md;
  if (!transposed) {
    wsrc_md = plain_md(Shape(wd.begin(), wd.end()));
  } else {
    int64_t k = 1;
    for (size_t i = 2; i < ws.size(); ++i) k *= ws[i];
    const int64_t Og = ws[1], Cg = ws[0] / G;
    dnnl::memory::dims st;
    if (G == 1) st = {k, Og * k};
    else st = {Cg * Og * k, k, Og * k};
    std::vector<int64_t> sp;
    int64_t s1 = 1;
    for (size_t i = ws.size(); i-- > 2;) {
      sp.insert(sp.begin(), s1);
      s1 *= ws[i];
    }
    for (int64_t v : sp) st.push_back(v);
    wsrc_md = dnnl::memory::desc(wd, dt::f32, st);
  }

  bool winograd = false;  // oneDNN's Winograd convolution instead of its direct one (below)
  auto make_pd = [&](const dnnl::post_ops& ops, bool wany) {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    attr.set_post_ops(ops);
    IValue src_probe = b.val(x), out_probe = dst_probe;
    src_probe.dtype = DataType::float32;
    src_probe.layout = src_layout;
    if (nhwc_route) out_probe.layout = Layout::nhwc;
    if (bf16) {
      src_probe.dtype = DataType::bfloat16;
      src_probe.layout = out_probe.layout = bf16_layout;
      if (dst_bf16) out_probe.dtype = DataType::bfloat16;
    }
    auto smd = value_md(src_probe);
    auto dmd = value_md(out_probe);
    dnnl::memory::desc wmd =
        wany ? dnnl::memory::desc(wd, bf16 ? dt::bf16 : dt::f32, dnnl::memory::format_tag::any) : wsrc_md;
    const bool has_bias = bc.defined() || bias >= 0;
    dnnl::memory::desc bmd({O}, dt::f32, dnnl::memory::format_tag::x);
    auto strides = dnnl_dims(geo.strides), dil = dnnl_dims(geo.dilations, 1);
    auto pl = dnnl_dims(geo.pads_begin), pr = dnnl_dims(geo.pads_end);
    auto& eng = cpu_engine();
    if (!transposed) {
      const auto alg = winograd ? dnnl::algorithm::convolution_winograd : dnnl::algorithm::convolution_direct;
      auto d = has_bias ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, alg, smd, wmd, bmd, dmd,
                                                           strides, dil, pl, pr)
                        : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, alg, smd, wmd, dmd,
                                                           strides, dil, pl, pr);
      auto pd = dnnl::convolution_forward::primitive_desc(d, attr, eng);
      return std::make_tuple(dnnl::primitive(dnnl::convolution_forward(pd)), pd.weights_desc(), pd.scratchpad_desc(),
                             std::string(pd.impl_info_str()));
    }
    auto d = has_bias ? dnnl::deconvolution_forward::desc(dnnl::prop_kind::forward_inference,
                                                           dnnl::algorithm::deconvolution_direct, smd, wmd, bmd, dmd,
                                                           strides, dil, pl, pr)
                      : dnnl::deconvolution_forward::desc(dnnl::prop_kind::forward_inference,
                                                           dnnl::algorithm::deconvolution_direct, smd, wmd, dmd,
                                                           strides, dil, pl, pr);
    auto pd = dnnl::deconvolution_forward::primitive_desc(d, attr, eng);
    return std::make_tuple(dnnl::primitive(dnnl::deconvolution_forward(pd)), pd.weights_desc(), pd.scratchpad_desc(),
                           std::string(pd.impl_info_str()));
  };

  const bool wany = wc.defined();
  double work = static_cast<double>(shape_numel(transposed ? xs : dst)) * static_cast<double>(shape_numel(ws)) /
                static_cast<double>(transposed ? ws[0] : ws[0] * G) * static_cast<double>(G);
  const int kthreads = threads_for(b, work);
  ThreadScope scope(kthreads);
  const bool bf16_candidate = bf16;
  if (bf16 && !bf16_always()) {
    std::string key = "conv " + shape_to_string(xs) + " w" + shape_to_string(ws) + " -> " + shape_to_string(dst) +
                      " s" + shape_to_string(geo.strides) + " d" + shape_to_string(geo.dilations) + " p" +
                      shape_to_string(geo.pads_begin) + "/" + shape_to_string(geo.pads_end) + " g" + std::to_string(G) +
                      " layouts " + std::to_string(static_cast<int>(src_layout)) +
                      std::to_string(static_cast<int>(bf16_layout)) + std::to_string(static_cast<int>(dst_layout)) +
                      (x_handed_off ? " from bf16" : "") + (dst_bf16 ? " to bf16" : "");
    choose_bf16(b, x, src_layout, bf16_layout, dst_probe, dst_bf16, key, wany, make_pd, &bf16);
  }
  // A 3x3 stride-1 convolution kept in bf16 runs the backend's Winograd kernel (conv_winograd.h).
  if (bf16 && bf16_layout == Layout::blocked && resized.empty() && (bc.defined() || bias < 0) &&
      (!x_handed_off || x_layout == Layout::blocked) && ew_pointwise(post_program) && b.val(out).shape == dst &&
      winograd_bf16_fits(xs, ws, geo, G)) {
    b.count_bf16(true);
    TANDEM_ASSIGN_OR_RETURN(int src, x_handed_off ? Result<int>(x) : b.require(x, Layout::blocked));
    return add_winograd_bf16(b, src, out, xs, geo, wc, &bc, post_program, may_hand_off, label);
  }
  // Post-ops. A trailing Swish runs after the convolution over its float32 result instead
  // (to_post_ops_swish_after), unless that result is handed off in bf16.
  dnnl::post_ops po;
  std::vector<DnnlKernel::Arg> post_args;
  InPlaceFloats after = nullptr;
  auto translate = [&](Layout l) {
    po = dnnl::post_ops();
    post_args.clear();
    after = nullptr;
    return to_post_ops_swish_after(b, post_head, dst, 1, l, &po, &post_args, bf16 && dst_bf16 ? nullptr : &after);
  };
  int translated = translate(bf16 ? bf16_layout : nhwc_route ? Layout::nhwc : dst_layout);
  if (translated != static_cast<int>(post_program.ops.size())) dst_bf16 = false;  // the rest reads a float32 result
  // Winograd's algorithm: a 3x3 stride-1 float32 convolution in fewer multiplications, about as
  // exact as the direct one (relative error below 1e-6 on ResNets), where oneDNN has a kernel
  // for it (AVX-512, channel counts in multiples of 16), kept only where it times faster than
  // the direct kernel on this machine (candidate_pays_off). Its kernels take eltwise post-ops
  // but not a residual: with one, the Winograd form runs without post-ops and the elementwise
  // kernel applies them after it, which the stricter margin pays for.
  // TANDEM_CPU_WINOGRAD=0 keeps every convolution direct; =always takes Winograd wherever oneDNN
  // has it, untimed (for tests).
  if (two_d && !transposed && !bf16 && wany && !nhwc_route && dst_layout == Layout::blocked &&
      feature_enabled_now("WINOGRAD")) {
    try {
      // Both timed without post-ops (a residual's operand is not bound while timing).
      winograd = false;
      const auto direct = make_pd(dnnl::post_ops(), wany);
      winograd = true;
      const auto wino = make_pd(dnnl::post_ops(), wany);
      bool with_post_ops = true;
      if (translated > 0) {
        try {
          make_pd(po, wany);
        } catch (const dnnl::error&) {
          with_post_ops = false;
        }
      }
      std::string key = "conv winograd ";
      for (const Shape& part : {xs, ws, geo.pads_begin, geo.pads_end}) key += shape_to_string(part) + " ";
      key += "g" + std::to_string(G);  // (both timed without post-ops: one timing for either margin)
      winograd = std::get<3>(wino).rfind("ref", 0) != 0 &&
                 (winograd_always() || candidate_pays_off(key, std::get<0>(wino), std::get<0>(direct),
                                                          with_post_ops ? kMinWinogradGain : kMinWinogradGainApart));
      if (winograd && !with_post_ops) {
        po = dnnl::post_ops();
        post_args.clear();
        after = nullptr;
        translated = 0;
      }
    } catch (const dnnl::error&) {
      winograd = false;  // no Winograd kernel for this geometry or layout
    }
  }
  dnnl::primitive prim;
  dnnl::memory::desc wmd_chosen, scratch_md;
  std::string impl;
  bool fused = translated > 0;
  // Tries bf16 then float32 (a geometry without a native bf16 kernel runs in float32), and
  // with the post-ops then without them.
  for (;;) {
    for (;;) {
      try {
        std::tie(prim, wmd_chosen, scratch_md, impl) = make_pd(po, wany);
        if (fused && impl.rfind("ref", 0) == 0) throw dnnl::error(dnnl_unimplemented, "reference post-ops");
        if (bf16 && impl.rfind("ref", 0) == 0) throw dnnl::error(dnnl_unimplemented, "reference bf16");
        break;
      } catch (const dnnl::error&) {
        if (fused) {
          translated = 0;
          fused = false;
          dst_bf16 = false;
          post_args.clear();
          po = dnnl::post_ops();
          after = nullptr;
        } else if (bf16) {
          bf16 = false;
          translated = translate(dst_layout);
          fused = translated > 0;
        } else {
          throw;
        }
      }
    }
    // oneDNN's direct kernels take the blocked layout for some channel counts per group only: a
    // grouped convolution of 4 channels per group would run its reference loops there, about a
    // thousand times slower. Its jit kernel on channels-last activations takes them (with a
    // reorder of the source in and of the result out: 1x128x56x56 in 32 groups, 3x3, 0.8 ms
    // against 2.6 for its gemm convolution on plain activations, at one thread on AVX-512);
    // the plain layout is the last resort, and taken as well when oneDNN has only its gemm
    // convolution for channels-last (AVX2), which gains nothing over plain for two reorders.
    const bool slow = impl.rfind("ref", 0) == 0 || (nhwc_route && impl.find("gemm") != std::string::npos);
    if (bf16 || !slow) break;
    if (dst_layout != Layout::blocked) {  // 1-D, 3-D: plain is the last resort
      if (!nhwc_route) break;
      nhwc_route = false;
      src_layout = Layout::plain;
    } else if (!nhwc_route) {
      nhwc_route = true;
      src_layout = Layout::nhwc;
    } else {
      nhwc_route = false;
      src_layout = dst_layout = dst_probe.layout = Layout::plain;
    }
    translated = translate(nhwc_route ? Layout::nhwc : dst_layout);
    fused = translated > 0;
  }
  if (bf16_candidate) b.count_bf16(bf16);  // after the fallbacks: what really runs
  const bool hand_off = bf16 && dst_bf16;
  int src = x;
  if (src_layout != x_layout || (x_handed_off && !bf16)) {  // a handed-off source comes back as float32
    TANDEM_ASSIGN_OR_RETURN(src, b.require(x, src_layout));
  }
  if (bf16) {
    TANDEM_ASSIGN_OR_RETURN(src, b.require_bf16(src, bf16_layout));
  }
  const bool all_fused = translated == static_cast<int>(post_program.ops.size()) && b.val(out).shape == dst;
  if (verbose())
    note(label + " " + shape_to_string(xs) + " -> " + shape_to_string(dst) + ": " + impl + (bf16 ? " bf16" : "") +
         (x_handed_off && bf16 ? ", source handed off" : "") + (hand_off ? ", result handed off" : "") + ", " +
         std::to_string(translated) + "/" + std::to_string(post_program.ops.size()) + " post-ops fused");

  // A 1-D or 3-D result that only steps reading channels-last floats read (the next layer's
  // convolution) stays channels-last.
  const bool keep_channels_last = nhwc_route && !two_d && all_fused && b.readers_take_channels_last_floats(out);
  int conv_out = out;
  if (hand_off) b.define_handed_off(out, dst_layout);
  else if (keep_channels_last) b.define(out, Layout::nhwc);
  else if (bf16 && bf16_reorders) conv_out = b.add_temp(DataType::float32, dst, bf16_layout);
  else if (nhwc_route) conv_out = b.add_temp(DataType::float32, dst, Layout::nhwc);
  else if (all_fused) b.define(out, dst_layout);
  else conv_out = b.add_temp(DataType::float32, dst, dst_layout);

  auto k = std::make_unique<DnnlKernel>();
  k->label = label;
  k->threads = kthreads;
  attach_primitive(b, *k, prim, scratch_md);
  k->args.push_back({DNNL_ARG_SRC, src, value_md(b.val(src)), {}});
  k->reads.push_back(src);
  if (wany) {
    k->args.push_back({DNNL_ARG_WEIGHTS, -1, wmd_chosen, packed(wmd_chosen, wsrc_md)});
  } else {
    k->args.push_back({DNNL_ARG_WEIGHTS, w, wsrc_md, {}});
    k->reads.push_back(w);
  }
  dnnl::memory::desc bmd({O}, dt::f32, dnnl::memory::format_tag::x);
  if (bc.defined()) {
    k->args.push_back({DNNL_ARG_BIAS, -1, bmd, dnnl::memory(bmd, cpu_engine(), const_cast<void*>(bc.raw_data()))});
  } else if (bias >= 0) {
    if (!b.typed(bias) || b.val(bias).shape != Shape{O}) return unsupported(label + " bias shape");
    k->args.push_back({DNNL_ARG_BIAS, bias, bmd, {}});
    k->reads.push_back(bias);
  }
  k->args.push_back({DNNL_ARG_DST, conv_out, value_md(b.val(conv_out)), {}});
  for (auto& a : post_args) {
    k->args.push_back(a);
    if (a.value >= 0) k->reads.push_back(a.value);
  }
  k->writes = {conv_out};
  if (after) {
    k->after = after;
    k->implementation += ", then swish in place";
    k->after_value = conv_out;
    k->after_floats = Builder::physical_bytes(DataType::float32, dst, b.val(conv_out).layout) / 4;
  }
  b.add_kernel(std::move(k));
  if ((bf16 && bf16_reorders) || (nhwc_route && !keep_channels_last)) {  // back to the layout of the graph: into `out`, or a temporary the rest reads
    int back = out;
    if (all_fused) b.define(out, dst_layout);
    else back = b.add_temp(DataType::float32, dst, dst_layout);
    TANDEM_RETURN_IF_ERROR(add_reorder(b, conv_out, back, label + " (from nhwc)"));
    conv_out = back;
  }
  if (!all_fused) {
    EwProgram rest;
    rest.operands = post_program.operands;
    rest.ops.assign(post_program.ops.begin() + translated, post_program.ops.end());
    return add_elementwise(b, rest, conv_out, out, label + (upsampled.empty() ? " (post-ops)" : " (post-ops, upsampled operand)"),
                           nullptr, upsampled.empty() ? nullptr : &upsampled);
  }
  return Status::ok();
}

namespace {

Status supports_conv(const Node& n) {
  if (!read_auto_pad(n)) return unsupported(n.label() + " auto_pad '" + n.attr_string("auto_pad", "NOTSET") + "'");
  if (n.inputs.size() < 2 || n.inputs[0].empty() || n.inputs[1].empty())
    return unsupported(n.label() + " missing input or weight");
  if (n.attr_int("group", 1) < 1) return unsupported(n.label() + " group < 1");
  return Status::ok();
}

Result<std::unique_ptr<OpSpec>> make_conv(FusionContext& f, const Step& st) {
  return std::unique_ptr<OpSpec>(conv_spec(f, st));
}

}  // namespace

std::unique_ptr<ConvSpec> conv_spec(FusionContext& f, const Step& st) {
  auto s = std::make_unique<ConvSpec>();
  const Node& n = *st.node;
  s->transposed = n.op_type == "ConvTranspose";
  s->x = st.inputs[0];
  s->y = st.outputs.empty() ? -1 : st.outputs[0];
  s->w = st.inputs[1];
  s->bias = st.inputs.size() > 2 ? st.inputs[2] : -1;
  s->group = n.attr_int("group", 1);
  const Tensor* w = f.constant(s->w);
  if (w && w->dtype() == DataType::float32 && w->rank() >= 3) {
    s->wc = *w;
    s->out_channels = s->transposed ? w->dim(1) * s->group : w->dim(0);
    if (s->bias >= 0) {
      const Tensor* bt = f.constant(s->bias);
      if (bt && bt->dtype() == DataType::float32 && bt->numel() == s->out_channels) s->bc = bt->reshaped({s->out_channels});
    }
    s->patch = s->transposed && patch_node(n, *w);
  }
  return s;
}

void register_conv_ops(OpTable& t) {
  t.add("Conv", &supports_conv, &make_conv);
  t.add("ConvTranspose", &supports_conv, &make_conv);
}

}  // namespace tandem::cpu
