// dnnl_kernel.h: the bridge to oneDNN: memory descriptors of instance values, the kernel that
// runs one oneDNN primitive with its arguments bound to a context's buffers, and reorders
// (layout and precision conversions) as kernels.
//
// Thread-safety: a DnnlKernel is const after build; its per-context state holds the oneDNN
// memory objects, so concurrent runs on different contexts are safe.
#pragma once

#include <dnnl.hpp>

#include <memory>
#include <string>
#include <vector>

#include "backends/cpu/instance.h"

namespace tandem::cpu {

class Builder;

// Kernel around one oneDNN primitive: args bound to values, constants or the scratchpad.
class DnnlKernel : public Kernel {
 public:
  struct Arg {
    int arg = 0;                 // DNNL_ARG_*
    int value = -1;              // instance value id, or -1 for `memory`
    dnnl::memory::desc md;
    dnnl::memory memory;         // fixed memory (packed weights, constant bias) when value < 0
    int64_t offset = 0;          // bytes into the value's buffer where `md` starts (a part of it)
  };
  dnnl::primitive prim;
  std::vector<Arg> args;
  bool uses_scratch = false;
  dnnl::memory::desc scratch_md;
  int threads = 0;               // OpenMP threads it was created for (0: the plan's)
  // A pass over float32 value `after_value` (the primitive's result, `after_floats` floats in its
  // layout) in place once the primitive has run, on the same threads: an op left out of the
  // post-ops (to_post_ops_swish_after). Null: none.
  void (*after)(float*, int64_t) = nullptr;
  int after_value = -1;
  int64_t after_floats = 0;

  std::unique_ptr<KernelState> make_state(void* const* ptr, const std::vector<bool>& fixed, void* scratch) const override;
  Status run(RunCtx& ctx, KernelState* state) const override;
  // A shift of one argument's buffer: `bytes` past where its Arg puts it.
  struct Shift {
    int arg = 0;  // DNNL_ARG_*
    int64_t bytes = 0;
  };
  // Runs the primitive once on `stream`, on the calling thread alone (inside a parallel region,
  // where oneDNN does not fork), with `state` (from make_state; one per concurrent caller, each
  // with its own scratchpad) bound to ctx's buffers and the arguments in `shifts` displaced: a
  // primitive made for a band of a larger value, run on each band in turn (qconv_dynamic.h).
  // `after` is not applied.
  Status run_band(const RunCtx& ctx, KernelState* state, dnnl::stream& stream, const Shift* shifts, int n_shifts) const;
};

// oneDNN memory descriptor of a value (plain: row-major dims; blocked: nChw16c).
dnnl::memory::desc value_md(const IValue& v);
dnnl::memory::desc plain_md(const Shape& shape, dnnl::memory::data_type dt = dnnl::memory::data_type::f32);
dnnl::memory::dims to_dims(const Shape& s);

// Appends a kernel that copies `src` into `dst` (both instance values) in dst's layout: a oneDNN
// reorder, or for the pairs below the backend's own.
Status add_reorder(Builder& b, int src, int dst, const std::string& label);
// 8-bit 4-D values between plain and channels-last (byte_layout.cpp); unsupported for others.
Status add_byte_layout_change(Builder& b, int src, int dst, const std::string& label);
// The same between descriptors of the caller's choosing (strided views: a permutation as a
// copy); each must describe its value's bytes.
Status add_reorder(Builder& b, int src, const dnnl::memory::desc& smd, int dst, const dnnl::memory::desc& dmd,
                   const std::string& label);

// Stores primitive `p` in `k` and records its scratchpad needs.
void attach_primitive(Builder& b, DnnlKernel& k, dnnl::primitive p, const dnnl::memory::desc& scratch_md);

}  // namespace tandem::cpu
