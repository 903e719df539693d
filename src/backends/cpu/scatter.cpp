// scatter.cpp: ScatterElements (and its opset 9-10 name Scatter) and ScatterND on the cpu
// backend (the reference's src/kernels/indexing.cpp has the spec).
//
// The output starts as a copy of the data; then every update is applied in the indices' order,
// so that repeated indices end as the reference leaves them (the last update wins, or each is
// combined in turn). Indices (int32 or int64) are read at run time (indices.h) and all checked
// before anything is written; one outside its dim fails the run with invalid_argument naming the
// node.
//   ScatterElements: indices of the data's rank, each replacing the axis coordinate of its own
//     position (ElementAddressing); one element per update.
//   ScatterND: the indices' last dim holds k-tuples addressing the data's leading dims; each
//     tuple takes a slice of the updates (the data's trailing dims).
// `reduction` none moves any fixed-size type; add, mul, max and min combine float32 (max and
// min give NaN when either side is NaN), int32 and int64 (wrapping).
#include <cmath>
#include <cstring>

#include "backends/cpu/indices.h"
#include "backends/cpu/op_family.h"

namespace tandem::cpu {

namespace {

enum class Reduction : uint8_t { none, add, mul, max, min };

bool parse_reduction(const std::string& r, Reduction* out) {
  if (r == "none") *out = Reduction::none;
  else if (r == "add") *out = Reduction::add;
  else if (r == "mul") *out = Reduction::mul;
  else if (r == "max") *out = Reduction::max;
  else if (r == "min") *out = Reduction::min;
  else return false;
  return true;
}

// cur combined with upd. Integers wrap: computed on their unsigned twins.
template <class T>
T combine(T cur, T upd, Reduction r) {
  if constexpr (std::is_floating_point_v<T>) {
    switch (r) {
      case Reduction::add: return cur + upd;
      case Reduction::mul: return cur * upd;
      case Reduction::max: return std::isnan(cur) || std::isnan(upd) ? NAN : (upd > cur ? upd : cur);
      case Reduction::min: return std::isnan(cur) || std::isnan(upd) ? NAN : (upd < cur ? upd : cur);
      default: return upd;
    }
  } else {
    using U = std::make_unsigned_t<T>;
    switch (r) {
      case Reduction::add: return static_cast<T>(static_cast<U>(cur) + static_cast<U>(upd));
      case Reduction::mul: return static_cast<T>(static_cast<U>(cur) * static_cast<U>(upd));
      case Reduction::max: return upd > cur ? upd : cur;
      case Reduction::min: return upd < cur ? upd : cur;
      default: return upd;
    }
  }
}

// Applies `n` updates at `upd` to the `n` elements from `dst`, of the run's element type.
struct Combiner {
  DataType dtype = DataType::float32;
  Reduction reduction = Reduction::none;
  int64_t elem = 4;

  void apply(uint8_t* dst, const uint8_t* upd, int64_t n) const {
    if (reduction == Reduction::none) {
      std::memcpy(dst, upd, static_cast<size_t>(n * elem));
      return;
    }
    switch (dtype) {
      case DataType::float32: return run<float>(dst, upd, n);
      case DataType::int32: return run<int32_t>(dst, upd, n);
      case DataType::int64: return run<int64_t>(dst, upd, n);
      default: return;  // excluded at prepare
    }
  }
  template <class T>
  void run(uint8_t* dst, const uint8_t* upd, int64_t n) const {
    auto* d = reinterpret_cast<T*>(dst);
    const auto* u = reinterpret_cast<const T*>(upd);
    for (int64_t i = 0; i < n; ++i) d[i] = combine(d[i], u[i], reduction);
  }
};

class ScatterElementsKernel final : public Kernel {
 public:
  int data = -1, indices = -1, updates = -1, out = -1;
  bool indices64 = true;
  ElementAddressing at;
  Combiner combiner;
  int64_t count = 0, data_bytes = 0;

  Status run(RunCtx& ctx, KernelState*) const override {
    const IndexView idx{ctx.ptr[indices], indices64};
    TANDEM_RETURN_IF_ERROR(check_indices(idx, count, [&](int64_t) { return at.axis_dim; }, label));
    auto* dst = static_cast<uint8_t*>(ctx.ptr[out]);
    const auto* upd = static_cast<const uint8_t*>(ctx.ptr[updates]);
    std::memcpy(dst, ctx.ptr[data], static_cast<size_t>(data_bytes));
    const int64_t elem = combiner.elem;
    at.for_each(idx, 0, count / at.lanes(),
                [&](int64_t j, int64_t off) { combiner.apply(dst + off * elem, upd + j * elem, 1); });
    return Status::ok();
  }
};

class ScatterNDKernel final : public Kernel {
 public:
  int data = -1, indices = -1, updates = -1, out = -1;
  bool indices64 = true;
  Combiner combiner;
  int64_t tuples = 0, k = 0, slice = 1, data_bytes = 0;
  std::vector<int64_t> tuple_dims, tuple_strides;  // the k addressed data dims and their strides

  Status run(RunCtx& ctx, KernelState*) const override {
    const IndexView idx{ctx.ptr[indices], indices64};
    TANDEM_RETURN_IF_ERROR(check_indices(idx, tuples * k, [&](int64_t j) { return tuple_dims[j % k]; }, label));
    auto* dst = static_cast<uint8_t*>(ctx.ptr[out]);
    const auto* upd = static_cast<const uint8_t*>(ctx.ptr[updates]);
    std::memcpy(dst, ctx.ptr[data], static_cast<size_t>(data_bytes));
    const int64_t elem = combiner.elem;
    for (int64_t t = 0; t < tuples; ++t) {
      int64_t off = 0;
      for (int64_t j = 0; j < k; ++j) off += idx.at(t * k + j, tuple_dims[j]) * tuple_strides[j];
      combiner.apply(dst + off * elem, upd + t * slice * elem, slice);
    }
    return Status::ok();
  }
};

// What both scatters check and set: typed operands, updates and output of the data's type, int32
// or int64 indices, nothing empty, the reduction (a numeric type for one that combines).
Status scatter_operands(Builder& b, const Step& step, Combiner* c) {
  const std::string label = step.node->label();
  if (step.inputs.size() < 3) return unsupported(label + " needs data, indices and updates");
  const int x = step.inputs[0], ind = step.inputs[1], u = step.inputs[2], out = step.outputs[0];
  if (!b.typed(x) || !b.typed(ind) || !b.typed(u) || !b.typed(out)) return unsupported(label + " shapes unknown");
  const DataType t = b.val(x).dtype;
  if (!pod(t) || b.val(u).dtype != t || b.val(out).dtype != t || b.val(out).shape != b.val(x).shape)
    return unsupported(label + " dtypes or output shape");
  const DataType it = b.val(ind).dtype;
  if (it != DataType::int64 && it != DataType::int32) return unsupported(label + " indices are not int32 or int64");
  if (shape_numel(b.val(x).shape) == 0 || shape_numel(b.val(ind).shape) == 0)
    return unsupported(label + " empty tensor");
  if (!parse_reduction(step.node->attr_string("reduction", "none"), &c->reduction))
    return unsupported(label + " reduction '" + step.node->attr_string("reduction", "none") + "'");
  if (c->reduction != Reduction::none && t != DataType::float32 && t != DataType::int32 && t != DataType::int64)
    return unsupported(label + " reduction on " + std::string(dtype_name(t)));
  c->dtype = t;
  c->elem = static_cast<int64_t>(elem_size(t));
  return Status::ok();
}

template <class K>
Status add_scatter(Builder& b, const Step& step, std::unique_ptr<K> k) {
  const int x = step.inputs[0], ind = step.inputs[1], u = step.inputs[2], out = step.outputs[0];
  k->indices64 = b.val(ind).dtype == DataType::int64;
  k->data_bytes = shape_numel(b.val(x).shape) * k->combiner.elem;
  TANDEM_ASSIGN_OR_RETURN(k->data, b.require(x, Layout::plain));
  TANDEM_ASSIGN_OR_RETURN(k->indices, b.require(ind, Layout::plain));
  TANDEM_ASSIGN_OR_RETURN(k->updates, b.require(u, Layout::plain));
  b.define(out, Layout::plain);
  k->out = out;
  k->label = step.node->label();
  k->reads = {k->data, k->indices, k->updates};
  k->writes = {out};
  b.add_work(static_cast<double>(shape_numel(b.val(x).shape) + shape_numel(b.val(u).shape)));
  b.add_kernel(std::move(k));
  return Status::ok();
}

class ScatterElementsSpec final : public OpSpec {
 public:
  Status prepare(Builder& b, const Step& step) const override {
    auto k = std::make_unique<ScatterElementsKernel>();
    TANDEM_RETURN_IF_ERROR(scatter_operands(b, step, &k->combiner));
    const std::string label = step.node->label();
    const Shape& xs = b.val(step.inputs[0]).shape;
    const Shape& is = b.val(step.inputs[1]).shape;
    if (b.val(step.inputs[2]).shape != is) return unsupported(label + " updates and indices differ in shape");
    if (!element_addressing(xs, is, step.node->attr_int("axis", 0), &k->at))
      return unsupported(label + " ranks, axis or indices larger than the data");
    k->count = shape_numel(is);
    return add_scatter(b, step, std::move(k));
  }
};

class ScatterNDSpec final : public OpSpec {
 public:
  Status prepare(Builder& b, const Step& step) const override {
    auto k = std::make_unique<ScatterNDKernel>();
    TANDEM_RETURN_IF_ERROR(scatter_operands(b, step, &k->combiner));
    const std::string label = step.node->label();
    const Shape& xs = b.val(step.inputs[0]).shape;
    const Shape& is = b.val(step.inputs[1]).shape;
    const int64_t r = static_cast<int64_t>(xs.size()), q = static_cast<int64_t>(is.size());
    if (r < 1 || q < 1 || is[q - 1] < 1 || is[q - 1] > r) return unsupported(label + " ranks or tuple length");
    k->k = is[q - 1];
    Shape want(is.begin(), is.end() - 1);
    want.insert(want.end(), xs.begin() + k->k, xs.end());
    if (b.val(step.inputs[2]).shape != want) return unsupported(label + " updates shape");
    const std::vector<int64_t> st = strides_of(xs);
    for (int64_t j = 0; j < k->k; ++j) {
      k->tuple_dims.push_back(xs[j]);
      k->tuple_strides.push_back(st[j]);
    }
    k->tuples = shape_numel(is) / k->k;
    k->slice = k->k < r ? st[k->k - 1] : 1;
    return add_scatter(b, step, std::move(k));
  }
};

Status supports_scatter(const Node& n) {
  if (n.inputs.size() < 3 || n.inputs[0].empty() || n.inputs[1].empty() || n.inputs[2].empty())
    return unsupported(n.label() + " needs data, indices and updates");
  Reduction r;
  if (!parse_reduction(n.attr_string("reduction", "none"), &r))
    return unsupported(n.label() + " reduction '" + n.attr_string("reduction", "none") + "'");
  return Status::ok();
}

Result<std::unique_ptr<OpSpec>> make_scatter_elements(FusionContext&, const Step&) {
  return std::unique_ptr<OpSpec>(std::make_unique<ScatterElementsSpec>());
}

Result<std::unique_ptr<OpSpec>> make_scatter_nd(FusionContext&, const Step&) {
  return std::unique_ptr<OpSpec>(std::make_unique<ScatterNDSpec>());
}

}  // namespace

void register_scatter_ops(OpTable& t) {
  t.add("ScatterElements", &supports_scatter, &make_scatter_elements);
  t.add("Scatter", &supports_scatter, &make_scatter_elements);
  t.add("ScatterND", &supports_scatter, &make_scatter_nd);
}

}  // namespace tandem::cpu
