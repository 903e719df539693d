// qelementwise.cpp: the elementwise quantized ops of the com.microsoft domain (ONNX Runtime's
// QOperator format) on the cpu backend, on uint8/int8 data:
//   QLinearAdd, QLinearMul   C = requant((A_s (A - A_z) op B_s (B - B_z)) / C_s) + C_z, numpy
//                            broadcasting
//   QLinearSigmoid, QLinearLeakyRelu   Y = requant(f(X_s (X - X_z)) / Y_s) + Y_z
//   QLinearConcat            each input requantized to Y's scale and zero point, concatenated
// The arithmetic is the reference kernels' (src/kernels/quantize_contrib.cpp), so 8-bit
// outputs are equal: scales are the float32 values widened to double, the real arithmetic and
// the division by the output scale are done in double (never a reciprocal), rounding is half to
// even and the result saturates.
//
// Add/Mul run one vectorized loop per innermost run of the broadcast (ISA variants,
// runtime_env.h): the output shape is collapsed to an outer box times an inner run along
// which each operand either advances (stride 1) or stays fixed (stride 0), so same shapes,
// scalars and per-channel operands (channels first or last) are all contiguous inner runs.
// Long runs with one operand fixed map the other through a per-run table of its 256 results;
// operands of the output's shape with known parameters map byte pairs through a 64 KB table
// built with the instance (both computed by the same loop, so exact). Unary ops and Concat map each 8-bit input through a 256-entry table of the requantized
// results: built when the instance is built if the scales and zero points are known then,
// otherwise at each run (on the stack, or in an arena temporary for Concat's tables). The
// table lookups are qtable.h's; Concat copies inputs whose table is the identity.
//
// Layouts: plain, or nhwc for a 4-D activation a quantized convolution left channels last:
// unary ops keep it, Add/Mul keep it when each operand has the output's shape or the same bytes
// in both layouts (a per-channel [C, 1, 1], a scalar), Concat along the channels keeps it.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "backends/cpu/int8.h"
#include "backends/cpu/op_family.h"
#include "backends/cpu/qtable.h"

namespace tandem::cpu {

namespace {

constexpr int64_t kGrain = 1 << 14;
constexpr size_t kMaxDims = 8;

// ---- QLinearAdd / QLinearMul ---------------------------------------------------------------------

// One run's coefficients, as the reference kernel forms them.
struct BinCoef {
  double as = 1, bs = 1, cs = 1, cz = 0, lo = 0, hi = 255;
  int32_t az = 0, bz = 0;
};

// c[i] = requant((x op y) / cs) with x, y the real values of a[i], b[i]; Fixed 1: a[0] for every
// i, 2: b[0] for every i. n >= 1.
template <class Q, bool Mul, int Fixed>
TANDEM_ISA_BODY void qbin_body(const Q* a, const Q* b, Q* c, int64_t n, const BinCoef& k) {
  const double as = k.as, bs = k.bs, cs = k.cs, cz = k.cz, lo = k.lo, hi = k.hi;
  const int32_t az = k.az, bz = k.bz;
  const double xa = as * static_cast<double>(static_cast<int32_t>(a[0]) - az);
  const double xb = bs * static_cast<double>(static_cast<int32_t>(b[0]) - bz);
  for (int64_t i = 0; i < n; ++i) {
    const double x = Fixed == 1 ? xa : as * static_cast<double>(static_cast<int32_t>(a[i]) - az);
    const double y = Fixed == 2 ? xb : bs * static_cast<double>(static_cast<int32_t>(b[i]) - bz);
    c[i] = requantize<Q>((Mul ? x * y : x + y) / cs, cz, lo, hi);
  }
}
template <class Q, bool Mul, int Fixed>
TANDEM_TARGET_AVX512 void qbin_avx512(const void* a, const void* b, void* c, int64_t n, const BinCoef& k) {
  qbin_body<Q, Mul, Fixed>(static_cast<const Q*>(a), static_cast<const Q*>(b), static_cast<Q*>(c), n, k);
}
template <class Q, bool Mul, int Fixed>
TANDEM_TARGET_AVX2 void qbin_avx2(const void* a, const void* b, void* c, int64_t n, const BinCoef& k) {
  qbin_body<Q, Mul, Fixed>(static_cast<const Q*>(a), static_cast<const Q*>(b), static_cast<Q*>(c), n, k);
}
template <class Q, bool Mul, int Fixed>
void qbin_baseline(const void* a, const void* b, void* c, int64_t n, const BinCoef& k) {
  qbin_body<Q, Mul, Fixed>(static_cast<const Q*>(a), static_cast<const Q*>(b), static_cast<Q*>(c), n, k);
}

using RowFn = void (*)(const void*, const void*, void*, int64_t, const BinCoef&);

template <class Q, bool Mul, int Fixed>
RowFn pick_level() {
  const int level = cpu_isa_level();
  return level >= 2 ? &qbin_avx512<Q, Mul, Fixed> : level == 1 ? &qbin_avx2<Q, Mul, Fixed> : &qbin_baseline<Q, Mul, Fixed>;
}
template <class Q, bool Mul>
RowFn pick_fixed(int fixed) {
  return fixed == 1 ? pick_level<Q, Mul, 1>() : fixed == 2 ? pick_level<Q, Mul, 2>() : pick_level<Q, Mul, 0>();
}
RowFn pick_row(bool s8, bool mul, int fixed) {
  if (s8) return mul ? pick_fixed<int8_t, true>(fixed) : pick_fixed<int8_t, false>(fixed);
  return mul ? pick_fixed<uint8_t, true>(fixed) : pick_fixed<uint8_t, false>(fixed);
}

// The broadcast of two operands to an output shape, collapsed: `dims` outer dims (outermost
// first) with each operand's element strides, then an inner run of `inner` elements along
// which operand j advances by `step[j]` (1) or stays (0).
struct Broadcast {
  size_t rank = 0;
  std::array<int64_t, kMaxDims> dims{}, stride_a{}, stride_b{};
  int64_t outer = 1, inner = 1;
  int64_t step[2] = {1, 1};
};

Result<Broadcast> plan_broadcast(const Shape& y, const Shape& a, const Shape& b, const std::string& label) {
  const size_t r = y.size();
  if (a.size() > r || b.size() > r) return unsupported(label + " operand ranks exceed the output's");
  // Per output dim (size > 1 only): each operand's stride, 0 where it is broadcast.
  std::vector<int64_t> dims, sa, sb;
  auto strides_of = [&](const Shape& s) {
    std::vector<int64_t> st(r, 0);
    int64_t acc = 1;
    for (size_t i = s.size(); i-- > 0;) {
      const size_t d = r - s.size() + i;
      st[d] = s[i] == 1 ? 0 : acc;
      acc *= s[i];
    }
    return st;
  };
  const std::vector<int64_t> fa = strides_of(a), fb = strides_of(b);
  for (size_t d = 0; d < r; ++d) {
    const int64_t da = d + a.size() >= r ? a[d + a.size() - r] : 1, db = d + b.size() >= r ? b[d + b.size() - r] : 1;
    if ((da != y[d] && da != 1) || (db != y[d] && db != 1)) return unsupported(label + " operands do not broadcast");
    if (y[d] == 1) continue;
    // Merge with the previous dim when both operands continue it (contiguous or both fixed).
    if (!dims.empty() && sa.back() == fa[d] * y[d] && sb.back() == fb[d] * y[d]) {
      dims.back() *= y[d];
      sa.back() = fa[d];
      sb.back() = fb[d];
      continue;
    }
    dims.push_back(y[d]);
    sa.push_back(fa[d]);
    sb.push_back(fb[d]);
  }
  Broadcast p;
  if (dims.empty()) return p;  // one element
  if (dims.size() > kMaxDims + 1) return unsupported(label + " broadcast has too many distinct dims");
  p.inner = dims.back();
  p.step[0] = sa.back();
  p.step[1] = sb.back();
  p.rank = dims.size() - 1;
  for (size_t d = 0; d < p.rank; ++d) {
    p.dims[d] = dims[d];
    p.stride_a[d] = sa[d];
    p.stride_b[d] = sb[d];
    p.outer *= dims[d];
  }
  return p;
}

// True when a tensor of shape `s` (padded to 4-D) has the same bytes in the plain and the nhwc
// layout: one channel, or no spatial extent.
bool same_bytes_in_nhwc(const Shape& s) {
  Shape p(4 - std::min<size_t>(4, s.size()), 1);
  p.insert(p.end(), s.begin(), s.end());
  return p.size() == 4 && (p[1] == 1 || (p[2] == 1 && p[3] == 1));
}

// Checks a run's scales as the reference does (finite; the output's nonzero).
Status check_scales(const std::string& label, std::initializer_list<float> in, float out) {
  for (float s : in)
    if (!std::isfinite(s)) return invalid_argument(label + " a scale is not finite");
  if (!std::isfinite(out) || out == 0.0f) return invalid_argument(label + " the output scale is zero or not finite");
  return Status::ok();
}

// Runs at least this long with one operand fixed go through a table (see QBinaryKernel::run).
constexpr int64_t kTableRun = 1024;
// Operands of the output's shape with known parameters and at least this many elements use a
// table of every byte pair's result (64 KB, built with the instance).
constexpr int64_t kPairTableMin = 1 << 14;

class QBinaryKernel final : public Kernel {
 public:
  int a = -1, b = -1, c = -1;
  bool s8 = false;
  Scale as, bs, cs;
  ZeroPoint az, bz, cz;
  Broadcast plan;
  RowFn row = nullptr;

  // With known parameters and operands of the output's shape: the result of every byte pair
  // (a, b) at [a * 256 + b], 3 bytes of padding for 4-byte gathers.
  std::vector<uint8_t> pair_table;

  // The run's coefficients (the scales checked as the reference checks them).
  Result<BinCoef> coef(const RunCtx& ctx) const {
    BinCoef k;
    k.as = as.read(ctx);
    k.bs = bs.read(ctx);
    k.cs = cs.read(ctx);
    TANDEM_RETURN_IF_ERROR(check_scales(label, {as.read(ctx), bs.read(ctx)}, cs.read(ctx)));
    k.az = az.read(ctx);
    k.bz = bz.read(ctx);
    k.cz = cz.read(ctx);
    k.lo = s8 ? -128 : 0;
    k.hi = s8 ? 127 : 255;
    return k;
  }

  Status run(RunCtx& ctx, KernelState*) const override {
    TANDEM_ASSIGN_OR_RETURN(const BinCoef k, coef(ctx));
    const auto* pa = static_cast<const uint8_t*>(ctx.ptr[a]);
    const auto* pb = static_cast<const uint8_t*>(ctx.ptr[b]);
    auto* pc = static_cast<uint8_t*>(ctx.ptr[c]);
    const int64_t inner = plan.inner;
    if (inner == 0 || plan.outer == 0) return Status::ok();  // an empty output
    // A long run with one operand fixed maps the other through a table of the 256 results,
    // computed by the same loop (so the same arithmetic) over every byte value.
    const int fixed = plan.step[0] == 0 ? 1 : plan.step[1] == 0 ? 2 : 0;
    const bool tabled = fixed != 0 && inner >= kTableRun;
    if (plan.rank == 0) {  // one run: split it
      alignas(64) uint8_t table[256];
      if (tabled) row(fixed == 1 ? pa : all_bytes(), fixed == 2 ? pb : all_bytes(), table, 256, k);
      parallel_range(inner < 4 * kGrain ? 1 : ctx.threads, inner, kGrain, [&](int64_t lo, int64_t hi) {
        if (tabled) lut_map((fixed == 1 ? pb : pa) + lo, pc + lo, hi - lo, table);
        else if (!pair_table.empty()) pair_map(pa + lo, pb + lo, pc + lo, hi - lo, pair_table.data());
        else row(pa + lo * plan.step[0], pb + lo * plan.step[1], pc + lo, hi - lo, k);
      });
      return Status::ok();
    }
    const int64_t grain = std::max<int64_t>(1, kGrain / inner);
    parallel_range(plan.outer * inner < 4 * kGrain ? 1 : ctx.threads, plan.outer, grain, [&](int64_t lo, int64_t hi) {
      alignas(64) uint8_t table[256];
      for (int64_t o = lo; o < hi; ++o) {
        int64_t rest = o, off_a = 0, off_b = 0;
        for (size_t d = plan.rank; d-- > 0;) {
          const int64_t i = rest % plan.dims[d];
          rest /= plan.dims[d];
          off_a += i * plan.stride_a[d];
          off_b += i * plan.stride_b[d];
        }
        if (tabled) {
          row(fixed == 1 ? pa + off_a : all_bytes(), fixed == 2 ? pb + off_b : all_bytes(), table, 256, k);
          lut_map(fixed == 1 ? pb + off_b : pa + off_a, pc + o * inner, inner, table);
          continue;
        }
        if (!pair_table.empty()) pair_map(pa + off_a, pb + off_b, pc + o * inner, inner, pair_table.data());
        else row(pa + off_a, pb + off_b, pc + o * inner, inner, k);
      }
    });
    return Status::ok();
  }
};

class QBinarySpec final : public OpSpec {
 public:
  bool mul = false;
  Status prepare(Builder& b, const Step& step) const override {
    const std::string label = step.node->label();
    auto in = [&](size_t i) { return i < step.inputs.size() ? step.inputs[i] : -1; };
    const int a = in(0), bv = in(3), out = step.outputs[0];
    if (!b.typed(a) || !b.typed(bv) || !b.typed(out)) return unsupported(label + " shape unknown");
    const DataType t = b.val(a).dtype;
    if (!is_8bit(t) || b.val(bv).dtype != t || b.val(out).dtype != t) return unsupported(label + " element types");
    // Channels-last activations (a quantized convolution's output) stay channels-last when
    // every operand either has the output's shape or the same bytes in both layouts.
    const Shape ys = b.val(out).shape;
    bool nhwc = ys.size() == 4 && (b.val(a).layout == Layout::nhwc || b.val(bv).layout == Layout::nhwc);
    for (int v : {a, bv})
      if (nhwc && b.val(v).shape != ys && !same_bytes_in_nhwc(b.val(v).shape)) nhwc = false;
    auto physical = [&](const Shape& s) {
      if (!nhwc) return s;
      Shape p(4 - std::min<size_t>(4, s.size()), 1);
      p.insert(p.end(), s.begin(), s.end());
      return Shape{p[0], p[2], p[3], p[1]};
    };
    auto k = std::make_unique<QBinaryKernel>();
    TANDEM_ASSIGN_OR_RETURN(k->plan, plan_broadcast(physical(ys), physical(b.val(a).shape), physical(b.val(bv).shape), label));
    TANDEM_ASSIGN_OR_RETURN(k->as, read_scale(b, in(1), label + " A_scale", &k->reads));
    TANDEM_ASSIGN_OR_RETURN(k->az, read_zero_point_of(b, in(2), t, label + " A_zero_point", &k->reads));
    TANDEM_ASSIGN_OR_RETURN(k->bs, read_scale(b, in(4), label + " B_scale", &k->reads));
    TANDEM_ASSIGN_OR_RETURN(k->bz, read_zero_point_of(b, in(5), t, label + " B_zero_point", &k->reads));
    TANDEM_ASSIGN_OR_RETURN(k->cs, read_scale(b, in(6), label + " C_scale", &k->reads));
    TANDEM_ASSIGN_OR_RETURN(k->cz, read_zero_point_of(b, in(7), t, label + " C_zero_point", &k->reads));
    const Layout layout = nhwc ? Layout::nhwc : Layout::plain;
    TANDEM_ASSIGN_OR_RETURN(k->a, b.require(a, b.val(a).shape == ys ? layout : Layout::plain));
    TANDEM_ASSIGN_OR_RETURN(k->b, b.require(bv, b.val(bv).shape == ys ? layout : Layout::plain));
    k->reads.push_back(k->a);
    k->reads.push_back(k->b);
    b.define(out, layout);
    k->c = out;
    k->writes = {out};
    k->s8 = t == DataType::int8;
    const int fixed = k->plan.step[0] == 0 ? 1 : k->plan.step[1] == 0 ? 2 : 0;
    k->row = pick_row(k->s8, mul, fixed);
    k->label = label;
    const bool known = k->as.value < 0 && k->bs.value < 0 && k->cs.value < 0 && k->az.value < 0 && k->bz.value < 0 &&
                       k->cz.value < 0;
    if (known && fixed == 0 && shape_numel(ys) >= kPairTableMin) {
      // Every byte pair's result, by the same loop (so the same arithmetic) with A fixed.
      const RowFn fixed_a = pick_row(k->s8, mul, 1);
      TANDEM_ASSIGN_OR_RETURN(const BinCoef coef, k->coef(RunCtx{}));
      k->pair_table.assign(256 * 256 + 3, 0);
      for (int v = 0; v < 256; ++v) fixed_a(&all_bytes()[v], all_bytes(), k->pair_table.data() + 256 * v, 256, coef);
    }
    if (verbose())
      note(label + " " + shape_to_string(b.val(out).shape) + ": " + std::to_string(k->plan.outer) + " runs of " +
           std::to_string(k->plan.inner) + (fixed == 1 ? ", A fixed per run" : fixed == 2 ? ", B fixed per run" : "") +
           (nhwc ? ", channels last" : "") +
           (k->pair_table.empty() ? "" : ", byte-pair table"));
    b.add_work(static_cast<double>(shape_numel(b.val(out).shape)));
    b.add_kernel(std::move(k));
    return Status::ok();
  }
};

// ---- tables: QLinearSigmoid, QLinearLeakyRelu, QLinearConcat --------------------------------------

using Table = std::array<uint8_t, 256>;

// table[byte] = requant(f(x_s (q - x_z)) / y_s) + y_z for the 8-bit value q whose byte it is.
template <class F>
void fill_table(uint8_t* table, bool s8, double xs, int32_t xz, double ys, int32_t yz, F f) {
  const double lo = s8 ? -128 : 0, hi = s8 ? 127 : 255;
  for (int v = 0; v < 256; ++v) {
    const int32_t q = s8 ? static_cast<int8_t>(v) : v;
    const double real = xs * static_cast<double>(q - xz);
    table[v] = s8 ? static_cast<uint8_t>(requantize<int8_t>(f(real) / ys, yz, lo, hi))
                  : requantize<uint8_t>(f(real) / ys, yz, lo, hi);
  }
}

// Sigmoid and LeakyRelu of a real value, as the reference kernel computes them.
struct Unary {
  bool sigmoid = true;
  double alpha = 0.01;
  double operator()(double v) const { return sigmoid ? 1.0 / (1.0 + std::exp(-v)) : (v >= 0.0 ? v : alpha * v); }
};

class QUnaryKernel final : public Kernel {
 public:
  int x = -1, y = -1;
  int64_t n = 0;
  bool s8 = false;
  Unary f;
  Scale xs, ys;
  ZeroPoint xz, yz;
  bool built = false;  // `table` holds the results (parameters known at build)
  Table table{};

  Status fill(const RunCtx& ctx, uint8_t* t) const {
    TANDEM_RETURN_IF_ERROR(check_scales(label, {xs.read(ctx)}, ys.read(ctx)));
    fill_table(t, s8, xs.read(ctx), xz.read(ctx), ys.read(ctx), yz.read(ctx), f);
    return Status::ok();
  }
  Status run(RunCtx& ctx, KernelState*) const override {
    Table local;
    const uint8_t* t = table.data();
    if (!built) {
      TANDEM_RETURN_IF_ERROR(fill(ctx, local.data()));
      t = local.data();
    }
    const auto* px = static_cast<const uint8_t*>(ctx.ptr[x]);
    auto* py = static_cast<uint8_t*>(ctx.ptr[y]);
    parallel_range(n < 4 * kGrain ? 1 : ctx.threads, n, kGrain,
                   [&](int64_t lo, int64_t hi) { lut_map(px + lo, py + lo, hi - lo, t); });
    return Status::ok();
  }
};

class QUnarySpec final : public OpSpec {
 public:
  Unary f;
  Status prepare(Builder& b, const Step& step) const override {
    const std::string label = step.node->label();
    auto in = [&](size_t i) { return i < step.inputs.size() ? step.inputs[i] : -1; };
    const int x = in(0), out = step.outputs[0];
    if (!b.typed(x) || !b.typed(out)) return unsupported(label + " shape unknown");
    const DataType t = b.val(x).dtype;
    if (!is_8bit(t) || b.val(out).dtype != t) return unsupported(label + " element types");
    auto k = std::make_unique<QUnaryKernel>();
    k->f = f;
    k->s8 = t == DataType::int8;
    TANDEM_ASSIGN_OR_RETURN(k->xs, read_scale(b, in(1), label + " X_scale", &k->reads));
    TANDEM_ASSIGN_OR_RETURN(k->xz, read_zero_point_of(b, in(2), t, label + " X_zero_point", &k->reads));
    TANDEM_ASSIGN_OR_RETURN(k->ys, read_scale(b, in(3), label + " Y_scale", &k->reads));
    TANDEM_ASSIGN_OR_RETURN(k->yz, read_zero_point_of(b, in(4), t, label + " Y_zero_point", &k->reads));
    k->label = label;
    if (k->reads.empty()) {  // every parameter known: the table is built now
      RunCtx none;
      TANDEM_RETURN_IF_ERROR(k->fill(none, k->table.data()));
      k->built = true;
    }
    // Elementwise on bytes: a channels-last input (a quantized convolution's) stays so.
    const Layout layout = b.val(x).layout == Layout::nhwc ? Layout::nhwc : Layout::plain;
    TANDEM_ASSIGN_OR_RETURN(k->x, b.require(x, layout));
    k->reads.push_back(k->x);
    b.define(out, layout);
    k->y = out;
    k->writes = {out};
    k->n = shape_numel(b.val(out).shape);
    b.add_work(static_cast<double>(k->n));
    b.add_kernel(std::move(k));
    return Status::ok();
  }
};

// QLinearConcat: part i holds `len` slices of the axis; its table maps it to Y's parameters.
struct ConcatPart {
  int value = -1;
  int64_t len = 0;
  Scale s;
  ZeroPoint z;
};

class QConcatKernel final : public Kernel {
 public:
  std::vector<ConcatPart> parts;
  int y = -1;
  bool s8 = false;
  Scale ys;
  ZeroPoint yz;
  int64_t outer = 1, inner = 1, y_len = 0;
  bool built = false;             // `tables` hold the results (parameters known at build)
  std::vector<uint8_t> tables;    // 256 per part
  int runtime_tables = -1;        // else: an arena temporary of 256 bytes per part

  Status fill(const RunCtx& ctx, uint8_t* t) const {
    const float out_scale = ys.read(ctx);
    for (size_t i = 0; i < parts.size(); ++i) {
      TANDEM_RETURN_IF_ERROR(check_scales(label, {parts[i].s.read(ctx)}, out_scale));
      fill_table(t + 256 * i, s8, parts[i].s.read(ctx), parts[i].z.read(ctx), out_scale, yz.read(ctx),
                 [](double v) { return v; });
    }
    return Status::ok();
  }
  Status run(RunCtx& ctx, KernelState*) const override {
    const uint8_t* t = tables.data();
    if (!built) {
      auto* rt = static_cast<uint8_t*>(ctx.ptr[runtime_tables]);
      TANDEM_RETURN_IF_ERROR(fill(ctx, rt));
      t = rt;
    }
    auto* py = static_cast<uint8_t*>(ctx.ptr[y]);
    int64_t offset = 0;
    for (size_t i = 0; i < parts.size(); ++i) {
      const auto* px = static_cast<const uint8_t*>(ctx.ptr[parts[i].value]);
      const uint8_t* table = t + 256 * i;
      const bool copy = is_identity(table);
      const int64_t run = parts[i].len * inner;
      auto part = [&](int64_t o, int64_t lo, int64_t hi) {
        const uint8_t* src = px + o * run + lo;
        uint8_t* dst = py + (o * y_len + offset) * inner + lo;
        if (copy) std::memcpy(dst, src, static_cast<size_t>(hi - lo));
        else lut_map(src, dst, hi - lo, table);
      };
      if (outer == 1)
        parallel_range(run < 4 * kGrain ? 1 : ctx.threads, run, kGrain,
                       [&](int64_t lo, int64_t hi) { part(0, lo, hi); });
      else if (run > 0)
        parallel_range(outer * run < 4 * kGrain ? 1 : ctx.threads, outer, std::max<int64_t>(1, kGrain / run),
                       [&](int64_t lo, int64_t hi) {
                         for (int64_t o = lo; o < hi; ++o) part(o, 0, run);
                       });
      offset += parts[i].len;
    }
    return Status::ok();
  }
};

class QConcatSpec final : public OpSpec {
 public:
  Status prepare(Builder& b, const Step& step) const override {
    const std::string label = step.node->label();
    const int out = step.outputs[0];
    const size_t count = (step.inputs.size() - 2) / 3;
    if (!b.typed(out) || count == 0) return unsupported(label + " shape unknown");
    const DataType t = b.val(out).dtype;
    const Shape ys = b.val(out).shape;
    const int64_t rank = static_cast<int64_t>(ys.size());
    int64_t axis = step.node->attr_int("axis", 0);
    if (axis < 0) axis += rank;
    if (!is_8bit(t) || axis < 0 || axis >= rank) return unsupported(label + " element type or axis");
    auto k = std::make_unique<QConcatKernel>();
    k->s8 = t == DataType::int8;
    TANDEM_ASSIGN_OR_RETURN(k->ys, read_scale(b, step.inputs[0], label + " Y_scale", &k->reads));
    TANDEM_ASSIGN_OR_RETURN(k->yz, read_zero_point_of(b, step.inputs[1], t, label + " Y_zero_point", &k->reads));
    for (size_t i = 0; i < count; ++i) {
      const std::string what = label + " input " + std::to_string(i);
      const int v = step.inputs[2 + 3 * i];
      if (v < 0 || !b.typed(v) || b.val(v).dtype != t || b.val(v).shape.size() != ys.size())
        return unsupported(what + " type or shape");
      ConcatPart p;
      p.len = b.val(v).shape[static_cast<size_t>(axis)];
      TANDEM_ASSIGN_OR_RETURN(p.s, read_scale(b, step.inputs[3 + 3 * i], what + " scale", &k->reads));
      TANDEM_ASSIGN_OR_RETURN(p.z, read_zero_point_of(b, step.inputs[4 + 3 * i], t, what + " zero point", &k->reads));
      k->parts.push_back(p);
    }
    // Channels-last inputs concatenated along the channels: per pixel, in the nhwc layout.
    bool nhwc = false;
    if (rank == 4 && axis == 1)
      for (size_t i = 0; i < count; ++i) nhwc = nhwc || b.val(step.inputs[2 + 3 * i]).layout == Layout::nhwc;
    if (nhwc) {
      k->outer = ys[0] * ys[2] * ys[3];
    } else {
      for (int64_t d = 0; d < axis; ++d) k->outer *= ys[static_cast<size_t>(d)];
      for (int64_t d = axis + 1; d < rank; ++d) k->inner *= ys[static_cast<size_t>(d)];
    }
    k->y_len = ys[static_cast<size_t>(axis)];
    int64_t total = 0;
    for (const ConcatPart& p : k->parts) total += p.len;
    if (total != k->y_len) return unsupported(label + " input extents do not sum to the output's");
    k->label = label;
    if (k->reads.empty()) {
      k->tables.resize(256 * count);
      RunCtx none;
      TANDEM_RETURN_IF_ERROR(k->fill(none, k->tables.data()));
      k->built = true;
    } else {
      k->runtime_tables = b.add_temp(DataType::uint8, {static_cast<int64_t>(256 * count)}, Layout::plain);
      k->writes.push_back(k->runtime_tables);
    }
    for (size_t i = 0; i < count; ++i) {
      TANDEM_ASSIGN_OR_RETURN(k->parts[i].value, b.require(step.inputs[2 + 3 * i], nhwc ? Layout::nhwc : Layout::plain));
      k->reads.push_back(k->parts[i].value);
    }
    b.define(out, nhwc ? Layout::nhwc : Layout::plain);
    k->y = out;
    k->writes.push_back(out);
    b.add_work(static_cast<double>(shape_numel(ys)));
    b.add_kernel(std::move(k));
    return Status::ok();
  }
};

Status supports_required(const Node& n, std::initializer_list<size_t> required) {
  for (size_t i : required)
    if (n.inputs.size() <= i || n.inputs[i].empty()) return unsupported(n.label() + " missing input " + std::to_string(i));
  return Status::ok();
}
Status supports_binary(const Node& n) { return supports_required(n, {0, 1, 3, 4, 6}); }
Status supports_unary(const Node& n) {
  if (n.op_type == "QLinearLeakyRelu" && !std::isfinite(n.attr_float("alpha", 0.01f)))
    return unsupported(n.label() + " alpha is not finite");
  return supports_required(n, {0, 1, 3});
}
Status supports_concat(const Node& n) {
  if (n.inputs.size() < 5 || (n.inputs.size() - 2) % 3 != 0 || !n.has_attr("axis"))
    return unsupported(n.label() + " expects Y_scale, Y_zero_point, (tensor, scale, zero point) triples and an axis");
  for (size_t i = 2; i < n.inputs.size(); i += 3)
    TANDEM_RETURN_IF_ERROR(supports_required(n, {0, i, i + 1}));
  return Status::ok();
}

Result<std::unique_ptr<OpSpec>> make_binary(FusionContext&, const Step& st) {
  auto s = std::make_unique<QBinarySpec>();
  s->mul = st.node->op_type == "QLinearMul";
  return std::unique_ptr<OpSpec>(std::move(s));
}
Result<std::unique_ptr<OpSpec>> make_unary(FusionContext&, const Step& st) {
  auto s = std::make_unique<QUnarySpec>();
  s->f.sigmoid = st.node->op_type == "QLinearSigmoid";
  s->f.alpha = st.node->attr_float("alpha", 0.01f);
  return std::unique_ptr<OpSpec>(std::move(s));
}
Result<std::unique_ptr<OpSpec>> make_concat(FusionContext&, const Step&) {
  return std::unique_ptr<OpSpec>(std::make_unique<QConcatSpec>());
}

}  // namespace

void register_qelementwise_ops(OpTable& t) {
  t.add_microsoft("QLinearAdd", &supports_binary, &make_binary);
  t.add_microsoft("QLinearMul", &supports_binary, &make_binary);
  t.add_microsoft("QLinearSigmoid", &supports_unary, &make_unary);
  t.add_microsoft("QLinearLeakyRelu", &supports_unary, &make_unary);
  t.add_microsoft("QLinearConcat", &supports_concat, &make_concat);
}

}  // namespace tandem::cpu
