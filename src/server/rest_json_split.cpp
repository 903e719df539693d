// rest_json_split.cpp: see rest_json_split.h.
#include "rest_json_split.h"

#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <string>
#include <type_traits>

#include "rest_json_elements.h"

namespace tandem::server {

namespace {

using simdjson::dom::array;
using simdjson::dom::element;

constexpr std::string_view kNulEscape = "\\u0000";

// A thread keeps its piece parser's buffers between requests while a piece was at most this
// long (the document parser's rule, rest_request_decode.cpp).
constexpr size_t kMaxRetainedPieceBytes = size_t{1} << 20;

const char* find_byte(std::string_view text, size_t from, char byte) {
  if (from >= text.size()) return nullptr;
  return static_cast<const char*>(std::memchr(text.data() + from, byte, text.size() - from));
}

size_t skip_whitespace(std::string_view text, size_t pos) {
  while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\t' || text[pos] == '\n' || text[pos] == '\r')) ++pos;
  return pos;
}

// The closing quote of the string whose opening quote is at `open`; npos when unterminated.
size_t string_end(std::string_view text, size_t open) {
  size_t from = open + 1;
  for (;;) {
    const char* quote = find_byte(text, from, '"');
    if (!quote) return std::string_view::npos;
    const size_t at = static_cast<size_t>(quote - text.data());
    size_t backslashes = 0;
    while (at - backslashes > open + 1 && text[at - backslashes - 1] == '\\') ++backslashes;
    if (backslashes % 2 == 0) return at;
    from = at + 1;
  }
}

bool holds_any_of(std::string_view text, std::string_view bytes) {
  for (char byte : bytes)
    if (std::memchr(text.data(), byte, text.size())) return true;
  return false;
}

// What one thread keeps for parsing pieces: its own parser (the caller's thread is still
// reading the document from the decoder's parser) and the padded "[" piece "]".
struct PieceScratch {
  simdjson::dom::parser parser;
  std::vector<char> padded;
};

PieceScratch& thread_piece_scratch() {
  thread_local PieceScratch scratch;
  return scratch;
}

// The pieces of the array's inside `inner` (text between the brackets): cut at the first
// comma at or after each even share of the bytes. Empty pieces are kept (they fail later).
std::vector<std::string_view> cut_pieces(std::string_view inner, const JsonSplitOptions& options) {
  size_t wanted = options.max_pieces;
  if (wanted == 0) wanted = 2 * (static_cast<size_t>(options.helpers ? options.helpers->threads() : 0) + 1);
  wanted =
      std::clamp<size_t>(inner.size() / std::max<size_t>(options.min_piece_bytes, 1), 1, std::max<size_t>(wanted, 1));
  std::vector<std::string_view> pieces;
  size_t begin = 0;
  for (size_t i = 1; i < wanted; ++i) {
    const size_t target = std::max(begin, inner.size() * i / wanted);
    const char* comma = find_byte(inner, target, ',');
    if (!comma) break;
    const size_t at = static_cast<size_t>(comma - inner.data());
    pieces.push_back(inner.substr(begin, at - begin));
    begin = at + 1;
  }
  pieces.push_back(inner.substr(begin));
  return pieces;
}

// Parses "[" piece "]" and stores its elements at out[0], out[1], ... (at most `capacity`);
// false when it is not a valid non-empty flat array, holds more than `capacity` elements, or
// one does not convert. `*count`: how many were stored.
template <class T, class Convert>
bool parse_piece(std::string_view piece, const Convert& convert, T* out, size_t capacity, size_t* count) {
  PieceScratch& scratch = thread_piece_scratch();
  const size_t length = piece.size() + 2;
  if (scratch.parser.capacity() < length && scratch.parser.allocate(std::max(length, size_t{4096}), 2)) return false;
  scratch.padded.resize(length + simdjson::SIMDJSON_PADDING);
  scratch.padded[0] = '[';
  std::memcpy(scratch.padded.data() + 1, piece.data(), piece.size());
  scratch.padded[length - 1] = ']';
  std::memset(scratch.padded.data() + length, 0, simdjson::SIMDJSON_PADDING);
  element root;
  array elements;
  if (scratch.parser.parse(scratch.padded.data(), length, false).get(root) || root.get_array().get(elements))
    return false;
  size_t n = 0;
  for (element e : elements) {
    if (n >= capacity || convert(e, &out[n]) != json_elements::ElementFault::none) return false;
    ++n;
  }
  *count = n;
  if (scratch.parser.capacity() > kMaxRetainedPieceBytes) scratch = PieceScratch();
  return n > 0;
}

}  // namespace

std::vector<JsonSpan> find_split_spans(std::string_view json, const JsonSplitOptions& options) {
  std::vector<JsonSpan> spans;
  if (!options.helpers || json.find(kNulEscape) != std::string_view::npos) return spans;
  const size_t min_bytes = std::max<size_t>(options.min_span_bytes, 32);
  size_t pos = 0;
  while (const char* quote = find_byte(json, pos, '"')) {
    const size_t open = static_cast<size_t>(quote - json.data());
    const size_t close = string_end(json, open);
    if (close == std::string_view::npos) break;
    pos = close + 1;
    if (json.substr(open + 1, close - open - 1) != "data") continue;
    size_t at = skip_whitespace(json, pos);
    if (at >= json.size() || json[at] != ':') continue;
    at = skip_whitespace(json, at + 1);
    if (at >= json.size() || json[at] != '[') continue;
    const char* bracket = find_byte(json, at + 1, ']');
    if (!bracket) continue;
    const size_t end = static_cast<size_t>(bracket - json.data()) + 1;
    if (end - at < min_bytes || holds_any_of(json.substr(at + 1, end - at - 2), "[{}\"")) continue;
    spans.push_back({at, end});
    pos = end;
  }
  return spans;
}

void write_placeholder(char* text, JsonSpan span, size_t index) {
  char digits[24];
  const size_t digit_count = static_cast<size_t>(std::to_chars(digits, digits + sizeof digits, index).ptr - digits);
  char* out = text + span.begin;
  size_t n = 0;
  out[n++] = '"';
  std::memcpy(out + n, kNulEscape.data(), kNulEscape.size());
  n += kNulEscape.size();
  std::memcpy(out + n, digits, digit_count);
  n += digit_count;
  out[n++] = '"';
  std::memset(out + n, ' ', span.end - span.begin - n);
}

std::optional<size_t> placeholder_index(std::string_view parsed) {
  if (parsed.size() < 2 || parsed.size() > 20 || parsed[0] != '\0') return std::nullopt;
  size_t index = 0;
  for (char c : parsed.substr(1)) {
    if (c < '0' || c > '9') return std::nullopt;
    index = index * 10 + static_cast<size_t>(c - '0');
  }
  return index;
}

bool parse_split_span(std::string_view span_text, const JsonSplitOptions& options, Tensor* tensor) {
  if (!options.helpers || span_text.size() < 2) return false;
  const std::vector<std::string_view> pieces = cut_pieces(span_text.substr(1, span_text.size() - 2), options);
  const size_t numel = static_cast<size_t>(tensor->numel());
  bool ok = false;
  const bool has_converter = json_elements::visit_element_converter(tensor->dtype(), [&](auto* type,
                                                                                         const auto& convert) {
    using T = std::remove_pointer_t<decltype(type)>;
    // Strings would need a string per element on the heap twice; booleans are stored as bits
    // by std::vector. Neither is worth a split path.
    if constexpr (!std::is_same_v<T, std::string> && !std::is_same_v<T, bool>) {
      // The first piece goes straight into the tensor; the others, whose offsets are known only
      // once the pieces before them are counted, into their own buffers.
      std::vector<std::vector<T>> later(pieces.size() - 1);
      std::vector<size_t> counts(pieces.size(), 0);
      std::vector<char> piece_ok(pieces.size(), 0);
      T* first = tensor->data<T>();
      options.helpers->run(pieces.size(), [&](size_t i) {
        if (i == 0) {
          piece_ok[0] = parse_piece(pieces[0], convert, first, numel, &counts[0]);
          return;
        }
        later[i - 1].resize(std::min(numel, pieces[i].size() / 2 + 1));  // elements are >= 1 byte, commas between
        piece_ok[i] = parse_piece(pieces[i], convert, later[i - 1].data(), later[i - 1].size(), &counts[i]);
      });
      size_t total = 0;
      for (size_t i = 0; i < pieces.size(); ++i) {
        if (!piece_ok[i] || counts[i] > numel - total) return;
        total += counts[i];
      }
      if (total != numel) return;
      size_t offset = counts[0];
      for (size_t i = 1; i < pieces.size(); ++i) {
        std::copy(later[i - 1].begin(), later[i - 1].begin() + static_cast<std::ptrdiff_t>(counts[i]), first + offset);
        offset += counts[i];
      }
      ok = true;
    }
  });
  return has_converter && ok;
}

}  // namespace tandem::server
