// ew_post_ops.cpp: the translation of elementwise programs into oneDNN post-ops
// (ew_post_ops.h) for Conv/MatMul fusion.
#include "backends/cpu/ew_post_ops.h"

#include <algorithm>
#include <cfloat>
#include <cstring>

#include "backends/cpu/ew_exp_kernels.h"
#include "backends/cpu/op_family.h"
#include "backends/cpu/runtime_env.h"

namespace tandem::cpu {

namespace {

// The oneDNN binary algorithm of a two-operand op, or false.
bool binary_alg(Ew code, dnnl::algorithm* alg) {
  using A = dnnl::algorithm;
  switch (code) {
    case Ew::add: *alg = A::binary_add; return true;
    case Ew::sub: *alg = A::binary_sub; return true;
    case Ew::mul: *alg = A::binary_mul; return true;
    case Ew::div: *alg = A::binary_div; return true;
    case Ew::max: *alg = A::binary_max; return true;
    case Ew::min: *alg = A::binary_min; return true;
    default: return false;
  }
}


struct PendingPost {
  bool binary = false;
  dnnl::algorithm alg = dnnl::algorithm::eltwise_linear;
  float alpha = 0, beta = 0;
  dnnl::memory::desc md;
  int value = -1;
  dnnl::memory mem;
  int first_op = 0;  // the program op this post-op starts
};
}  // namespace

bool broadcast_shape(const Shape& shape, const Shape& dst_shape, int channel_axis, Shape* out) {
  const size_t rank = dst_shape.size();
  if (shape.size() > rank) return false;
  out->assign(rank, 1);
  std::copy(shape.begin(), shape.end(), out->begin() + static_cast<std::ptrdiff_t>(rank - shape.size()));
  for (size_t i = 0; i < rank; ++i)
    if ((*out)[i] != 1 && !(static_cast<int>(i) == channel_axis && (*out)[i] == dst_shape[i])) return false;
  return true;
}

int to_post_ops(Builder& b, const EwProgram& program, const Shape& dst_shape, int channel_axis, Layout dst_layout,
                dnnl::post_ops* po, std::vector<DnnlKernel::Arg>* args) {
  using A = dnnl::algorithm;
  const size_t rank = dst_shape.size();
  if (!feature_enabled("POSTOPS")) return 0;
  std::vector<PendingPost> pend;
  int op_index = 0;
  auto binary = [&](A alg, const dnnl::memory::desc& md, int value, dnnl::memory mem) {
    PendingPost p;
    p.binary = true;
    p.alg = alg;
    p.md = md;
    p.value = value;
    p.mem = mem;
    p.first_op = op_index;
    pend.push_back(p);
  };
  // A binary post-op with a scalar (broadcast over dst).
  auto scalar_binary = [&](A alg, float v) {
    const auto md = plain_md(Shape(rank, 1));
    dnnl::memory m(md, cpu_engine());
    std::memcpy(m.get_data_handle(), &v, sizeof v);
    binary(alg, md, -1, m);
  };
  auto eltwise_used = [&](A alg) {
    for (const PendingPost& p : pend)
      if (!p.binary && p.alg == alg) return true;
    return false;
  };
  auto eltwise = [&](A alg, float alpha, float beta) {
    // A second multiply-add or clip: binary ops with scalars. (Consecutive multiply-adds are
    // not merged into one: a2 * (a1 * x + b1) + b2 in one step rounds differently from the
    // separate nodes, and quantization downstream turns last-bit differences into steps.)
    if (alg == A::eltwise_linear && eltwise_used(alg)) {
      if (alpha != 1.0f) scalar_binary(A::binary_mul, alpha);
      if (beta != 0.0f) scalar_binary(A::binary_add, beta);
      return;
    }
    if (alg == A::eltwise_clip_v2 && eltwise_used(alg)) {
      if (alpha > -FLT_MAX) scalar_binary(A::binary_max, alpha);
      if (beta < FLT_MAX) scalar_binary(A::binary_min, beta);
      return;
    }
    PendingPost p;
    p.alg = alg;
    p.alpha = alpha;
    p.beta = beta;
    p.first_op = op_index;
    pend.push_back(p);
  };
  int done = 0;
  for (const EwOp& op : program.ops) {
    bool ok = true;
    op_index = done;
    const size_t before = pend.size();
    if (!ew_is_unary(op.code)) {
      float imm = op.a;
      bool scalar = op.operand < 0;
      int v = op.operand >= 0 ? program.operands[op.operand] : -1;
      const Tensor* c = v >= 0 ? b.known(v) : nullptr;
      if (c && c->dtype() == DataType::float32 && c->numel() == 1 && c->rank() <= rank) {
        scalar = true;
        imm = c->data<float>()[0];
      }
      if (scalar) {
        switch (op.code) {
          case Ew::add: eltwise(A::eltwise_linear, 1.0f, imm); break;
          case Ew::sub: eltwise(A::eltwise_linear, 1.0f, -imm); break;
          case Ew::rsub: eltwise(A::eltwise_linear, -1.0f, imm); break;
          case Ew::mul: eltwise(A::eltwise_linear, imm, 0.0f); break;
          case Ew::div: scalar_binary(A::binary_div, imm); break;
          case Ew::max: eltwise(A::eltwise_clip_v2, imm, FLT_MAX); break;
          case Ew::min: eltwise(A::eltwise_clip_v2, -FLT_MAX, imm); break;
          default: ok = false;
        }
      } else if (c) {
        // Per-channel constant: [.., C, 1, ..] against dst.
        Shape cs;
        A alg = A::binary_add;
        ok = c->dtype() == DataType::float32 && broadcast_shape(c->shape(), dst_shape, channel_axis, &cs) &&
             binary_alg(op.code, &alg);
        if (ok) {
          auto md = plain_md(cs);
          binary(alg, md, -1, dnnl::memory(md, cpu_engine(), const_cast<void*>(c->raw_data())));
        }
      } else {
        // Runtime operand: dst's shape and layout, or a plain scalar or per-channel tensor
        // (such as dynamic quantization's x_scale * w_scale).
        const IValue& ov = b.val(v);
        Shape cs;
        A alg = A::binary_add;
        if (ov.dtype != DataType::float32 || !binary_alg(op.code, &alg)) {
          ok = false;
        } else if (ov.shape == dst_shape) {
          ok = ov.layout == dst_layout && op.code != Ew::div;
          if (ok) binary(alg, value_md(ov), v, {});
        } else {
          ok = ov.layout == Layout::plain && broadcast_shape(ov.shape, dst_shape, channel_axis, &cs);
          if (ok) binary(alg, plain_md(cs), v, {});
        }
      }
    } else {
      switch (op.code) {
        case Ew::relu: eltwise(A::eltwise_relu, 0.0f, 0.0f); break;
        case Ew::leaky_relu: eltwise(A::eltwise_relu, op.a, 0.0f); break;
        case Ew::clip: eltwise(A::eltwise_clip_v2, op.a, op.b); break;
        case Ew::sigmoid: eltwise(A::eltwise_logistic, 0.0f, 0.0f); break;
        case Ew::tanh: eltwise(A::eltwise_tanh, 0.0f, 0.0f); break;
        case Ew::hardsigmoid:
          eltwise(A::eltwise_linear, op.a, op.b);
          eltwise(A::eltwise_clip_v2, 0.0f, 1.0f);
          break;
        case Ew::hardswish: eltwise(A::eltwise_hardswish, 0.0f, 0.0f); break;
        case Ew::swish: eltwise(A::eltwise_swish, 1.0f, 0.0f); break;
        case Ew::exp: eltwise(A::eltwise_exp, 0.0f, 0.0f); break;
        case Ew::sqrt: eltwise(A::eltwise_sqrt, 0.0f, 0.0f); break;
        case Ew::abs: eltwise(A::eltwise_abs, 0.0f, 0.0f); break;
        case Ew::neg: eltwise(A::eltwise_linear, -1.0f, 0.0f); break;
        case Ew::square: eltwise(A::eltwise_square, 0.0f, 0.0f); break;
        case Ew::linear: eltwise(A::eltwise_linear, op.a, op.b); break;
        case Ew::elu: eltwise(A::eltwise_elu, op.a, 0.0f); break;
        case Ew::selu:
          eltwise(A::eltwise_elu, op.a, 0.0f);
          eltwise(A::eltwise_linear, op.b, 0.0f);
          break;
        case Ew::gelu: eltwise(A::eltwise_gelu_erf, 0.0f, 0.0f); break;
        case Ew::gelu_tanh: eltwise(A::eltwise_gelu_tanh, 0.0f, 0.0f); break;
        case Ew::mish: eltwise(A::eltwise_mish, 0.0f, 0.0f); break;
        case Ew::round: eltwise(A::eltwise_round, 0.0f, 0.0f); break;
        case Ew::fake_quant_u8: case Ew::fake_quant_s8: case Ew::fake_quant_u16: case Ew::fake_quant_s16: {
          // x / scale (an exact division), the integer range less the zero point (clipping to
          // integer bounds before rounding gives the same integers), ties to even, times scale
          // (an integer of at most 17 bits times scale: one rounding). A second rounding in one
          // chain adds and subtracts 1.5 * 2^23, which rounds |x| < 2^22 to an integer, ties to
          // even.
          const bool wide = op.code == Ew::fake_quant_u16 || op.code == Ew::fake_quant_s16;
          const bool is_signed = op.code == Ew::fake_quant_s8 || op.code == Ew::fake_quant_s16;
          const float span = wide ? 65535.0f : 255.0f;
          const float lo = is_signed ? -(span + 1.0f) / 2.0f : 0.0f;
          scalar_binary(A::binary_div, op.a);
          eltwise(A::eltwise_clip_v2, lo - op.b, lo + span - op.b);
          if (!eltwise_used(A::eltwise_round)) {
            eltwise(A::eltwise_round, 0.0f, 0.0f);
          } else {
            scalar_binary(A::binary_add, 0x1.8p23f);
            scalar_binary(A::binary_sub, 0x1.8p23f);
          }
          eltwise(A::eltwise_linear, op.a, 0.0f);
          break;
        }
        case Ew::identity: break;
        default: ok = false;
      }
    }
    if (!ok) {
      pend.resize(before);
      break;
    }
    ++done;
  }
  // oneDNN 2.6 mixes up the parameters of two eltwise post-ops with the same algorithm: cut
  // the chain before the first repeat (the rest runs in the elementwise kernel).
  std::vector<A> seen;
  size_t keep = pend.size();
  for (size_t i = 0; i < pend.size(); ++i) {
    if (pend[i].binary) continue;
    if (std::find(seen.begin(), seen.end(), pend[i].alg) != seen.end()) {
      keep = i;
      done = pend[i].first_op;
      break;
    }
    seen.push_back(pend[i].alg);
  }
  // A post-op that straddles the cut (one of the two an op such as HardSigmoid becomes) goes too.
  while (keep > 0 && pend[keep - 1].first_op >= done && keep < pend.size()) --keep;
  for (size_t i = 0; i < keep; ++i) {
    const PendingPost& p = pend[i];
    if (!p.binary) {
      po->append_eltwise(1.0f, p.alg, p.alpha, p.beta);
    } else {
      int idx = po->len();
      po->append_binary(p.alg, p.md);
      args->push_back({DNNL_ARG_ATTR_MULTIPLE_POST_OP(idx) | DNNL_ARG_SRC_1, p.value, p.md, p.mem});
    }
  }
  return done;
}

}  // namespace tandem::cpu

namespace tandem::cpu {

int to_post_ops_swish_after(Builder& b, const EwProgram& program, const Shape& dst_shape, int channel_axis,
                            Layout dst_layout, dnnl::post_ops* po, std::vector<DnnlKernel::Arg>* args,
                            InPlaceFloats* after) {
  const size_t first_arg = args->size();
  const int done = to_post_ops(b, program, dst_shape, channel_axis, dst_layout, po, args);
  if (!after) return done;
  *after = nullptr;
  if (!feature_enabled_now("SWISH_AFTER")) return done;
  if (done == 0 || program.ops[done - 1].code != Ew::swish) return done;
  EwProgram head = program;
  head.ops.resize(done - 1);
  dnnl::post_ops head_po;
  std::vector<DnnlKernel::Arg> head_args(args->begin(), args->begin() + static_cast<std::ptrdiff_t>(first_arg));
  if (to_post_ops(b, head, dst_shape, channel_axis, dst_layout, &head_po, &head_args) != done - 1) return done;
  *po = head_po;
  *args = std::move(head_args);
  *after = &swish_in_place;
  return done;
}

bool post_op_translatable(const EwOp& op) {
  switch (op.code) {
    case Ew::add: case Ew::sub: case Ew::mul: case Ew::div: case Ew::max: case Ew::min: return true;
    case Ew::rsub: return op.operand < 0;
    case Ew::relu: case Ew::leaky_relu: case Ew::clip: case Ew::sigmoid: case Ew::tanh: case Ew::hardsigmoid:
    case Ew::hardswish: case Ew::swish: case Ew::exp: case Ew::sqrt: case Ew::abs: case Ew::neg: case Ew::square:
    case Ew::linear: case Ew::elu: case Ew::selu: case Ew::gelu: case Ew::gelu_tanh: case Ew::mish: case Ew::round:
    case Ew::fake_quant_u8: case Ew::fake_quant_s8: case Ew::fake_quant_u16: case Ew::fake_quant_s16: case Ew::identity:
      return true;
    default: return false;
  }
}

}  // namespace tandem::cpu
