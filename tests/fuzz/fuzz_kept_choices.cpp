// fuzz_kept_choices.cpp: libFuzzer entry point for the reader of the cpu backend's kept-choices
// file (src/backends/cpu/kept_choices.h, find_kept_value). The input is a key, a NUL byte, then
// a file's text, read against a fixed header line. Whatever the bytes, a value found must be
// one the parser accepted, hold no tab or newline, and stand in the text as a whole line's
// second field after the key; a file without the header keeps nothing. Cutting the text to
// its newest lines keeps the header and that many of its last whole lines.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "backends/cpu/kept_choices.h"
#include "fuzz_fail.h"

using tandem::fuzz::fail;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  if (nul == std::string_view::npos) return 0;
  const std::string_view key = input.substr(0, nul), text = input.substr(nul + 1);
  const std::string header = "# fuzz\n";
  int calls = 0;
  const auto parse = [&calls](const std::string& v) {
    ++calls;
    return v.size() % 3 != 1;  // refuses some values, so that later lines are read too
  };
  // Cutting the text down keeps the header and the last whole lines, in order.
  const size_t lines = tandem::cpu::count_kept_lines(text, header);
  const size_t keep = key.size() % 5;
  const std::string cut = tandem::cpu::newest_kept_lines(text, header, keep);
  if (cut.compare(0, header.size(), header) != 0) fail("a cut text without the header");
  if (tandem::cpu::count_kept_lines(cut, header) != std::min(lines, keep)) fail("a cut text with the wrong line count");
  if (cut.size() > header.size() && (cut.back() != '\n' || text.find(cut.substr(header.size())) == std::string::npos))
    fail("a cut text that is not the text's last whole lines");

  const auto found = tandem::cpu::find_kept_value(text, header, key, parse);
  if (!found) return 0;
  if (text.substr(0, header.size()) != header) fail("a value from a file without the header");
  if (calls == 0 || found->size() % 3 == 1) fail("a value the parser did not accept");
  if (found->find_first_of("\t\n") != std::string::npos) fail("a value with a tab or newline");
  if (key.find_first_of("\n") != std::string_view::npos) fail("a key with a newline matched");
  const std::string line = "\n" + std::string(key) + "\t" + *found + "\t";
  if (std::string_view(text).substr(header.size() - 1).find(line) == std::string_view::npos)
    fail("a value that is not a line's second field after the key");
  return 0;
}
