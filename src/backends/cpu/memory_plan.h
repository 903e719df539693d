// memory_plan.h: the memory of an instance: every arena value gets an offset in one arena,
// sized by the values' lifetimes over the kernel order, and contexts allocate aligned buffers.
#pragma once

#include <cstdint>
#include <memory>

#include "backends/cpu/instance.h"

namespace tandem::cpu {

// Gives every arena value of `inst` an offset and sets inst.arena_bytes: values live from their
// first to their last kernel (views extend their base's life); freed blocks are reused best-fit,
// otherwise the arena grows (reusing a free block at its top). Offsets are kAlign-aligned.
void plan_memory(Instance& inst);

// A kAlign-aligned buffer of at least `bytes` (at least one block); null when out of memory.
std::shared_ptr<std::byte> aligned_buffer(int64_t bytes);

}  // namespace tandem::cpu
