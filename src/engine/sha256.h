// sha256.h: SHA-256 (FIPS 180-4), for cache keys. Small and dependency-free.
// Thread-safety: a Sha256 object is single-threaded; the free function is re-entrant.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tandem {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t bytes);
  void update(std::string_view s) { update(s.data(), s.size()); }
  // The digest; the object must not be updated afterwards.
  std::array<uint8_t, 32> finish();
  // The digest as 64 lowercase hex digits.
  std::string finish_hex();

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

// sha256 of `data` as 64 lowercase hex digits.
std::string sha256_hex(std::string_view data);

}  // namespace tandem
