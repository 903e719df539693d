// Reference kernels: control flow (If, Loop, Scan). Bodies run through the executor's
// SubgraphRunner, which makes the enclosing graph's values visible to them.
#include <algorithm>

#include "kernels/registry.h"
#include "core/tensor_util.h"

namespace tandem {

namespace {

const Graph* graph_attr(const KernelContext& ctx, const char* name) {
  const Attribute* a = ctx.node().attr(name);
  return a && a->g ? a->g.get() : nullptr;
}

Result<bool> scalar_bool(KernelContext& ctx, size_t input) {
  const Tensor& c = ctx.input(input);
  if (c.numel() != 1) return ctx.invalid("condition must hold exactly one element");
  return to_double_vector(c)[0] != 0.0;
}

// The slice t[..., index, ...] along `axis`, with that axis removed.
Tensor slice_at(const Tensor& t, int64_t axis, int64_t index) {
  Shape s = t.shape();
  const int64_t dim = s[axis];
  s.erase(s.begin() + axis);
  Tensor out(t.dtype(), s);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= t.dim(d);
  for (size_t d = axis + 1; d < t.rank(); ++d) inner *= t.dim(d);
  visit_any(t.dtype(), [&]<class T>() {
    for (int64_t o = 0; o < outer; ++o)
      std::copy_n(t.data<T>() + (o * dim + index) * inner, inner, out.data<T>() + o * inner);
  });
  return out;
}

// Stacks equally shaped tensors along a new `axis`.
Result<Tensor> stack(const std::vector<Tensor>& items, int64_t axis, const Node& node) {
  const Tensor& first = items.front();
  for (const Tensor& t : items)
    if (t.shape() != first.shape() || t.dtype() != first.dtype())
      return invalid_argument(node.label() + " scan output changes shape between iterations: " +
                              shape_to_string(first.shape()) + " vs " + shape_to_string(t.shape()));
  Shape s = first.shape();
  const int64_t n = static_cast<int64_t>(items.size());
  s.insert(s.begin() + axis, n);
  Tensor out(first.dtype(), s);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= first.dim(d);
  for (size_t d = axis; d < first.rank(); ++d) inner *= first.dim(d);
  visit_any(first.dtype(), [&]<class T>() {
    for (int64_t k = 0; k < n; ++k)
      for (int64_t o = 0; o < outer; ++o)
        std::copy_n(items[k].data<T>() + o * inner, inner, out.data<T>() + (o * n + k) * inner);
  });
  return out;
}

// An empty scan output for a loop that ran zero times, typed from the body's declaration.
Tensor empty_scan_output(const ValueInfo& vi) {
  DataType dtype = vi.type.kind == TypeInfo::Kind::tensor && vi.type.elem != DataType::undefined ? vi.type.elem
                                                                                                  : DataType::float32;
  Shape s{0};
  if (vi.type.has_shape)
    for (const Dim& d : vi.type.dims) s.push_back(d.fixed() ? d.value : 0);
  return Tensor(dtype, s);
}

Status if_kernel(KernelContext& ctx) {
  TANDEM_ASSIGN_OR_RETURN(bool cond, scalar_bool(ctx, 0));
  const Graph* branch = graph_attr(ctx, cond ? "then_branch" : "else_branch");
  if (!branch) return ctx.invalid(std::string("missing the '") + (cond ? "then" : "else") + "_branch' attribute");
  TANDEM_ASSIGN_OR_RETURN(std::vector<Value> outs, ctx.run_subgraph(*branch, {}));
  if (outs.size() != ctx.num_outputs())
    return ctx.invalid("branch returns " + std::to_string(outs.size()) + " outputs, the node has " +
                       std::to_string(ctx.num_outputs()));
  for (size_t i = 0; i < outs.size(); ++i) ctx.set_output(i, std::move(outs[i]));
  return Status::ok();
}

Status loop_kernel(KernelContext& ctx) {
  const Graph* body = graph_attr(ctx, "body");
  if (!body) return ctx.invalid("missing the 'body' graph attribute");
  const size_t carried = ctx.num_inputs() >= 2 ? ctx.num_inputs() - 2 : 0;
  if (body->inputs.size() != carried + 2)
    return ctx.invalid("body takes " + std::to_string(body->inputs.size()) + " inputs, expected " +
                       std::to_string(carried + 2));
  if (body->outputs.size() < carried + 1) return ctx.invalid("body returns too few outputs");
  const size_t scans = body->outputs.size() - 1 - carried;
  int64_t max_trips = INT64_MAX;
  if (ctx.has_input(0)) {
    if (ctx.input(0).numel() != 1) return ctx.invalid("M must be a scalar");
    max_trips = to_int64_vector(ctx.input(0))[0];
  }
  bool cond = true;
  if (ctx.has_input(1)) {
    TANDEM_ASSIGN_OR_RETURN(cond, scalar_bool(ctx, 1));
  }
  std::vector<Value> state;
  for (size_t i = 0; i < carried; ++i) state.push_back(ctx.input_value(2 + i));
  std::vector<std::vector<Tensor>> scan_items(scans);
  for (int64_t iter = 0; iter < max_trips && cond; ++iter) {
    std::vector<Value> args;
    args.push_back(Value::of(Tensor::scalar<int64_t>(iter)));
    args.push_back(Value::of(Tensor::scalar<bool>(cond)));
    args.insert(args.end(), state.begin(), state.end());
    TANDEM_ASSIGN_OR_RETURN(std::vector<Value> outs, ctx.run_subgraph(*body, args));
    if (!outs[0].is_tensor() || outs[0].tensor.numel() != 1) return ctx.invalid("body condition must be a scalar");
    cond = to_double_vector(outs[0].tensor)[0] != 0.0;
    for (size_t i = 0; i < carried; ++i) state[i] = std::move(outs[1 + i]);
    for (size_t k = 0; k < scans; ++k) {
      if (!outs[1 + carried + k].is_tensor()) return ctx.invalid("scan outputs must be tensors");
      scan_items[k].push_back(outs[1 + carried + k].tensor);
    }
    if (!ctx.has_input(1) && !ctx.has_input(0) && iter > (int64_t{1} << 40))
      return ctx.invalid("loop has neither a trip count nor a condition");
  }
  for (size_t i = 0; i < carried; ++i) ctx.set_output(i, std::move(state[i]));
  for (size_t k = 0; k < scans; ++k) {
    if (scan_items[k].empty()) {
      ctx.set_output(carried + k, empty_scan_output(body->outputs[1 + carried + k]));
      continue;
    }
    auto stacked = stack(scan_items[k], 0, ctx.node());
    if (!stacked) return stacked.status();
    ctx.set_output(carried + k, std::move(stacked).value());
  }
  return Status::ok();
}

// Scan, opset 9 and later: N state variables then M scan inputs, per-input axes/directions.
// Opset 8 adds a leading optional sequence_lens input and a batch axis 0 (scan axis 1); it is
// run here as one opset-9 scan per batch entry.
Status scan_kernel(KernelContext& ctx) {
  const Graph* body = graph_attr(ctx, "body");
  if (!body) return ctx.invalid("missing the 'body' graph attribute");
  const Node& node = ctx.node();
  const int64_t num_scan_inputs = node.attr_int("num_scan_inputs", -1);
  const bool v8 = ctx.opset() < 9;
  const size_t first = v8 ? 1 : 0;
  if (num_scan_inputs < 0 || ctx.num_inputs() < first + static_cast<size_t>(num_scan_inputs))
    return ctx.invalid("num_scan_inputs is missing or larger than the number of inputs");
  const size_t m = static_cast<size_t>(num_scan_inputs);
  const size_t n = ctx.num_inputs() - first - m;
  if (body->inputs.size() != n + m || body->outputs.size() < n)
    return ctx.invalid("body signature does not match the node's inputs");
  const size_t k_out = body->outputs.size() - n;
  std::vector<int64_t> in_axes = node.attr_ints("scan_input_axes", std::vector<int64_t>(m, 0));
  std::vector<int64_t> in_dirs = node.attr_ints(v8 ? "directions" : "scan_input_directions", std::vector<int64_t>(m, 0));
  std::vector<int64_t> out_axes = node.attr_ints("scan_output_axes", std::vector<int64_t>(k_out, 0));
  std::vector<int64_t> out_dirs = node.attr_ints("scan_output_directions", std::vector<int64_t>(k_out, 0));
  if (in_axes.size() != m || in_dirs.size() != m || out_axes.size() != k_out || out_dirs.size() != k_out)
    return ctx.invalid("scan axes/directions attributes have the wrong length");

  // One scan over states/inputs already stripped of any batch axis.
  auto run_one = [&](std::vector<Value> state, const std::vector<Tensor>& inputs, int64_t length,
                     std::vector<Value>* final_state, std::vector<Tensor>* scan_out) -> Status {
    std::vector<std::vector<Tensor>> items(k_out);
    for (int64_t t = 0; t < length; ++t) {
      std::vector<Value> args = state;
      for (size_t j = 0; j < m; ++j) {
        const int64_t idx = in_dirs[j] ? length - 1 - t : t;
        TANDEM_ASSIGN_OR_RETURN(int64_t ax, normalize_axis(in_axes[j], static_cast<int64_t>(inputs[j].rank())));
        args.push_back(Value::of(slice_at(inputs[j], ax, idx)));
      }
      TANDEM_ASSIGN_OR_RETURN(std::vector<Value> outs, ctx.run_subgraph(*body, args));
      for (size_t i = 0; i < n; ++i) state[i] = std::move(outs[i]);
      for (size_t k = 0; k < k_out; ++k) items[k].push_back(outs[n + k].tensor);
    }
    *final_state = std::move(state);
    scan_out->clear();
    for (size_t k = 0; k < k_out; ++k) {
      if (items[k].empty()) {
        scan_out->push_back(empty_scan_output(body->outputs[n + k]));
        continue;
      }
      if (out_dirs[k]) std::reverse(items[k].begin(), items[k].end());
      TANDEM_ASSIGN_OR_RETURN(int64_t ax, normalize_axis(out_axes[k], static_cast<int64_t>(items[k][0].rank()) + 1));
      TANDEM_ASSIGN_OR_RETURN(Tensor s, stack(items[k], ax, node));
      scan_out->push_back(std::move(s));
    }
    return Status::ok();
  };

  std::vector<Tensor> scan_inputs;
  for (size_t j = 0; j < m; ++j) {
    const Tensor& t = ctx.input(first + n + j);
    if (!t.defined()) return ctx.invalid("scan input " + std::to_string(j) + " is missing");
    scan_inputs.push_back(t);
  }
  if (!v8) {
    int64_t length = -1;
    for (size_t j = 0; j < m; ++j) {
      TANDEM_ASSIGN_OR_RETURN(int64_t ax, normalize_axis(in_axes[j], static_cast<int64_t>(scan_inputs[j].rank())));
      if (length >= 0 && scan_inputs[j].dim(ax) != length) return ctx.invalid("scan inputs differ in length");
      length = scan_inputs[j].dim(ax);
    }
    std::vector<Value> state;
    for (size_t i = 0; i < n; ++i) state.push_back(ctx.input_value(i));
    std::vector<Value> final_state;
    std::vector<Tensor> scan_out;
    TANDEM_RETURN_IF_ERROR(run_one(state, scan_inputs, std::max<int64_t>(length, 0), &final_state, &scan_out));
    for (size_t i = 0; i < n; ++i) ctx.set_output(i, std::move(final_state[i]));
    for (size_t k = 0; k < k_out; ++k) ctx.set_output(n + k, std::move(scan_out[k]));
    return Status::ok();
  }
  // Opset 8: batch axis 0 on every state and scan input; scan axis 1 of the original.
  if (m == 0 && n == 0) return ctx.invalid("scan has no inputs");
  const int64_t batch = m ? scan_inputs[0].dim(0) : ctx.input(first).dim(0);
  std::vector<int64_t> seq_lens;
  if (ctx.has_input(0)) seq_lens = to_int64_vector(ctx.input(0));
  std::vector<std::vector<Tensor>> per_batch_states(n), per_batch_scans(k_out);
  for (int64_t b = 0; b < batch; ++b) {
    std::vector<Value> state;
    for (size_t i = 0; i < n; ++i) state.push_back(Value::of(slice_at(ctx.input(first + i), 0, b)));
    std::vector<Tensor> inputs;
    for (const Tensor& t : scan_inputs) inputs.push_back(slice_at(t, 0, b));
    int64_t length = m ? inputs[0].dim(0) : 0;
    if (!seq_lens.empty()) {
      if (static_cast<int64_t>(seq_lens.size()) != batch) return ctx.invalid("sequence_lens must have batch entries");
      length = std::min(length, seq_lens[b]);
    }
    std::vector<Value> final_state;
    std::vector<Tensor> scan_out;
    // Opset 8 scans the axis right after batch, which is axis 0 once batch is removed.
    std::fill(in_axes.begin(), in_axes.end(), 0);
    std::fill(out_axes.begin(), out_axes.end(), 0);
    TANDEM_RETURN_IF_ERROR(run_one(state, inputs, length, &final_state, &scan_out));
    for (size_t i = 0; i < n; ++i) per_batch_states[i].push_back(final_state[i].tensor);
    for (size_t k = 0; k < k_out; ++k) per_batch_scans[k].push_back(scan_out[k]);
  }
  for (size_t i = 0; i < n; ++i) {
    TANDEM_ASSIGN_OR_RETURN(Tensor s, stack(per_batch_states[i], 0, node));
    ctx.set_output(i, std::move(s));
  }
  for (size_t k = 0; k < k_out; ++k) {
    TANDEM_ASSIGN_OR_RETURN(Tensor s, stack(per_batch_scans[k], 0, node));
    ctx.set_output(n + k, std::move(s));
  }
  return Status::ok();
}

}  // namespace

void register_control_flow_kernels(KernelTable& t) {
  t.add("", "If", &if_kernel);
  t.add("", "Loop", &loop_kernel);
  t.add("", "Scan", &scan_kernel);
}

}  // namespace tandem
