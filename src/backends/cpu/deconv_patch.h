// deconv_patch.h: ConvTranspose whose kernel equals its stride (2-D, no padding, no dilation,
// one group, constant float32 weights): every input pixel produces its own k x k output patch,
// so the backend computes it with its own kernel instead of oneDNN's deconvolution.
#pragma once

#include <cstdint>
#include <string>

#include "backends/cpu/builder.h"
#include "backends/cpu/ew_program.h"

namespace tandem::cpu {

// Adds the patch kernel to the instance: `src` is the blocked 4-D input value (xs = N x C x H x
// W), `out` the step's output (defined here: blocked when O >= 8, plain otherwise), `weight`
// the [C][O][k][k] weight, `bias` (may be undefined) O values and `post` a pointwise program
// applied before the store. Needs threads x W x M floats of scratchpad.
Status add_patch_deconv(Builder& b, int src, int out, const Shape& xs, int64_t O, int64_t k, const Tensor& weight,
                        const Tensor& bias, const EwProgram& post, const std::string& label);

}  // namespace tandem::cpu
