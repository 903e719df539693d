#include "core/sysinfo.h"

#include <pthread.h>
#include <sched.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <string>
#include <utility>
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

int physical_cores() {
  static const int cores = [] {
    cpu_set_t mask;
    CPU_ZERO(&mask);
    int logical = 0;
    std::set<std::pair<int, int>> physical;  // (package, core)
    if (sched_getaffinity(0, sizeof(mask), &mask) == 0) {
      for (int c = 0; c < CPU_SETSIZE; ++c) {
        if (!CPU_ISSET(c, &mask)) continue;
        ++logical;
        const std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(c) + "/topology/";
        std::ifstream core(base + "core_id"), package(base + "physical_package_id");
        int core_id = -1, package_id = -1;
        if (core >> core_id && package >> package_id) physical.insert({package_id, core_id});
      }
    }
    int n = physical.empty() ? logical : static_cast<int>(physical.size());
    if (n <= 0) n = hardware_threads();
    return std::max(n, 1);
  }();
  return cores;
}

uint64_t process_peak_rss_bytes() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmHWM:", 0) == 0) return static_cast<uint64_t>(std::atoll(line.c_str() + 6)) * 1024;  // kB
  return 0;
}

void name_this_thread(std::string_view name) {
  char kept[16];  // Linux keeps 15 characters and the terminator
  const size_t n = std::min(name.size(), sizeof kept - 1);
  std::memcpy(kept, name.data(), n);
  kept[n] = '\0';
  pthread_setname_np(pthread_self(), kept);  // best effort: a name is only a label
}

}  // namespace tandem
