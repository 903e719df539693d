#include "engine/sysinfo.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <thread>

namespace tandem {

uint64_t process_rss_bytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long long size = 0, resident = 0;
  const int n = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  if (n != 2) return 0;
  const long page = ::sysconf(_SC_PAGESIZE);
  return static_cast<uint64_t>(resident) * static_cast<uint64_t>(page > 0 ? page : 4096);
}

std::string cpu_isa() {
#if defined(__x86_64__) || defined(__i386__)
  std::string s = "x86_64";
  __builtin_cpu_init();
  if (__builtin_cpu_supports("sse4.2")) s += "+sse4.2";
  if (__builtin_cpu_supports("avx")) s += "+avx";
  if (__builtin_cpu_supports("avx2")) s += "+avx2";
  if (__builtin_cpu_supports("fma")) s += "+fma";
  if (__builtin_cpu_supports("avx512f")) s += "+avx512f";
  if (__builtin_cpu_supports("avx512bw")) s += "+avx512bw";
  return s;
#elif defined(__aarch64__)
  return "aarch64+neon";
#else
  return "unknown";
#endif
}

std::string os_name() {
  struct utsname u {};
  if (::uname(&u) != 0) return "unknown";
  std::string s = std::string(u.sysname) + "-" + u.machine;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

int hardware_threads() { return std::max(1u, std::thread::hardware_concurrency()); }

}  // namespace tandem
