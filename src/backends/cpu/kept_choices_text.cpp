// kept_choices_text.cpp: reading a kept-choices file's text (kept_choices.h).
#include "backends/cpu/kept_choices.h"

namespace tandem::cpu {

std::optional<std::string> find_kept_value(std::string_view text, std::string_view header, std::string_view key,
                                           const std::function<bool(const std::string&)>& parse) {
  if (text.substr(0, header.size()) != header) return std::nullopt;
  size_t at = header.size();
  while (at < text.size()) {
    const size_t end = text.find('\n', at);
    if (end == std::string_view::npos) break;  // a line cut short (a writer that died): ignored
    const std::string_view line = text.substr(at, end - at);
    at = end + 1;
    if (line.size() <= key.size() || line.substr(0, key.size()) != key || line[key.size()] != '\t') continue;
    // A value counts only with the timings after it: a line cut short in its value (by a
    // writer that died, then completed by the next writer's newline) has no second tab.
    const std::string_view rest = line.substr(key.size() + 1);
    const size_t tab = rest.find('\t');
    if (tab == std::string_view::npos) continue;
    std::string value(rest.substr(0, tab));
    if (parse(value)) return value;
  }
  return std::nullopt;
}

size_t count_kept_lines(std::string_view text, std::string_view header) {
  if (text.substr(0, header.size()) != header) return 0;
  size_t lines = 0;
  for (size_t at = header.size(); (at = text.find('\n', at)) != std::string_view::npos; ++at) ++lines;
  return lines;
}

std::string newest_kept_lines(std::string_view text, std::string_view header, size_t keep) {
  std::string out(header);
  if (header.empty() || header.back() != '\n' || text.substr(0, header.size()) != header) return out;
  const size_t last = text.rfind('\n');  // the header's own newline at least
  // Back from the last newline, one line at a time (a line cut short after it is left out):
  // `start` is where the kept lines begin.
  size_t start = last + 1;
  for (size_t kept = 0; kept < keep && start > header.size(); ++kept) start = text.rfind('\n', start - 2) + 1;
  out.append(text.substr(start, last + 1 - start));
  return out;
}

}  // namespace tandem::cpu
