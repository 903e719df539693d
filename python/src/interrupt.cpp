// interrupt.cpp: see interrupt.h.
#include "interrupt.h"

#include <Python.h>
#include <pythread.h>

#include <atomic>

namespace tandem::python {

namespace {

std::atomic<bool> g_interruptible{true};
std::atomic<double> g_interval_ms{10.0};

bool on_main_thread() {
  static const unsigned long main_id = [] {
    unsigned long id = 0;
    PyObject* threading = PyImport_ImportModule("threading");
    if (threading) {
      PyObject* main = PyObject_CallMethod(threading, "main_thread", nullptr);
      if (main) {
        PyObject* ident = PyObject_GetAttrString(main, "ident");
        if (ident) id = PyLong_AsUnsignedLong(ident);
        Py_XDECREF(ident);
      }
      Py_XDECREF(main);
      Py_DECREF(threading);
    }
    PyErr_Clear();
    return id;
  }();
  return PyThread_get_thread_ident() == main_id;
}

// Runs on the waiting main thread, which has released the GIL.
bool signals_raised(void* context) {
  auto* watch = static_cast<SignalWatch*>(context);
  if (watch->raised) return true;
  const auto now = std::chrono::steady_clock::now();
  if (now < watch->next_check) return false;
  watch->next_check = now + watch->interval;
  PyGILState_STATE s = PyGILState_Ensure();
  watch->raised = PyErr_CheckSignals() != 0;
  PyGILState_Release(s);
  return watch->raised;
}

}  // namespace

void set_interruptible(bool on, double check_interval_ms) {
  g_interruptible.store(on);
  g_interval_ms.store(check_interval_ms > 0 ? check_interval_ms : 0.0);
}
bool interruptible() { return g_interruptible.load(); }
double interrupt_check_interval_ms() { return g_interval_ms.load(); }

void watch_signals(InferOptions* options, SignalWatch* watch) {
  if (!g_interruptible.load() || !on_main_thread()) return;
  watch->interval = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double, std::milli>(g_interval_ms.load()));
  watch->next_check = std::chrono::steady_clock::now() + watch->interval;
  options->interrupted = signals_raised;
  options->interrupted_context = watch;
}

}  // namespace tandem::python
