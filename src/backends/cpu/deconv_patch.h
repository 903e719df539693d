// deconv_patch.h: ConvTranspose whose kernel equals its stride (2-D, no padding, no dilation,
// one group, constant float32 weights): every input pixel produces its own k x k output patch,
// so the backend computes it with its own kernel instead of oneDNN's deconvolution, alone or
// as two in a row (the upsampling heads of segmentation and text-detection models).
#pragma once

#include <cstdint>
#include <string>

#include "backends/cpu/builder.h"
#include "backends/cpu/ew_program.h"

namespace tandem::cpu {

// One patch ConvTranspose: O output channels, a k x k kernel (= stride), `weight` the
// [C][O][k][k] float32 weight, `bias` (may be undefined) O values and `post` a pointwise program
// applied to its output. The tensors are read while the kernel is added (packed into it).
struct PatchStage {
  int64_t O = 0, k = 0;
  const Tensor* weight = nullptr;
  const Tensor* bias = nullptr;
  const EwProgram* post = nullptr;
};

// The layout the patch kernel reads a source lying in `layout` in: channels-last as it lies
// (a quantized convolution's float output), else blocked.
inline Layout patch_source_layout(Layout layout) { return layout == Layout::nhwc ? Layout::nhwc : Layout::blocked; }

// Adds the patch kernel to the instance: `src` is the 4-D input value (xs = N x C x H x W),
// blocked or channels-last (patch_source_layout), `out` the step's output (defined here: blocked when its channels are 8 or more, plain
// otherwise). With `second`, a second patch ConvTranspose reads the first's output (after the
// first's program) and `out` is its output: the second reads each input row's patches from the
// first's accumulators in the thread's scratchpad, so the first's output (k^2 times the input's
// pixels) is never written to memory; `second->weight` is [first.O][O2][k2][k2]. Needs threads x
// (W x M + W x k x M2) floats of scratchpad (M: k^2 O rounded up to 16).
//
// With `bf16` (patch_computes_bf16()), the products take bfloat16 operands (AVX512_BF16 dot
// products of channel pairs, float32 accumulation, bias and programs): the weights are rounded
// once, the source row by row as it is read (or read as it lies when `src` is a blocked value
// held in bfloat16, a hand-off), and a chained second stage reads the first's results rounded.
Status add_patch_deconv(Builder& b, int src, int out, const Shape& xs, const PatchStage& first,
                        const PatchStage* second, const std::string& label, bool bf16 = false);

// True when a patch ConvTranspose of `out_channels` x k x k per input pixel (and, chained, a
// second of out_channels2 x k2 x k2 per pixel of the first's output; 0 when alone) computes on
// bfloat16 operands for precision bf16: native AVX512_BF16, 16-channel blocks, at most 128
// accumulators per pixel in each stage, and TANDEM_CPU_BF16_DECONV not 0. Its blocked source
// may then be handed off in bfloat16 (ConvSpec::reads_bf16_source).
bool patch_computes_bf16(int64_t out_channels, int64_t k, int64_t out_channels2, int64_t k2);

}  // namespace tandem::cpu
