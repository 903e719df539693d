// fuzz_rest_path.cpp: libFuzzer entry point for the REST target's path segments
// (src/server/rest_path.h). Any bytes are a target: the segments must be non-empty, never hold
// more bytes than the path, and a target without '%' must come back as its own '/'-separated
// non-empty pieces.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_fail.h"
#include "server/rest_path.h"

using tandem::fuzz::fail;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view target(reinterpret_cast<const char*>(data), size);
  const std::string_view path = target.substr(0, target.find('?'));
  const auto segments = tandem::server::rest_path_segments(target);
  size_t bytes = 0;
  for (const std::string& s : segments) {
    if (s.empty()) fail("an empty segment");
    bytes += s.size();
  }
  if (bytes > path.size()) fail("more bytes than the path");
  if (path.find('%') == std::string_view::npos) {
    std::vector<std::string> pieces;  // the non-empty pieces between '/', the plain way
    std::string piece;
    for (char c : path) {
      if (c != '/') {
        piece += c;
        continue;
      }
      if (!piece.empty()) pieces.push_back(piece);
      piece.clear();
    }
    if (!piece.empty()) pieces.push_back(piece);
    if (pieces != segments) fail("a path without escapes did not split into its own pieces");
  }
  return 0;
}
