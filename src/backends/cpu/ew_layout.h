// ew_layout.h: how the elementwise kernel (ew_kernel.cpp) walks an output in its layout and
// reads each operand along that walk: the physical dims of a plain, blocked or channels-last
// value and an operand's element strides over them (ew_layout.cpp). Pure functions of the
// values' shapes and layouts; compile time only.
#pragma once

#include <cstdint>
#include <vector>

#include "backends/cpu/builder.h"
#include "backends/cpu/instance.h"

namespace tandem::cpu {

// Physical dims of a value in its layout: plain = shape; blocked = [N, C/B, H, W, B] with B =
// channel_block(); channels-last = [N, spatial..., C] (nwc, nhwc, ndhwc).
std::vector<int64_t> physical_dims(const IValue& v);

// Element strides of operand `ov` over the physical dims of `outv` (0 along the dims it
// broadcasts over). Empty when the operand must be converted to another layout first: a
// blocked operand of a plain or channels-last walk, a plain one of a blocked walk that varies
// along the channels, a full-size plain one of a channels-last walk, and any other operand of a
// plain walk that is not plain.
std::vector<int64_t> operand_strides(const IValue& ov, const IValue& outv);

// A walk over physical dims `pd` (output strides `out_strides`, one stride vector per operand)
// with its size-1 dims dropped and contiguous neighbours merged for the output and every
// operand. The channel-block dim `cb_dim` (-1: none) stays alone; cb_dim of the result is its
// position, or -2 when it had size 1 (every element is in the last block). At least one dim.
struct MergedWalk {
  std::vector<int64_t> dims, out_strides;
  std::vector<std::vector<int64_t>> operand_strides;
  int cb_dim = -1;
};
MergedWalk merge_walk_dims(const std::vector<int64_t>& pd, const std::vector<int64_t>& out_strides,
                           const std::vector<std::vector<int64_t>>& operand_strides, int cb_dim);

// Constant `v` (a plain value of rank <= 4) padded to rank 4 and reordered to the blocked
// layout: a new constant of the builder's.
Result<int> blocked_constant(Builder& b, int v);

}  // namespace tandem::cpu
