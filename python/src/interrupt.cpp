// interrupt.cpp: see interrupt.h.
#include "interrupt.h"

#include <Python.h>
#include <pythread.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace tandem::python {

namespace {

std::atomic<bool> g_interruptible{true};
std::atomic<double> g_threshold_ms{20.0};

struct Job {
  std::function<void()> fn;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
};

// One helper thread. Helpers are never destroyed (they outlive the interpreter, parked on
// their condition variable), so that shutdown never joins a thread stuck in a backend.
struct Helper {
  std::mutex mu;
  std::condition_variable cv;
  std::shared_ptr<Job> job;
  bool busy = false;

  Helper() {
    std::thread([this] { loop(); }).detach();
  }
  void loop() {
    for (;;) {
      std::shared_ptr<Job> j;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return job != nullptr; });
        j = job;
      }
      j->fn();
      j->fn = nullptr;  // drops what the call captured before anyone is told
      {
        std::lock_guard<std::mutex> lock(j->mu);
        j->done = true;
      }
      j->cv.notify_all();
      std::lock_guard<std::mutex> lock(mu);
      job.reset();
      busy = false;
    }
  }
};

std::mutex g_helpers_mu;
std::vector<Helper*> g_helpers;

Helper* idle_helper() {
  std::lock_guard<std::mutex> lock(g_helpers_mu);
  for (Helper* h : g_helpers) {
    std::lock_guard<std::mutex> hl(h->mu);
    if (!h->busy) {
      h->busy = true;
      return h;
    }
  }
  auto* h = new Helper();  // NOLINT: intentionally never freed (see Helper)
  h->busy = true;
  g_helpers.push_back(h);
  return h;
}

bool on_main_thread() {
  static const unsigned long main_id = [] {
    PyGILState_STATE s = PyGILState_Ensure();
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
    PyGILState_Release(s);
    return id;
  }();
  return PyThread_get_thread_ident() == main_id;
}

}  // namespace

void set_interruptible(bool on, double threshold_ms) {
  g_interruptible.store(on);
  g_threshold_ms.store(threshold_ms);
}
bool interruptible() { return g_interruptible.load(); }
double interrupt_threshold_ms() { return g_threshold_ms.load(); }

bool run_interruptible(std::function<void()> fn, std::atomic<bool>* cancel, double expected_ms) {
  const bool quick = expected_ms > 0 && expected_ms < g_threshold_ms.load();
  if (!g_interruptible.load() || quick || !on_main_thread()) {
    fn();
    return true;
  }
  auto job = std::make_shared<Job>();
  job->fn = std::move(fn);
  Helper* h = idle_helper();
  {
    std::lock_guard<std::mutex> lock(h->mu);
    h->job = job;
  }
  h->cv.notify_one();
  using namespace std::chrono_literals;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(job->mu);
      if (job->cv.wait_for(lock, 20ms, [&] { return job->done; })) return true;
    }
    PyGILState_STATE s = PyGILState_Ensure();
    const int raised = PyErr_CheckSignals();
    PyGILState_Release(s);
    if (raised != 0) {
      cancel->store(true);
      std::unique_lock<std::mutex> lock(job->mu);
      job->cv.wait_for(lock, 200ms, [&] { return job->done; });
      return false;
    }
  }
}

}  // namespace tandem::python
