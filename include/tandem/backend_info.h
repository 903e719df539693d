// tandem/backend_info.h: which backends this build of tandem has, and what they are.
//
//   for (const tandem::BackendInfo& b : tandem::list_backends())
//     std::printf("%s %s %s\n", b.name.c_str(), tandem::device_kind_name(b.device_kind).data(), b.version.c_str());
//
// A backend is a way of running a model's nodes (the reference kernels, the cpu backend, ...).
// EngineOptions::backends, routes and placement reports name backends by BackendInfo::name.
// Thread-safety: plain values and pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace tandem {

// The kind of processor a backend computes on.
enum class DeviceKind { cpu, gpu, npu };
std::string_view device_kind_name(DeviceKind kind);  // "cpu", "gpu", "npu"

struct BackendInfo {
  std::string name;      // "cpu", "reference", ...
  DeviceKind device_kind = DeviceKind::cpu;
  std::string version;   // the version of the backend's code (part of the engine's cache key)
  // The exact backend every other one is checked against: it runs every op tandem knows, is
  // placed last and is every prepared model's route of last resort.
  bool is_reference = false;
};

// The backends compiled into this build, in the engine's default preference order (the
// reference backend last).
std::vector<BackendInfo> list_backends();

}  // namespace tandem
