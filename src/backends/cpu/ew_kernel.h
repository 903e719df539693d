// ew_kernel.h: the kernel that runs an elementwise program (ew_program.h) over its output, as
// add_elementwise (ew_build.cpp) configures it and ew_kernel.cpp runs it: operands broadcast by
// strides, the output walked in tiles of kEwTile floats that stay in L1 while every op of the
// chain is applied to them; 8-bit and upsampled operands staged into L1 tiles as they are
// visited; an 8-bit output quantized as it is stored.
//
// Private to the elementwise kernel's two files. Thread-safety: const after build.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "backends/cpu/instance.h"
#include "backends/cpu/ew_program.h"
#include "backends/cpu/resize.h"

namespace tandem::cpu {

constexpr int kEwMaxDims = 8;

struct EwByteParams {
  bool is_signed = false;
  float scale = 1.0f;
  int32_t zero_point = 0;
};

class EwKernel final : public Kernel {
 public:
  int nd = 1;
  std::array<int64_t, kEwMaxDims> dims{};
  std::vector<EwOp> ops;
  std::vector<int> opnd;                                   // instance value per operand
  std::vector<std::array<int64_t, kEwMaxDims>> opnd_strides;  // per operand, per dim (elements)
  int out = -1;
  std::array<int64_t, kEwMaxDims> out_strides{};
  // Blocked outputs whose channels are not a multiple of the block: lanes >= tail of the last channel
  // block are zeroed. cb_dim: the dim indexing channel blocks (-2: every element is in it).
  int cb_dim = -1;
  int64_t cb_last = 0, tail = 0;
  // Staged operands (8-bit ones, nearest Resize sources): per operand, the staging slot it is
  // read into (-1: read in place), or same_as[k] >= 0 when operand same_as[k] already holds the
  // same value; per slot, its bytes' parameters (stage_bytes) or its gather (gathers[slot] with
  // tables). An 8-bit output.
  std::vector<int> stage_slot, same_as;
  std::vector<EwByteParams> stage_bytes;
  std::vector<NearestGather> gathers;
  std::vector<uint8_t> stage_bf16;  // per slot: a blocked operand held in bfloat16, widened
  bool byte_out = false;
  EwByteParams out_params;
  // A float32 result written in bfloat16, rounded to nearest even (a bf16 hand-off: only bf16
  // convolutions read it, Builder::may_hand_off_bf16).
  bool bf16_out = false;
  // Visit the outer dims (channel blocks) of a row tile one after another: the channels-last
  // bytes of those rows then stay in cache from one block to the next, where walking block by
  // block would fetch each cache line once per block.
  bool rows_outer = false;
  // A float32 output's range (Builder::range_of): two floats, min(0, out...) and max(0, out...),
  // taken from the tiles as they are stored, per fixed piece of the tasks (the same result for
  // any number of threads).
  int range_out = -1;

  Status run(RunCtx& ctx, KernelState*) const override;
};

}  // namespace tandem::cpu
