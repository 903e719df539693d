// Reference kernels: sequences and optionals (SequenceConstruct ... ConcatFromSequence,
// SequenceMap, Optional, OptionalHasElement, OptionalGetElement).
#include <algorithm>

#include "kernels/registry.h"
#include "core/tensor_util.h"

namespace tandem {

namespace {

// Copies `count` elements of any dtype from src[src_off...] to dst[dst_off...].
void copy_elements(const Tensor& src, int64_t src_off, Tensor& dst, int64_t dst_off, int64_t count) {
  visit_any(src.dtype(), [&]<class T>() {
    std::copy_n(src.data<T>() + src_off, count, dst.data<T>() + dst_off);
  });
}

// Reads a position input (scalar int32/int64) and maps it into [0, size] (insert) or
// [0, size) (others). Negative positions count from the end.
Result<int64_t> sequence_position(KernelContext& ctx, size_t input, int64_t size, bool for_insert) {
  const Tensor& p = ctx.input(input);
  if (p.numel() != 1 || !is_integer_type(p.dtype())) return ctx.invalid("position must be an integer scalar");
  int64_t pos = to_int64_vector(p)[0];
  if (pos < 0) pos += size;
  const int64_t limit = for_insert ? size : size - 1;
  if (pos < 0 || pos > limit)
    return ctx.invalid("position " + std::to_string(to_int64_vector(p)[0]) + " is out of range for a sequence of " +
                       std::to_string(size) + " tensors");
  return pos;
}

Status sequence_input(KernelContext& ctx, size_t i, const Value** out) {
  const Value& v = ctx.input_value(i);
  if (!v.is_sequence()) return ctx.invalid("input " + std::to_string(i) + " must be a sequence");
  *out = &v;
  return Status::ok();
}

Status sequence_construct(KernelContext& ctx) {
  std::vector<Tensor> items;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.input(i).defined()) return ctx.invalid("input " + std::to_string(i) + " is not a tensor");
    if (!items.empty() && items.front().dtype() != ctx.input(i).dtype())
      return ctx.invalid("all tensors of a sequence must share one dtype");
    items.push_back(ctx.input(i));
  }
  ctx.set_output(0, Value::of_sequence(std::move(items)));
  return Status::ok();
}

Status sequence_empty(KernelContext& ctx) {
  auto dtype = static_cast<DataType>(ctx.node().attr_int("dtype", static_cast<int64_t>(DataType::float32)));
  ctx.set_output(0, Value::of_sequence({}, dtype));
  return Status::ok();
}

Status sequence_length(KernelContext& ctx) {
  const Value* seq;
  TANDEM_RETURN_IF_ERROR(sequence_input(ctx, 0, &seq));
  ctx.set_output(0, Tensor::scalar<int64_t>(static_cast<int64_t>(seq->sequence.size())));
  return Status::ok();
}

Status sequence_at(KernelContext& ctx) {
  const Value* seq;
  TANDEM_RETURN_IF_ERROR(sequence_input(ctx, 0, &seq));
  TANDEM_ASSIGN_OR_RETURN(int64_t pos, sequence_position(ctx, 1, static_cast<int64_t>(seq->sequence.size()), false));
  ctx.set_output(0, seq->sequence[pos]);
  return Status::ok();
}

Status sequence_insert(KernelContext& ctx) {
  const Value* seq;
  TANDEM_RETURN_IF_ERROR(sequence_input(ctx, 0, &seq));
  const Tensor& t = ctx.input(1);
  if (!t.defined()) return ctx.invalid("the tensor to insert is missing");
  if (seq->sequence_dtype != DataType::undefined && seq->sequence_dtype != t.dtype())
    return ctx.invalid("cannot insert a " + std::string(dtype_name(t.dtype())) + " tensor into a sequence of " +
                       std::string(dtype_name(seq->sequence_dtype)));
  const int64_t size = static_cast<int64_t>(seq->sequence.size());
  int64_t pos = size;
  if (ctx.has_input(2)) {
    TANDEM_ASSIGN_OR_RETURN(pos, sequence_position(ctx, 2, size, true));
  }
  std::vector<Tensor> items = seq->sequence;
  items.insert(items.begin() + pos, t);
  ctx.set_output(0, Value::of_sequence(std::move(items), t.dtype()));
  return Status::ok();
}

Status sequence_erase(KernelContext& ctx) {
  const Value* seq;
  TANDEM_RETURN_IF_ERROR(sequence_input(ctx, 0, &seq));
  const int64_t size = static_cast<int64_t>(seq->sequence.size());
  if (size == 0) return ctx.invalid("cannot erase from an empty sequence");
  int64_t pos = size - 1;
  if (ctx.has_input(1)) {
    TANDEM_ASSIGN_OR_RETURN(pos, sequence_position(ctx, 1, size, false));
  }
  std::vector<Tensor> items = seq->sequence;
  items.erase(items.begin() + pos);
  ctx.set_output(0, Value::of_sequence(std::move(items), seq->sequence_dtype));
  return Status::ok();
}

// Splits `t` along `axis` into pieces of the given lengths.
std::vector<Tensor> split_along(const Tensor& t, int64_t axis, const std::vector<int64_t>& lengths) {
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= t.dim(d);
  for (size_t d = axis + 1; d < t.rank(); ++d) inner *= t.dim(d);
  std::vector<Tensor> pieces;
  int64_t start = 0;
  for (int64_t len : lengths) {
    Shape s = t.shape();
    s[axis] = len;
    Tensor piece(t.dtype(), s);
    for (int64_t o = 0; o < outer; ++o)
      copy_elements(t, (o * t.dim(axis) + start) * inner, piece, o * len * inner, len * inner);
    pieces.push_back(std::move(piece));
    start += len;
  }
  return pieces;
}

Status split_to_sequence(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (!x.defined()) return ctx.invalid("input is missing");
  if (x.rank() == 0) return ctx.invalid("cannot split a scalar");
  TANDEM_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(ctx.node().attr_int("axis", 0), static_cast<int64_t>(x.rank())));
  const int64_t dim = x.dim(axis);
  std::vector<int64_t> lengths;
  bool squeeze = false;
  if (ctx.has_input(1)) {
    const Tensor& split = ctx.input(1);
    std::vector<int64_t> v = to_int64_vector(split);
    if (split.rank() == 0) {
      if (v[0] <= 0) return ctx.invalid("split must be positive");
      for (int64_t start = 0; start < dim; start += v[0]) lengths.push_back(std::min(v[0], dim - start));
    } else {
      int64_t total = 0;
      for (int64_t l : v) {
        if (l < 0) return ctx.invalid("split lengths must be non-negative");
        total += l;
      }
      if (total != dim)
        return ctx.invalid("split lengths sum to " + std::to_string(total) + ", but the axis has " + std::to_string(dim));
      lengths = v;
    }
  } else {
    lengths.assign(static_cast<size_t>(dim), 1);
    squeeze = ctx.node().attr_int("keepdims", 1) == 0;
  }
  std::vector<Tensor> pieces = split_along(x, axis, lengths);
  if (squeeze) {
    for (Tensor& p : pieces) {
      Shape s = p.shape();
      s.erase(s.begin() + axis);
      p = p.reshaped(s);
    }
  }
  ctx.set_output(0, Value::of_sequence(std::move(pieces), x.dtype()));
  return Status::ok();
}

Status concat_from_sequence(KernelContext& ctx) {
  const Value* seq;
  TANDEM_RETURN_IF_ERROR(sequence_input(ctx, 0, &seq));
  if (seq->sequence.empty()) return ctx.invalid("cannot concatenate an empty sequence");
  const bool new_axis = ctx.node().attr_int("new_axis", 0) != 0;
  const Tensor& first = seq->sequence.front();
  const int64_t rank = static_cast<int64_t>(first.rank()) + (new_axis ? 1 : 0);
  TANDEM_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(ctx.node().attr_int("axis", 0), rank));
  std::vector<Tensor> items;
  for (const Tensor& t : seq->sequence) {
    if (t.dtype() != first.dtype() || t.rank() != first.rank())
      return ctx.invalid("sequence tensors differ in dtype or rank");
    if (new_axis) {
      Shape s = t.shape();
      s.insert(s.begin() + axis, 1);
      items.push_back(t.reshaped(s));
    } else {
      items.push_back(t);
    }
  }
  Shape out_shape = items.front().shape();
  out_shape[axis] = 0;
  for (const Tensor& t : items) {
    for (size_t d = 0; d < t.rank(); ++d)
      if (static_cast<int64_t>(d) != axis && t.dim(d) != out_shape[d])
        return ctx.invalid("sequence tensors have mismatched shapes " + shape_to_string(t.shape()) + " and " +
                           shape_to_string(items.front().shape()));
    out_shape[axis] += t.dim(axis);
  }
  Tensor out(first.dtype(), out_shape);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= out_shape[d];
  for (size_t d = axis + 1; d < out_shape.size(); ++d) inner *= out_shape[d];
  int64_t offset = 0;
  for (const Tensor& t : items) {
    const int64_t chunk = t.dim(axis) * inner;
    for (int64_t o = 0; o < outer; ++o) copy_elements(t, o * chunk, out, o * out_shape[axis] * inner + offset, chunk);
    offset += chunk;
  }
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

Status sequence_map(KernelContext& ctx) {
  const Attribute* body = ctx.node().attr("body");
  if (!body || !body->g) return ctx.invalid("missing the 'body' graph attribute");
  const Value* seq;
  TANDEM_RETURN_IF_ERROR(sequence_input(ctx, 0, &seq));
  const size_t count = seq->sequence.size();
  for (size_t i = 1; i < ctx.num_inputs(); ++i) {
    const Value& v = ctx.input_value(i);
    if (v.is_sequence() && v.sequence.size() != count)
      return ctx.invalid("sequence inputs differ in length");
  }
  std::vector<std::vector<Tensor>> results(ctx.num_outputs());
  for (size_t k = 0; k < count; ++k) {
    std::vector<Value> args;
    for (size_t i = 0; i < ctx.num_inputs(); ++i) {
      const Value& v = ctx.input_value(i);
      args.push_back(v.is_sequence() ? Value::of(v.sequence[k]) : v);
    }
    TANDEM_ASSIGN_OR_RETURN(std::vector<Value> outs, ctx.run_subgraph(*body->g, args));
    if (outs.size() != results.size()) return ctx.invalid("the body returns the wrong number of outputs");
    for (size_t o = 0; o < outs.size(); ++o) {
      if (!outs[o].is_tensor()) return ctx.invalid("the body must return tensors");
      results[o].push_back(outs[o].tensor);
    }
  }
  for (size_t o = 0; o < results.size(); ++o) {
    DataType dtype = DataType::undefined;
    const auto& outs = body->g->outputs;
    if (o < outs.size() && outs[o].type.kind == TypeInfo::Kind::tensor) dtype = outs[o].type.elem;
    ctx.set_output(o, Value::of_sequence(std::move(results[o]), dtype));
  }
  return Status::ok();
}

Status optional_make(KernelContext& ctx) {
  ctx.set_output(0, ctx.has_input(0) ? ctx.input_value(0) : Value{});
  return Status::ok();
}

Status optional_has_element(KernelContext& ctx) {
  ctx.set_output(0, Tensor::scalar<bool>(ctx.has_input(0)));
  return Status::ok();
}

Status optional_get_element(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.invalid("the optional is empty");
  ctx.set_output(0, ctx.input_value(0));
  return Status::ok();
}

}  // namespace

void register_sequence_kernels(KernelTable& t) {
  t.add("", "SequenceConstruct", &sequence_construct);
  t.add("", "SequenceEmpty", &sequence_empty);
  t.add("", "SequenceLength", &sequence_length);
  t.add("", "SequenceAt", &sequence_at);
  t.add("", "SequenceInsert", &sequence_insert);
  t.add("", "SequenceErase", &sequence_erase);
  t.add("", "SplitToSequence", &split_to_sequence);
  t.add("", "ConcatFromSequence", &concat_from_sequence);
  t.add("", "SequenceMap", &sequence_map);
  t.add("", "Optional", &optional_make);
  t.add("", "OptionalHasElement", &optional_has_element);
  t.add("", "OptionalGetElement", &optional_get_element);
}

}  // namespace tandem
