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

// `shape` right-aligned to dst's rank in *out, when it is a scalar or holds one value per
// index of dst's channel axis (every other axis 1); false otherwise.
bool broadcast_shape(const Shape& shape, const Shape& dst_shape, int channel_axis, Shape* out);

}  // namespace tandem::cpu
