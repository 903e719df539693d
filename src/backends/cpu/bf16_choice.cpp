// bf16_choice.cpp: timing a oneDNN primitive on scratch buffers, and the cached bf16 and
// candidate choices (bf16_choice.h).
#include "backends/cpu/bf16_choice.h"

#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include "backends/cpu/runtime_env.h"

namespace tandem::cpu {

bool bf16_always() {
  const char* e = std::getenv("TANDEM_CPU_BF16");
  return e != nullptr && std::strcmp(e, "always") == 0;
}

double time_primitive_ms(const dnnl::primitive& p, int runs) {
  const_dnnl_primitive_desc_t pd = nullptr;
  if (dnnl_primitive_get_primitive_desc(p.get(), &pd) != dnnl_success) return std::numeric_limits<double>::infinity();
  const int kinds[] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_BIAS, DNNL_ARG_DST, DNNL_ARG_SCRATCHPAD};
  size_t total = 0;
  for (int arg : kinds) {
    const dnnl_memory_desc_t* md = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg);
    if (md != nullptr && md->ndims != 0) total += dnnl_memory_desc_get_size(md);
  }
  if (total > kMaxTimingBytes) return std::numeric_limits<double>::infinity();
  std::unordered_map<int, dnnl::memory> args;
  for (int arg : kinds) {
    const dnnl_memory_desc_t* md = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg);
    if (md == nullptr || md->ndims == 0) continue;
    dnnl::memory m(dnnl::memory::desc(*md), cpu_engine());
    // Small finite values in float32 and bf16 alike (0x3c3c... is about 0.0115 in both), so no
    // denormal or NaN path is timed.
    std::memset(m.get_data_handle(), 0x3c, m.get_desc().get_size());
    args.emplace(arg, m);
  }
  dnnl::stream s(cpu_engine());
  p.execute(s, args);  // warm-up: first touches of the buffers, oneDNN's lazy set-up
  s.wait();
  double best = std::numeric_limits<double>::infinity();
  for (int i = 0; i < runs; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    p.execute(s, args);
    s.wait();
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    if (best > kLongRunMs) break;  // a long run is its own best estimate; spare the compile the rest
  }
  return best;
}

namespace {

// The decision for `key` at the calling thread's team size: taken once by `decide` (which
// returns it and the timings to print under TANDEM_CPU_VERBOSE), then read from the cache.
// Timed outside the lock: two compiles of one geometry at once may both time it, and agree.
template <typename Decide>
bool decided_once(const std::string& key, const Decide& decide) {
  static std::mutex mu;
  static std::map<std::string, bool> decided;
  const std::string full = key + " @" + std::to_string(omp_get_max_threads()) + "t";
  {
    std::lock_guard<std::mutex> lock(mu);
    if (auto it = decided.find(full); it != decided.end()) return it->second;
  }
  const auto [pays, timings] = decide();
  if (verbose()) note(full + ": " + timings);
  std::lock_guard<std::mutex> lock(mu);
  decided.emplace(full, pays);
  return pays;
}

std::string timings_line(const char* candidate, double candidate_ms, const char* baseline, double baseline_ms,
                         bool pays) {
  char line[160];
  std::snprintf(line, sizeof line, "%s %.3f ms vs %s %.3f ms -> %s", candidate, candidate_ms, baseline, baseline_ms,
                pays ? candidate : baseline);
  return line;
}

}  // namespace

bool bf16_pays_off(const std::string& key, const dnnl::primitive& bf16, const dnnl::primitive& fp32,
                   const Bf16Extras& extras) {
  if (bf16_always()) return true;
  return decided_once(key, [&] {
    double with_bf16 = time_primitive_ms(bf16) + extras.bf16_ms;
    for (const auto& extra : extras.bf16) with_bf16 += time_primitive_ms(extra);
    double with_fp32 = time_primitive_ms(fp32) + extras.fp32_ms;
    for (const auto& extra : extras.fp32) with_fp32 += time_primitive_ms(extra);
    // Too large to time (infinite): bf16 stays, as the eligibility rules chose.
    const bool pays =
        !std::isfinite(with_bf16) || !std::isfinite(with_fp32) || with_bf16 <= kMinBf16Gain * with_fp32;
    return std::make_pair(pays, timings_line("bf16", with_bf16, "float32", with_fp32, pays) + " (bf16 with conversions)");
  });
}

bool candidate_pays_off(const std::string& key, const dnnl::primitive& candidate, const dnnl::primitive& baseline,
                        double gain) {
  return decided_once(key, [&] {
    const double with_candidate = time_primitive_ms(candidate), with_baseline = time_primitive_ms(baseline);
    // Too large to time (infinite): the baseline stays.
    const bool pays =
        std::isfinite(with_candidate) && std::isfinite(with_baseline) && with_candidate <= gain * with_baseline;
    return std::make_pair(pays, timings_line("candidate", with_candidate, "baseline", with_baseline, pays));
  });
}

}  // namespace tandem::cpu
