// shape_rules_sequence.cpp: shape rules for sequences (SequenceEmpty/Construct/Insert/Erase/
// At/Length, SplitToSequence, ConcatFromSequence) and optionals.
// See shape_rules.h for the contract of a rule.
#include "passes/shape_rules.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "core/tensor_util.h"

namespace tandem::shape_detail {

namespace {

// ---- sequences and optionals -----------------------------------------------------------------

TypeInfo seq_of(TypeInfo inner) {
  TypeInfo t;
  t.kind = TypeInfo::Kind::sequence;
  t.inner = std::make_shared<TypeInfo>(std::move(inner));
  return t;
}

TypeInfo inner_of(const TypeInfo& t) { return t.inner ? *t.inner : TypeInfo{}; }

Status sequence_empty_rule(RuleContext& ctx) {
  ctx.set(0, seq_of(unranked_type(static_cast<DataType>(ctx.node().attr_int("dtype", 1)))));
  return Status::ok();
}

Status sequence_construct_rule(RuleContext& ctx) {
  TypeInfo inner;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) inner = i == 0 ? ctx.type(i) : join_types(inner, ctx.type(i));
  ctx.set(0, seq_of(inner));
  return Status::ok();
}

Status sequence_insert_rule(RuleContext& ctx) {
  const TypeInfo& s = ctx.type(0);
  TypeInfo inner = s.inner ? join_types(*s.inner, ctx.type(1)) : ctx.type(1);
  // An empty sequence's element dims say nothing; the inserted tensor decides then.
  if (const Value* v = ctx.known_value(0); v && v->is_sequence() && v->sequence.empty()) inner = ctx.type(1);
  ctx.set(0, seq_of(inner));
  return Status::ok();
}

Status sequence_at_rule(RuleContext& ctx) {
  TypeInfo t = inner_of(ctx.type(0));
  if (t.kind == TypeInfo::Kind::unknown) t = unranked_type(DataType::undefined);
  ctx.set(0, t);
  return Status::ok();
}

Status sequence_length_rule(RuleContext& ctx) {
  ctx.set_tensor(0, DataType::int64, {});
  return Status::ok();
}

Status split_to_sequence_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  if (!ctx.ranked(0)) {
    ctx.set(0, seq_of(unranked_type(dt)));
    return Status::ok();
  }
  TANDEM_ASSIGN_OR_RETURN(int64_t a, ctx.axis(ctx.node().attr_int("axis", 0), ctx.rank(0)));
  Dims d = ctx.dims(0);
  if (!ctx.has_input(1)) {
    if (ctx.node().attr_int("keepdims", 1) != 0) d[a] = fixed_dim(1);
    else d.erase(d.begin() + a);
  } else {
    auto split = ctx.ints(1);
    Dim part = unknown_dim();
    if (split && ctx.rank(1) == 0 && d[a].fixed() && (*split)[0] > 0 && d[a].value % (*split)[0] == 0)
      part = fixed_dim((*split)[0]);
    else if (split && ctx.rank(1) == 1 && !split->empty() &&
             std::all_of(split->begin(), split->end(), [&](int64_t v) { return v == (*split)[0]; }))
      part = fixed_dim((*split)[0]);
    d[a] = part;
  }
  ctx.set(0, seq_of(tensor_type(dt, std::move(d))));
  return Status::ok();
}

Status concat_from_sequence_rule(RuleContext& ctx) {
  TypeInfo e = inner_of(ctx.type(0));
  if (e.kind != TypeInfo::Kind::tensor || !e.has_shape) {
    ctx.set_unranked(0, e.elem);
    return Status::ok();
  }
  const bool new_axis = ctx.node().attr_int("new_axis", 0) != 0;
  Dims d = e.dims;
  const int64_t r = static_cast<int64_t>(d.size()) + (new_axis ? 1 : 0);
  TANDEM_ASSIGN_OR_RETURN(int64_t a, ctx.axis(ctx.node().attr_int("axis", 0), r));
  if (new_axis) d.insert(d.begin() + a, unknown_dim());
  else d[a] = unknown_dim();
  ctx.set_tensor(0, e.elem, std::move(d));
  return Status::ok();
}

Status optional_rule(RuleContext& ctx) {
  TypeInfo t;
  t.kind = TypeInfo::Kind::optional;
  if (ctx.has_input(0)) t.inner = std::make_shared<TypeInfo>(ctx.type(0));
  else if (const Attribute* a = ctx.node().attr("type"); a && a->tp) t.inner = a->tp;
  ctx.set(0, t);
  return Status::ok();
}

Status optional_has_element_rule(RuleContext& ctx) {
  ctx.set_tensor(0, DataType::boolean, {});
  return Status::ok();
}

Status optional_get_element_rule(RuleContext& ctx) {
  const TypeInfo& t = ctx.type(0);
  if (t.kind == TypeInfo::Kind::optional) ctx.set(0, t.inner ? *t.inner : TypeInfo{});
  else ctx.set(0, t);
  return Status::ok();
}

// The sequence keeps its element type; its length is not tracked.
Status sequence_erase_rule(RuleContext& ctx) {
  ctx.set(0, ctx.type(0));
  return Status::ok();
}

}  // namespace

void register_sequence_rules(RuleTable& t) {
  t.add("", "SequenceEmpty", sequence_empty_rule);
  t.add("", "SequenceConstruct", sequence_construct_rule);
  t.add("", "SequenceInsert", sequence_insert_rule);
  t.add("", "SequenceErase", sequence_erase_rule);
  t.add("", "SequenceAt", sequence_at_rule);
  t.add("", "SequenceLength", sequence_length_rule);
  t.add("", "SplitToSequence", split_to_sequence_rule);
  t.add("", "ConcatFromSequence", concat_from_sequence_rule);
  t.add("", "Optional", optional_rule);
  t.add("", "OptionalHasElement", optional_has_element_rule);
  t.add("", "OptionalGetElement", optional_get_element_rule);
}

}  // namespace tandem::shape_detail
