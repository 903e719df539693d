// product_affine.h: the per-channel affine head of the float ops after an integer product,
// given to oneDNN as its output scales and float32 bias instead of post-ops.
//
// An integer product's float tail (ConvInteger or MatMulInteger, then Cast and elementwise
// ops) usually opens with y = acc * s[o] (dynamic quantization's x_scale * w_scale[o], or a
// QDQ product's constant scales), then a bias, then often a folded batch normalization
// (a product and a sum per channel) before its activation. oneDNN 2.6 applies each of those as
// a binary post-op that reads a vector per output block, which doubled the time of the 1x1
// convolutions of a dynamically quantized model; as output scales and bias they are free.
// oneDNN's int8 kernels add the bias to the accumulator before they scale:
//   y = (acc + int_bias[o] + shift[o] / scale[o]) * scale[o] = acc' * scale[o] + shift[o].
// oneDNN 2.6's int8 convolutions take only output scales fixed at creation, so a runtime
// factor must be a scalar s (dynamic quantization's x_scale; its product with the constant
// w_scale[o], made by a Mul node, is seen through): the known factors are the output scales,
// s is a binary post-op on a scalar, and the bias, divided by s, is computed before each run:
//   y = ((acc + int_bias[o] + shift[o] / (s * scale[o])) * scale[o]) * s.
//
// Build-time helpers, called on the building thread; the kernel they add is const and runs
// concurrently on different contexts.
#pragma once

#include <dnnl.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "backends/cpu/builder.h"
#include "backends/cpu/dnnl_kernel.h"
#include "backends/cpu/ew_program.h"
#include "tandem/status.h"

namespace tandem::cpu {

// y = acc * s * scale[o] + shift[o] for the first `ops` ops of a program.
struct ProductAffine {
  size_t ops = 0;             // leading ops it stands for (0: none)
  int runtime = -1;           // compile value id of the runtime float32 scalar s, or -1 (s = 1)
  std::vector<double> scale;  // per channel: the product of the known factors (nonzero and
                              // finite where the head has a shift)
  std::vector<double> shift;  // per channel, in the result's units
  bool has_shift() const;
};

// The longest leading run of `program` (at most `max_ops` ops) that is affine per channel:
// products, sums, differences and quotients with known float32 scalars or constants of one
// value per channel (channels on `channel_axis` of `dst`), immediates, negation, `linear`; and
// a first product by a runtime float32 scalar, or by the output of a Mul node of a runtime
// float32 scalar and such a constant.
ProductAffine leading_product_affine(Builder& b, const EwProgram& program, const Shape& dst, int channel_axis,
                                     size_t max_ops);

// Sets `attr`'s output scales to the known factors over `channels` channels (mask
// `channel_mask`; one value when all are equal) and, for a runtime scalar, appends the binary
// post-op that multiplies by it to `po` (call before the other post-ops are appended; the
// caller sets `po` on `attr`). `dst_rank`: the destination's rank.
void set_product_affine(const ProductAffine& affine, int64_t channels, int channel_mask, size_t dst_rank,
                        dnnl::primitive_attr* attr, dnnl::post_ops* po);

// The oneDNN arguments of `affine` for a primitive made with set_product_affine, appended to
// `args`: the float32 bias [channels] when the head has a shift (it then also carries
// `int_bias`, an int32 bias in accumulator units, empty or one per channel; without a shift the
// caller binds its int32 bias as before), and the runtime scalar's post-op operand. For a
// runtime scalar this adds the kernel that computes them before each run; where the head has
// a shift, a scalar within 1e-30 of zero becomes +-1e-30 there, so that the bias, divided by
// it, stays finite and still carries the shift (for |shift| up to ~3e8).
Status add_product_affine(Builder& b, const ProductAffine& affine, const std::vector<int32_t>& int_bias,
                          int64_t channels, size_t dst_rank, const std::string& label,
                          std::vector<DnnlKernel::Arg>* args);

}  // namespace tandem::cpu
