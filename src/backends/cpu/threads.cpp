// threads.cpp: OpenMP team sizes, the parallel loop and the TeamSizer (threads.h).
#include "backends/cpu/threads.h"

#include <omp.h>

#include <algorithm>

namespace tandem::cpu {

void set_threads(int threads) {
  threads = std::min(threads, kMaxOpenMpTeam);
  if (omp_get_max_threads() != threads) omp_set_num_threads(threads);
}

ThreadScope::ThreadScope(int threads) : prev_(omp_get_max_threads()) { set_threads(threads); }
ThreadScope::~ThreadScope() { set_threads(prev_); }

void parallel_for(int threads, int64_t n, int64_t grain, void (*fn)(void*, int64_t, int64_t), void* arg) {
  if (n <= 0) return;
  int64_t max_parts = grain > 0 ? std::max<int64_t>(1, n / grain) : n;
  int nt = static_cast<int>(std::min<int64_t>(std::min(threads, kMaxOpenMpTeam), max_parts));
  if (nt <= 1 || omp_in_parallel()) {
    fn(arg, 0, n);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    int t = omp_get_thread_num();
    int k = omp_get_num_threads();
    int64_t b = n * t / k, e = n * (t + 1) / k;
    if (b < e) fn(arg, b, e);
  }
}

void parallel_two_passes(int threads, int64_t n, int64_t grain, void (*first)(void*, int, int64_t, int64_t),
                         void (*second)(void*, int, int, int64_t, int64_t), void* arg) {
  if (n <= 0) return;
  const int64_t max_parts = grain > 0 ? std::max<int64_t>(1, n / grain) : n;
  const int nt = static_cast<int>(std::min<int64_t>(std::min({threads, kMaxOpenMpTeam, kMaxParts}), max_parts));
  if (nt <= 1 || omp_in_parallel()) {
    first(arg, 0, 0, n);
    second(arg, 0, 1, 0, n);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num(), k = omp_get_num_threads();
    const int64_t b = n * t / k, e = n * (t + 1) / k;
    first(arg, t, b, e);
#pragma omp barrier
    second(arg, t, k, b, e);
  }
}

bool TeamSizer::choose_single() {
  std::lock_guard<std::mutex> lock(mu_);
  if (single_left_ == 0) return false;
  if (--single_left_ == 0) probe_pending_ = true;
  return true;
}

void TeamSizer::record(bool single, double ms, bool cold) {
  if (cold) return;
  constexpr double kWeight = 0.25, kSlowdown = 1.5, kProbeMargin = 1.1;
  constexpr int kFirstWindow = 8, kMaxWindow = 256, kMinTeamRuns = 4;
  std::lock_guard<std::mutex> lock(mu_);
  if (single) {
    single_average_ = single_average_ > 0 ? (1 - kWeight) * single_average_ + kWeight * ms : ms;
    return;
  }
  if (probe_pending_) {
    probe_pending_ = false;
    if (single_average_ > 0 && ms > kProbeMargin * single_average_) {
      window_ = std::min(2 * window_, kMaxWindow);
      single_left_ = window_;
    } else {
      window_ = kFirstWindow;
      team_baseline_ = team_average_ = ms;
    }
    return;
  }
  team_baseline_ = team_baseline_ > 0 ? std::min(team_baseline_, ms) : ms;
  team_average_ = team_runs_ > 0 ? (1 - kWeight) * team_average_ + kWeight * ms : ms;
  ++team_runs_;
  if (team_runs_ >= kMinTeamRuns && team_average_ > kSlowdown * team_baseline_) {
    single_left_ = window_;
    team_average_ = team_baseline_;
  }
}

}  // namespace tandem::cpu
