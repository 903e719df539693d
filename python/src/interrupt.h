// interrupt.h: running a blocking engine call so that Ctrl-C still reaches Python.
//
// Python handles signals on its main thread only, between bytecodes. A call made from the main
// thread therefore runs on a helper thread while the main thread waits in short slices and
// checks for pending signals. When a handler raises (KeyboardInterrupt), the request's cancel
// flag is set, the call gets a short grace period to stop, and the exception propagates; a
// call that is still running then finishes on its helper thread, its result is dropped, and
// what it uses stays alive until it returns. Calls from other threads run directly (no signal
// can be delivered to them), and so do calls whose model is known to answer quickly (its
// warm-up estimate is under the threshold): the hand-off costs tens of microseconds, and such
// a call returns, and lets Ctrl-C through, within that time anyway.
#pragma once

#include <atomic>
#include <functional>

namespace tandem::python {

// Whether the main thread hands calls to a helper (on by default). Off: calls run directly and
// Ctrl-C is seen only when the call returns.
// `threshold_ms`: main-thread calls of models whose warm-up estimate is below it run directly.
void set_interruptible(bool on, double threshold_ms);
bool interruptible();
double interrupt_threshold_ms();

// Runs `fn` without the GIL (the caller must have released it). Returns false when a signal
// handler raised: then the Python error is set, `cancel` has been set, and `fn` may still be
// running on its helper (it must own everything it touches).
// `expected_ms`: the model's warm-up estimate (<= 0: unknown, always interruptible).
bool run_interruptible(std::function<void()> fn, std::atomic<bool>* cancel, double expected_ms);

}  // namespace tandem::python
