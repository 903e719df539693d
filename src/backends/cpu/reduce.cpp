// reduce.cpp: Softmax, LogSoftmax and ReduceSum/Mean/Max/Min/Prod/L1/L2/LogSum/SumSquare over
// one contiguous range of axes, on the cpu backend's own vectorized kernels (plain layout).
// Softmax follows the opset: before 13 the input is seen as 2-D at `axis`; from 13 on it runs
// along the single axis.
// CumSum (float32, int32, int64; the axis a constant): the running sum along the axis, as the
// reference computes it: floats accumulate in double and each sum is rounded once, integers
// wrap. Declined at compile when the axis is given at run time.
#include <algorithm>
#include <cfloat>
#include <cmath>

#include "backends/cpu/ew_exp_kernels.h"
#include "backends/cpu/ew_math.h"
#include "backends/cpu/op_family.h"
#include "core/tensor_util.h"

namespace tandem::cpu {

namespace {

// A probability below the smallest normal float becomes 0: e (an exponential) is dropped
// before it is divided by the sum when the quotient would be subnormal (below `least`, FLT_MIN
// times the sum). exp() here stops at e^-87.3 (about FLT_MIN), so every masked or
// far-from-maximum position of a softmax would otherwise come out subnormal, and on CPUs that
// take microcode assists for subnormal operands and results both this division and the matrix
// product that reads attention probabilities run several times slower (a 4-layer encoder at
// 128 tokens: 81 against 17 ms on an Intel Xeon). The absolute change is below 1.2e-38.
__attribute__((always_inline)) inline float flushed(float e, float least) { return e < least ? 0.0f : e; }

// Softmax over each of `rows` contiguous vectors of `len` elements. The max runs in kLanes
// independent partial results (combined at the end), so that the compiler vectorizes it; the
// exponentials and their sum are exp_shifted_sum's.
constexpr int64_t kLanes = 16;
TANDEM_ISA_BODY void softmax_rows_body(const float* in, float* out, int64_t rows, int64_t len, bool log) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = in + r * len;
    float* y = out + r * len;
    const int64_t whole = len - len % kLanes;
    float lane[kLanes];
    for (int64_t l = 0; l < kLanes; ++l) lane[l] = -FLT_MAX;
    for (int64_t i = 0; i < whole; i += kLanes)
      for (int64_t l = 0; l < kLanes; ++l) lane[l] = lane[l] < x[i + l] ? x[i + l] : lane[l];
    float m = -FLT_MAX;
    for (int64_t l = 0; l < kLanes; ++l) m = std::max(m, lane[l]);
    for (int64_t i = whole; i < len; ++i) m = std::max(m, x[i]);
    const float sum = exp_shifted_sum(x, log ? nullptr : y, len, m);  // (ew_exp_kernels.h)
    if (log) {
      const float ls = std::log(sum);
      for (int64_t i = 0; i < len; ++i) y[i] = x[i] - m - ls;
    } else {
      const float inv = 1.0f / sum;
      const float least = FLT_MIN * sum;
      for (int64_t i = 0; i < len; ++i) y[i] = flushed(y[i], least) * inv;
    }
  }
}
TANDEM_ISA_DISPATCH(softmax_rows, (const float* in, float* out, int64_t rows, int64_t len, bool log),
                    (in, out, rows, len, log))

// Softmax along `len` elements spaced `stride` apart, for `count` vectors starting at
// consecutive addresses (a [len, stride] block, columns [0, count)). tmp: 2 * count floats.
TANDEM_ISA_BODY void softmax_strided_body(const float* in, float* out, int64_t len, int64_t stride, int64_t count,
                                          bool log, float* tmp) {
  float* m = tmp;
  float* s = tmp + count;
  for (int64_t j = 0; j < count; ++j) {
    m[j] = -FLT_MAX;
    s[j] = 0;
  }
  for (int64_t i = 0; i < len; ++i)
    for (int64_t j = 0; j < count; ++j) m[j] = std::max(m[j], in[i * stride + j]);
  for (int64_t i = 0; i < len; ++i)
    for (int64_t j = 0; j < count; ++j) {
      float e = math::exp(in[i * stride + j] - m[j]);
      if (!log) out[i * stride + j] = e;
      s[j] += e;
    }
  if (log) {
    for (int64_t j = 0; j < count; ++j) s[j] = std::log(s[j]);
    for (int64_t i = 0; i < len; ++i)
      for (int64_t j = 0; j < count; ++j) out[i * stride + j] = in[i * stride + j] - m[j] - s[j];
  } else {
    // (m, no longer needed, takes each column's least kept exponential.)
    for (int64_t j = 0; j < count; ++j) {
      m[j] = FLT_MIN * s[j];
      s[j] = 1.0f / s[j];
    }
    for (int64_t i = 0; i < len; ++i)
      for (int64_t j = 0; j < count; ++j) out[i * stride + j] = flushed(out[i * stride + j], m[j]) * s[j];
  }
}
TANDEM_ISA_DISPATCH(softmax_strided,
                    (const float* in, float* out, int64_t len, int64_t stride, int64_t count, bool log, float* tmp),
                    (in, out, len, stride, count, log, tmp))

// Columns of a strided softmax handled together (their running max and sum live on the stack).
constexpr int64_t kColumns = 256;

class SoftmaxKernel final : public Kernel {
 public:
  int x = -1, out = -1;
  int64_t outer = 1, len = 1, inner = 1;
  bool log = false;
  Status run(RunCtx& ctx, KernelState*) const override {
    const float* in = static_cast<const float*>(ctx.ptr[x]);
    float* o = static_cast<float*>(ctx.ptr[out]);
    const int threads = outer * len * inner < 16384 ? 1 : ctx.threads;
    if (inner == 1) {
      parallel_range(threads, outer, 1, [&](int64_t b, int64_t e) {
        softmax_rows(in + b * len, o + b * len, e - b, len, log);
      });
    } else {
      parallel_range(threads, outer, 1, [&](int64_t b, int64_t e) {
        float tmp[2 * kColumns];
        for (int64_t r = b; r < e; ++r)
          for (int64_t j = 0; j < inner; j += kColumns)
            softmax_strided(in + r * len * inner + j, o + r * len * inner + j, len, inner,
                            std::min(kColumns, inner - j), log, tmp);
      });
    }
    return Status::ok();
  }
};

class SoftmaxSpec final : public OpSpec {
 public:
  Status prepare(Builder& b, const Step& step) const override {
    const Node& n = *step.node;
    const std::string label = n.label();
    if (!all_float32(b, step)) return unsupported(label + " not float32");
    const int x = step.inputs[0], out = step.outputs[0];
    if (!b.typed(x)) return unsupported(label + " shape unknown");
    const Shape xs = b.val(x).shape;
    const int64_t r = static_cast<int64_t>(xs.size());
    if (r == 0 || shape_numel(xs) == 0) return unsupported(label + " scalar or empty");
    int64_t axis = n.attr_int("axis", n.opset < 13 ? 1 : -1);
    if (axis < 0) axis += r;
    if (axis < 0 || axis >= r) return unsupported(label + " axis");
    TANDEM_ASSIGN_OR_RETURN(int px, b.require(x, Layout::plain));
    auto k = std::make_unique<SoftmaxKernel>();
    k->log = n.op_type == "LogSoftmax";
    for (int64_t i = 0; i < axis; ++i) k->outer *= xs[i];
    if (n.opset < 13) {
      k->len = shape_numel(xs) / k->outer;
      k->inner = 1;
    } else {
      k->len = xs[axis];
      for (int64_t i = axis + 1; i < r; ++i) k->inner *= xs[i];
    }
    k->x = px;
    k->out = out;
    k->label = label;
    b.define(out, Layout::plain);
    k->reads = {px};
    k->writes = {out};
    b.add_kernel(std::move(k));
    return Status::ok();
  }
};

// --- reductions over a contiguous range of axes: [outer, len, inner] -> [outer, inner] ---------

// The reductions: a per-element map (|x| for L1, x^2 for L2 and SumSquare), an accumulation
// (sum, max, min, product) and a final map (mean: / len; L2: sqrt; LogSum: log).
enum class Red { sum, mean, max, min, prod, l1, l2, log_sum, sum_square };

template <Red R>
TANDEM_ISA_BODY float reduce_map(float v) {
  if constexpr (R == Red::l1) return std::fabs(v);
  else if constexpr (R == Red::l2 || R == Red::sum_square) return v * v;
  else return v;
}

template <Red R>
TANDEM_ISA_BODY float reduce_combine(float a, float b) {
  if constexpr (R == Red::max) return std::max(a, b);
  else if constexpr (R == Red::min) return std::min(a, b);
  else if constexpr (R == Red::prod) return a * b;
  else return a + b;
}

template <Red R>
TANDEM_ISA_BODY float reduce_finish(double acc, int64_t len) {
  if constexpr (R == Red::mean) return static_cast<float>(acc / static_cast<double>(len));
  else if constexpr (R == Red::l2) return static_cast<float>(std::sqrt(acc));
  else if constexpr (R == Red::log_sum) return static_cast<float>(std::log(acc));
  else return static_cast<float>(acc);
}

// One [len, inner] block into [inner]. With inner 1 the row runs in 16 independent partial
// results (vectorized), combined in double for sums.
template <Red R>
TANDEM_ISA_BODY void reduce_block_of(const float* in, float* out, int64_t len, int64_t inner) {
  constexpr bool order = R == Red::max || R == Red::min;
  if (inner == 1) {
    if constexpr (order) {
      float m = in[0];
      for (int64_t i = 1; i < len; ++i) m = reduce_combine<R>(m, in[i]);
      *out = m;
    } else {
      const float unit = R == Red::prod ? 1.0f : 0.0f;
      float part[16];
      for (int l = 0; l < 16; ++l) part[l] = unit;
      int64_t i = 0;
      for (; i + 16 <= len; i += 16)
        for (int l = 0; l < 16; ++l) part[l] = reduce_combine<R>(part[l], reduce_map<R>(in[i + l]));
      double acc = unit;
      for (int l = 0; l < 16; ++l) acc = R == Red::prod ? acc * part[l] : acc + part[l];
      for (; i < len; ++i) acc = R == Red::prod ? acc * reduce_map<R>(in[i]) : acc + reduce_map<R>(in[i]);
      *out = reduce_finish<R>(acc, len);
    }
    return;
  }
  for (int64_t j = 0; j < inner; ++j) out[j] = reduce_map<R>(in[j]);
  for (int64_t i = 1; i < len; ++i) {
    const float* p = in + i * inner;
    for (int64_t j = 0; j < inner; ++j) out[j] = reduce_combine<R>(out[j], reduce_map<R>(p[j]));
  }
  if constexpr (!order && R != Red::sum && R != Red::prod && R != Red::l1 && R != Red::sum_square)
    for (int64_t j = 0; j < inner; ++j) out[j] = reduce_finish<R>(out[j], len);
}

TANDEM_ISA_BODY void reduce_block_body(const float* in, float* out, int64_t len, int64_t inner, int kind) {
  switch (static_cast<Red>(kind)) {
    case Red::sum: return reduce_block_of<Red::sum>(in, out, len, inner);
    case Red::mean: return reduce_block_of<Red::mean>(in, out, len, inner);
    case Red::max: return reduce_block_of<Red::max>(in, out, len, inner);
    case Red::min: return reduce_block_of<Red::min>(in, out, len, inner);
    case Red::prod: return reduce_block_of<Red::prod>(in, out, len, inner);
    case Red::l1: return reduce_block_of<Red::l1>(in, out, len, inner);
    case Red::l2: return reduce_block_of<Red::l2>(in, out, len, inner);
    case Red::log_sum: return reduce_block_of<Red::log_sum>(in, out, len, inner);
    case Red::sum_square: return reduce_block_of<Red::sum_square>(in, out, len, inner);
  }
}
TANDEM_ISA_DISPATCH(reduce_block, (const float* in, float* out, int64_t len, int64_t inner, int kind),
                    (in, out, len, inner, kind))

class ReduceKernel final : public Kernel {
 public:
  int x = -1, out = -1, kind = 0;
  int64_t outer = 1, len = 1, inner = 1;
  Status run(RunCtx& ctx, KernelState*) const override {
    const float* in = static_cast<const float*>(ctx.ptr[x]);
    float* o = static_cast<float*>(ctx.ptr[out]);
    const int threads = outer * len * inner < 32768 ? 1 : ctx.threads;
    parallel_range(threads, outer, 1, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) reduce_block(in + r * len * inner, o + r * inner, len, inner, kind);
    });
    return Status::ok();
  }
};

class ReduceSpec final : public OpSpec {
 public:
  Red red = Red::sum;
  Status prepare(Builder& b, const Step& step) const override {
    const Node& n = *step.node;
    const std::string label = n.label();
    if (!all_float32(b, step)) return unsupported(label + " not float32");
    const int x = step.inputs[0], out = step.outputs[0];
    if (!b.typed(x) || !b.typed(out)) return unsupported(label + " shape unknown");
    const Shape xs = b.val(x).shape;
    const int64_t r = static_cast<int64_t>(xs.size());
    if (shape_numel(xs) == 0 || r == 0) return unsupported(label + " empty or scalar");
    std::vector<int64_t> axes;
    bool axes_input = step.inputs.size() > 1 && step.inputs[1] >= 0;
    if (axes_input) {
      const Tensor* t = b.known(step.inputs[1]);
      if (!t) return unsupported(label + " axes not known");
      axes = to_int64_vector(*t);
    } else {
      axes = n.attr_ints("axes");
    }
    if (axes.empty()) {
      if (n.attr_int("noop_with_empty_axes", 0)) return unsupported(label + " noop_with_empty_axes");
      for (int64_t i = 0; i < r; ++i) axes.push_back(i);
    }
    for (auto& a : axes) {
      if (a < 0) a += r;
      if (a < 0 || a >= r) return unsupported(label + " axis");
    }
    std::sort(axes.begin(), axes.end());
    axes.erase(std::unique(axes.begin(), axes.end()), axes.end());
    for (size_t i = 1; i < axes.size(); ++i)
      if (axes[i] != axes[i - 1] + 1) return unsupported(label + " axes not contiguous");
    auto k = std::make_unique<ReduceKernel>();
    for (int64_t i = 0; i < axes.front(); ++i) k->outer *= xs[i];
    for (int64_t a : axes) k->len *= xs[a];
    for (int64_t i = axes.back() + 1; i < r; ++i) k->inner *= xs[i];
    if (shape_numel(b.val(out).shape) != k->outer * k->inner) return unsupported(label + " output size");
    TANDEM_ASSIGN_OR_RETURN(int px, b.require(x, Layout::plain));
    k->x = px;
    k->out = out;
    k->kind = static_cast<int>(red);
    k->label = label;
    b.define(out, Layout::plain);
    k->reads = {px};
    k->writes = {out};
    b.add_kernel(std::move(k));
    return Status::ok();
  }
};

// Running sums over [outer, n, inner], `kCumChunk` inner positions at a time.
constexpr int64_t kCumChunk = 256;

template <class T, class Acc>
void cumsum_chunk(const T* x, T* y, int64_t n, int64_t inner, int64_t width, bool exclusive, bool reverse) {
  Acc acc[kCumChunk] = {};
  for (int64_t s = 0; s < n; ++s) {
    const int64_t j = reverse ? n - 1 - s : s;
    const T* xr = x + j * inner;
    T* yr = y + j * inner;
    for (int64_t i = 0; i < width; ++i) {
      const Acc v = static_cast<Acc>(xr[i]);
      if (!exclusive) acc[i] += v;
      yr[i] = static_cast<T>(acc[i]);
      if (exclusive) acc[i] += v;
    }
  }
}

class CumSumKernel final : public Kernel {
 public:
  int in = -1, out = -1;
  DataType dtype = DataType::float32;
  int64_t outer = 1, n = 1, inner = 1;
  bool exclusive = false, reverse = false;

  Status run(RunCtx& ctx, KernelState*) const override {
    const int64_t chunks = (inner + kCumChunk - 1) / kCumChunk;
    const int threads = outer * n * inner < 32768 ? 1 : ctx.threads;
    parallel_range(threads, outer * chunks, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t o = t / chunks, i0 = (t % chunks) * kCumChunk, width = std::min(kCumChunk, inner - i0);
        const int64_t at = o * n * inner + i0;
        switch (dtype) {
          case DataType::float32:
            cumsum_chunk<float, double>(static_cast<const float*>(ctx.ptr[in]) + at, static_cast<float*>(ctx.ptr[out]) + at,
                                        n, inner, width, exclusive, reverse);
            break;
          case DataType::int32:  // wraps like the reference's 64-bit sum truncated
            cumsum_chunk<int32_t, uint64_t>(static_cast<const int32_t*>(ctx.ptr[in]) + at,
                                            static_cast<int32_t*>(ctx.ptr[out]) + at, n, inner, width, exclusive, reverse);
            break;
          default:
            cumsum_chunk<int64_t, uint64_t>(static_cast<const int64_t*>(ctx.ptr[in]) + at,
                                            static_cast<int64_t*>(ctx.ptr[out]) + at, n, inner, width, exclusive, reverse);
        }
      }
    });
    return Status::ok();
  }
};

class CumSumSpec final : public OpSpec {
 public:
  int64_t axis = 0;  // as given (may be negative)

  Status prepare(Builder& b, const Step& step) const override {
    const std::string label = step.node->label();
    const int x = step.inputs[0], out = step.outputs[0];
    if (!b.typed(x) || !b.typed(out)) return unsupported(label + " shape unknown");
    const DataType t = b.val(x).dtype;
    if ((t != DataType::float32 && t != DataType::int32 && t != DataType::int64) || b.val(out).dtype != t)
      return unsupported(label + " dtype");
    const Shape xs = b.val(x).shape;
    const int64_t r = static_cast<int64_t>(xs.size());
    const int64_t a = axis < 0 ? axis + r : axis;
    if (a < 0 || a >= r || b.val(out).shape != xs || shape_numel(xs) == 0) return unsupported(label + " axis or shape");
    auto k = std::make_unique<CumSumKernel>();
    k->dtype = t;
    for (int64_t d = 0; d < a; ++d) k->outer *= xs[d];
    k->n = xs[a];
    for (int64_t d = a + 1; d < r; ++d) k->inner *= xs[d];
    k->exclusive = step.node->attr_int("exclusive", 0) != 0;
    k->reverse = step.node->attr_int("reverse", 0) != 0;
    TANDEM_ASSIGN_OR_RETURN(k->in, b.require(x, Layout::plain));
    b.define(out, Layout::plain);
    k->out = out;
    k->label = label;
    k->reads = {k->in};
    k->writes = {out};
    b.add_work(static_cast<double>(shape_numel(xs)));
    b.add_kernel(std::move(k));
    return Status::ok();
  }
};

Status supports_cumsum(const Node& n) {
  if (n.inputs.size() < 2 || n.inputs[0].empty() || n.inputs[1].empty()) return unsupported(n.label() + " needs x and axis");
  return Status::ok();
}

Result<std::unique_ptr<OpSpec>> make_cumsum(FusionContext& f, const Step& st) {
  const Tensor* axis = f.constant(st.inputs[1]);
  if (!axis || axis->numel() != 1 || (axis->dtype() != DataType::int64 && axis->dtype() != DataType::int32))
    return unsupported(st.node->label() + " CumSum axis given at run time");
  auto s = std::make_unique<CumSumSpec>();
  s->axis = to_int64_vector(*axis)[0];
  return std::unique_ptr<OpSpec>(std::move(s));
}

Status supports_softmax(const Node& n) {
  if (n.inputs.empty() || n.inputs[0].empty()) return unsupported(n.label() + " no input");
  return Status::ok();
}

Status supports_reduce(const Node& n) {
  if (n.inputs.empty() || n.inputs[0].empty()) return unsupported(n.label() + " no input");
  return Status::ok();
}

Result<std::unique_ptr<OpSpec>> make_softmax(FusionContext&, const Step&) {
  return std::unique_ptr<OpSpec>(std::make_unique<SoftmaxSpec>());
}

Result<std::unique_ptr<OpSpec>> make_reduce(FusionContext&, const Step& st) {
  auto s = std::make_unique<ReduceSpec>();
  const std::string& op = st.node->op_type;
  static const std::pair<const char*, Red> kReductions[] = {
      {"ReduceSum", Red::sum}, {"ReduceMean", Red::mean}, {"ReduceMax", Red::max},
      {"ReduceMin", Red::min}, {"ReduceProd", Red::prod}, {"ReduceL1", Red::l1},
      {"ReduceL2", Red::l2},   {"ReduceLogSum", Red::log_sum}, {"ReduceSumSquare", Red::sum_square}};
  for (const auto& [name, red] : kReductions)
    if (op == name) s->red = red;
  return std::unique_ptr<OpSpec>(std::move(s));
}

}  // namespace

void register_reduce_ops(OpTable& t) {
  t.add("Softmax", &supports_softmax, &make_softmax);
  t.add("LogSoftmax", &supports_softmax, &make_softmax);
  for (const char* op : {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                         "ReduceLogSum", "ReduceSumSquare"})
    t.add(op, &supports_reduce, &make_reduce);
  t.add("CumSum", &supports_cumsum, &make_cumsum);
}

}  // namespace tandem::cpu
