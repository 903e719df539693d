// Reference kernels: text ops (StringNormalizer, TfIdfVectorizer).
#include <algorithm>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "kernels/registry.h"
#include "core/tensor_util.h"

namespace tandem {
namespace {

// --- case mapping -----------------------------------------------------------------------------
// The locale attribute is not interpreted: strings are case-mapped with fixed Unicode rules for
// ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic (enough for the default en_US locale and
// most Latin/Greek/Cyrillic text). Other code points and malformed UTF-8 bytes pass unchanged.

// Decodes one UTF-8 sequence at s[i]; returns its length in bytes (0 when malformed).
size_t decode_utf8(const std::string& s, size_t i, uint32_t* cp) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  size_t len;
  uint32_t v;
  if (c < 0x80) {
    *cp = c;
    return 1;
  } else if ((c & 0xE0) == 0xC0) {
    len = 2;
    v = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3;
    v = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4;
    v = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    v = (v << 6) | (b(i + k) & 0x3F);
  }
  *cp = v;
  return len;
}

void encode_utf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

uint32_t to_lower_cp(uint32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;  // Latin-1
  if (c == 0x178) return 0xFF;
  if (c >= 0x100 && c <= 0x17F && c != 0x130 && c != 0x138 && c != 0x149 && c != 0x17F) {  // Latin Extended-A
    bool odd_upper = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
    if (odd_upper ? (c % 2 == 1) : (c % 2 == 0)) return c + 1;
    return c;
  }
  if (c >= 0x391 && c <= 0x3AB && c != 0x3A2) return c + 32;  // Greek
  if (c >= 0x410 && c <= 0x42F) return c + 32;                 // Cyrillic
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  return c;
}

uint32_t to_upper_cp(uint32_t c) {
  if (c >= 'a' && c <= 'z') return c - 32;
  if (c >= 0xE0 && c <= 0xFE && c != 0xF7) return c - 32;
  if (c == 0xFF) return 0x178;
  if (c >= 0x100 && c <= 0x17F && c != 0x131 && c != 0x138 && c != 0x149 && c != 0x17F) {
    bool odd_upper = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
    if (odd_upper ? (c % 2 == 0) : (c % 2 == 1)) return c - 1;
    return c;
  }
  if (c >= 0x3B1 && c <= 0x3CB && c != 0x3C2) return c - 32;
  if (c == 0x3C2) return 0x3A3;  // final sigma
  if (c >= 0x430 && c <= 0x44F) return c - 32;
  if (c >= 0x450 && c <= 0x45F) return c - 80;
  return c;
}

std::string change_case(const std::string& s, bool upper) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    size_t len = decode_utf8(s, i, &cp);
    if (len == 0) {  // malformed byte: keep as is
      out.push_back(s[i]);
      ++i;
      continue;
    }
    encode_utf8(upper ? to_upper_cp(cp) : to_lower_cp(cp), &out);
    i += len;
  }
  return out;
}

// --- StringNormalizer -------------------------------------------------------------------------

Status string_normalizer_kernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.invalid("missing input X");
  const Tensor& x = ctx.input(0);
  const Node& n = ctx.node();
  if (x.dtype() != DataType::string) return ctx.invalid("X must be a string tensor");
  const bool two_d = x.rank() == 2;
  if (!(x.rank() == 1 || (two_d && x.dim(0) == 1)))
    return ctx.invalid("X must have shape [C] or [1, C], got " + shape_to_string(x.shape()));
  const std::string action = n.attr_string("case_change_action", "NONE");
  if (action != "NONE" && action != "LOWER" && action != "UPPER")
    return ctx.invalid("unknown case_change_action '" + action + "'");
  const bool case_sensitive = n.attr_int("is_case_sensitive", 0) != 0;
  std::set<std::string> stopwords;
  for (const std::string& w : n.attr_strings("stopwords")) stopwords.insert(case_sensitive ? w : change_case(w, false));

  std::vector<std::string> kept;
  const std::string* src = x.data<std::string>();
  for (int64_t i = 0; i < x.numel(); ++i) {
    const std::string& s = src[i];
    if (!stopwords.empty() && stopwords.count(case_sensitive ? s : change_case(s, false))) continue;
    if (action == "LOWER") kept.push_back(change_case(s, false));
    else if (action == "UPPER") kept.push_back(change_case(s, true));
    else kept.push_back(s);
  }
  // Everything dropped: a single empty string, shaped [1] or [1, 1].
  if (kept.empty()) kept.push_back("");
  const int64_t c = static_cast<int64_t>(kept.size());
  ctx.set_output(0, Tensor::from_vector<std::string>(two_d ? Shape{1, c} : Shape{c}, kept));
  return Status::ok();
}

// --- TfIdfVectorizer --------------------------------------------------------------------------

// Counts pool n-grams in each row of `tokens` ([rows, cols]) into `counts` ([rows, out_size]).
// `pool` maps an n-gram to its output coordinate.
template <class Tok>
void count_ngrams(const std::vector<Tok>& tokens, int64_t rows, int64_t cols,
                  const std::map<std::vector<Tok>, int64_t>& pool, int64_t min_n, int64_t max_n, int64_t max_skip,
                  int64_t out_size, std::vector<double>* counts) {
  std::vector<Tok> gram;
  // Longer n-grams or larger skips than the row allows match nothing; clamping also keeps the
  // index arithmetic below from overflowing.
  max_n = std::min(max_n, cols);
  max_skip = std::min(max_skip, cols);
  for (int64_t r = 0; r < rows; ++r) {
    const Tok* row = tokens.data() + r * cols;
    for (int64_t skip = 0; skip <= max_skip; ++skip) {
      const int64_t stride = skip + 1;
      // Unigrams do not depend on the skip: count them only once, with skip 0.
      const int64_t first_n = skip == 0 ? min_n : std::max<int64_t>(min_n, 2);
      if (first_n > max_n) break;
      for (int64_t start = 0; start < cols; ++start) {
        for (int64_t len = first_n; len <= max_n; ++len) {
          if (start + (len - 1) * stride >= cols) break;
          gram.clear();
          for (int64_t k = 0; k < len; ++k) gram.push_back(row[start + k * stride]);
          auto it = pool.find(gram);
          if (it != pool.end()) (*counts)[r * out_size + it->second] += 1.0;
        }
      }
    }
  }
}

Status tfidf_vectorizer_kernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.invalid("missing input X");
  const Tensor& x = ctx.input(0);
  const Node& n = ctx.node();
  if (x.rank() != 1 && x.rank() != 2) return ctx.invalid("X must be 1-D or 2-D, got " + shape_to_string(x.shape()));
  const int64_t min_n = n.attr_int("min_gram_length", 1);
  const int64_t max_n = n.attr_int("max_gram_length", 1);
  const int64_t max_skip = n.attr_int("max_skip_count", 0);
  if (min_n < 1 || max_n < min_n) return ctx.invalid("need 1 <= min_gram_length <= max_gram_length");
  if (max_skip < 0) return ctx.invalid("max_skip_count must be >= 0");
  const std::string mode = n.attr_string("mode", "TF");
  if (mode != "TF" && mode != "IDF" && mode != "TFIDF") return ctx.invalid("unknown mode '" + mode + "'");
  const std::vector<int64_t> ngram_counts = n.attr_ints("ngram_counts");
  const std::vector<int64_t> ngram_indexes = n.attr_ints("ngram_indexes");
  const std::vector<float> weights = n.attr_floats("weights");
  const bool int_pool = n.has_attr("pool_int64s");
  const bool str_pool = n.has_attr("pool_strings");
  if (int_pool == str_pool) return ctx.invalid("exactly one of pool_int64s and pool_strings must be set");
  if (int_pool && x.dtype() != DataType::int32 && x.dtype() != DataType::int64)
    return ctx.invalid("X must be int32 or int64 with pool_int64s");
  if (str_pool && x.dtype() != DataType::string) return ctx.invalid("X must be a string tensor with pool_strings");
  if (ngram_indexes.empty()) return ctx.invalid("ngram_indexes is empty");
  int64_t out_size = 0;
  for (int64_t v : ngram_indexes) {
    if (v < 0) return ctx.invalid("ngram_indexes must be non-negative");
    out_size = std::max(out_size, v + 1);
  }
  if (out_size > (int64_t{1} << 28)) return ctx.invalid("ngram_indexes are too large");
  // onnxruntime (and the ONNX reference implementation) index weights by output coordinate.
  if (mode != "TF" && !weights.empty() && static_cast<int64_t>(weights.size()) < out_size)
    return ctx.invalid("weights has fewer entries than the output has coordinates");

  // Splits the flat pool into n-grams by the CSR-like ngram_counts and maps each to its coordinate.
  auto build_pool = [&]<class Tok>(const std::vector<Tok>& flat, std::map<std::vector<Tok>, int64_t>* pool) -> Status {
    const int64_t size = static_cast<int64_t>(flat.size());
    size_t gram_index = 0;
    for (size_t level = 0; level < ngram_counts.size(); ++level) {
      const int64_t begin = ngram_counts[level];
      const int64_t end = level + 1 < ngram_counts.size() ? ngram_counts[level + 1] : size;
      const int64_t len = static_cast<int64_t>(level) + 1;
      if (begin < 0 || end < begin || end > size || (end - begin) % len != 0)
        return ctx.invalid("ngram_counts do not partition the pool into whole n-grams");
      for (int64_t p = begin; p < end; p += len) {
        if (gram_index >= ngram_indexes.size()) return ctx.invalid("ngram_indexes has fewer entries than the pool");
        std::vector<Tok> g(flat.begin() + p, flat.begin() + p + len);
        (*pool)[g] = ngram_indexes[gram_index++];
      }
    }
    if (gram_index != ngram_indexes.size()) return ctx.invalid("ngram_indexes has more entries than the pool");
    return Status::ok();
  };

  const int64_t rows = x.rank() == 2 ? x.dim(0) : 1;
  const int64_t cols = x.rank() == 2 ? x.dim(1) : x.dim(0);
  if (rows > 0 && out_size > (int64_t{1} << 32) / rows) return ctx.invalid("output is too large");
  std::vector<double> counts(static_cast<size_t>(rows * out_size), 0.0);
  if (int_pool) {
    std::map<std::vector<int64_t>, int64_t> pool;
    TANDEM_RETURN_IF_ERROR(build_pool(n.attr_ints("pool_int64s"), &pool));
    count_ngrams<int64_t>(to_int64_vector(x), rows, cols, pool, min_n, max_n, max_skip, out_size, &counts);
  } else {
    std::map<std::vector<std::string>, int64_t> pool;
    TANDEM_RETURN_IF_ERROR(build_pool(n.attr_strings("pool_strings"), &pool));
    std::vector<std::string> tokens(x.data<std::string>(), x.data<std::string>() + x.numel());
    count_ngrams<std::string>(tokens, rows, cols, pool, min_n, max_n, max_skip, out_size, &counts);
  }

  Tensor out(DataType::float32, x.rank() == 2 ? Shape{rows, out_size} : Shape{out_size});
  float* dst = out.data<float>();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < out_size; ++j) {
      double c = counts[r * out_size + j];
      double w = weights.empty() ? 1.0 : static_cast<double>(weights[j]);
      double v = c;
      if (mode == "IDF") v = c > 0 ? w : 0.0;
      else if (mode == "TFIDF") v = c * w;
      dst[r * out_size + j] = static_cast<float>(v);
    }
  }
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

}  // namespace

void register_text_kernels(KernelTable& t) {
  t.add("", "StringNormalizer", &string_normalizer_kernel);
  t.add("", "TfIdfVectorizer", &tfidf_vectorizer_kernel);
}

}  // namespace tandem
