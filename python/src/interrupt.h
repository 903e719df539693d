// interrupt.h: letting Ctrl-C reach Python while an engine call blocks the main thread.
//
// Python runs signal handlers on its main thread only, between bytecodes. A call made on the
// main thread runs there directly; the engine's worker threads do the computing while the
// calling thread waits, and while it waits the engine calls back about every 2 ms
// (InferOptions::interrupted). Every `check_interval_ms` that callback takes the GIL and runs
// the pending signal handlers. When one raises (KeyboardInterrupt), the request is cancelled:
// the engine abandons the backend call, returns at once, and the exception propagates. What
// the abandoned call uses is owned by the engine's call until the backend returns.
// Calls from other threads get no callback: no signal is ever delivered to them.
#pragma once

#include <chrono>

#include "tandem/engine.h"

namespace tandem::python {

// On (the default): main-thread calls check for signals every `check_interval_ms` while they
// wait. Off: Ctrl-C is seen only when the call returns.
void set_interruptible(bool on, double check_interval_ms);
bool interruptible();
double interrupt_check_interval_ms();

// The callback's state for one call; lives on the calling thread's stack for the call.
struct SignalWatch {
  std::chrono::steady_clock::time_point next_check{};
  std::chrono::steady_clock::duration interval{};
  bool raised = false;  // a signal handler raised: the Python error is set on this thread
};

// Points `options` at the callback when called on Python's main thread with interruptible on.
// Must be called with the GIL held.
void watch_signals(InferOptions* options, SignalWatch* watch);

}  // namespace tandem::python
