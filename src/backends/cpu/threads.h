// threads.h: the cpu backend's threading: OpenMP is the one pool, shared by oneDNN's primitives
// and the backend's own kernels. Here are the team size of the calling thread (set_threads,
// ThreadScope), the run-side parallel loop (parallel_for) and the TeamSizer that moves runs to
// one thread while other processes compete for the cores.
//
// Thread-safety: set_threads and ThreadScope change the calling thread's OpenMP setting only;
// parallel_for may be called from any thread (inside a parallel region it runs serially);
// TeamSizer is internally locked.
#pragma once

#include <cstdint>
#include <mutex>

namespace tandem::cpu {

// TSan builds define TANDEM_THREAD_SANITIZER. There every OpenMP team has one thread: Debian's
// libgomp is not instrumented, so TSan cannot see the synchronisation of its parallel regions
// and would report every hand-over of data between them. TSan then checks tandem's own
// threading (concurrent runs of one plan, context pools, instance caches, the thread budget,
// the engine) with the same code paths otherwise, the ISA dispatch included (it is a plain
// branch, no ifunc resolver runs before TSan's runtime is up).
#ifdef TANDEM_THREAD_SANITIZER
inline constexpr int kMaxOpenMpTeam = 1;
#else
inline constexpr int kMaxOpenMpTeam = 1 << 16;
#endif

// Applies a team size to OpenMP (and so oneDNN) for the calling thread.
void set_threads(int threads);

// Sets the calling thread's OpenMP team size for its lifetime (oneDNN primitives size their
// work split by it when created), restoring the previous value afterwards.
class ThreadScope {
 public:
  explicit ThreadScope(int threads);
  ~ThreadScope();
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;

 private:
  int prev_;
};

// Run-side threading helper: f(begin, end) over [0, n) on `threads` OpenMP threads, each part
// at least `grain` long (grain <= 0: any length).
void parallel_for(int threads, int64_t n, int64_t grain, void (*fn)(void*, int64_t, int64_t), void* arg);
template <class F>
void parallel_range(int threads, int64_t n, int64_t grain, F&& f) {
  parallel_for(threads, n, grain, [](void* a, int64_t b, int64_t e) { (*static_cast<F*>(a))(b, e); }, &f);
}

// Two passes over [0, n) split the same way on `threads` OpenMP threads in one parallel region:
// first(part, begin, end) for each part, then, once every part's first pass is done,
// second(part, parts, begin, end). `parts` (at most kMaxParts) is how many there were; a part
// finds the first pass's results of all parts, indexed by part, where its first pass put them.
// For a reduction followed by a pass that needs it (DynamicQuantizeLinear's range, then the
// quantization): each part reads its own range again while it is still in its core's caches,
// and the team forks once.
inline constexpr int kMaxParts = 64;
void parallel_two_passes(int threads, int64_t n, int64_t grain, void (*first)(void*, int, int64_t, int64_t),
                         void (*second)(void*, int, int, int64_t, int64_t), void* arg);
template <class F, class G>
void parallel_two_passes(int threads, int64_t n, int64_t grain, F&& first, G&& second) {
  struct Both {
    F* f;
    G* g;
  } both{&first, &second};
  parallel_two_passes(
      threads, n, grain, [](void* a, int part, int64_t b, int64_t e) { (*static_cast<Both*>(a)->f)(part, b, e); },
      [](void* a, int part, int parts, int64_t b, int64_t e) { (*static_cast<Both*>(a)->g)(part, parts, b, e); },
      &both);
}

// f(n, cb, s0, s1) over images n < N, channel blocks cb < blocks and pixel ranges [s0, s1) of
// `chunk` pixels out of S, on `threads` threads: the loop of kernels that walk a blocked layout
// [N, blocks, S, block] (and the channels-last bytes that go with it) a block row at a time.
// The threads split the pixels, each taking every channel block of its ranges: split by channel
// blocks, two threads would write the same channels-last cache lines (a store of 64 channels
// took 0.53 ms at two threads against 0.1 at one).
template <class F>
void parallel_block_rows(int threads, int64_t N, int64_t blocks, int64_t S, int64_t chunk, F&& f) {
  const int64_t chunks = (S + chunk - 1) / chunk;
  parallel_range(threads, N * blocks * chunks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t cb = t % blocks, c = (t / blocks) % chunks, n = t / blocks / chunks;
      f(n, cb, c * chunk, c * chunk + chunk < S ? c * chunk + chunk : S);
    }
  });
}

// Chooses, run by run, between an instance's full OpenMP team and the instance built for one
// thread. When other processes compete for the cores, a team waits at every barrier for a
// member the kernel has descheduled, and a two-thread run can become several times slower than
// a one-thread run. The sizer watches the team's latency: once its moving average (weight 1/4)
// exceeds 1.5x its baseline (the best run so far), the next `window` runs (first 8) use one
// thread; then one run probes the team again. If the team is still slower than one thread, the
// window doubles (up to 256); otherwise the team stays and the probe's time becomes the new
// baseline. On a quiet machine the team's average never leaves its baseline and nothing changes.
// A cold run (the first on a new run context: its arena is touched for the first time, its
// primitives' code paged in) says nothing about competition and is not counted: counted, the
// first run of a 20 ms model, at 120 ms, kept the average above 1.5x the baseline for four runs
// and sent the next eight to one thread on an idle machine.
// Times are in milliseconds. Thread-safe.
class TeamSizer {
 public:
  // True when this run should use one thread (counts the run against the window).
  bool choose_single();
  // Records a run's latency; `single` says which instance ran it; a `cold` run is ignored.
  void record(bool single, double ms, bool cold = false);

 private:
  std::mutex mu_;
  double team_baseline_ = 0;  // 0: no team run yet
  double team_average_ = 0;
  int team_runs_ = 0;
  double single_average_ = 0;  // 0: no one-thread run yet
  int single_left_ = 0;        // runs still to make on one thread
  int window_ = 8;
  bool probe_pending_ = false;  // the next team run is a probe
};

}  // namespace tandem::cpu
