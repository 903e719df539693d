// fuzz_npy.cpp: libFuzzer entry point for the .npy parser.
//
// Arbitrary bytes go to parse_npy: it must return a tensor whose bytes lie inside the input, or
// one error line naming the input, and never crash, leak or allocate more than the input holds.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  auto t = tandem::parse_npy(bytes, "fuzz.npy");
  if (!t.is_ok()) {
    const tandem::Status status = t.status();  // status() returns a copy: keep it alive
    const std::string& m = status.message();
    if (m.rfind("fuzz.npy: ", 0) != 0 || m.find('\n') != std::string::npos) {
      std::fprintf(stderr, "bad error message: %s\n", status.to_string().c_str());
      std::abort();
    }
    return 0;
  }
  if (t->nbytes() > size || t->numel() < 0) {
    std::fprintf(stderr, "parsed %zu data bytes from %zu input bytes\n", t->nbytes(), size);
    std::abort();
  }
  // Touch every byte so that ASan sees any buffer that is too small.
  const auto* p = static_cast<const unsigned char*>(t->raw_data());
  unsigned sum = 0;
  for (size_t i = 0; i < t->nbytes(); ++i) sum += p[i];
  if (t->dtype() == tandem::DataType::boolean)
    for (size_t i = 0; i < t->nbytes(); ++i)
      if (p[i] > 1) std::abort();  // a bool must hold 0 or 1
  return static_cast<int>(sum & 0);
}
