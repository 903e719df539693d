// fuzz_model_loader.cpp: libFuzzer entry point for the ONNX loader.
//
// Feeds arbitrary bytes to load_model_from_bytes and, when they load, compiles the graph on the
// reference backend. A crash, a sanitizer report, a leak or a hang is a bug; so is an error
// message that is not one line starting with the display name.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "backends/backend.h"
#include "onnx/loader.h"

namespace {

namespace fs = std::filesystem;

// A folder with a small file, so that inputs naming external data exercise the path and range
// checks (reading "w.bin" is allowed; anything outside the folder must be refused).
fs::path g_base_dir;

void check_message(const tandem::Status& s, const char* what) {
  const std::string& m = s.message();
  if (m.empty() || m.find('\n') != std::string::npos) {
    std::fprintf(stderr, "%s: error message is empty or not one line: %s\n", what, s.to_string().c_str());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  std::error_code ec;
  g_base_dir = fs::temp_directory_path(ec) / "tandem-fuzz-model";
  fs::create_directories(g_base_dir / "sub", ec);
  std::ofstream out(g_base_dir / "w.bin", std::ios::binary);
  for (int i = 0; i < 256; ++i) out.put(static_cast<char>(i));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto model = tandem::load_model_from_bytes(bytes, g_base_dir, "fuzz.onnx");
  if (!model.is_ok()) {
    const tandem::Status status = model.status();
    check_message(status, "load");
    if (status.message().rfind("fuzz.onnx: ", 0) != 0) {
      std::fprintf(stderr, "load: message does not name the model: %s\n", status.to_string().c_str());
      std::abort();
    }
    return 0;
  }
  tandem::Backend* reference = tandem::find_backend("reference");
  if (!reference) std::abort();
  auto plan = reference->compile(*model->graph, {});
  if (!plan.is_ok()) check_message(plan.status(), "compile");
  return 0;
}
