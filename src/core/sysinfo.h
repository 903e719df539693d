// sysinfo.h: facts about the machine and process, for cache keys, capabilities, thread counts
// and telemetry.
// All functions are thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tandem {

// Resident set size of this process in bytes (from /proc/self/statm); 0 if unknown.
uint64_t process_rss_bytes();
// "x86_64+sse4.2+avx+avx2+fma+f16c" (the instruction-set extensions the CPU reports), or the
// architecture alone where extensions are not probed.
std::string cpu_isa();
// "linux-x86_64" (kernel name and machine, lowercase).
std::string os_name();
// Number of hardware threads (at least 1).
int hardware_threads();
// Physical cores this process may run on: distinct (package, core) pairs, from sysfs, among the
// CPUs in its affinity mask; the mask's size where sysfs lacks topology; at least 1. Computed
// once. The default thread count of the cpu backend and of `tandem bench`.
int physical_cores();
// Peak resident set size of this process (VmHWM) in bytes; 0 if unknown.
uint64_t process_peak_rss_bytes();

// Names the calling thread as `top -H`, `perf` and debuggers show it (the first 15 bytes are
// kept). tandem names its own threads "tandem-<role>"; a failure is ignored.
void name_this_thread(std::string_view name);

}  // namespace tandem
