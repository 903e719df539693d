// clock.h: the source of time for circuit breakers (cooldowns, the sliding window) and for
// fault-injection recovery. The engine uses the process-wide steady clock; tests substitute a
// manual one through engine/testing.h.
// Thread-safety: implementations must be thread-safe.
#pragma once

#include <chrono>

namespace tandem {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::chrono::steady_clock::time_point now() const = 0;
};

// The process-wide steady clock (never null, lives forever).
const Clock* steady_clock_source();

}  // namespace tandem
