// builder.h: the Builder, through which op families turn a step into kernels of an instance
// (OpSpec::prepare): it defines values (arena, views, constants, temporaries), converts layouts
// and precisions, adds kernels and records scratchpad needs and work estimates. Steps without a
// fast path run their original nodes with the reference kernels (Builder::generic).
//
// A Builder lives for one instance build, on one thread; it does not own the instance.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>

#include "backends/cpu/compiled_graph.h"
#include "backends/cpu/instance.h"

namespace tandem::cpu {

// Builds an Instance: the interface op families use in OpSpec::prepare().
class Builder {
 public:
  Builder(const CompiledGraph& g, Instance& inst) : g_(g), inst_(inst) {}

  const CompiledGraph& graph() const { return g_; }
  // The OpenMP team size of this instance (the plan's, or 1 for small models).
  int threads() const;
  // Work estimates of the kernels so far (multiply-adds or element visits), see threads_for().
  void add_work(double work) { work_ += work; }
  double work() const { return work_; }
  // Counts a product eligible for bf16, and whether it kept bf16 (Instance::bf16_candidates).
  void count_bf16(bool kept) {
    ++inst_.bf16_candidates;
    inst_.bf16_kept += kept;
  }
  IValue& val(int v);
  const IValue& val(int v) const;
  // The value's data when known at build time (compile-time or instance constant).
  const Tensor* known(int v) const;
  bool is_segment_output(int v) const;
  // True when the value's type and shape are fully known for this instance.
  bool typed(int v) const;

  // Defines output `v` of the current step as a new arena value in layout `l`, with `shape`
  // (the inferred shape when empty optional is passed) and dtype.
  void define(int v, Layout l);
  // Defines `v` as a view of `base` at `byte_offset` (plain layout only).
  void define_alias(int v, int base, int64_t byte_offset);
  // Defines `v` as a build-time constant.
  void define_constant(int v, Tensor t);
  // Defines output `v` of the current step (a float32 value of the graph) as an arena value held
  // in bfloat16, layout `l` (IValue::handed_off): only when readers_take_bf16(v).
  void define_handed_off(int v, Layout l);
  // True when `v` has readers, is not a segment output, and every reader's OpSpec answers
  // reads_bf16_source(*this, v).
  bool readers_take_bf16(int v) const;
  // True when `v` has readers, is not a segment output, and every reader's OpSpec answers
  // reads_channels_last_floats(v): a float32 value may then stay channels-last (instance.h).
  bool readers_take_channels_last_floats(int v) const;
  // True when this instance may hand float32 results off in bfloat16 (conv.cpp): precision
  // bf16, native AVX512_BF16, bf16 convolutions on the blocked layout (no AMX nhwc route), and
  // TANDEM_CPU_BF16_HANDOFF not 0. The handed-off value is then blocked.
  bool may_hand_off_bf16() const;
  // A new arena temporary.
  int add_temp(DataType dtype, const Shape& shape, Layout l);
  // A new constant value (plain or blocked; blocked data must already be padded/reordered).
  int add_constant(Tensor t, Layout l = Layout::plain, int64_t bytes = -1);
  // The id of a value holding the same data as `v` in layout `l` (adds a reorder when needed).
  // A handed-off value (held in bfloat16) comes back as a float32 copy, in any layout.
  Result<int> require(int v, Layout l);
  // The id of a bfloat16 value holding `v` (a float32 value) rounded to nearest even, in layout
  // `l` (plain, nhwc for 4-D values, or blocked for a value already blocked): one conversion
  // kernel per value, layout and instance, shared by its readers.
  Result<int> require_bf16(int v, Layout l);
  // True when require_bf16(v, l) would reuse a conversion another reader already asked for.
  bool has_bf16(int v, Layout l) const {
    return (v >= 0 && inst_.values[v].dtype == DataType::bfloat16 && inst_.values[v].layout == l) ||
           narrowed_.count({v, l}) > 0;
  }
  // The precision the plan may compute in (CompileOptions::precision).
  Precision precision() const;
  void add_kernel(std::unique_ptr<Kernel> k);
  // Scratchpad needs of a oneDNN primitive.
  void need_scratch(int64_t bytes);
  // Runs the step's original nodes with reference kernels (the generic path).
  Status generic(const Step& step);
  // The range of float32 value `v` as its producer's kernel computes it while writing `v`: an
  // instance value of two float32, min(0, v...) and max(0, v...) (NaN ignored), written in
  // the same run before any reader of `v` runs; -1 when no producer records it.
  // DynamicQuantizeLinear reads it instead of making a pass over `v` for its range.
  int range_of(int v) const {
    auto it = ranges_.find(v);
    return it == ranges_.end() ? -1 : it->second;
  }
  void set_range(int v, int range) { ranges_[v] = range; }
  // Drops cached layout conversions and ranges whose value id is >= `first_value` (after a
  // rollback).
  void forget_conversions_from(int first_value) {
    for (auto it = conversions_.begin(); it != conversions_.end();)
      it = it->second >= first_value ? conversions_.erase(it) : std::next(it);
    for (auto it = narrowed_.begin(); it != narrowed_.end();)
      it = it->second >= first_value ? narrowed_.erase(it) : std::next(it);
    for (auto it = ranges_.begin(); it != ranges_.end();)
      it = it->second >= first_value ? ranges_.erase(it) : std::next(it);
  }

  // Byte size of a value of this dtype/shape in layout l.
  static int64_t physical_bytes(DataType dtype, const Shape& shape, Layout l);

 private:
  const CompiledGraph& g_;
  Instance& inst_;
  std::map<std::pair<int, Layout>, int> conversions_;
  std::map<std::pair<int, Layout>, int> narrowed_;  // float32 value -> its bfloat16 copy
  std::map<int, int> ranges_;                       // float32 value -> its range (range_of)
  double work_ = 0;
};

// Threads for a kernel doing `work` multiply-adds (or element visits): small kernels run on
// one thread, where a parallel region would cost more than it saves. team_for_work is the rule
// alone, for a team of `team` threads.
int threads_for(Builder& b, double work);
int team_for_work(int team, double work);

}  // namespace tandem::cpu
