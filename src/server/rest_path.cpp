// rest_path.cpp: see rest_path.h.
#include "rest_path.h"

#include <algorithm>

namespace tandem::server {

namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::vector<std::string> rest_path_segments(std::string_view target) {
  target = target.substr(0, target.find('?'));
  std::vector<std::string> segments;
  size_t at = 0;
  while (at < target.size()) {
    if (target[at] == '/') {
      ++at;
      continue;
    }
    const size_t end = std::min(target.find('/', at), target.size());
    std::string segment;
    for (size_t i = at; i < end; ++i) {
      const int high = target[i] == '%' && i + 2 < end ? hex_digit(target[i + 1]) : -1;
      const int low = high >= 0 ? hex_digit(target[i + 2]) : -1;
      if (low >= 0) {
        segment.push_back(static_cast<char>(high * 16 + low));
        i += 2;
      } else {
        segment.push_back(target[i]);
      }
    }
    segments.push_back(std::move(segment));
    at = end;
  }
  return segments;
}

}  // namespace tandem::server
