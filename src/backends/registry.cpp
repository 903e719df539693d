// The one place that lists the backends compiled into this build. Backend selection happens
// here and in CMake only; nowhere else names a backend.
#include <memory>

#include "backends/backend.h"
#include "backends/reference/reference_backend.h"
#ifdef TANDEM_HAVE_CPU_BACKEND
#include "backends/cpu/cpu_backend.h"
#endif

namespace tandem {

namespace {
struct BackendList {
  std::vector<std::unique_ptr<Backend>> backends;
  BackendList() {
#ifdef TANDEM_HAVE_CPU_BACKEND
    backends.push_back(std::make_unique<CpuBackend>());
#endif
    backends.push_back(std::make_unique<ReferenceBackend>());  // last: reference_backend()
  }
};
const BackendList& backend_list() {
  static const BackendList list;
  return list;
}
}  // namespace

std::vector<std::string_view> available_backends() {
  std::vector<std::string_view> names;
  for (const auto& b : backend_list().backends) names.push_back(b->name());
  return names;
}

Backend* find_backend(std::string_view name) {
  for (const auto& b : backend_list().backends)
    if (b->name() == name) return b.get();
  return nullptr;
}

Backend* reference_backend() { return backend_list().backends.back().get(); }

std::vector<BackendInfo> list_backends() {
  std::vector<BackendInfo> infos;
  for (const auto& b : backend_list().backends)
    infos.push_back({std::string(b->name()), b->device_kind(), std::string(b->version()), b->is_reference()});
  return infos;
}

std::string_view device_kind_name(DeviceKind kind) {
  switch (kind) {
    case DeviceKind::cpu: return "cpu";
    case DeviceKind::gpu: return "gpu";
    case DeviceKind::npu: return "npu";
  }
  return "unknown";
}

}  // namespace tandem
