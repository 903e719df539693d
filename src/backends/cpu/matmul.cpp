// matmul.cpp: MatMul and Gemm on oneDNN's matmul primitive.
//   - A constant 2-D right operand (the usual Linear layer) is packed once per format; the left
//     operand's leading dims are flattened into rows, so [B, T, K] x [K, N] is one GEMM.
//   - Otherwise both operands are runtime tensors with numpy batch broadcasting (1-D operands
//     promoted as ONNX says); Gemm's transA/transB are strided views, not copies.
//   - A following Add of a per-column constant becomes the bias; Mul by a per-column constant
//     scales the packed weights; later elementwise ops become post-ops (or the elementwise
//     kernel right after).
#include <cmath>
#include <mutex>

#include "backends/cpu/bf16_choice.h"
#include "backends/cpu/cast.h"
#include "backends/cpu/op_family.h"

namespace tandem::cpu {

namespace {

using dt = dnnl::memory::data_type;

class MatMulSpec final : public OpSpec {
 public:
  bool gemm = false;
  int a = -1, bv = -1;
  bool trans_a = false, trans_b = false;  // runtime operands only (constants are stored [K, N])
  Tensor bc;                              // constant right operand [K, N] (alpha folded)
  Tensor bias;                            // constant [N]
  float alpha = 1.0f;                     // runtime right operand: applied as a post-op
  EwProgram post;

  Status prepare(Builder& b, const Step& step) const override;
  bool absorb(FusionContext& f, Step& self, const Step& reader, int acc_input) override;

 private:
  dnnl::memory packed(const dnnl::memory::desc& md) const;
  mutable std::mutex mu_;
  mutable std::vector<std::pair<dnnl::memory::desc, dnnl::memory>> packed_;
};

// Per-column float constant of `v` (shape [N], [1, N] or a scalar).
bool column_vector(FusionContext& f, int v, int64_t N, std::vector<float>* out) {
  const Tensor* t = f.constant(v);
  if (!t || t->dtype() != DataType::float32 || t->rank() > 2) return false;
  if (t->numel() == 1) {
    out->assign(N, t->data<float>()[0]);
    return true;
  }
  if (t->numel() != N || t->shape().back() != N) return false;
  out->assign(t->data<float>(), t->data<float>() + N);
  return true;
}

bool MatMulSpec::absorb(FusionContext& f, Step& self, const Step& reader, int acc_input) {
  const Node& n = *reader.node;
  if (post.empty() && bc.defined() && reader.inputs.size() == 2) {
    const int64_t N = bc.dim(1);
    std::vector<float> c;
    if ((n.op_type == "Add" || (n.op_type == "Sub" && acc_input == 0)) &&
        column_vector(f, reader.inputs[1 - acc_input], N, &c)) {
      Tensor nb(DataType::float32, {N});
      for (int64_t i = 0; i < N; ++i)
        nb.data<float>()[i] = (bias.defined() ? bias.data<float>()[i] : 0.0f) + (n.op_type == "Add" ? c[i] : -c[i]);
      bias = std::move(nb);
      return true;
    }
    if ((n.op_type == "Mul" || (n.op_type == "Div" && acc_input == 0)) &&
        column_vector(f, reader.inputs[1 - acc_input], N, &c)) {
      if (n.op_type == "Div")
        for (auto& x : c) x = 1.0f / x;
      Tensor nbw = bc.clone();
      const int64_t K = bc.dim(0);
      for (int64_t k = 0; k < K; ++k)
        for (int64_t j = 0; j < N; ++j) nbw.data<float>()[k * N + j] *= c[j];
      bc = std::move(nbw);
      if (bias.defined()) {
        Tensor nb = bias.clone();
        for (int64_t j = 0; j < N; ++j) nb.data<float>()[j] *= c[j];
        bias = std::move(nb);
      }
      return true;
    }
  }
  EwProgram p = post;
  if (!node_to_ew(f, n, reader.inputs, acc_input, &p)) return false;
  post = std::move(p);
  return true;
}

dnnl::memory MatMulSpec::packed(const dnnl::memory::desc& md) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [d, m] : packed_)
    if (d == md) return m;
  dnnl::memory dst(md, cpu_engine());
  auto smd = plain_md(bc.shape());
  dnnl::memory src(smd, cpu_engine(), const_cast<void*>(bc.raw_data()));
  dnnl::stream s(cpu_engine());
  dnnl::reorder(src, dst).execute(s, src, dst);
  s.wait();
  packed_.emplace_back(md, dst);
  return dst;
}

// Row-major strides of dims, with the last two swapped when `trans` (a transposed view).
dnnl::memory::desc operand_md(const Shape& stored, bool trans, size_t rank) {
  // `stored` is the tensor as laid out in memory; the logical matrix is its transpose when trans.
  Shape s(rank, 1);
  std::copy(stored.begin(), stored.end(), s.begin() + (rank - stored.size()));
  std::vector<int64_t> st(rank);
  int64_t acc = 1;
  for (size_t i = rank; i-- > 0;) {
    st[i] = acc;
    acc *= s[i];
  }
  dnnl::memory::dims dims(s.begin(), s.end()), strides(st.begin(), st.end());
  if (trans) {
    std::swap(dims[rank - 1], dims[rank - 2]);
    std::swap(strides[rank - 1], strides[rank - 2]);
  }
  return dnnl::memory::desc(dims, dt::f32, strides);
}

Status MatMulSpec::prepare(Builder& b, const Step& step) const {
  const std::string label = step.node->label();
  if (!all_float32(b, step)) return unsupported(label + " not float32");
  const Node& n = *step.originals.front();
  const int out = step.outputs[0];
  if (!b.typed(a) || !b.typed(out)) return unsupported(label + " shape unknown");
  int head_out = b.graph().find(n.outputs[0]);
  if (head_out < 0 || !b.typed(head_out)) return unsupported(label + " output shape unknown");
  const Shape head = b.val(head_out).shape;
  if (shape_numel(head) == 0 || shape_numel(b.val(a).shape) == 0) return unsupported(label + " empty");
  TANDEM_ASSIGN_OR_RETURN(int pa, b.require(a, Layout::plain));
  const Shape as = b.val(pa).shape;

  dnnl::memory::desc src_md, w_md, bias_md, dst_md;
  Shape dst_shape;  // as oneDNN sees it
  int pb = -1;
  const bool packed_path = bc.defined() && !trans_a;
  // precision=bf16: products with constant weights and enough arithmetic per element moved run
  // on bfloat16 operands (oneDNN's AMX/AVX512_BF16 kernels) with float32 accumulation, bias,
  // post-ops and destination; the source is narrowed once per value (see conv.cpp).
  bool bf16 = false;
  if (packed_path && b.precision() == Precision::bf16 && as.size() >= 1) {
    constexpr double kMinBf16Intensity = 64, kMinBf16Macs = 2e6;
    const double K = static_cast<double>(bc.dim(0)), N = static_cast<double>(bc.dim(1));
    const double M = static_cast<double>(shape_numel(as)) / K;
    bf16 = M * N * K >= kMinBf16Macs && M * N * K / (M * K + M * N) >= kMinBf16Intensity;
  }
  if (packed_path) {
    const int64_t K = bc.dim(0), N = bc.dim(1);
    if (as.empty() || as.back() != K) return unsupported(label + " inner dims differ");
    const int64_t M = shape_numel(as) / K;
    if (shape_numel(head) != M * N) return unsupported(label + " output size");
    src_md = plain_md({M, K}, bf16 ? dt::bf16 : dt::f32);
    w_md = dnnl::memory::desc({K, N}, bf16 ? dt::bf16 : dt::f32, dnnl::memory::format_tag::any);
    dst_shape = {M, N};
    if (bias.defined()) bias_md = plain_md({1, N});
  } else {
    Shape bs;
    if (bc.defined()) bs = bc.shape();
    else if (b.typed(bv)) bs = b.val(bv).shape;
    else return unsupported(label + " right operand shape unknown");
    if (!bc.defined()) {
      TANDEM_ASSIGN_OR_RETURN(pb, b.require(bv, Layout::plain));
    }
    Shape sa = as, sb = bs;
    if (sa.size() == 1) sa.insert(sa.begin(), 1);
    if (sb.size() == 1) sb.push_back(1);
    const size_t r = std::max(sa.size(), sb.size());
    if (r > 12) return unsupported(label + " rank too large");
    src_md = operand_md(sa, trans_a, r);
    w_md = operand_md(sb, trans_b && !bc.defined(), r);
    auto sd = src_md.dims(), wd = w_md.dims();
    if (sd[r - 1] != wd[r - 2]) return unsupported(label + " inner dims differ");
    dst_shape.assign(r, 1);
    for (size_t i = 0; i + 2 < r; ++i) {
      if (sd[i] != wd[i] && sd[i] != 1 && wd[i] != 1) return unsupported(label + " batch dims do not broadcast");
      dst_shape[i] = std::max(sd[i], wd[i]);
    }
    dst_shape[r - 2] = sd[r - 2];
    dst_shape[r - 1] = wd[r - 1];
    if (shape_numel(dst_shape) != shape_numel(head)) return unsupported(label + " output size");
    if (bias.defined()) {
      Shape bsh(r, 1);
      bsh[r - 1] = dst_shape[r - 1];
      bias_md = plain_md(bsh);
    }
  }
  dst_md = plain_md(dst_shape);

  // Post-ops: alpha first for runtime right operands, then the absorbed program.
  EwProgram prog;
  if (!bc.defined() && alpha != 1.0f) prog.ops.push_back(EwOp{Ew::mul, -1, alpha, 0});
  prog.operands = post.operands;
  for (const EwOp& op : post.ops) prog.ops.push_back(op);
  // A trailing Swish runs after the product over its result (to_post_ops_swish_after).
  dnnl::post_ops po;
  std::vector<DnnlKernel::Arg> post_args;
  InPlaceFloats after = nullptr;
  int translated = to_post_ops_swish_after(b, prog, dst_shape, static_cast<int>(dst_shape.size()) - 1, Layout::plain,
                                           &po, &post_args, &after);
  auto make = [&](const dnnl::post_ops& ops) {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    attr.set_post_ops(ops);
    auto d = bias.defined() ? dnnl::matmul::desc(src_md, w_md, bias_md, dst_md) : dnnl::matmul::desc(src_md, w_md, dst_md);
    return dnnl::matmul::primitive_desc(d, attr, cpu_engine());
  };
  const double work = static_cast<double>(shape_numel(dst_shape)) * static_cast<double>(src_md.dims().back());
  const int kthreads = threads_for(b, work);
  ThreadScope scope(kthreads);
  const bool bf16_candidate = bf16;
  if (bf16 && !bf16_always()) {  // kept only where it is faster here (bf16_choice.h)
    const dnnl::memory::desc src_bf16 = src_md, w_bf16 = w_md;
    try {
      const dnnl::matmul::primitive_desc as_bf16 = make(dnnl::post_ops());
      src_md = plain_md(src_md.dims());
      w_md = dnnl::memory::desc(w_md.dims(), dt::f32, dnnl::memory::format_tag::any);
      const dnnl::matmul::primitive_desc as_fp32 = make(dnnl::post_ops());
      std::vector<dnnl::primitive> narrow;
      double narrow_ms = 0;
      if (!b.has_bf16(pa, Layout::plain)) {
        if (narrows_to_bf16_natively(b.val(pa), Layout::plain)) narrow_ms = time_bf16_narrowing_ms(b.val(pa));
        else narrow.emplace_back(dnnl::reorder(dnnl::reorder::primitive_desc(cpu_engine(), src_md, cpu_engine(), src_bf16)));
      }
      const bool reference = std::string(as_bf16.impl_info_str()).rfind("ref", 0) == 0 ||
                             std::string(as_fp32.impl_info_str()).rfind("ref", 0) == 0;
      bf16 = reference || bf16_pays_off("matmul " + shape_to_string(src_md.dims()) + " x " +
                                            shape_to_string(w_md.dims()) + (bias.defined() ? " bias" : ""),
                                        dnnl::matmul(as_bf16), dnnl::matmul(as_fp32), {narrow, {}, narrow_ms, 0});
      if (bf16) {
        src_md = src_bf16;
        w_md = w_bf16;
      }
    } catch (const dnnl::error&) {  // no bf16 form: the loop below falls back
      src_md = src_bf16;
      w_md = w_bf16;
    }
  }
  dnnl::matmul::primitive_desc pd;
  for (;;) {  // bf16 then float32, with the post-ops then without them
    try {
      pd = make(po);
      const bool ref = std::string(pd.impl_info_str()).rfind("ref", 0) == 0;
      if (ref && (translated > 0 || bf16)) throw dnnl::error(dnnl_unimplemented, "reference kernel");
      break;
    } catch (const dnnl::error&) {
      if (translated > 0) {
        translated = 0;
        post_args.clear();
        po = dnnl::post_ops();
        after = nullptr;
      } else if (bf16) {
        bf16 = false;
        src_md = plain_md(src_md.dims());
        w_md = dnnl::memory::desc(w_md.dims(), dt::f32, dnnl::memory::format_tag::any);
        translated = to_post_ops_swish_after(b, prog, dst_shape, static_cast<int>(dst_shape.size()) - 1, Layout::plain,
                                             &po, &post_args, &after);
      } else {
        throw;
      }
    }
  }
  if (packed_path && !bf16) {
    // Plain float32 weights whose rows lie a multiple of 1 KiB apart (N a multiple of 256):
    // oneDNN's gemm (its matmul on CPUs without AVX-512) packs panels of such rows into few
    // cache sets and runs at half speed, [128, 768] x [768, 3072] 15 ms instead of 7 on the
    // AVX2 EPYC. Rows 16 floats longer keep them apart.
    const int64_t K = bc.dim(0), N = bc.dim(1);
    if (N % 256 == 0 && pd.weights_desc() == plain_md({K, N})) {
      const dnnl::memory::desc plain_w = w_md;
      w_md = dnnl::memory::desc({K, N}, dt::f32, dnnl::memory::dims{N + 16, 1});
      try {
        dnnl::matmul::primitive_desc alt = make(po);
        if (std::string(alt.impl_info_str()) == pd.impl_info_str()) pd = alt;
        else w_md = plain_w;
      } catch (const dnnl::error&) {
        w_md = plain_w;
      }
    }
  }
  if (bf16_candidate) b.count_bf16(bf16);  // after the fallbacks: what really runs
  if (bf16) {
    TANDEM_ASSIGN_OR_RETURN(pa, b.require_bf16(pa, Layout::plain));
  }
  const bool all = translated == static_cast<int>(prog.ops.size()) && b.val(out).shape == head;
  int mm_out = out;
  if (all) b.define(out, Layout::plain);
  else mm_out = b.add_temp(DataType::float32, head, Layout::plain);

  auto k = std::make_unique<DnnlKernel>();
  k->label = label;
  k->threads = kthreads;
  attach_primitive(b, *k, dnnl::matmul(pd), pd.scratchpad_desc());
  k->args.push_back({DNNL_ARG_SRC, pa, src_md, {}});
  k->reads.push_back(pa);
  if (packed_path) {
    auto wmd = pd.weights_desc();
    k->args.push_back({DNNL_ARG_WEIGHTS, -1, wmd, packed(wmd)});  // reorders float32 into bf16 when asked
  } else if (bc.defined()) {
    k->args.push_back({DNNL_ARG_WEIGHTS, -1, w_md, dnnl::memory(w_md, cpu_engine(), const_cast<void*>(bc.raw_data()))});
  } else {
    k->args.push_back({DNNL_ARG_WEIGHTS, pb, w_md, {}});
    k->reads.push_back(pb);
  }
  if (bias.defined())
    k->args.push_back({DNNL_ARG_BIAS, -1, bias_md, dnnl::memory(bias_md, cpu_engine(), const_cast<void*>(bias.raw_data()))});
  k->args.push_back({DNNL_ARG_DST, mm_out, dst_md, {}});
  for (auto& arg : post_args) {
    k->args.push_back(arg);
    if (arg.value >= 0) k->reads.push_back(arg.value);
  }
  k->writes = {mm_out};
  if (after) {
    k->after = after;
    k->implementation += ", then swish in place";
    k->after_value = mm_out;
    k->after_floats = shape_numel(b.val(mm_out).shape);
  }
  b.add_kernel(std::move(k));
  if (!all) {
    EwProgram rest;
    rest.operands = prog.operands;
    rest.ops.assign(prog.ops.begin() + translated, prog.ops.end());
    return add_elementwise(b, rest, mm_out, out, label + " (post-ops)");
  }
  return Status::ok();
}

Status supports_matmul(const Node& n) {
  if (n.inputs.size() < 2 || n.inputs[0].empty() || n.inputs[1].empty()) return unsupported(n.label() + " missing input");
  return Status::ok();
}

Result<std::unique_ptr<OpSpec>> make_matmul(FusionContext& f, const Step& st) {
  auto s = std::make_unique<MatMulSpec>();
  const Node& n = *st.node;
  s->a = st.inputs[0];
  s->bv = st.inputs[1];
  const Tensor* bt = f.constant(s->bv);
  if (bt && bt->dtype() == DataType::float32 && bt->rank() == 2) s->bc = *bt;
  if (n.op_type == "MatMul") return std::unique_ptr<OpSpec>(std::move(s));

  // Gemm: Y = alpha * A' * B' + beta * C.
  s->gemm = true;
  s->trans_a = n.attr_int("transA", 0) != 0;
  s->trans_b = n.attr_int("transB", 0) != 0;
  const float alpha = n.attr_float("alpha", 1.0f), beta = n.attr_float("beta", 1.0f);
  if (s->bc.defined()) {
    Tensor b2 = s->bc;
    if (s->trans_b || alpha != 1.0f) {
      const int64_t r0 = b2.dim(0), r1 = b2.dim(1);
      Tensor t(DataType::float32, s->trans_b ? Shape{r1, r0} : Shape{r0, r1});
      const float* src = b2.data<float>();
      float* dst = t.data<float>();
      for (int64_t i = 0; i < r0; ++i)
        for (int64_t j = 0; j < r1; ++j) {
          if (s->trans_b) dst[j * r0 + i] = alpha * src[i * r1 + j];
          else dst[i * r1 + j] = alpha * src[i * r1 + j];
        }
      b2 = t;
    }
    s->bc = b2;
    s->trans_b = false;
  } else {
    s->alpha = alpha;
  }
  int c = st.inputs.size() > 2 ? st.inputs[2] : -1;
  if (c >= 0 && beta != 0.0f) {
    const Tensor* ct = f.constant(c);
    if (ct && ct->dtype() == DataType::float32 && s->bc.defined() && ct->rank() <= 2 &&
        (ct->numel() == 1 || (ct->numel() == s->bc.dim(1) && ct->shape().back() == s->bc.dim(1)))) {
      const int64_t N = s->bc.dim(1);
      Tensor nb(DataType::float32, {N});
      for (int64_t j = 0; j < N; ++j) nb.data<float>()[j] = beta * ct->data<float>()[ct->numel() == 1 ? 0 : j];
      s->bias = nb;
    } else if (ct && ct->dtype() == DataType::float32) {
      Tensor scaled = ct->clone();
      for (int64_t i = 0; i < scaled.numel(); ++i) scaled.data<float>()[i] *= beta;
      int cv = f.add_constant(scaled);
      s->post.operands.push_back(cv);
      s->post.ops.push_back(EwOp{Ew::add, 0, 0, 0});
    } else if (beta == 1.0f) {
      s->post.operands.push_back(c);
      s->post.ops.push_back(EwOp{Ew::add, 0, 0, 0});
    } else {
      // alpha*AB + beta*C = beta * (alpha/beta * AB + C)
      if (s->bc.defined()) {
        Tensor t = s->bc.clone();
        for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] /= beta;
        s->bc = t;
      } else {
        s->alpha = alpha / beta;
      }
      s->post.operands.push_back(c);
      s->post.ops.push_back(EwOp{Ew::add, 0, 0, 0});
      s->post.ops.push_back(EwOp{Ew::mul, -1, beta, 0});
    }
  }
  return std::unique_ptr<OpSpec>(std::move(s));
}

}  // namespace

void register_matmul_ops(OpTable& t) {
  t.add("MatMul", &supports_matmul, &make_matmul);
  t.add("Gemm", &supports_matmul, &make_matmul);
}

}  // namespace tandem::cpu
