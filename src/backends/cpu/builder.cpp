// builder.cpp: the Builder (builder.h) and the generic kernel that runs a step's original nodes
// with the reference kernels.
#include "backends/cpu/builder.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "backends/cpu/cast.h"
#include "backends/cpu/dnnl_kernel.h"
#include "backends/cpu/reference_nodes.h"
#include "backends/cpu/runtime_env.h"
#include "core/tensor_util.h"

namespace tandem::cpu {

namespace {

// Runs original nodes with the reference kernels.
class GenericKernel final : public Kernel {
 public:
  struct External {
    std::string name;
    int value = -1;
    DataType dtype = DataType::undefined;
    Shape shape;
    Tensor constant;  // set when known at build time
    bool none = false;
  };
  struct Export {
    std::string name;
    int value = -1;
    DataType dtype = DataType::undefined;
    Shape shape;
    bool held = false;
  };
  std::vector<const Node*> nodes;
  std::vector<External> externals;
  std::vector<Export> exports;

  Status run(RunCtx& ctx, KernelState*) const override {
    ValueEnv env;
    for (const External& e : externals) {
      if (e.none) {
        env[e.name] = Value{};
      } else if (e.constant.defined()) {
        env[e.name] = Value::of(e.constant);
      } else if (ctx.held[e.value].defined()) {
        env[e.name] = Value::of(ctx.held[e.value]);
      } else {
        Tensor t(e.dtype, e.shape);
        if (t.nbytes()) std::memcpy(t.raw_data(), ctx.ptr[e.value], t.nbytes());
        env[e.name] = Value::of(std::move(t));
      }
    }
    TANDEM_RETURN_IF_ERROR(run_reference_nodes(nodes, env));
    for (const Export& x : exports) {
      auto it = env.find(x.name);
      if (it == env.end() || !it->second.is_tensor())
        return internal_error(label + " generic path produced no tensor for '" + x.name + "'");
      const Tensor& t = it->second.tensor;
      if (t.dtype() != x.dtype || t.shape() != x.shape)
        return internal_error(label + " '" + x.name + "' is " + std::string(dtype_name(t.dtype())) + "[" +
                              shape_to_string(t.shape()) + "], shape inference said " +
                              std::string(dtype_name(x.dtype)) + "[" + shape_to_string(x.shape) + "]");
      if (x.held) {
        ctx.held[x.value] = t;
        ctx.ptr[x.value] = const_cast<void*>(t.raw_data());
      } else if (t.nbytes()) {
        std::memcpy(ctx.ptr[x.value], t.raw_data(), t.nbytes());
      }
    }
    return Status::ok();
  }
};

}  // namespace

int team_for_work(int team, double work) { return work < 1.5e6 ? 1 : team; }

int threads_for(Builder& b, double work) {
  b.add_work(work);
  return team_for_work(b.threads(), work);
}

IValue& Builder::val(int v) { return inst_.values[v]; }
const IValue& Builder::val(int v) const { return inst_.values[v]; }

int Builder::threads() const { return inst_.threads; }
Precision Builder::precision() const { return g_.precision; }

const Tensor* Builder::known(int v) const {
  if (v < 0) return nullptr;
  const IValue& iv = inst_.values[v];
  if (iv.kind == IValue::Kind::constant && iv.layout == Layout::plain) return &iv.holder;
  return nullptr;
}

bool Builder::is_segment_output(int v) const { return v >= 0 && v < static_cast<int>(g_.values.size()) && g_.values[v].is_output; }

bool Builder::typed(int v) const {
  if (v < 0) return false;
  const IValue& iv = inst_.values[v];
  if (iv.dtype == DataType::undefined) return false;
  for (int64_t d : iv.shape)
    if (d < 0) return false;
  return true;
}

int64_t Builder::physical_bytes(DataType dtype, const Shape& shape, Layout l) {
  if (l == Layout::blocked && shape.size() == 4)
    return shape[0] * round_up(shape[1], channel_block()) * shape[2] * shape[3] * static_cast<int64_t>(elem_size(dtype));
  return shape_numel(shape) * static_cast<int64_t>(elem_size(dtype));
}

void Builder::define(int v, Layout l) {
  IValue& iv = inst_.values[v];
  iv.layout = l;
  iv.kind = (iv.dtype == DataType::string) ? IValue::Kind::held : IValue::Kind::arena;
  iv.bytes = physical_bytes(iv.dtype, iv.shape, l);
  iv.defined = true;
}

void Builder::define_handed_off(int v, Layout l) {
  IValue& iv = inst_.values[v];
  iv.dtype = DataType::bfloat16;
  iv.handed_off = true;
  define(v, l);
  ++inst_.bf16_handoffs;
}

bool Builder::may_hand_off_bf16() const {
  return precision() == Precision::bf16 && has_native_bf16() && !has_amx_tiles() && feature_enabled("BF16_BLOCKED") &&
         feature_enabled_now("BF16_HANDOFF");
}

namespace {

// True when `v` has readers, is not a segment output, and every reader's live spec answers
// `takes(v)` (one of OpSpec's reads_* questions).
template <typename Takes>
bool every_reader(const CompiledGraph& g, int v, Takes takes) {
  if (v < 0 || v >= static_cast<int>(g.values.size())) return false;
  const CompiledValue& cv = g.values[v];
  if (cv.is_output || cv.readers.empty()) return false;
  for (int r : cv.readers) {
    const Step& s = g.steps[static_cast<size_t>(r)];
    if (s.dead || !s.spec || !takes(*s.spec)) return false;
  }
  return true;
}

}  // namespace

bool Builder::readers_take_bf16(int v) const {
  return every_reader(g_, v, [&](const OpSpec& s) { return s.reads_bf16_source(*this, v); });
}

bool Builder::readers_take_channels_last_floats(int v) const {
  return every_reader(g_, v, [&](const OpSpec& s) { return s.reads_channels_last_floats(v); });
}

void Builder::define_alias(int v, int base, int64_t byte_offset) {
  IValue& iv = inst_.values[v];
  iv.layout = Layout::plain;
  iv.kind = IValue::Kind::alias;
  iv.ref = base;
  iv.offset = byte_offset;
  iv.bytes = physical_bytes(iv.dtype, iv.shape, Layout::plain);
  iv.defined = true;
  inst_.alias_order.push_back(v);
}

void Builder::define_constant(int v, Tensor t) {
  IValue& iv = inst_.values[v];
  iv.dtype = t.dtype();
  iv.shape = t.shape();
  iv.layout = Layout::plain;
  iv.kind = IValue::Kind::constant;
  iv.bytes = static_cast<int64_t>(t.nbytes());
  iv.holder = std::move(t);
  iv.defined = true;
}

int Builder::add_temp(DataType dtype, const Shape& shape, Layout l) {
  IValue iv;
  iv.dtype = dtype;
  iv.shape = shape;
  inst_.values.push_back(iv);
  int id = static_cast<int>(inst_.values.size()) - 1;
  define(id, l);
  return id;
}

int Builder::add_constant(Tensor t, Layout l, int64_t bytes) {
  IValue iv;
  iv.dtype = t.dtype();
  iv.shape = t.shape();
  iv.layout = l;
  iv.kind = IValue::Kind::constant;
  iv.bytes = bytes >= 0 ? bytes : static_cast<int64_t>(t.nbytes());
  iv.holder = std::move(t);
  iv.defined = true;
  inst_.values.push_back(std::move(iv));
  return static_cast<int>(inst_.values.size()) - 1;
}

Result<int> Builder::require(int v, Layout l) {
  if (v < 0) return v;
  IValue& iv = inst_.values[v];
  auto key = std::make_pair(v, l);
  if (iv.handed_off) {  // back to float32 for a reader that does not compute on bf16
    if (auto it = conversions_.find(key); it != conversions_.end()) return it->second;
    const Shape shape = iv.shape;
    const int out = add_temp(DataType::float32, shape, l);
    TANDEM_RETURN_IF_ERROR(add_reorder(*this, v, out, "[float32 copy of bf16 '" + g_.values[v].name + "']"));
    conversions_[key] = out;
    return out;
  }
  if (iv.layout == l) return v;
  if (auto it = conversions_.find(key); it != conversions_.end()) return it->second;
  // float32 moves between all three layouts; the 8-bit and int32 values of quantized
  // convolutions between plain and nhwc. Blocked values are 4-D; channels-last ones 3-D to 5-D
  // (nwc, nhwc, ndhwc: the 1-D and 3-D ones only inside quantized convolutions).
  const bool quantized = iv.dtype == DataType::uint8 || iv.dtype == DataType::int8 || iv.dtype == DataType::int32;
  const size_t rank = iv.shape.size();
  const bool involves_blocked = l == Layout::blocked || iv.layout == Layout::blocked;
  if ((iv.dtype != DataType::float32 && !(quantized && !involves_blocked)) ||
      (involves_blocked ? rank != 4 : rank < 3 || rank > 5))
    return unsupported("cannot convert a " + std::string(dtype_name(iv.dtype)) + "[" + shape_to_string(iv.shape) +
                       "] value between layouts");
  const Shape shape = iv.shape;
  const DataType dtype = iv.dtype;
  int out = -1;
  if (iv.kind == IValue::Kind::constant) {
    // Convert now, once.
    int64_t bytes = physical_bytes(dtype, shape, l);
    Tensor holder(dtype, {bytes / static_cast<int64_t>(elem_size(dtype))});
    IValue tmp = iv;
    IValue dst;
    dst.dtype = dtype;
    dst.shape = shape;
    dst.layout = l;
    try {
      dnnl::memory sm(value_md(tmp), cpu_engine(), const_cast<void*>(tmp.holder.raw_data()));
      dnnl::memory dm(value_md(dst), cpu_engine(), holder.raw_data());
      dnnl::stream s(cpu_engine());
      dnnl::reorder(sm, dm).execute(s, sm, dm);
      s.wait();
    } catch (const dnnl::error& e) {
      return unsupported(std::string("constant reorder failed: ") + e.what());
    }
    out = add_constant(std::move(holder), l, bytes);
    inst_.values[out].shape = shape;
  } else {
    out = add_temp(dtype, shape, l);
    TANDEM_RETURN_IF_ERROR(add_reorder(*this, v, out, "[layout reorder of '" + (v < static_cast<int>(g_.values.size()) ? g_.values[v].name : std::string("temp")) + "']"));
  }
  conversions_[key] = out;
  return out;
}

Result<int> Builder::require_bf16(int v, Layout l) {
  if (v < 0) return v;
  const IValue& iv = inst_.values[v];
  if (iv.dtype == DataType::bfloat16 && iv.layout == l) return v;
  if (iv.handed_off) {  // held in bf16 in another layout: through a float32 copy
    TANDEM_ASSIGN_OR_RETURN(int wide, require(v, iv.layout));
    return require_bf16(wide, l);
  }
  if (iv.dtype != DataType::float32 || (l == Layout::blocked && iv.layout != Layout::blocked) ||
      (l == Layout::nhwc && iv.shape.size() != 4))
    return unsupported("cannot narrow a " + std::string(dtype_name(iv.dtype)) + "[" + shape_to_string(iv.shape) +
                       "] value to bfloat16");
  const auto key = std::make_pair(v, l);
  if (auto it = narrowed_.find(key); it != narrowed_.end()) return it->second;
  const Shape shape = iv.shape;
  int out = add_temp(DataType::bfloat16, shape, l);
  const std::string label =
      "[bf16 conversion of '" + (v < static_cast<int>(g_.values.size()) ? g_.values[v].name : std::string("temp")) + "']";
  if (narrows_to_bf16_natively(inst_.values[v], l)) TANDEM_RETURN_IF_ERROR(add_bf16_narrowing(*this, v, out, label));
  else TANDEM_RETURN_IF_ERROR(add_reorder(*this, v, out, label));
  narrowed_[key] = out;
  return out;
}

void Builder::add_kernel(std::unique_ptr<Kernel> k) { inst_.kernels.push_back(std::move(k)); }

void Builder::need_scratch(int64_t bytes) { inst_.scratch_bytes = std::max(inst_.scratch_bytes, bytes); }

Status Builder::generic(const Step& step) {
  auto k = std::make_unique<GenericKernel>();
  k->nodes = step.originals;
  k->label = step.node->label();
  std::set<std::string> produced;
  std::set<std::string> seen;
  for (const Node* n : step.originals) {
    for (const auto& name : n->inputs) {
      if (name.empty() || produced.count(name) || seen.count(name)) continue;
      seen.insert(name);
      int v = g_.find(name);
      if (v < 0) return internal_error(n->label() + " unknown value '" + name + "'");
      GenericKernel::External e;
      e.name = name;
      IValue& iv = inst_.values[v];
      if (iv.kind == IValue::Kind::none) {
        e.none = true;
      } else if (iv.kind == IValue::Kind::constant && iv.layout == Layout::plain) {
        e.constant = iv.holder;
      } else {
        TANDEM_ASSIGN_OR_RETURN(int pv, require(v, Layout::plain));
        e.value = pv;
        e.dtype = inst_.values[pv].dtype;
        e.shape = inst_.values[pv].shape;
        k->reads.push_back(pv);
      }
      k->externals.push_back(std::move(e));
    }
    for (const auto& o : n->outputs)
      if (!o.empty()) produced.insert(o);
  }
  for (int v : step.outputs) {
    if (v < 0) continue;
    if (!typed(v))
      return unsupported(step.node->label() + " the shape of '" + g_.values[v].name + "' is not known for these inputs");
    define(v, Layout::plain);
    GenericKernel::Export x;
    x.name = g_.values[v].name;
    x.value = v;
    x.dtype = inst_.values[v].dtype;
    x.shape = inst_.values[v].shape;
    x.held = inst_.values[v].kind == IValue::Kind::held;
    k->exports.push_back(std::move(x));
    k->writes.push_back(v);
  }
  add_kernel(std::move(k));
  return Status::ok();
}

}  // namespace tandem::cpu
