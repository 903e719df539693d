// qmatmul.cpp: QLinearMatMul and MatMulInteger on oneDNN's int8 matmul (numpy batch
// broadcasting, 1-D operands promoted as ONNX says). The product itself is add_qmatmul (int8.h),
// which qgemm.cpp's com.microsoft products use for their int32 accumulators as well.
//
// A right operand known when the instance is built (an initializer, or a small input the
// instance is keyed by) minus its zero point (per tensor or per column) becomes int8
// (int8.h: signed_weights) and, when it is 2-D, is packed in the format oneDNN picks with the
// left operand's leading dims flattened into rows. Right operands that do not fit int8 (or could
// saturate without VNNI), and right operands known only at run time (attention products), run
// as oneDNN's float32 product of the integers where that is exact (qfloat.cpp), else on the
// backend's own integer kernel (qdirect.cpp). The left zero point is oneDNN's common
// source zero point (known, or a runtime scalar such as DynamicQuantizeLinear's). QLinearMatMul's
// requantization a_scale * b_scale[n] / y_scale (float32, like the reference kernel) is the
// output scale, per tensor or per column; y_zero_point the destination zero point. Rounding is
// to nearest even in float32 (the reference multiplies in double: a product within a float32
// rounding of a half-integer may differ by one unit).
#include <algorithm>
#include <cstring>

#include "backends/cpu/int8.h"
#include "backends/cpu/op_family.h"

namespace tandem::cpu {

namespace {

using dt = dnnl::memory::data_type;

dt int_dtype(DataType t) {
  switch (t) {
    case DataType::uint8: return dt::u8;
    case DataType::int8: return dt::s8;
    default: return dt::s32;
  }
}

// Row-major md of `s` (rank r, leading 1s prepended) in type `type`.
dnnl::memory::desc ranked_md(const Shape& s, size_t r, dt type) {
  Shape full(r, 1);
  std::copy(s.begin(), s.end(), full.begin() + static_cast<std::ptrdiff_t>(r - s.size()));
  return plain_md(full, type);
}

class QMatMulSpec final : public OpSpec {
 public:
  bool qlinear = false;  // QLinearMatMul; otherwise MatMulInteger
  size_t node_inputs = 0;  // the node's own inputs (absorbed readers append theirs)
  // MatMulInteger followed by Cast to float32 (dynamic quantization): the product is written
  // as float32 and the elementwise ops after the Cast (the scale product, a bias) are `post`.
  bool to_float = false;
  EwProgram post;
  Status prepare(Builder& b, const Step& step) const override;
  bool absorb(FusionContext& f, Step& self, const Step& reader, int acc_input) override;
};

bool QMatMulSpec::absorb(FusionContext& f, Step& self, const Step& reader, int acc_input) {
  const Node& n = *reader.node;
  if (!to_float) {
    if (qlinear || n.op_type != "Cast" || n.attr_int("to", 0) != static_cast<int64_t>(DataType::float32)) return false;
    to_float = true;
    return true;
  }
  EwProgram p = post;
  if (!node_to_ew(f, n, reader.inputs, acc_input, &p)) return false;
  post = std::move(p);
  return true;
}

}  // namespace

Status add_qmatmul(Builder& b, const QMatMulOperands& o, bool to_float, const EwProgram& post) {
  const std::string& label = o.label;
  const bool qlinear = o.qlinear;
  const int a = o.a, bw = o.b, a_zp = o.a_zp, b_zp = o.b_zp, out = o.out;
  auto define_out = [&] {
    if (!o.out_defined) b.define(out, Layout::plain);
  };
  if (!b.typed(a) || !b.typed(out)) return unsupported(label + " shape unknown");
  // A copy (shares the data): the builder's values move as values are added. A right operand
  // known only at run time (attention) runs on the backend's own integer kernel.
  const Tensor* known_b = o.b_known ? o.b_known : b.known(bw);
  const bool runtime_b = known_b == nullptr;
  if (runtime_b && (!b.typed(bw) || !is_8bit(b.val(bw).dtype))) return unsupported(label + " right operand type unknown");
  const Tensor right = runtime_b ? Tensor() : *known_b;
  const Shape as = b.val(a).shape, bs = runtime_b ? b.val(bw).shape : right.shape();
  if (as.empty() || bs.empty() || shape_numel(as) == 0 || bs.size() > 12 || as.size() > 12)
    return unsupported(label + " operand shapes");
  const int64_t K = bs.size() == 1 ? bs[0] : bs[bs.size() - 2];
  const int64_t N = bs.size() == 1 ? 1 : bs.back();
  if (as.back() != K) return unsupported(label + " inner dims differ");

  std::vector<int32_t> bzp;
  if (!runtime_b || b.known(b_zp)) {
    TANDEM_ASSIGN_OR_RETURN(bzp, known_zero_points(b, b_zp, N, label + " b_zero_point"));
  }
  // Shapes as oneDNN sees them: a 2-D right operand takes every row of the left at once.
  const DataType out_type = b.val(out).dtype;
  const DataType a_type = b.val(a).dtype;
  dnnl::memory::desc src_md, w_md, w_plain, dst_md;
  Shape dst_shape;
  const bool packed_path = bs.size() == 2;
  if (packed_path) {
    const int64_t M = shape_numel(as) / K;
    src_md = plain_md({M, K}, int_dtype(a_type));
    w_plain = plain_md({K, N}, dt::s8);
    w_md = dnnl::memory::desc({K, N}, dt::s8, dnnl::memory::format_tag::any);
    dst_shape = {M, N};
  } else {
    Shape sa = as, sb = bs;
    if (sa.size() == 1) sa.insert(sa.begin(), 1);
    if (sb.size() == 1) sb.push_back(1);
    const size_t r = std::max(sa.size(), sb.size());
    src_md = ranked_md(sa, r, int_dtype(a_type));
    w_plain = w_md = ranked_md(sb, r, dt::s8);
    const auto sd = src_md.dims(), wd = w_md.dims();
    dst_shape.assign(r, 1);
    for (size_t i = 0; i + 2 < r; ++i) {
      if (sd[i] != wd[i] && sd[i] != 1 && wd[i] != 1) return unsupported(label + " batch dims do not broadcast");
      dst_shape[i] = std::max(sd[i], wd[i]);
    }
    dst_shape[r - 2] = sd[r - 2];
    dst_shape[r - 1] = wd[r - 1];
  }
  if (shape_numel(dst_shape) != shape_numel(b.val(out).shape)) return unsupported(label + " output size");
  dst_md = plain_md(dst_shape, to_float ? dt::f32 : int_dtype(out_type));

  TANDEM_ASSIGN_OR_RETURN(int pa, b.require(a, Layout::plain));
  // Right operands oneDNN cannot take exactly run on the backend's own integer kernel.
  Result<Tensor> int8_weights =
      runtime_b ? Result<Tensor>(unsupported(label + " right operand known only at run time"))
                : signed_weights(right, bzp, ZeroPointAxis::last, label);
  // Weights off int8 by an offset per column (asymmetric uint8 weights, as ONNX Runtime's
  // quantizer writes them with uint8 weights): the product runs on the int8 part, and the
  // offsets' share (qconv_offset.cpp) joins it: written into a float32 destination first, which
  // a sum post-op adds to, or for QLinearMatMul (known scales) from a map of its own that a
  // binary post-op adds before the result is rounded. A 2-D right operand; not for
  // MatMulInteger's own int32 output. TANDEM_CPU_QOFFSET=0: not.
  std::vector<int32_t> offsets;
  const bool share_map = qlinear && b.known(o.a_scale) && b.known(o.b_scale) && b.known(o.y_scale);
  if (!int8_weights && !runtime_b && packed_path && (to_float || share_map) && feature_enabled_now("QOFFSET")) {
    Result<OffsetWeights> split = offset_weights(right, bzp, label, ZeroPointAxis::last);
    if (split) {
      offsets = std::move(split->offsets);
      int8_weights = std::move(split->w8);
    } else if (verbose()) {
      note(split.status().message());
    }
  }
  if (!int8_weights) {
    if (verbose()) note(int8_weights.status().message());
    IntegerProduct p;
    p.label = label;
    p.src = pa;
    if (runtime_b) {
      TANDEM_ASSIGN_OR_RETURN(p.weights_value, b.require(bw, Layout::plain));
      if (bzp.size() > 1 && std::any_of(bzp.begin(), bzp.end(), [&](int32_t z) { return z != bzp[0]; }))
        p.weights_column_zp = bzp;
      else if (!bzp.empty())
        p.weights_zp.known = bzp[0];
      else {
        TANDEM_ASSIGN_OR_RETURN(p.weights_zp, read_zero_point(b, b_zp, label + " b zero point", &p.reads));
      }
    } else {
      p.weights = shifted_weights(right, bzp, ZeroPointAxis::last);
    }
    TANDEM_ASSIGN_OR_RETURN(p.src_zp, read_zero_point(b, a_zp, label + " a zero point", &p.reads));
    if (qlinear) {
      TANDEM_ASSIGN_OR_RETURN(p.scales, add_scale_kernel(b, o.a_scale, o.b_scale, o.y_scale, N, label, &p.scale_count));
      TANDEM_ASSIGN_OR_RETURN(p.dst_zp, read_zero_point(b, o.y_zp, label + " y zero point", &p.reads));
    }
    // A fused Cast: float32 results, then the absorbed elementwise ops.
    int direct_out = out;
    if (to_float && !post.empty()) {
      if (!o.head_known) return unsupported(label + " output shape unknown");
      direct_out = b.add_temp(DataType::float32, o.head, Layout::plain);
    } else {
      define_out();
    }
    p.out = direct_out;
    const size_t r = dst_shape.size();
    Shape a_full(r, 1), b_full(r, 1);
    const auto sd = src_md.dims(), wd = w_plain.dims();
    std::copy(sd.begin(), sd.end(), a_full.begin() + static_cast<std::ptrdiff_t>(r - sd.size()));
    std::copy(wd.begin(), wd.end(), b_full.begin() + static_cast<std::ptrdiff_t>(r - wd.size()));
    TANDEM_RETURN_IF_ERROR(add_integer_matmul(b, std::move(p), a_full, b_full, dst_shape));
    return direct_out == out ? Status::ok() : add_elementwise(b, post, direct_out, out, label + " (post-ops)");
  }
  Tensor b8 = std::move(int8_weights).value();
  bool src_zero = true, dst_zero = true;
  TANDEM_ASSIGN_OR_RETURN(DnnlKernel::Arg src_zp, zero_point_arg(b, a_zp, DNNL_ARG_SRC, label + " a", &src_zero));
  DnnlKernel::Arg dst_zp;
  if (qlinear) {
    TANDEM_ASSIGN_OR_RETURN(dst_zp, zero_point_arg(b, o.y_zp, DNNL_ARG_DST, label + " y", &dst_zero));
  }
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  // Requantization: one scale per column (the last dst dim), or one for all.
  bool runtime_scales = false;
  DnnlKernel::Arg scales;
  if (qlinear) {
    TANDEM_ASSIGN_OR_RETURN(scales, output_scales(b, o.a_scale, o.b_scale, o.y_scale, N, 1 << (dst_shape.size() - 1),
                                                  label, &attr, &runtime_scales));
  }
  if (!src_zero) attr.set_zero_points(DNNL_ARG_SRC, 0, {DNNL_RUNTIME_S32_VAL});
  if (!dst_zero) attr.set_zero_points(DNNL_ARG_DST, 0, {DNNL_RUNTIME_S32_VAL});

  // The absorbed elementwise ops: a first product by a runtime float32 scalar (the dynamic
  // x_scale * w_scale) can be oneDNN's runtime output scale, which computes float(acc) * s as
  // Cast and Mul do, and the rest post-ops; what oneDNN does not take runs right after. oneDNN
  // 2.6 keeps its brgemm (AMX, VNNI) kernels for some of these combinations and falls back to
  // a slower gemm for others, so the variants are tried from the most fused to none, and the
  // first on a brgemm kernel is taken (else the first that exists).
  // A constant first factor (a QDQ product's a_scale * b_scale[n], one or one per column) is
  // likewise oneDNN's output scale, fixed at creation.
  int scale_operand = -1;
  std::vector<float> constant_scales;
  if (to_float && !post.ops.empty() && post.ops[0].code == Ew::mul && post.ops[0].operand >= 0) {
    const int v = post.operands[static_cast<size_t>(post.ops[0].operand)];
    const Tensor* c = b.known(v);
    if (c && c->dtype() == DataType::float32 && (c->numel() == 1 || (c->numel() == N && c->shape().back() == N))) {
      constant_scales.assign(c->data<float>(), c->data<float>() + c->numel());
    } else if (!c && b.typed(v) && b.val(v).dtype == DataType::float32 && shape_numel(b.val(v).shape) == 1) {
      scale_operand = v;
    }
  }
  const double work = static_cast<double>(shape_numel(dst_shape)) * static_cast<double>(K);
  const int kthreads = threads_for(b, work);
  ThreadScope scope(kthreads);
  struct Variant {
    bool scale = false, post_ops = false;
    EwProgram prog;
    int translated = 0;
    std::vector<DnnlKernel::Arg> post_args;
    dnnl::matmul::primitive_desc pd;
  };
  std::vector<Variant> variants;
  if (!to_float) variants.push_back({});
  else
    for (auto [scale, post_ops] : {std::pair{true, true}, std::pair{true, false}, std::pair{false, true}, std::pair{false, false}})
      if ((!scale || scale_operand >= 0 || !constant_scales.empty()) && (!post_ops || post.ops.size() > (scale ? 1u : 0u)))
        variants.push_back(Variant{scale, post_ops, {}, 0, {}, {}});
  int chosen = -1;
  std::string last_error = "no variant";
  for (size_t i = 0; i < variants.size(); ++i) {
    Variant& v = variants[i];
    dnnl::primitive_attr va = to_float ? dnnl::primitive_attr() : attr;  // attrs are shared handles
    if (to_float) {
      va.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      if (!src_zero) va.set_zero_points(DNNL_ARG_SRC, 0, {DNNL_RUNTIME_S32_VAL});
    }
    v.prog = post;
    dnnl::post_ops po;
    if (to_float && !offsets.empty()) po.append_sum(1.0f);  // the offsets' share, before any other post-op
    if (!to_float && !offsets.empty()) po.append_binary(dnnl::algorithm::binary_add, plain_md(dst_shape));
    if (v.scale) {
      v.prog.ops.erase(v.prog.ops.begin());
      if (constant_scales.empty()) va.set_output_scales(0, {DNNL_RUNTIME_F32_VAL});
      else va.set_output_scales(constant_scales.size() == 1 ? 0 : 1 << (dst_shape.size() - 1), constant_scales);
    }
    if (v.post_ops) {
      v.translated = to_post_ops(b, v.prog, dst_shape, static_cast<int>(dst_shape.size()) - 1, Layout::plain, &po,
                                 &v.post_args);
      if (v.translated == 0) continue;
    }
    if (po.len() > 0) va.set_post_ops(po);
    try {
      v.pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(src_md, w_md, dst_md), va, cpu_engine());
    } catch (const dnnl::error& e) {
      last_error = e.what();
      continue;
    }
    if (chosen < 0) chosen = static_cast<int>(i);
    if (std::string(v.pd.impl_info_str()).rfind("brg", 0) == 0) {
      chosen = static_cast<int>(i);
      break;
    }
  }
  if (chosen < 0) return unsupported(label + " oneDNN has no int8 matmul for this case: " + last_error);
  Variant& picked = variants[static_cast<size_t>(chosen)];
  const dnnl::matmul::primitive_desc pd = picked.pd;
  const EwProgram& prog = picked.prog;
  const int translated = picked.translated;
  const std::vector<DnnlKernel::Arg>& post_args = picked.post_args;
  int scale_value = -1;
  if (picked.scale && scale_operand >= 0) {
    TANDEM_ASSIGN_OR_RETURN(scale_value, b.require(scale_operand, Layout::plain));
  }
  // The product's own output (the node's, before the absorbed ops) must be the step's output.
  if (!o.head_known) return unsupported(label + " output shape unknown");
  const Shape& head = o.head;
  const bool all_fused = translated == static_cast<int>(prog.ops.size()) && b.val(out).shape == head;
  if (verbose())
    note(label + " " + shape_to_string(as) + " x " + shape_to_string(bs) + ": " + pd.impl_info_str() + " int8" +
         (runtime_scales ? ", runtime scales" : "") +
         (!offsets.empty() ? ", weight offsets " + describe_offsets(offsets) +
                                 (to_float ? " (a sum post-op)" : " (a binary post-op)")
                           : ""));

  dnnl::memory weights(pd.weights_desc(), cpu_engine());
  {
    dnnl::memory plain(w_plain, cpu_engine(), b8.raw_data());
    dnnl::stream s(cpu_engine());
    dnnl::reorder(plain, weights).execute(s, plain, weights);
    s.wait();
  }

  int mm_out = out;
  if (all_fused) define_out();
  else mm_out = b.add_temp(DataType::float32, head, Layout::plain);
  const bool share_summed = !offsets.empty() && to_float;
  int share = -1;  // QLinearMatMul's map of the share
  if (!offsets.empty()) {
    // The share after the output scale when the product takes one (its factors: QLinearMatMul's
    // requantization a_scale * b_scale[n] / y_scale formed in float32 as output_scales does),
    // else in the accumulator's units, ahead of every translated op.
    OffsetCorrection oc;
    oc.src = pa;
    oc.offsets = std::move(offsets);
    if (qlinear) {
      TANDEM_ASSIGN_OR_RETURN(oc.factor, requantization_factors(b, o.a_scale, o.b_scale, o.y_scale, N, label));
    } else if (picked.scale) {
      oc.factor.assign(constant_scales.begin(), constant_scales.end());
      oc.runtime = scale_value;
    }
    TANDEM_ASSIGN_OR_RETURN(share, add_offset_row_share(b, std::move(oc), a_zp, dst_shape[0], K, N,
                                                        share_summed ? mm_out : -1, label));
    if (share_summed) share = -1;
  }
  auto k = std::make_unique<DnnlKernel>();
  k->label = label;
  k->threads = kthreads;
  attach_primitive(b, *k, dnnl::matmul(pd), pd.scratchpad_desc());
  k->args.push_back({DNNL_ARG_SRC, pa, src_md, {}});
  k->reads.push_back(pa);
  k->args.push_back({DNNL_ARG_WEIGHTS, -1, pd.weights_desc(), weights});
  k->args.push_back({DNNL_ARG_DST, mm_out, dst_md, {}});
  for (const auto& arg : post_args) {
    k->args.push_back(arg);
    if (arg.value >= 0) k->reads.push_back(arg.value);
  }
  if (runtime_scales) {
    k->args.push_back(scales);
    k->reads.push_back(scales.value);
  }
  if (scale_value >= 0) {
    const dnnl::memory::desc smd({1}, dt::f32, dnnl::memory::format_tag::x);
    k->args.push_back({DNNL_ARG_ATTR_OUTPUT_SCALES, scale_value, smd, {}});
    k->reads.push_back(scale_value);
  }
  if (!src_zero) {
    k->args.push_back(src_zp);
    if (src_zp.value >= 0) k->reads.push_back(src_zp.value);
  }
  if (!dst_zero) {
    k->args.push_back(dst_zp);
    if (dst_zp.value >= 0) k->reads.push_back(dst_zp.value);
  }
  k->writes = {mm_out};
  if (share_summed) k->reads.push_back(mm_out);  // the sum post-op adds what is there
  if (share >= 0) {
    k->args.push_back({DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, share, plain_md(dst_shape), {}});
    k->reads.push_back(share);
  }
  b.add_kernel(std::move(k));
  if (!all_fused) {
    EwProgram rest;
    rest.operands = prog.operands;
    rest.ops.assign(prog.ops.begin() + translated, prog.ops.end());
    return add_elementwise(b, rest, mm_out, out, label + " (post-ops)");
  }
  return Status::ok();
}

namespace {

Status QMatMulSpec::prepare(Builder& b, const Step& step) const {
  const Node& n = *step.node;
  auto in = [&](size_t i) { return i < node_inputs && i < step.inputs.size() ? step.inputs[i] : -1; };
  QMatMulOperands o;
  o.label = n.label();
  o.qlinear = qlinear;
  o.a = in(0);
  o.b = in(qlinear ? 3 : 1);
  o.a_zp = in(2);
  o.b_zp = in(qlinear ? 5 : 3);
  if (qlinear) {
    o.a_scale = in(1);
    o.b_scale = in(4);
    o.y_scale = in(6);
    o.y_zp = in(7);
  }
  o.out = step.outputs[0];
  // The product's own output (the node's, before absorbed ops).
  const int head_out = b.graph().find(n.outputs[0]);
  o.head_known = head_out >= 0 && b.typed(head_out);
  if (o.head_known) o.head = b.val(head_out).shape;
  return add_qmatmul(b, o, to_float, post);
}

Status supports_qmatmul(const Node& n) {
  const size_t w = n.op_type == "QLinearMatMul" ? 3 : 1;
  if (n.inputs.size() <= w || n.inputs[0].empty() || n.inputs[w].empty()) return unsupported(n.label() + " missing input");
  if (n.op_type == "QLinearMatMul")
    for (size_t i : {1, 4, 6})
      if (n.inputs.size() <= i || n.inputs[i].empty()) return unsupported(n.label() + " missing input " + std::to_string(i));
  return Status::ok();
}

Result<std::unique_ptr<OpSpec>> make_qmatmul(FusionContext&, const Step& st) {
  auto s = std::make_unique<QMatMulSpec>();
  s->qlinear = st.node->op_type == "QLinearMatMul";
  s->node_inputs = st.inputs.size();
  return std::unique_ptr<OpSpec>(std::move(s));
}

}  // namespace

std::unique_ptr<OpSpec> make_matmul_integer_to_float(const Step& step, EwProgram post) {
  auto s = std::make_unique<QMatMulSpec>();
  s->node_inputs = step.inputs.size();
  s->to_float = true;
  s->post = std::move(post);
  return s;
}

void register_qmatmul_ops(OpTable& t) {
  t.add("QLinearMatMul", &supports_qmatmul, &make_qmatmul);
  t.add("MatMulInteger", &supports_qmatmul, &make_qmatmul);
}

}  // namespace tandem::cpu
