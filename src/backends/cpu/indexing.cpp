// indexing.cpp: Gather, GatherElements, GatherND, ArgMax, ArgMin and TopK on the cpu backend
// (the reference's src/kernels/indexing.cpp has the spec).
//
// The gathers read their indices (int32 or int64) at run time (indices.h): negative ones count
// from the end, and one outside its dim fails the run with invalid_argument naming the node,
// before anything is written. Any fixed-size element type; the data is read plain.
//   Gather: the data as [outer, axis, inner]; each index picks one [inner] row per outer index,
//     copied whole.
//   GatherElements: indices of the data's rank; each replaces the axis coordinate of its own
//     position (indices.h, ElementAddressing), walked by rows of the indices' last dim.
//   GatherND: the indices' last dim holds k-tuples addressing the data's dims after
//     `batch_dims` shared leading dims; each tuple's slice (the trailing dims) is copied whole.
//
// ArgMax, ArgMin (float32): over [outer, axis, inner], the axis walked in the outer loop and a
// chunk of inner positions in the inner one (contiguous loads), with the reference's order: a
// NaN beats any number, ties keep the first index (the last with select_last_index).
//
// TopK (float32; K known when the instance is built): per row, 64-bit keys in the reference's
// order (see topk_key), a running selection of candidates, then a sort of the k best.
#include <omp.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "backends/cpu/indices.h"
#include "backends/cpu/op_family.h"
#include "backends/cpu/runtime_env.h"
#include "core/tensor_util.h"

namespace tandem::cpu {

namespace {

// Checks what the gathers share: data and indices typed, data of a fixed-size type and the
// output of the same, int32 or int64 indices, nothing empty.
Status gather_operands(Builder& b, const Step& step, const std::string& label) {
  if (step.inputs.size() < 2) return unsupported(label + " needs data and indices");
  const int x = step.inputs[0], ind = step.inputs[1], out = step.outputs[0];
  if (!b.typed(x) || !b.typed(ind) || !b.typed(out) || !pod(b.val(x).dtype) || b.val(out).dtype != b.val(x).dtype)
    return unsupported(label + " shape/dtype");
  const DataType it = b.val(ind).dtype;
  if (it != DataType::int64 && it != DataType::int32) return unsupported(label + " indices are not int32 or int64");
  if (shape_numel(b.val(x).shape) == 0 || shape_numel(b.val(ind).shape) == 0 || shape_numel(b.val(out).shape) == 0)
    return unsupported(label + " empty tensor");
  return Status::ok();
}

// Declares the gather kernel `k` (data, indices, out) to the builder and adds it.
template <class K>
Status add_gather(Builder& b, const Step& step, std::unique_ptr<K> k, double work) {
  const int x = step.inputs[0], ind = step.inputs[1], out = step.outputs[0];
  k->indices64 = b.val(ind).dtype == DataType::int64;
  TANDEM_ASSIGN_OR_RETURN(k->data, b.require(x, Layout::plain));
  TANDEM_ASSIGN_OR_RETURN(k->indices, b.require(ind, Layout::plain));
  b.define(out, Layout::plain);
  k->out = out;
  k->label = step.node->label();
  k->reads = {k->data, k->indices};
  k->writes = {out};
  b.add_work(work);
  b.add_kernel(std::move(k));
  return Status::ok();
}

class GatherKernel final : public Kernel {
 public:
  int data = -1, indices = -1, out = -1;
  bool indices64 = true;
  int64_t outer = 1, axis_dim = 1, count = 1;  // count: indices
  int64_t row_bytes = 0;                        // inner elements times the element size

  Status run(RunCtx& ctx, KernelState*) const override {
    const auto* src = static_cast<const uint8_t*>(ctx.ptr[data]);
    auto* dst = static_cast<uint8_t*>(ctx.ptr[out]);
    const IndexView idx{ctx.ptr[indices], indices64};
    TANDEM_RETURN_IF_ERROR(check_indices(idx, count, [&](int64_t) { return axis_dim; }, label));
    auto index = [&](int64_t j) { return idx.at(j, axis_dim); };
    const int threads = outer * count * row_bytes < (1 << 16) ? 1 : ctx.threads;
    parallel_range(threads, outer * count, 1, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t o = t / count, j = t % count;
        std::memcpy(dst + t * row_bytes, src + (o * axis_dim + index(j)) * row_bytes, static_cast<size_t>(row_bytes));
      }
    });
    return Status::ok();
  }
};

class GatherSpec final : public OpSpec {
 public:
  Status prepare(Builder& b, const Step& step) const override {
    const std::string label = step.node->label();
    TANDEM_RETURN_IF_ERROR(gather_operands(b, step, label));
    const Shape xs = b.val(step.inputs[0]).shape, is = b.val(step.inputs[1]).shape;
    const int64_t r = static_cast<int64_t>(xs.size());
    int64_t axis = step.node->attr_int("axis", 0);
    if (axis < 0) axis += r;
    if (axis < 0 || axis >= r) return unsupported(label + " axis");
    Shape want(xs.begin(), xs.begin() + axis);
    want.insert(want.end(), is.begin(), is.end());
    want.insert(want.end(), xs.begin() + axis + 1, xs.end());
    if (want != b.val(step.outputs[0]).shape) return unsupported(label + " output shape differs from inference");
    auto k = std::make_unique<GatherKernel>();
    for (int64_t i = 0; i < axis; ++i) k->outer *= xs[i];
    int64_t inner = 1;
    for (int64_t i = axis + 1; i < r; ++i) inner *= xs[i];
    k->axis_dim = xs[axis];
    k->count = shape_numel(is);
    k->row_bytes = inner * static_cast<int64_t>(elem_size(b.val(step.inputs[0]).dtype));
    return add_gather(b, step, std::move(k), static_cast<double>(shape_numel(want)));
  }
};

// Copies one element of `size` bytes.
inline void copy_element(uint8_t* dst, const uint8_t* src, int64_t size) {
  switch (size) {
    case 1: *dst = *src; return;
    case 2: std::memcpy(dst, src, 2); return;
    case 4: std::memcpy(dst, src, 4); return;
    case 8: std::memcpy(dst, src, 8); return;
    default: std::memcpy(dst, src, static_cast<size_t>(size));
  }
}

class GatherElementsKernel final : public Kernel {
 public:
  int data = -1, indices = -1, out = -1;
  bool indices64 = true;
  ElementAddressing at;
  int64_t count = 0, elem = 4;

  Status run(RunCtx& ctx, KernelState*) const override {
    const auto* src = static_cast<const uint8_t*>(ctx.ptr[data]);
    auto* dst = static_cast<uint8_t*>(ctx.ptr[out]);
    const IndexView idx{ctx.ptr[indices], indices64};
    TANDEM_RETURN_IF_ERROR(check_indices(idx, count, [&](int64_t) { return at.axis_dim; }, label));
    const int threads = count * elem < (1 << 16) ? 1 : ctx.threads;
    parallel_range(threads, count / at.lanes(), 1, [&](int64_t r0, int64_t r1) {
      at.for_each(idx, r0, r1, [&](int64_t j, int64_t off) { copy_element(dst + j * elem, src + off * elem, elem); });
    });
    return Status::ok();
  }
};

class GatherNDKernel final : public Kernel {
 public:
  int data = -1, indices = -1, out = -1;
  bool indices64 = true;
  int64_t batches = 1, per_batch = 1, batch_stride = 0, k = 0, slice_bytes = 0, elem = 4;
  std::vector<int64_t> tuple_dims, tuple_strides;  // the k addressed data dims and their strides

  Status run(RunCtx& ctx, KernelState*) const override {
    const auto* src = static_cast<const uint8_t*>(ctx.ptr[data]);
    auto* dst = static_cast<uint8_t*>(ctx.ptr[out]);
    const IndexView idx{ctx.ptr[indices], indices64};
    const int64_t tuples = batches * per_batch;
    TANDEM_RETURN_IF_ERROR(check_indices(idx, tuples * k, [&](int64_t j) { return tuple_dims[j % k]; }, label));
    const int threads = tuples * slice_bytes < (1 << 16) ? 1 : ctx.threads;
    parallel_range(threads, tuples, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        int64_t off = (t / per_batch) * batch_stride;
        for (int64_t j = 0; j < k; ++j) off += idx.at(t * k + j, tuple_dims[j]) * tuple_strides[j];
        std::memcpy(dst + t * slice_bytes, src + off * elem, static_cast<size_t>(slice_bytes));
      }
    });
    return Status::ok();
  }
};

class GatherElementsSpec final : public OpSpec {
 public:
  Status prepare(Builder& b, const Step& step) const override {
    const std::string label = step.node->label();
    TANDEM_RETURN_IF_ERROR(gather_operands(b, step, label));
    const Shape xs = b.val(step.inputs[0]).shape, is = b.val(step.inputs[1]).shape;
    auto k = std::make_unique<GatherElementsKernel>();
    if (!element_addressing(xs, is, step.node->attr_int("axis", 0), &k->at))
      return unsupported(label + " ranks, axis or indices larger than the data");
    if (b.val(step.outputs[0]).shape != is) return unsupported(label + " output shape differs from inference");
    k->count = shape_numel(is);
    k->elem = static_cast<int64_t>(elem_size(b.val(step.inputs[0]).dtype));
    return add_gather(b, step, std::move(k), static_cast<double>(shape_numel(is)));
  }
};

class GatherNDSpec final : public OpSpec {
 public:
  Status prepare(Builder& b, const Step& step) const override {
    const std::string label = step.node->label();
    TANDEM_RETURN_IF_ERROR(gather_operands(b, step, label));
    const Shape xs = b.val(step.inputs[0]).shape, is = b.val(step.inputs[1]).shape;
    const int64_t r = static_cast<int64_t>(xs.size()), q = static_cast<int64_t>(is.size());
    const int64_t bd = step.node->attr_int("batch_dims", 0);
    if (r < 1 || q < 1 || bd < 0 || bd >= q || bd >= r) return unsupported(label + " ranks or batch_dims");
    for (int64_t d = 0; d < bd; ++d)
      if (xs[d] != is[d]) return unsupported(label + " batch dims differ");
    const int64_t k = is[q - 1];
    if (k < 1 || k > r - bd) return unsupported(label + " tuple length");
    Shape want(is.begin(), is.end() - 1);
    want.insert(want.end(), xs.begin() + bd + k, xs.end());
    if (b.val(step.outputs[0]).shape != want) return unsupported(label + " output shape differs from inference");
    auto kn = std::make_unique<GatherNDKernel>();
    const std::vector<int64_t> st = strides_of(xs);
    kn->k = k;
    for (int64_t j = 0; j < k; ++j) {
      kn->tuple_dims.push_back(xs[bd + j]);
      kn->tuple_strides.push_back(st[bd + j]);
    }
    for (int64_t d = 0; d < bd; ++d) kn->batches *= is[d];
    for (int64_t d = bd; d < q - 1; ++d) kn->per_batch *= is[d];
    kn->batch_stride = bd > 0 ? st[bd - 1] : 0;
    kn->elem = static_cast<int64_t>(elem_size(b.val(step.inputs[0]).dtype));
    int64_t slice = 1;
    for (int64_t d = bd + k; d < r; ++d) slice *= xs[d];
    kn->slice_bytes = slice * kn->elem;
    return add_gather(b, step, std::move(kn), static_cast<double>(shape_numel(want)));
  }
};

constexpr int64_t kArgChunk = 256;  // inner positions per task

// One step along the axis over a chunk of m inner positions: where row j's value beats the best
// so far, it becomes the best and j its index. Branch-free, so that it vectorizes.
template <bool kMax, bool kLast>
TANDEM_ISA_BODY void arg_step(const float* __restrict rj, float* __restrict best, int32_t* __restrict at, int64_t m,
                              int32_t j) {
  for (int64_t i = 0; i < m; ++i) {
    const float v = rj[i], cur = best[i];
    const bool v_nan = v != v, cur_nan = cur != cur;
    const bool wins = kMax ? (kLast ? v >= cur : v > cur) : (kLast ? v <= cur : v < cur);
    const bool better = v_nan ? (!cur_nan || kLast) : (!cur_nan && wins);
    best[i] = better ? v : cur;
    at[i] = better ? j : at[i];
  }
}

// Inner positions [i0, i1) of one outer index: `row` is its [n, inner] block.
TANDEM_ISA_BODY void arg_extreme_chunk_body(const float* __restrict row, int64_t n, int64_t inner, int64_t i0,
                                            int64_t i1, int64_t* __restrict out, bool is_max, bool last) {
  float best[kArgChunk];
  int32_t at[kArgChunk];
  const int64_t m = i1 - i0;
  for (int64_t i = 0; i < m; ++i) {
    best[i] = row[i0 + i];
    at[i] = 0;
  }
  for (int64_t j = 1; j < n; ++j) {
    const float* rj = row + j * inner + i0;
    const auto jj = static_cast<int32_t>(j);
    if (is_max) {
      if (last) arg_step<true, true>(rj, best, at, m, jj);
      else arg_step<true, false>(rj, best, at, m, jj);
    } else {
      if (last) arg_step<false, true>(rj, best, at, m, jj);
      else arg_step<false, false>(rj, best, at, m, jj);
    }
  }
  for (int64_t i = 0; i < m; ++i) out[i0 + i] = at[i];
}
TANDEM_ISA_DISPATCH(arg_extreme_chunk,
                    (const float* __restrict row, int64_t n, int64_t inner, int64_t i0, int64_t i1,
                     int64_t* __restrict out, bool is_max, bool last),
                    (row, n, inner, i0, i1, out, is_max, last))

class ArgExtremeKernel final : public Kernel {
 public:
  int x = -1, out = -1;
  int64_t outer = 1, n = 1, inner = 1;
  bool is_max = true, last = false;

  Status run(RunCtx& ctx, KernelState*) const override {
    const float* p = static_cast<const float*>(ctx.ptr[x]);
    int64_t* o = static_cast<int64_t*>(ctx.ptr[out]);
    const int64_t chunks = (inner + kArgChunk - 1) / kArgChunk;
    const int threads = outer * n * inner < (1 << 15) ? 1 : ctx.threads;
    parallel_range(threads, outer * chunks, 1, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t r = t / chunks, i0 = (t % chunks) * kArgChunk;
        arg_extreme_chunk(p + r * n * inner, n, inner, i0, std::min(inner, i0 + kArgChunk), o + r * inner, is_max, last);
      }
    });
    return Status::ok();
  }
};

class ArgExtremeSpec final : public OpSpec {
 public:
  Status prepare(Builder& b, const Step& step) const override {
    const Node& nd = *step.node;
    const std::string label = nd.label();
    const int x = step.inputs[0], out = step.outputs[0];
    if (!b.typed(x) || !b.typed(out) || b.val(x).dtype != DataType::float32 || b.val(out).dtype != DataType::int64)
      return unsupported(label + " shape/dtype");
    const Shape xs = b.val(x).shape;
    const int64_t r = static_cast<int64_t>(xs.size());
    int64_t axis = nd.attr_int("axis", 0);
    if (axis < 0) axis += r;
    if (axis < 0 || axis >= r || shape_numel(xs) == 0 || xs[axis] > INT32_MAX) return unsupported(label + " axis or empty input");
    auto k = std::make_unique<ArgExtremeKernel>();
    for (int64_t i = 0; i < axis; ++i) k->outer *= xs[i];
    k->n = xs[axis];
    for (int64_t i = axis + 1; i < r; ++i) k->inner *= xs[i];
    if (shape_numel(b.val(out).shape) != k->outer * k->inner) return unsupported(label + " output shape");
    k->is_max = nd.op_type == "ArgMax";
    k->last = nd.attr_int("select_last_index", 0) != 0;
    TANDEM_ASSIGN_OR_RETURN(k->x, b.require(x, Layout::plain));
    b.define(out, Layout::plain);
    k->out = out;
    k->label = label;
    k->reads = {k->x};
    k->writes = {out};
    b.add_work(static_cast<double>(shape_numel(xs)));
    b.add_kernel(std::move(k));
    return Status::ok();
  }
};

// TopK (float32): each row along the axis becomes n 64-bit keys that order it the way the
// reference does (the larger or smaller value first, NaN above every number, -0 equal to +0,
// equal values by lower index first): the float's bits made monotone in the high half, the
// index (complemented for `largest`) in the low half. TopKKernel::select_row keeps the best
// candidates, a sort orders the k best, and the values are read back from the source by index.
uint64_t topk_key(float v, int64_t index, bool largest) {
  uint32_t bits;
  if (v != v) {
    bits = 0xFFFFFFFFu;  // every NaN alike, above everything
  } else {
    if (v == 0.0f) v = 0.0f;  // -0 ties +0
    std::memcpy(&bits, &v, sizeof bits);
    bits = (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;
  }
  const auto i = static_cast<uint32_t>(index);
  return (static_cast<uint64_t>(bits) << 32) | (largest ? ~i : i);
}

class TopKKernel final : public Kernel {
 public:
  int x = -1, values = -1, indices = -1;  // values, indices: -1 when not wanted
  int64_t outer = 1, n = 1, inner = 1, k = 1;
  bool largest = true;
  int threads = 1;  // the instance's team: one key buffer each

  std::unique_ptr<KernelState> make_state(void* const*, const std::vector<bool>&, void*) const override {
    auto st = std::make_unique<Keys>();
    st->keys.resize(static_cast<size_t>(threads * n));
    return st;
  }

  // The k best of row r (n values `inner` apart) into vrow/irow (k values `inner` apart).
  // Candidates: every key until there are `room`, then only values not worse than the k-th
  // best so far (one float comparison rejects most of a long row; equal values and NaN go on
  // to the key comparison, which breaks ties by index); a full buffer is cut back to its k
  // best.
  template <bool kLargest>
  void select_row(const float* r, uint64_t* keys, float* vrow, int64_t* irow) const {
    auto better = [](uint64_t a, uint64_t b) { return kLargest ? a > b : a < b; };
    const int64_t room = std::min(n, std::max<int64_t>(2 * k, 64));
    int64_t count = 0;
    uint64_t kth = 0;
    float kth_value = 0;
    bool cut = false;
    for (int64_t j = 0; j < n; ++j) {
      const float v = r[j * inner];
      if (cut && (kLargest ? v < kth_value : v > kth_value)) continue;
      const uint64_t key = topk_key(v, j, kLargest);
      if (cut && !better(key, kth)) continue;
      keys[count++] = key;
      if (count == room && j + 1 < n) {
        std::nth_element(keys, keys + (k - 1), keys + count, better);
        kth = keys[k - 1];
        kth_value = r[index_of(kth, kLargest) * inner];
        count = k;
        cut = true;
      }
    }
    if (k < count) std::nth_element(keys, keys + k, keys + count, better);
    std::sort(keys, keys + k, better);
    for (int64_t j = 0; j < k; ++j) {
      const int64_t index = index_of(keys[j], kLargest);
      if (vrow) vrow[j * inner] = r[index * inner];
      if (irow) irow[j * inner] = index;
    }
  }
  static int64_t index_of(uint64_t key, bool largest) {
    const auto low = static_cast<uint32_t>(key);
    return largest ? static_cast<uint32_t>(~low) : low;
  }

  Status run(RunCtx& ctx, KernelState* state) const override {
    auto* st = static_cast<Keys*>(state);
    const float* src = static_cast<const float*>(ctx.ptr[x]);
    float* vout = values >= 0 ? static_cast<float*>(ctx.ptr[values]) : nullptr;
    int64_t* iout = indices >= 0 ? static_cast<int64_t*>(ctx.ptr[indices]) : nullptr;
    const int team = std::min(ctx.threads, threads);
    const int used = outer * inner * n < (1 << 15) ? 1 : team;
    parallel_range(used, outer * inner, 1, [&](int64_t lo, int64_t hi) {
      uint64_t* keys = st->keys.data() + static_cast<size_t>(omp_get_thread_num() % threads) * static_cast<size_t>(n);
      for (int64_t row = lo; row < hi; ++row) {
        const int64_t o = row / inner, i = row % inner;
        const float* r = src + o * n * inner + i;
        float* vrow = vout ? vout + o * k * inner + i : nullptr;
        int64_t* irow = iout ? iout + o * k * inner + i : nullptr;
        if (largest) select_row<true>(r, keys, vrow, irow);
        else select_row<false>(r, keys, vrow, irow);
      }
    });
    return Status::ok();
  }

 private:
  struct Keys final : KernelState {
    std::vector<uint64_t> keys;
  };
};

class TopKSpec final : public OpSpec {
 public:
  Status prepare(Builder& b, const Step& step) const override {
    const Node& nd = *step.node;
    const std::string label = nd.label();
    const int x = step.inputs[0];
    const int values = step.outputs.size() > 0 ? step.outputs[0] : -1;
    const int indices = step.outputs.size() > 1 ? step.outputs[1] : -1;
    if (!b.typed(x) || b.val(x).dtype != DataType::float32) return unsupported(label + " X is not float32");
    int64_t k = nd.attr_int("k", -1);
    if (step.inputs.size() > 1 && step.inputs[1] >= 0) {
      const Tensor* kt = b.known(step.inputs[1]);
      if (!kt || kt->numel() != 1 || !is_integer_type(kt->dtype())) return unsupported(label + " K is not known when the instance is built");
      k = to_int64_vector(*kt)[0];
    }
    const Shape xs = b.val(x).shape;
    const int64_t r = static_cast<int64_t>(xs.size());
    int64_t axis = nd.attr_int("axis", -1);
    if (axis < 0) axis += r;
    if (axis < 0 || axis >= r || shape_numel(xs) == 0) return unsupported(label + " axis or empty input");
    if (k <= 0 || k > xs[axis] || xs[axis] > INT32_MAX) return unsupported(label + " k outside [1, axis size]");
    Shape out_shape = xs;
    out_shape[axis] = k;
    for (int v : {values, indices})
      if (v >= 0 && (!b.typed(v) || b.val(v).shape != out_shape)) return unsupported(label + " output shape");
    auto kern = std::make_unique<TopKKernel>();
    for (int64_t i = 0; i < axis; ++i) kern->outer *= xs[i];
    kern->n = xs[axis];
    for (int64_t i = axis + 1; i < r; ++i) kern->inner *= xs[i];
    kern->k = k;
    kern->largest = nd.attr_int("largest", 1) != 0;
    kern->threads = b.threads();
    TANDEM_ASSIGN_OR_RETURN(kern->x, b.require(x, Layout::plain));
    kern->reads = {kern->x};
    for (int v : {values, indices}) {
      if (v < 0) continue;
      b.define(v, Layout::plain);
      kern->writes.push_back(v);
    }
    kern->values = values;
    kern->indices = indices;
    kern->label = label;
    // Work in multiply-add units (threads_for, the small-model rule): selecting costs about
    // 3.7 ns an element at one thread, as much as some 64 multiply-adds of a convolution (80
    // rows of 8400, k=100: 2.46 ms; counted as 8 per element it stayed on one thread at two).
    b.add_work(static_cast<double>(shape_numel(xs)) * 64);
    b.add_kernel(std::move(kern));
    return Status::ok();
  }
};

Result<std::unique_ptr<OpSpec>> make_topk(FusionContext&, const Step&) {
  return std::unique_ptr<OpSpec>(std::make_unique<TopKSpec>());
}

Result<std::unique_ptr<OpSpec>> make_arg_extreme(FusionContext&, const Step&) {
  return std::unique_ptr<OpSpec>(std::make_unique<ArgExtremeSpec>());
}

Status supports_arg_extreme(const Node& n) {
  if (n.inputs.empty() || n.inputs[0].empty()) return unsupported(n.label() + " no data input");
  return Status::ok();
}

Status supports_gather(const Node& n) {
  if (n.inputs.size() < 2 || n.inputs[0].empty() || n.inputs[1].empty()) return unsupported(n.label() + " needs data and indices");
  return Status::ok();
}

Result<std::unique_ptr<OpSpec>> make_gather(FusionContext&, const Step&) {
  return std::unique_ptr<OpSpec>(std::make_unique<GatherSpec>());
}

Result<std::unique_ptr<OpSpec>> make_gather_elements(FusionContext&, const Step&) {
  return std::unique_ptr<OpSpec>(std::make_unique<GatherElementsSpec>());
}

Result<std::unique_ptr<OpSpec>> make_gather_nd(FusionContext&, const Step&) {
  return std::unique_ptr<OpSpec>(std::make_unique<GatherNDSpec>());
}

}  // namespace

void register_indexing_ops(OpTable& t) {
  t.add("Gather", &supports_gather, &make_gather);
  t.add("GatherElements", &supports_gather, &make_gather_elements);
  t.add("GatherND", &supports_gather, &make_gather_nd);
  t.add("ArgMax", &supports_arg_extreme, &make_arg_extreme);
  t.add("ArgMin", &supports_arg_extreme, &make_arg_extreme);
  t.add("TopK", &supports_arg_extreme, &make_topk);
}

}  // namespace tandem::cpu
