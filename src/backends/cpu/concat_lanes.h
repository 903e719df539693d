// concat_lanes.h: Concat along the channels of blocked 4-D float32 values whose channel counts
// are not multiples of the channel block (shape.cpp's ConcatSpec copies whole blocks
// otherwise): each output block gathers its lanes from a few input blocks, with masked lane
// permutes on the AVX-512 path (block 16) and a lane loop on the others.
//
// bf16 hand-off (conv.cpp): the concatenation is written in bfloat16, rounded to nearest even,
// when every reader of it is a convolution that may compute on bf16 sources
// (Builder::may_hand_off_bf16, readers_take_bf16); on the AVX-512 path only.
#pragma once

#include <string>
#include <vector>

#include "backends/cpu/builder.h"

namespace tandem::cpu {

// Defines `out` (shape `out_shape`, N x C x H x W) blocked and adds the kernel writing it from
// `ins`, blocked float32 values concatenated in order; in bfloat16 when `bf16_out` and the
// block is 16 (the caller checked the hand-off rules). `upsampled` (empty, or one per input):
// non-null where ins[i] is the source of a nearest Resize whose output is the concatenated
// input, read through its tables (the upsampled tensor is never written). Needs ins.size()
// pointers of scratch.
struct NearestResize;
Status add_lane_concat(Builder& b, const std::vector<int>& ins, int out, const Shape& out_shape, bool bf16_out,
                       const std::string& label, const std::vector<const NearestResize*>& upsampled = {});

}  // namespace tandem::cpu
