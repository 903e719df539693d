// einsum_equation.cpp: see einsum_equation.h.
#include "graph/einsum_equation.h"

#include <algorithm>

namespace tandem {

namespace {

constexpr int kEllipsisMark = -1;

int letter_label(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  return -2;
}

// One term's labels, the ellipsis as kEllipsisMark.
Result<std::vector<int>> parse_term(const std::string& term) {
  std::vector<int> labels;
  bool ellipsis = false;
  for (size_t i = 0; i < term.size();) {
    if (term[i] == '.') {
      if (term.compare(i, 3, "...") != 0) return invalid_argument("malformed ellipsis in '" + term + "'");
      if (ellipsis) return invalid_argument("more than one ellipsis in '" + term + "'");
      ellipsis = true;
      labels.push_back(kEllipsisMark);
      i += 3;
      continue;
    }
    const int l = letter_label(term[i]);
    if (l < 0) return invalid_argument(std::string("invalid character '") + term[i] + "' in the equation");
    labels.push_back(l);
    ++i;
  }
  return labels;
}

}  // namespace

Result<EinsumLabels> einsum_labels(const std::string& equation, const std::vector<size_t>& ranks) {
  std::string eq;
  for (char c : equation)
    if (c != ' ' && c != '\t' && c != '\n') eq.push_back(c);
  if (eq.empty()) return invalid_argument("the equation is empty");
  const size_t arrow = eq.find("->");
  const bool explicit_output = arrow != std::string::npos;
  const std::string lhs = explicit_output ? eq.substr(0, arrow) : eq;
  if (explicit_output && eq.find("->", arrow + 2) != std::string::npos)
    return invalid_argument("the equation has more than one '->'");

  std::vector<std::vector<int>> terms;
  for (size_t start = 0;;) {
    const size_t comma = lhs.find(',', start);
    TANDEM_ASSIGN_OR_RETURN(
        std::vector<int> t,
        parse_term(lhs.substr(start, comma == std::string::npos ? std::string::npos : comma - start)));
    terms.push_back(std::move(t));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (terms.size() != ranks.size())
    return invalid_argument("the equation has " + std::to_string(terms.size()) + " operands, the node " +
                            std::to_string(ranks.size()) + " inputs");

  // Ellipsis widths: the dims no letter names, right-aligned across operands.
  size_t widest = 0;
  std::vector<size_t> width(terms.size(), 0);
  for (size_t i = 0; i < terms.size(); ++i) {
    const bool ellipsis = std::count(terms[i].begin(), terms[i].end(), kEllipsisMark) > 0;
    const size_t named = terms[i].size() - (ellipsis ? 1 : 0);
    if (ellipsis ? ranks[i] < named : ranks[i] != named)
      return invalid_argument("operand " + std::to_string(i) + " has rank " + std::to_string(ranks[i]) +
                              ", which its subscripts do not match");
    width[i] = ranks[i] - named;
    widest = std::max(widest, width[i]);
  }
  EinsumLabels out;
  out.label_count = kEinsumEllipsisLabel + static_cast<int>(widest);
  std::vector<int> uses(static_cast<size_t>(out.label_count), 0);
  for (size_t i = 0; i < terms.size(); ++i) {
    std::vector<int> dims;
    for (int l : terms[i]) {
      if (l != kEllipsisMark) {
        dims.push_back(l);
        continue;
      }
      for (size_t e = 0; e < width[i]; ++e)
        dims.push_back(kEinsumEllipsisLabel + static_cast<int>(widest - width[i] + e));
    }
    for (int l : dims) ++uses[static_cast<size_t>(l)];
    out.inputs.push_back(std::move(dims));
  }

  if (explicit_output) {
    TANDEM_ASSIGN_OR_RETURN(std::vector<int> rhs, parse_term(eq.substr(arrow + 2)));
    for (int l : rhs) {
      if (l == kEllipsisMark) {
        for (size_t e = 0; e < widest; ++e) out.output.push_back(kEinsumEllipsisLabel + static_cast<int>(e));
        continue;
      }
      if (uses[static_cast<size_t>(l)] == 0) return invalid_argument("an output subscript appears in no operand");
      if (std::find(out.output.begin(), out.output.end(), l) != out.output.end())
        return invalid_argument("an output subscript appears more than once");
      out.output.push_back(l);
    }
  } else {
    for (size_t e = 0; e < widest; ++e) out.output.push_back(kEinsumEllipsisLabel + static_cast<int>(e));
    for (int l = 0; l < kEinsumEllipsisLabel; ++l)
      if (uses[static_cast<size_t>(l)] == 1) out.output.push_back(l);
  }
  return out;
}

}  // namespace tandem
