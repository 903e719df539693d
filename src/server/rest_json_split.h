// rest_json_split.h: large JSON tensors of a REST request parsed in pieces, on several threads.
//
// Parsing the numbers of a JSON tensor is most of a JSON request's cost (a 1x3x48x192 FP32
// tensor printed with 17 digits is 570 KB, and parsing its 27,648 numbers takes several times
// as long as a small model's inference). The decoder (rest_request_decode.cpp) therefore
// looks for the values of "data" keys that are large arrays of numbers, flat or nested (no
// '{', '}' or '"' inside), parses the document with each of them replaced by a placeholder
// string of the same length, and parses each array in pieces on several threads (SideTasks),
// each piece by its own simdjson parser: flat arrays cut at commas, each piece parsed as
// "[" piece "]"; nested ones cut between innermost arrays, after their brackets were checked
// against the shape, each piece parsed as "[" leaf "," leaf ... "]". Pieces
// are converted with the same functions as the whole-document path (rest_json_elements.h),
// so the tensors hold the same bits.
//
// Exactness: the document is valid and its arrays hold exactly the elements the shape needs
// if and only if the document with placeholders is valid and every piece is a valid, non-empty
// array whose counts add up. Anything else (a fault anywhere, a placeholder that the decoder
// did not take as an input's data, a datatype without a split path) makes the decoder decode
// the original text as a whole, so every error is the one the whole-document path gives.
// Placeholders are strings that begin with a NUL character: no string of the request can,
// because spans are not looked for in a text that contains the escape \u0000 (and raw NUL
// bytes are refused before parsing).
// Thread-safety: pure functions; the piece parsers are per thread.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>
#include <vector>

#include "side_tasks.h"
#include "tandem/tensor.h"

namespace tandem::server {

struct JsonSplitOptions {
  SideTasks* helpers = nullptr;        // nullptr: never split (no placeholders either)
  size_t min_span_bytes = 64u << 10;   // shorter arrays are parsed with the document (>= 32)
  size_t min_piece_bytes = 24u << 10;  // a piece is at least this long (>= 1)
  // 0: two per thread (the helpers' and the caller's), so that a helper woken late leaves the
  // caller less to do alone (on the 2-vCPU VMs four pieces decoded as fast or faster than two).
  size_t max_pieces = 0;
};

// One array in the JSON text: [begin, end) holds '[' ... ']'. For nested data, the offsets
// (from begin) of all its brackets, in order; empty for a flat array.
struct JsonSpan {
  size_t begin = 0;
  size_t end = 0;
  std::vector<size_t> brackets;
};

// The spans to parse in pieces (in text order, none overlapping): values of a "data" key that
// are arrays holding only arrays and scalars (no '{', '}' or '"' inside), at least
// options.min_span_bytes long. Empty when the text holds the escape \u0000.
// Scans the text with memchr from string to string, so it costs little next to parsing.
std::vector<JsonSpan> find_split_spans(std::string_view json, const JsonSplitOptions& options);

// Overwrites span `index` in `text` (a copy of the JSON) with its placeholder: the string
// "\u0000<index>", then spaces up to the span's end.
void write_placeholder(char* text, JsonSpan span, size_t index);

// The span index a parsed string stands for; nullopt when it is not a placeholder.
std::optional<size_t> placeholder_index(std::string_view parsed);

// Parses the array `span_text` ('[' ... ']') into `tensor`, which is allocated with its final
// dtype and shape, in pieces on options.helpers. Flat data is cut at commas; data nested as the
// shape (every level holding exactly its dim, the innermost arrays its last dim) is checked
// level by level from its brackets and cut between innermost arrays. False when the array is
// not valid JSON, is not laid out as the whole decode accepts, does not hold exactly
// tensor->numel() elements, an element does not convert, or the dtype has no split path
// (strings, booleans): the caller then decodes the request whole.
bool parse_split_span(std::string_view span_text, const JsonSplitOptions& options, Tensor* tensor);
// The same with the span's brackets as find_split_spans() found them (empty: flat).
bool parse_split_span(std::string_view span_text, const std::vector<size_t>& brackets, const JsonSplitOptions& options,
                      Tensor* tensor);

}  // namespace tandem::server
