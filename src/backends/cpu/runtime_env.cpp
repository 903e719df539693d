// runtime_env.cpp: environment switches, verbose notes, the oneDNN engine and the ISA level
// (runtime_env.h).
#include "backends/cpu/runtime_env.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>

#include "backends/cpu/instance.h"

namespace tandem::cpu {

bool verbose() {
  static const bool v = [] {
    const char* e = std::getenv("TANDEM_CPU_VERBOSE");
    return e && *e && *e != '0';
  }();
  return v;
}

void note(const std::string& msg) {
  if (verbose()) std::fprintf(stderr, "tandem cpu: %s\n", msg.c_str());
}

bool feature_enabled_now(const char* name) {
  const char* e = std::getenv((std::string("TANDEM_CPU_") + name).c_str());
  return !(e && std::string(e) == "0");
}

double instance_cache_limit_bytes() {
  constexpr double kMiB = 1024.0 * 1024.0;
  double mb = 1024;
  if (const char* e = std::getenv("TANDEM_CPU_INSTANCE_CACHE_MB")) {
    char* end = nullptr;
    const double v = std::strtod(e, &end);
    if (end != e && *end == '\0' && v > 0 && std::isfinite(v)) mb = v;
  }
  return mb * kMiB;
}

bool feature_enabled(const char* name) {
  static std::mutex mu;
  static std::map<std::string, bool> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(name);
  if (it != cache.end()) return it->second;
  const char* e = std::getenv((std::string("TANDEM_CPU_") + name).c_str());
  bool on = !(e && std::string(e) == "0");
  cache[name] = on;
  return on;
}

namespace {

// The best level this machine offers (see cpu_isa_level()).
int machine_isa_level() {
  int machine = 0;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) machine = 1;
  if (machine == 1 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    machine = 2;
  return machine;
}

const char* isa_name(int level) { return level >= 2 ? "avx512" : level == 1 ? "avx2" : "baseline"; }

}  // namespace

int cpu_isa_level() {
  static const int level = [] {
    const int machine = machine_isa_level();
    const char* e = std::getenv("TANDEM_CPU_ISA");
    if (!e || !*e) return machine;
    const std::string cap(e);
    if (cap == "baseline") return 0;
    if (cap == "avx2") return std::min(machine, 1);
    return machine;  // "avx512" or anything else: the machine's best
  }();
  return level;
}

int64_t channel_block() {
  static const int64_t block = cpu_isa_level() >= 2 ? 16 : 8;
  return block;
}

bool float_path_blocked() { return cpu_isa_level() >= 1 && feature_enabled("BLOCKED"); }

std::string cpu_isa_description() {
  cpu_engine();  // oneDNN's cap is set before its effective ISA is read
  std::string machine = isa_name(machine_isa_level());
  if (machine_isa_level() >= 2) {
    if (__builtin_cpu_supports("avx512vnni")) machine += "+vnni";
    if (__builtin_cpu_supports("avx512bf16")) machine += "+bf16";
    if (__builtin_cpu_supports("amx-tile")) machine += "+amx";
  }
  const char* e = std::getenv("TANDEM_CPU_ISA");
  std::string cap = "none";
  if (e && *e) {
    const std::string v(e);
    cap = "TANDEM_CPU_ISA=" + v + (v == "avx512" || v == "avx2" || v == "baseline" ? "" : " (not a known path: ignored)");
  }
  std::string onednn;
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41: onednn = "sse41"; break;
    case dnnl::cpu_isa::avx: onednn = "avx"; break;
    case dnnl::cpu_isa::avx2: onednn = "avx2"; break;
    case dnnl::cpu_isa::avx2_vnni: onednn = "avx2_vnni"; break;
    case dnnl::cpu_isa::avx512_core: onednn = "avx512_core"; break;
    case dnnl::cpu_isa::avx512_core_vnni: onednn = "avx512_core_vnni"; break;
    case dnnl::cpu_isa::avx512_core_bf16: onednn = "avx512_core_bf16"; break;
    case dnnl::cpu_isa::avx512_core_amx: onednn = "avx512_core_amx"; break;
    default: onednn = "other"; break;
  }
  return std::string("cpu isa: ") + isa_name(cpu_isa_level()) + " (machine: " + machine + "; cap: " + cap +
         "; oneDNN: " + onednn + (has_native_bf16() ? "; bf16 native" : "") + ")";
}

bool has_native_bf16() {
  static const bool native = cpu_isa_level() >= 2 && __builtin_cpu_supports("avx512bf16");
  return native;
}

bool has_vbmi() {
  static const bool yes = cpu_isa_level() >= 2 && __builtin_cpu_supports("avx512vbmi");
  return yes;
}

bool has_amx_tiles() {
  static const bool amx = [] {
    cpu_engine();  // oneDNN's cap is set before its ISA is read
    return has_native_bf16() && dnnl::get_effective_cpu_isa() == dnnl::cpu_isa::avx512_core_amx;
  }();
  return amx;
}

dnnl::engine& cpu_engine() {
  static dnnl::engine eng = [] {
    // The ISA cap applies to oneDNN too; it must be set before the first primitive.
    if (const char* e = std::getenv("TANDEM_CPU_ISA"); e && *e) {
      const int level = cpu_isa_level();
      const dnnl::status st =
          dnnl::set_max_cpu_isa(level >= 2 ? dnnl::cpu_isa::all : level == 1 ? dnnl::cpu_isa::avx2 : dnnl::cpu_isa::sse41);
      if (st != dnnl::status::success) note("oneDNN refused the ISA cap (set too late?): its kernels are not capped");
    }
    // No VTune/ITT registration of jitted code: it costs time at every primitive creation.
    dnnl::set_jit_profiling_flags(0);
    return dnnl::engine(dnnl::engine::kind::cpu, 0);
  }();
  return eng;
}

}  // namespace tandem::cpu
