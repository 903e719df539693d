// testing.h: hooks into the engine for its tests; not part of any interface an application
// uses.
//
// Ownership: set_engine_clock() shares ownership of the clock with every model prepared after
// the call (each keeps it for its breakers and fault injection). Models prepared before keep
// the clock they had. Thread-safety: call set_engine_clock() before preparing models, not
// concurrently with prepare().
#pragma once

#include <memory>

#include "engine/clock.h"
#include "tandem/engine.h"

namespace tandem {

// Reaches into an Engine on behalf of the hooks below (a friend of Engine).
class EngineInternals {
 public:
  static void set_clock(Engine& engine, std::shared_ptr<const Clock> clock);
};

// Models prepared by `engine` from now on take their time from `clock` (null: the steady clock).
inline void set_engine_clock(Engine& engine, std::shared_ptr<const Clock> clock) {
  EngineInternals::set_clock(engine, std::move(clock));
}

}  // namespace tandem
