// engine/splitmix.h: SplitMix64's step, the engine's one source of reproducible pseudo-random
// numbers and hashes (warm-up and random inputs, fault-injection draws, parity sampling, input
// shape keys). Not for anything that must resist an adversary.
#pragma once

#include <cstdint>

namespace tandem::engine_internal {

inline constexpr uint64_t kSplitMixGamma = 0x9e3779b97f4a7c15ULL;

// SplitMix64's output for state `z` (the state advanced by the gamma, then mixed): a bijection
// that spreads every input bit over the whole result.
inline uint64_t mix64(uint64_t z) {
  z += kSplitMixGamma;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace tandem::engine_internal
