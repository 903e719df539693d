// tandem/sysinfo.h: facts about the machine and this process, as tandem sees them (the same
// figures go into the engine's cache keys, capability reports and telemetry), for benchmark
// and soak reports.
// Units: bytes. Thread-safety: all functions are thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tandem {

// Resident set size of this process in bytes; 0 if unknown.
uint64_t process_rss_bytes();
// Peak resident set size of this process (VmHWM) in bytes; 0 if unknown.
uint64_t process_peak_rss_bytes();
// The instruction-set extensions the CPU reports, "x86_64+sse4.2+avx+avx2+fma+f16c", or the
// architecture alone where extensions are not probed.
std::string cpu_isa();
// "linux-x86_64" (kernel name and machine, lowercase).
std::string os_name();
// Number of hardware threads (at least 1).
int hardware_threads();
// Physical cores this process may run on (at least 1): the cpu backend's default thread count.
int physical_cores();

// Names the calling thread as `top -H`, `perf` and debuggers show it (the first 15 bytes are
// kept). tandem names its own threads "tandem-<role>"; a failure is ignored.
void name_this_thread(std::string_view name);

}  // namespace tandem
