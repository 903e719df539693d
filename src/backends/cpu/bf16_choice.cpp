// bf16_choice.cpp: timing a oneDNN primitive on scratch buffers, and the cached bf16 and
// candidate choices (bf16_choice.h).
#include "backends/cpu/bf16_choice.h"

#include <omp.h>
#include <sys/mman.h>

#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "backends/cpu/kept_choices.h"
#include "backends/cpu/runtime_env.h"

namespace tandem::cpu {

bool bf16_always() {
  const char* e = std::getenv("TANDEM_CPU_BF16");
  return e != nullptr && std::strcmp(e, "always") == 0;
}

namespace {

// The block of a TimingBuffersScope (see bf16_choice.h); per thread.
struct TimingBlock {
  int depth = 0;
  std::byte* data = nullptr;
  size_t size = 0;
};
thread_local TimingBlock t_block;

constexpr size_t kTimingAlign = 4096;
constexpr size_t kHugePage = size_t{2} << 20;
size_t timing_round(size_t bytes) { return (bytes + kTimingAlign - 1) / kTimingAlign * kTimingAlign; }

// `bytes` of the thread's block, or null without a scope (or when it cannot grow).
std::byte* timing_block(size_t bytes) {
  if (t_block.depth == 0) return nullptr;
  if (t_block.size < bytes) {
    std::free(t_block.data);
    // Whole huge pages where the kernel has them (transparent huge pages on madvise): a few
    // hundred faults instead of tens of thousands.
    const size_t n = (bytes + kHugePage - 1) / kHugePage * kHugePage;
    t_block.data = static_cast<std::byte*>(std::aligned_alloc(kHugePage, n));
    if (t_block.data) madvise(t_block.data, n, MADV_HUGEPAGE);
    t_block.size = t_block.data ? n : 0;
  }
  return t_block.data;
}

}  // namespace

TimingBuffersScope::TimingBuffersScope() { ++t_block.depth; }

TimingBuffersScope::~TimingBuffersScope() {
  if (--t_block.depth > 0) return;
  std::free(t_block.data);
  t_block.data = nullptr;
  t_block.size = 0;
}

double time_primitive_ms(const dnnl::primitive& p, int runs) {
  const_dnnl_primitive_desc_t pd = nullptr;
  if (dnnl_primitive_get_primitive_desc(p.get(), &pd) != dnnl_success) return std::numeric_limits<double>::infinity();
  const int kinds[] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_BIAS, DNNL_ARG_DST, DNNL_ARG_SCRATCHPAD};
  size_t total = 0, rounded = 0;
  for (int arg : kinds) {
    const dnnl_memory_desc_t* md = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg);
    if (md != nullptr && md->ndims != 0) {
      total += dnnl_memory_desc_get_size(md);
      rounded += timing_round(dnnl_memory_desc_get_size(md));
    }
  }
  if (total > kMaxTimingBytes) return std::numeric_limits<double>::infinity();
  std::byte* block = timing_block(rounded);  // null: each buffer its own allocation
  std::unordered_map<int, dnnl::memory> args;
  for (int arg : kinds) {
    const dnnl_memory_desc_t* md = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg);
    if (md == nullptr || md->ndims == 0) continue;
    dnnl::memory m = block ? dnnl::memory(dnnl::memory::desc(*md), cpu_engine(), block)
                           : dnnl::memory(dnnl::memory::desc(*md), cpu_engine());
    if (block) block += timing_round(dnnl_memory_desc_get_size(md));
    // Small finite values in float32 and bf16 alike (0x3c3c... is about 0.0115 in both), so no
    // denormal or NaN path is timed.
    std::memset(m.get_data_handle(), 0x3c, m.get_desc().get_size());
    args.emplace(arg, m);
  }
  dnnl::stream s(cpu_engine());
  p.execute(s, args);  // warm-up: oneDNN's lazy set-up, the first parallel region's threads
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

// A choice's text in the kept-choices file (kept_choices.h): a bool as 1 or 0, a pair of times
// as two numbers ("inf" for a primitive too large to time).
std::string encode_choice(bool b) { return b ? "1" : "0"; }
std::string encode_choice(const std::pair<double, double>& t) {
  char text[64];
  std::snprintf(text, sizeof text, "%.6g %.6g", t.first, t.second);  // ms; every process decides from these
  return text;
}
template <typename T>
std::optional<T> decode_choice(const std::string& text);
template <>
std::optional<bool> decode_choice<bool>(const std::string& text) {
  if (text == "1") return true;
  if (text == "0") return false;
  return std::nullopt;
}
template <>
std::optional<std::pair<double, double>> decode_choice<std::pair<double, double>>(const std::string& text) {
  const char* s = text.c_str();
  char* end = nullptr;
  const double a = std::strtod(s, &end);
  if (end == s || *end != ' ') return std::nullopt;
  s = end + 1;
  const double b = std::strtod(s, &end);
  if (end == s || *end != '\0' || std::isnan(a) || std::isnan(b) || a < 0 || b < 0) return std::nullopt;
  return std::make_pair(a, b);
}

// The result for `key` at the calling thread's team size, decided once per process by
// `decide` (which returns it and the timings to print under TANDEM_CPU_VERBOSE) and cached (one
// cache per result type). Timed outside the lock: two compiles of one geometry at once may both
// time it, and agree. Within a KeptChoicesScope the folder's file decides first: its value
// when it keeps one (the cache keeps its own for compiles without a folder), else the cached
// value or a new timing, which the file then keeps.
template <typename T, typename Decide>
T decided_once(const std::string& key, const Decide& decide) {
  static std::mutex mu;
  static std::map<std::string, T> decided;
  const std::string full = key + " @" + std::to_string(omp_get_max_threads()) + "t";
  auto cached = [&]() -> std::optional<T> {
    std::lock_guard<std::mutex> lock(mu);
    if (auto it = decided.find(full); it != decided.end()) return it->second;
    return std::nullopt;
  };
  auto remember = [&](const T& result) {
    std::lock_guard<std::mutex> lock(mu);
    decided.emplace(full, result);  // keeps an earlier value
    return result;
  };
  const std::filesystem::path* dir = kept_choices_dir();
  if (!dir) {
    if (auto c = cached()) return *c;
    auto [result, timings] = decide();
    if (verbose()) note(full + ": " + timings);
    return remember(result);
  }
  std::string how;           // for TANDEM_CPU_VERBOSE
  std::optional<T> offered;  // what this process put forward when the file kept nothing
  const std::string text = kept_choice(
      *dir, full, [](const std::string& t) { return decode_choice<T>(t).has_value(); },
      [&] {
        std::string timings = "decided earlier in this process";
        offered = cached();
        if (!offered) std::tie(offered, timings) = decide();
        how = timings;
        return std::make_pair(encode_choice(*offered), timings);
      });
  const std::optional<T> kept = decode_choice<T>(text);  // parsed when found, encoded when ours
  const T result = kept ? *kept : *offered;
  if (verbose())
    note(full + ": " + (!offered ? "kept " + text : *offered != result ? how + "; another process kept " + text : how));
  return remember(result);
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
  return decided_once<bool>(key, [&] {
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
  // The times are cached, not the decision: callers with different margins share one timing.
  const auto [with_candidate, with_baseline] = decided_once<std::pair<double, double>>(key, [&] {
    const double c = time_primitive_ms(candidate), b = time_primitive_ms(baseline);
    char line[120];
    std::snprintf(line, sizeof line, "candidate %.3f ms vs baseline %.3f ms", c, b);
    return std::make_pair(std::make_pair(c, b), std::string(line));
  });
  // Too large to time (infinite): the baseline stays.
  return std::isfinite(with_candidate) && std::isfinite(with_baseline) && with_candidate <= gain * with_baseline;
}

}  // namespace tandem::cpu
