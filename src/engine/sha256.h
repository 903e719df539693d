// sha256.h: SHA-256 digests for cache keys, computed by OpenSSL's libcrypto.
// Thread-safety: re-entrant.
#pragma once

#include <string>
#include <string_view>

namespace tandem {

// sha256 of `data` as 64 lowercase hex digits; empty if libcrypto fails (out of memory).
std::string sha256_hex(std::string_view data);

}  // namespace tandem
