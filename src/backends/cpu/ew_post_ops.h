// ew_post_ops.h: elementwise programs as oneDNN post-ops, so that a convolution or matrix
// product applies the ops that follow it while its output is still in registers.
#pragma once

#include <dnnl.hpp>

#include <vector>

#include "backends/cpu/builder.h"
#include "backends/cpu/dnnl_kernel.h"
#include "backends/cpu/ew_program.h"

namespace tandem::cpu {

// True when `op` (its operand, if any, a constant scalar or per-channel tensor) has a post-op.
bool post_op_translatable(const EwOp& op);

// Translates the longest prefix of `program` into oneDNN post-ops for a primitive whose
// destination has shape `dst_shape` with channels on axis `channel_axis`. Constant operands
// must broadcast per channel (or be scalars); runtime operands must match dst exactly, or be
// plain scalars or per-channel tensors.
// Returns the number of ops translated; `args` receives binary post-op arguments. Division by
// a scalar is an exact binary division (not a product with the reciprocal), and a multiply-add
// or clip after an earlier one becomes binary ops with scalars: oneDNN 2.6 confuses the
// parameters of two eltwise post-ops of one algorithm.
int to_post_ops(Builder& b, const EwProgram& program, const Shape& dst_shape, int channel_axis, Layout dst_layout,
                dnnl::post_ops* po, std::vector<DnnlKernel::Arg>* args);

// A pass over a primitive's float32 result in place, run after it (DnnlKernel::after).
using InPlaceFloats = void (*)(float*, int64_t);

// to_post_ops, but where the translated prefix ends in Swish that op is left out of `po` and
// *after is set to swish_in_place (ew_exp_kernels.h), to run over the result once the primitive
// has written it; the returned count includes it. oneDNN 2.6's swish post-op costs more than
// that pass over a result still in cache (a 1x1 convolution 16 -> 96 channels at 112x112, one
// thread, AVX-512: 0.71 ms with the post-op, 0.36 without it). For a float32 result only: the
// caller passes after = nullptr for any other. TANDEM_CPU_SWISH_AFTER=0 (read at each call)
// keeps the Swish a post-op.
int to_post_ops_swish_after(Builder& b, const EwProgram& program, const Shape& dst_shape, int channel_axis,
                            Layout dst_layout, dnnl::post_ops* po, std::vector<DnnlKernel::Arg>* args,
                            InPlaceFloats* after);

// `shape` right-aligned to dst's rank in *out, when it is a scalar or holds one value per
// index of dst's channel axis (every other axis 1); false otherwise.
bool broadcast_shape(const Shape& shape, const Shape& dst_shape, int channel_axis, Shape* out);

}  // namespace tandem::cpu
