// qgemm.cpp: the integer-accumulator products of the com.microsoft domain on the cpu backend:
//   QGemm                  (A, a_scale, a_zp, B, b_scale, b_zp, C?, y_scale?, y_zp?) -> Y
//                          acc = (op(A) - a_zp)(op(B) - b_zp[n]) + C, real = acc alpha a_scale
//                          b_scale[n]; Y float32, or requantized to y_scale / y_zp
//   DynamicQuantizeMatMul  (A float32, B, b_scale, b_zp?, bias?) -> A quantized as
//                          DynamicQuantizeLinear does, Y = acc a_scale b_scale[n] + bias[n]
//   MatMulIntegerToFloat   (A, B, a_scale, b_scale, a_zp?, b_zp?, bias?) -> Y float32 as above
//
// The integer product is the int8 matmul of qmatmul.cpp (add_qmatmul: oneDNN's int8 kernels
// with the weights minus their zero points packed when the instance is built, or the
// backend's own exact integer kernel where oneDNN cannot take them exactly), written as int32
// accumulators into a temporary. A second, vectorized kernel (ISA variants, runtime_env.h)
// forms the results from them exactly as the reference kernels do (src/kernels/
// quantize_contrib.cpp): the real value in double, multiplied left to right in the reference's
// order, float outputs rounded once to float32, 8-bit outputs divided by y_scale (in double),
// rounded half to even and saturated. So outputs equal the reference's as long as the int32
// accumulation does not wrap (the reference accumulates in int64).
//
// QGemm's B must be known when the instance is built; transB transposes it then. transA
// transposes A into a temporary at each run. DynamicQuantizeMatMul quantizes A with the
// DynamicQuantizeLinear kernel of quantize.cpp; its scale and zero point are runtime values.
#include <algorithm>
#include <cmath>

#include "backends/cpu/int8.h"
#include "backends/cpu/op_family.h"

namespace tandem::cpu {

namespace {

// One run's coefficients of the result kernel.
struct Epilogue {
  double alpha = 1.0, as = 1.0, ys = 1.0, yz = 0.0, lo = 0.0, hi = 255.0;
  const float* bs = nullptr;    // b_scale: one per column, or one (PerColumn false)
  const float* bias = nullptr;  // Mode 0: one per column
};

// Mode 0: float32 acc alpha a_s b_s[n] + bias[n]; 1: float32 without bias; 2: uint8, 3: int8
// requantized from acc alpha a_s b_s[n] / y_s.
template <int Mode, bool PerColumn>
TANDEM_ISA_BODY void epilogue_body(const int32_t* acc, int64_t n, const Epilogue& e, void* out) {
  const double alpha = e.alpha, as = e.as, ys = e.ys, yz = e.yz, lo = e.lo, hi = e.hi;
  const float* bs = e.bs;
  const float* bias = e.bias;
  for (int64_t i = 0; i < n; ++i) {
    const double real = static_cast<double>(acc[i]) * alpha * as * static_cast<double>(bs[PerColumn ? i : 0]);
    if constexpr (Mode == 0) static_cast<float*>(out)[i] = static_cast<float>(real + static_cast<double>(bias[i]));
    if constexpr (Mode == 1) static_cast<float*>(out)[i] = static_cast<float>(real);
    if constexpr (Mode == 2) static_cast<uint8_t*>(out)[i] = requantize<uint8_t>(real / ys, yz, lo, hi);
    if constexpr (Mode == 3) static_cast<int8_t*>(out)[i] = requantize<int8_t>(real / ys, yz, lo, hi);
  }
}
template <int Mode, bool PerColumn>
TANDEM_TARGET_AVX512 void epilogue_avx512(const int32_t* acc, int64_t n, const Epilogue& e, void* out) {
  epilogue_body<Mode, PerColumn>(acc, n, e, out);
}
template <int Mode, bool PerColumn>
TANDEM_TARGET_AVX2 void epilogue_avx2(const int32_t* acc, int64_t n, const Epilogue& e, void* out) {
  epilogue_body<Mode, PerColumn>(acc, n, e, out);
}
template <int Mode, bool PerColumn>
void epilogue_baseline(const int32_t* acc, int64_t n, const Epilogue& e, void* out) {
  epilogue_body<Mode, PerColumn>(acc, n, e, out);
}

using EpilogueFn = void (*)(const int32_t*, int64_t, const Epilogue&, void*);

template <int Mode, bool PerColumn>
EpilogueFn pick_level() {
  const int level = cpu_isa_level();
  return level >= 2 ? &epilogue_avx512<Mode, PerColumn> : level == 1 ? &epilogue_avx2<Mode, PerColumn>
                                                                     : &epilogue_baseline<Mode, PerColumn>;
}
template <int Mode>
EpilogueFn pick_columns(bool per_column) {
  return per_column ? pick_level<Mode, true>() : pick_level<Mode, false>();
}
EpilogueFn pick_epilogue(int mode, bool per_column) {
  switch (mode) {
    case 0: return pick_columns<0>(per_column);
    case 1: return pick_columns<1>(per_column);
    case 2: return pick_columns<2>(per_column);
    default: return pick_columns<3>(per_column);
  }
}

// The results from the int32 accumulators [rows, cols] (QGemm's C added first).
class ResultKernel final : public Kernel {
 public:
  int acc = -1, out = -1;
  int64_t rows = 0, cols = 0;
  int mode = 0;
  double alpha = 1.0;
  Scale as;
  std::vector<float> b_scales;  // known: one per column
  int b_scale_value = -1;       // or a runtime value of b_scale_count values
  int64_t b_scale_count = 1;
  std::vector<float> bias_known;  // mode 0 without a bias value: zeros
  int bias = -1;
  int c = -1;  // QGemm's C, int32, broadcast with strides (c_rows, c_cols) per (row, column)
  int64_t c_rows = 0, c_cols = 0;
  Scale ys;
  ZeroPoint yz;
  EpilogueFn fn = nullptr;

  Status run(RunCtx& ctx, KernelState*) const override {
    Epilogue e;
    e.alpha = alpha;
    e.as = as.read(ctx);
    if (!std::isfinite(e.as)) return invalid_argument(label + " a_scale is not finite");
    e.bs = b_scale_value >= 0 ? static_cast<const float*>(ctx.ptr[b_scale_value]) : b_scales.data();
    for (int64_t i = 0; i < (b_scale_value >= 0 ? b_scale_count : 0); ++i)
      if (!std::isfinite(e.bs[i])) return invalid_argument(label + " b_scale is not finite");
    e.bias = bias >= 0 ? static_cast<const float*>(ctx.ptr[bias]) : bias_known.data();
    if (mode >= 2) {
      e.ys = ys.read(ctx);
      if (!std::isfinite(e.ys) || e.ys == 0.0) return invalid_argument(label + " y_scale is zero or not finite");
      e.yz = yz.read(ctx);
      e.lo = mode == 3 ? -128 : 0;
      e.hi = mode == 3 ? 127 : 255;
    }
    auto* pacc = static_cast<int32_t*>(ctx.ptr[acc]);
    const auto* pc = c >= 0 ? static_cast<const int32_t*>(ctx.ptr[c]) : nullptr;
    auto* pout = static_cast<uint8_t*>(ctx.ptr[out]);
    const size_t out_size = mode <= 1 ? sizeof(float) : 1;
    const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(cols, 1));
    parallel_range(rows * cols < 65536 ? 1 : ctx.threads, rows, grain, [&](int64_t lo, int64_t hi) {
      for (int64_t m = lo; m < hi; ++m) {
        int32_t* row = pacc + m * cols;
        if (pc)
          for (int64_t n = 0; n < cols; ++n) row[n] += pc[m * c_rows + n * c_cols];
        fn(row, cols, e, pout + static_cast<size_t>(m * cols) * out_size);
      }
    });
    return Status::ok();
  }
};

// A [K, M] 8-bit matrix transposed into [M, K].
class TransposeKernel final : public Kernel {
 public:
  int src = -1, dst = -1;
  int64_t K = 0, M = 0;
  Status run(RunCtx& ctx, KernelState*) const override {
    const auto* s = static_cast<const uint8_t*>(ctx.ptr[src]);
    auto* d = static_cast<uint8_t*>(ctx.ptr[dst]);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t k = 0; k < K; ++k) d[m * K + k] = s[k * M + m];
    return Status::ok();
  }
};

// The per-column b_scale of a product with `cols` columns into `k`.
Status bind_b_scale(Builder& b, int v, int64_t cols, const std::string& label, ResultKernel* k) {
  if (v < 0 || !b.typed(v) || b.val(v).dtype != DataType::float32) return unsupported(label + " b_scale type unknown");
  const int64_t count = shape_numel(b.val(v).shape);
  if (count != 1 && (b.val(v).shape.size() != 1 || count != cols)) return unsupported(label + " b_scale shape");
  if (b.known(v)) {
    TANDEM_ASSIGN_OR_RETURN(k->b_scales, known_scales(b, v, cols, label + " b_scale"));
    return Status::ok();
  }
  TANDEM_ASSIGN_OR_RETURN(k->b_scale_value, b.require(v, Layout::plain));
  k->b_scale_count = count;
  k->reads.push_back(k->b_scale_value);
  return Status::ok();
}

// Declines a zero point `zp` whose type differs from its data `data`'s (the reference reports it).
Status check_zero_point_type(Builder& b, int zp, int data, const std::string& what) {
  if (zp >= 0 && data >= 0 && b.typed(zp) && b.typed(data) && b.val(zp).dtype != b.val(data).dtype)
    return unsupported(what + " has another type than its data");
  return Status::ok();
}

// Adds the result kernel: `acc` [rows, cols] int32 into the step's output.
Status add_result(Builder& b, std::unique_ptr<ResultKernel> k, int acc, int out, int64_t cols, const std::string& label) {
  k->acc = acc;
  k->cols = cols;
  k->rows = cols > 0 ? shape_numel(b.val(acc).shape) / cols : 0;
  k->reads.push_back(acc);
  if (k->mode == 0 && k->bias < 0) k->bias_known.assign(static_cast<size_t>(cols), 0.0f);
  const bool per_column = k->b_scale_value < 0 || k->b_scale_count > 1;
  k->fn = pick_epilogue(k->mode, per_column);
  b.define(out, Layout::plain);
  k->out = out;
  k->writes = {out, acc};
  k->label = label + " (results)";
  b.add_work(static_cast<double>(shape_numel(b.val(acc).shape)));
  b.add_kernel(std::move(k));
  return Status::ok();
}

class QGemmSpec final : public OpSpec {
 public:
  Status prepare(Builder& b, const Step& step) const override {
    const Node& n = *step.node;
    const std::string label = n.label();
    auto in = [&](size_t i) { return i < step.inputs.size() ? step.inputs[i] : -1; };
    const int a = in(0), bw = in(3), out = step.outputs[0];
    if (!b.typed(a) || !b.typed(out) || b.val(a).shape.size() != 2) return unsupported(label + " A shape unknown");
    // A copy (shares the data): the builder's values move as values are added.
    const Tensor known = b.known(bw) ? *b.known(bw) : Tensor();
    const Tensor* known_b = &known;
    if (!known.defined() || known.rank() != 2) return unsupported(label + " B must be a matrix known when the plan is built");
    const bool trans_a = n.attr_int("transA", 0) != 0, trans_b = n.attr_int("transB", 0) != 0;
    const Shape as = b.val(a).shape;
    const int64_t M = trans_a ? as[1] : as[0], K = trans_a ? as[0] : as[1];
    const int64_t N = trans_b ? known_b->dim(0) : known_b->dim(1);
    if ((trans_b ? known_b->dim(1) : known_b->dim(0)) != K) return unsupported(label + " inner dims differ");
    if (b.val(out).shape != Shape{M, N}) return unsupported(label + " output shape");
    const bool quantized = in(7) >= 0 && in(8) >= 0;
    if ((in(7) >= 0) != (in(8) >= 0)) return unsupported(label + " y_scale and y_zero_point must come together");
    const float alpha = n.attr_float("alpha", 1.0f);
    if (!std::isfinite(alpha)) return unsupported(label + " alpha is not finite");

    auto k = std::make_unique<ResultKernel>();
    k->alpha = alpha;
    TANDEM_ASSIGN_OR_RETURN(k->as, read_scale(b, in(1), label + " a_scale", &k->reads));
    TANDEM_RETURN_IF_ERROR(bind_b_scale(b, in(4), N, label, k.get()));
    if (quantized) {
      const DataType yt = b.val(out).dtype;
      if (!is_8bit(yt)) return unsupported(label + " quantized output type");
      k->mode = yt == DataType::int8 ? 3 : 2;
      TANDEM_ASSIGN_OR_RETURN(k->ys, read_scale(b, in(7), label + " y_scale", &k->reads));
      TANDEM_ASSIGN_OR_RETURN(k->yz, read_zero_point_of(b, in(8), yt, label + " y_zero_point", &k->reads));
    } else {
      if (b.val(out).dtype != DataType::float32) return unsupported(label + " float output type");
      k->mode = 1;
    }
    if (const int c = in(6); c >= 0) {
      if (!b.typed(c) || b.val(c).dtype != DataType::int32 || b.val(c).shape.size() > 2) return unsupported(label + " C");
      Shape cs = b.val(c).shape;
      while (cs.size() < 2) cs.insert(cs.begin(), 1);
      if ((cs[0] != 1 && cs[0] != M) || (cs[1] != 1 && cs[1] != N)) return unsupported(label + " C does not broadcast");
      k->c_rows = cs[0] == 1 ? 0 : cs[1];
      k->c_cols = cs[1] == 1 ? 0 : 1;
      TANDEM_ASSIGN_OR_RETURN(k->c, b.require(c, Layout::plain));
      k->reads.push_back(k->c);
    }

    // The product: A (transposed into a temporary for transA), B (transposed now for transB).
    TANDEM_ASSIGN_OR_RETURN(int pa, b.require(a, Layout::plain));
    if (trans_a) {
      auto t = std::make_unique<TransposeKernel>();
      t->src = pa;
      t->K = K;
      t->M = M;
      t->dst = pa = b.add_temp(b.val(a).dtype, {M, K}, Layout::plain);
      t->reads = {t->src};
      t->writes = {t->dst};
      t->label = label + " (transpose A)";
      b.add_kernel(std::move(t));
    }
    Tensor right = *known_b;
    if (trans_b) {
      right = Tensor(known_b->dtype(), {K, N});
      const auto* src = static_cast<const uint8_t*>(known_b->raw_data());
      auto* dst = static_cast<uint8_t*>(right.raw_data());
      for (int64_t kk = 0; kk < K; ++kk)
        for (int64_t nn = 0; nn < N; ++nn) dst[kk * N + nn] = src[nn * K + kk];
    }
    TANDEM_RETURN_IF_ERROR(check_zero_point_type(b, in(2), a, label + " a_zero_point"));
    TANDEM_RETURN_IF_ERROR(check_zero_point_type(b, in(5), bw, label + " b_zero_point"));
    QMatMulOperands o;
    o.label = label;
    o.a = pa;
    o.a_zp = in(2);
    o.b = bw;
    o.b_known = &right;
    o.b_zp = in(5);
    o.out = b.add_temp(DataType::int32, {M, N}, Layout::plain);
    o.out_defined = true;
    o.head_known = true;
    o.head = {M, N};
    TANDEM_RETURN_IF_ERROR(add_qmatmul(b, o, false, EwProgram{}));
    return add_result(b, std::move(k), o.out, out, N, label);
  }
};

// DynamicQuantizeMatMul and MatMulIntegerToFloat.
class ToFloatSpec final : public OpSpec {
 public:
  bool dynamic = false;
  Status prepare(Builder& b, const Step& step) const override {
    const std::string label = step.node->label();
    auto in = [&](size_t i) { return i < step.inputs.size() ? step.inputs[i] : -1; };
    const int a = in(0), bw = in(1), out = step.outputs[0];
    if (!b.typed(a) || !b.typed(bw) || !b.typed(out) || b.val(out).dtype != DataType::float32)
      return unsupported(label + " shape unknown");
    const Shape bs = b.val(bw).shape;
    if (bs.empty()) return unsupported(label + " B is a scalar");
    const int64_t N = bs.size() == 1 ? 1 : bs.back();
    auto k = std::make_unique<ResultKernel>();
    k->mode = 0;
    QMatMulOperands o;
    o.label = label;
    o.b = bw;
    if (dynamic) {
      int scale = -1;
      TANDEM_RETURN_IF_ERROR(add_dynamic_quantize(b, a, label, &o.a, &scale, &o.a_zp));
      k->as.value = scale;
      k->reads.push_back(scale);
      o.b_zp = in(3);
      TANDEM_RETURN_IF_ERROR(bind_b_scale(b, in(2), N, label, k.get()));
    } else {
      o.a = a;
      o.a_zp = in(4);
      o.b_zp = in(5);
      TANDEM_ASSIGN_OR_RETURN(k->as, read_scale(b, in(2), label + " a_scale", &k->reads));
      TANDEM_RETURN_IF_ERROR(bind_b_scale(b, in(3), N, label, k.get()));
    }
    if (const int bias = in(dynamic ? 4 : 6); bias >= 0) {
      if (!b.typed(bias) || b.val(bias).dtype != DataType::float32 || b.val(bias).shape != Shape{N})
        return unsupported(label + " bias must be float32 [N]");
      TANDEM_ASSIGN_OR_RETURN(k->bias, b.require(bias, Layout::plain));
      k->reads.push_back(k->bias);
    }
    TANDEM_RETURN_IF_ERROR(check_zero_point_type(b, o.b_zp, bw, label + " b_zero_point"));
    if (!dynamic) TANDEM_RETURN_IF_ERROR(check_zero_point_type(b, o.a_zp, a, label + " a_zero_point"));
    o.out = b.add_temp(DataType::int32, b.val(out).shape, Layout::plain);
    o.out_defined = true;
    o.head_known = true;
    o.head = b.val(out).shape;
    TANDEM_RETURN_IF_ERROR(add_qmatmul(b, o, false, EwProgram{}));
    return add_result(b, std::move(k), o.out, out, N, label);
  }
};

Status supports_inputs(const Node& n, std::initializer_list<size_t> required) {
  for (size_t i : required)
    if (n.inputs.size() <= i || n.inputs[i].empty()) return unsupported(n.label() + " missing input " + std::to_string(i));
  return Status::ok();
}
Status supports_qgemm(const Node& n) {
  if (!std::isfinite(n.attr_float("alpha", 1.0f))) return unsupported(n.label() + " alpha is not finite");
  return supports_inputs(n, {0, 1, 3, 4});
}
Status supports_dynamic(const Node& n) { return supports_inputs(n, {0, 1, 2}); }
Status supports_to_float(const Node& n) { return supports_inputs(n, {0, 1, 2, 3}); }

Result<std::unique_ptr<OpSpec>> make_qgemm(FusionContext&, const Step&) {
  return std::unique_ptr<OpSpec>(std::make_unique<QGemmSpec>());
}
Result<std::unique_ptr<OpSpec>> make_to_float(FusionContext&, const Step& st) {
  auto s = std::make_unique<ToFloatSpec>();
  s->dynamic = st.node->op_type == "DynamicQuantizeMatMul";
  return std::unique_ptr<OpSpec>(std::move(s));
}

}  // namespace

void register_qgemm_ops(OpTable& t) {
  t.add_microsoft("QGemm", &supports_qgemm, &make_qgemm);
  t.add_microsoft("DynamicQuantizeMatMul", &supports_dynamic, &make_to_float);
  t.add_microsoft("MatMulIntegerToFloat", &supports_to_float, &make_to_float);
}

}  // namespace tandem::cpu
