// indexing.cpp: Gather on the cpu backend (the reference's src/kernels/indexing.cpp has the spec).
//
// The data is read plain, as [outer, axis, inner]; each index picks one [inner] row per outer
// index, copied whole. Indices (int32 or int64) are values of the run: negative ones count from
// the end, and one outside [-axis, axis) fails the run with invalid_argument naming the node,
// before anything is written. Any fixed-size element type.
#include <cstring>

#include "backends/cpu/op_family.h"

namespace tandem::cpu {

namespace {

class GatherKernel final : public Kernel {
 public:
  int data = -1, indices = -1, out = -1;
  bool indices64 = true;
  int64_t outer = 1, axis_dim = 1, count = 1;  // count: indices
  int64_t row_bytes = 0;                        // inner elements times the element size

  Status run(RunCtx& ctx, KernelState*) const override {
    const auto* src = static_cast<const uint8_t*>(ctx.ptr[data]);
    auto* dst = static_cast<uint8_t*>(ctx.ptr[out]);
    const void* idx = ctx.ptr[indices];
    auto index = [&](int64_t j) {
      const int64_t i = indices64 ? static_cast<const int64_t*>(idx)[j] : static_cast<const int32_t*>(idx)[j];
      return i < 0 ? i + axis_dim : i;
    };
    for (int64_t j = 0; j < count; ++j) {
      const int64_t i = index(j);
      if (i < 0 || i >= axis_dim)
        return invalid_argument(label + " index " + std::to_string(i < 0 ? i - axis_dim : i) + " is outside [" +
                                std::to_string(-axis_dim) + ", " + std::to_string(axis_dim) + ")");
    }
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
    if (step.inputs.size() < 2) return unsupported(label + " needs data and indices");
    const int x = step.inputs[0], ind = step.inputs[1], out = step.outputs[0];
    if (!b.typed(x) || !b.typed(ind) || !b.typed(out) || !pod(b.val(x).dtype) || b.val(out).dtype != b.val(x).dtype)
      return unsupported(label + " shape/dtype");
    const DataType it = b.val(ind).dtype;
    if (it != DataType::int64 && it != DataType::int32) return unsupported(label + " indices are not int32 or int64");
    const Shape xs = b.val(x).shape, is = b.val(ind).shape;
    const int64_t r = static_cast<int64_t>(xs.size());
    int64_t axis = step.node->attr_int("axis", 0);
    if (axis < 0) axis += r;
    if (axis < 0 || axis >= r) return unsupported(label + " axis");
    Shape want(xs.begin(), xs.begin() + axis);
    want.insert(want.end(), is.begin(), is.end());
    want.insert(want.end(), xs.begin() + axis + 1, xs.end());
    if (want != b.val(out).shape) return unsupported(label + " output shape differs from inference");
    if (shape_numel(want) == 0 || xs[axis] == 0) return unsupported(label + " empty tensor");
    auto k = std::make_unique<GatherKernel>();
    for (int64_t i = 0; i < axis; ++i) k->outer *= xs[i];
    int64_t inner = 1;
    for (int64_t i = axis + 1; i < r; ++i) inner *= xs[i];
    k->axis_dim = xs[axis];
    k->count = shape_numel(is);
    k->row_bytes = inner * static_cast<int64_t>(elem_size(b.val(x).dtype));
    k->indices64 = it == DataType::int64;
    TANDEM_ASSIGN_OR_RETURN(k->data, b.require(x, Layout::plain));
    TANDEM_ASSIGN_OR_RETURN(k->indices, b.require(ind, Layout::plain));
    b.define(out, Layout::plain);
    k->out = out;
    k->label = label;
    k->reads = {k->data, k->indices};
    k->writes = {out};
    b.add_work(static_cast<double>(shape_numel(want)));
    b.add_kernel(std::move(k));
    return Status::ok();
  }
};

Status supports_gather(const Node& n) {
  if (n.inputs.size() < 2 || n.inputs[0].empty() || n.inputs[1].empty()) return unsupported(n.label() + " needs data and indices");
  return Status::ok();
}

Result<std::unique_ptr<OpSpec>> make_gather(FusionContext&, const Step&) {
  return std::unique_ptr<OpSpec>(std::make_unique<GatherSpec>());
}

}  // namespace

void register_indexing_ops(OpTable& t) { t.add("Gather", &supports_gather, &make_gather); }

}  // namespace tandem::cpu
