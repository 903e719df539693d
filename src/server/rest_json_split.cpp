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
// Pieces nest two arrays deep at most ("[" leaf "," leaf "]" of nested data); simdjson counts
// the document as a level too.
constexpr size_t kPieceDepth = 3;

struct PieceScratch {
  simdjson::dom::parser parser;
  std::vector<char> padded;
  // Makes the parser take `length` bytes; false when it cannot have the memory.
  bool fits(size_t length) {
    if (parser.capacity() >= length && parser.max_depth() == kPieceDepth) return true;
    return parser.allocate(std::max(length, size_t{4096}), kPieceDepth) == simdjson::SUCCESS;
  }
};

PieceScratch& thread_piece_scratch() {
  thread_local PieceScratch scratch;
  return scratch;
}

// Has `fill(text)` write `length` bytes of JSON into the thread's padded buffer and parses them
// as an array into `*out`, which lives until the thread parses its next piece.
template <class Fill>
bool parse_piece_text(size_t length, const Fill& fill, array* out) {
  PieceScratch& scratch = thread_piece_scratch();
  if (!scratch.fits(length)) return false;
  scratch.padded.resize(length + simdjson::SIMDJSON_PADDING);
  fill(scratch.padded.data());
  std::memset(scratch.padded.data() + length, 0, simdjson::SIMDJSON_PADDING);
  element root;
  return !scratch.parser.parse(scratch.padded.data(), length, false).get(root) && !root.get_array().get(*out);
}

// Frees the thread's piece parser after a piece past kMaxRetainedPieceBytes.
void release_oversized_piece_parser() {
  PieceScratch& scratch = thread_piece_scratch();
  if (scratch.parser.capacity() > kMaxRetainedPieceBytes) scratch = PieceScratch();
}

// How many pieces `bytes` of array text are cut into (at least one).
size_t piece_count(size_t bytes, const JsonSplitOptions& options) {
  size_t wanted = options.max_pieces;
  if (wanted == 0) wanted = 2 * (static_cast<size_t>(options.helpers ? options.helpers->threads() : 0) + 1);
  return std::clamp<size_t>(bytes / std::max<size_t>(options.min_piece_bytes, 1), 1, std::max<size_t>(wanted, 1));
}

// Calls split(static_cast<T*>(nullptr), convert) for a datatype with a split path, as
// json_elements::visit_element_converter does; false for the others. Strings would need a
// string per element on the heap twice; booleans are stored as bits by std::vector. Neither
// is worth a split path.
template <class Split>
bool visit_split_converter(DataType dtype, const Split& split) {
  bool splits = false;
  json_elements::visit_element_converter(dtype, [&](auto* type, const auto& convert) {
    using T = std::remove_pointer_t<decltype(type)>;
    if constexpr (!std::is_same_v<T, std::string> && !std::is_same_v<T, bool>) {
      splits = true;
      split(type, convert);
    }
  });
  return splits;
}

// The pieces of the array's inside `inner` (text between the brackets): cut at the first
// comma at or after each even share of the bytes. Empty pieces are kept (they fail later).
std::vector<std::string_view> cut_pieces(std::string_view inner, const JsonSplitOptions& options) {
  const size_t wanted = piece_count(inner.size(), options);
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
  array elements;
  const bool parsed = parse_piece_text(
      piece.size() + 2,
      [&](char* text) {
        text[0] = '[';
        std::memcpy(text + 1, piece.data(), piece.size());
        text[piece.size() + 1] = ']';
      },
      &elements);
  if (!parsed) return false;
  size_t n = 0;
  for (element e : elements) {
    if (n >= capacity || convert(e, &out[n]) != json_elements::ElementFault::none) return false;
    ++n;
  }
  *count = n;
  release_oversized_piece_parser();
  return n > 0;
}

// The offsets (from `open`) of the brackets of the array whose '[' is at `open`, in order, up to
// its matching ']', found by memchr jumps (the text between brackets is not read). False when
// it does not close or nests deeper than kMaxNesting.
constexpr int kMaxNesting = 32;
bool array_brackets(std::string_view text, size_t open, std::vector<size_t>* out) {
  out->assign(1, 0);
  const char* next_open = find_byte(text, open + 1, '[');
  const char* next_close = find_byte(text, open + 1, ']');
  int depth = 1;
  while (next_close) {
    if (next_open && next_open < next_close) {
      if (++depth > kMaxNesting) return false;
      out->push_back(static_cast<size_t>(next_open - text.data()) - open);
      next_open = find_byte(text, static_cast<size_t>(next_open - text.data()) + 1, '[');
      continue;
    }
    out->push_back(static_cast<size_t>(next_close - text.data()) - open);
    if (--depth == 0) return true;
    next_close = find_byte(text, static_cast<size_t>(next_close - text.data()) + 1, ']');
  }
  return false;
}

bool only_whitespace(std::string_view text) { return skip_whitespace(text, 0) == text.size(); }

// The innermost arrays ('[' ... ']', offsets into the span) of nested data whose brackets are
// `brackets`, when the nesting is exactly `shape` (every array at depth d < rank holds shape[d]
// arrays, separated by commas, with nothing else but whitespace around them) and the data
// nests deeper than one level; nullopt otherwise. The leaves' contents are not read.
std::optional<std::vector<JsonSpan>> nested_leaves(std::string_view span, const std::vector<size_t>& brackets,
                                                   const std::vector<int64_t>& shape) {
  const size_t rank = shape.size();
  if (rank < 2 || brackets.size() < 4) return std::nullopt;
  std::vector<int64_t> children(rank + 1, 0);  // of the array open at each depth
  std::vector<JsonSpan> leaves;
  size_t depth = 0;
  for (size_t k = 0; k < brackets.size(); ++k) {
    const size_t at = brackets[k];
    const bool opening = span[at] == '[';
    if (k > 0) {  // what lies between the previous bracket and this one
      const size_t previous = brackets[k - 1];
      const bool after_open = span[previous] == '[';
      std::string_view gap = span.substr(previous + 1, at - previous - 1);
      if (opening) {
        if (!after_open) {  // a sibling: whitespace, one comma, whitespace
          const size_t comma = gap.find(',');
          if (comma == std::string_view::npos || !only_whitespace(gap.substr(0, comma)) ||
              !only_whitespace(gap.substr(comma + 1)))
            return std::nullopt;
        } else if (!only_whitespace(gap)) {
          return std::nullopt;  // scalars before the first child array
        }
      } else if (depth < rank && (after_open || !only_whitespace(gap))) {
        return std::nullopt;  // an empty outer array, or scalars after its last child array
      }
    }
    if (opening) {
      if (++depth > rank) return std::nullopt;
      if (depth > 1) ++children[depth - 1];
      children[depth] = 0;
      continue;
    }
    if (depth == rank) {
      leaves.push_back({brackets[k - 1], at + 1, {}});
    } else if (children[depth] != shape[depth - 1]) {
      return std::nullopt;
    }
    --depth;
  }
  if (depth != 0) return std::nullopt;
  return leaves;
}

// Parses leaves [first, last) of nested data as the JSON array "[" leaf "," leaf ... "]"; each
// must hold exactly `width` elements, stored at out[leaf index x width + j].
template <class T, class Convert>
bool parse_leaves(std::string_view span, const std::vector<JsonSpan>& leaves, size_t first, size_t last, size_t width,
                  const Convert& convert, T* out) {
  size_t length = 2 + (last - first - 1);
  for (size_t i = first; i < last; ++i) length += leaves[i].end - leaves[i].begin;
  array rows;
  const bool parsed = parse_piece_text(
      length,
      [&](char* text) {
        size_t n = 0;
        text[n++] = '[';
        for (size_t i = first; i < last; ++i) {
          if (i > first) text[n++] = ',';
          std::memcpy(text + n, span.data() + leaves[i].begin, leaves[i].end - leaves[i].begin);
          n += leaves[i].end - leaves[i].begin;
        }
        text[n] = ']';
      },
      &rows);
  if (!parsed) return false;
  size_t leaf = first;
  for (element row_json : rows) {
    array row;
    if (leaf >= last || row_json.get_array().get(row) || row.size() != width) return false;
    size_t j = 0;
    for (element e : row)
      if (convert(e, &out[leaf * width + j++]) != json_elements::ElementFault::none) return false;
    ++leaf;
  }
  release_oversized_piece_parser();
  return leaf == last;
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
    std::vector<size_t> brackets;
    if (!array_brackets(json, at, &brackets)) continue;
    const size_t end = at + brackets.back() + 1;
    if (end - at < min_bytes || holds_any_of(json.substr(at + 1, end - at - 2), "{}\"")) continue;
    if (brackets.size() == 2) brackets.clear();  // flat
    spans.push_back({at, end, std::move(brackets)});
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

namespace {

// Nested data (rest_json_split.h): the skeleton checked against the shape, then the leaves
// parsed in pieces of whole leaves, each straight into its place in the tensor.
bool parse_nested_span(std::string_view span, const std::vector<size_t>& brackets, const JsonSplitOptions& options,
                       Tensor* tensor) {
  const std::vector<int64_t>& shape = tensor->shape();
  if (tensor->numel() <= 0) return false;
  const std::optional<std::vector<JsonSpan>> leaves = nested_leaves(span, brackets, shape);
  if (!leaves || leaves->empty()) return false;
  const size_t width = static_cast<size_t>(shape.back());
  if (leaves->size() * width != static_cast<size_t>(tensor->numel())) return false;
  const size_t wanted = std::min(piece_count(span.size(), options), leaves->size());
  bool ok = false;
  const bool splits = visit_split_converter(tensor->dtype(), [&](auto* type, const auto& convert) {
    std::vector<char> piece_ok(wanted, 0);
    auto* out = tensor->data<std::remove_pointer_t<decltype(type)>>();
    options.helpers->run(wanted, [&](size_t i) {
      const size_t first = leaves->size() * i / wanted, last = leaves->size() * (i + 1) / wanted;
      piece_ok[i] = parse_leaves(span, *leaves, first, last, width, convert, out);
    });
    ok = std::find(piece_ok.begin(), piece_ok.end(), 0) == piece_ok.end();
  });
  return splits && ok;
}

}  // namespace

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
  std::vector<size_t> brackets;
  if (span_text.empty() || span_text[0] != '[' || !array_brackets(span_text, 0, &brackets) ||
      brackets.back() + 1 != span_text.size())
    return false;
  if (brackets.size() == 2) brackets.clear();
  return parse_split_span(span_text, brackets, options, tensor);
}

bool parse_split_span(std::string_view span_text, const std::vector<size_t>& brackets, const JsonSplitOptions& options,
                      Tensor* tensor) {
  if (!options.helpers || span_text.size() < 2) return false;
  if (!brackets.empty()) return parse_nested_span(span_text, brackets, options, tensor);
  const std::vector<std::string_view> pieces = cut_pieces(span_text.substr(1, span_text.size() - 2), options);
  const size_t numel = static_cast<size_t>(tensor->numel());
  bool ok = false;
  const bool splits = visit_split_converter(tensor->dtype(), [&](auto* type, const auto& convert) {
    using T = std::remove_pointer_t<decltype(type)>;
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
  });
  return splits && ok;
}

}  // namespace tandem::server
