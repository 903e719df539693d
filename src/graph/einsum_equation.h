// einsum_equation.h: the subscripts of an Einsum equation, written once for the reference
// kernel and the backends.
//
// An equation names each operand's dims with letters ("bhqd,bhkd->bhqk"). "..." stands for the
// dims no letter names; those of all operands are right-aligned and broadcast like numpy's. The
// output follows "->"; without it, the output is the ellipsis dims, then every letter used
// exactly once, in ASCII order (uppercase first). Spaces are ignored.
//
// einsum_labels() resolves an equation against the operands' ranks into one label per dim:
// letters are 0-25 ('A'-'Z') and 26-51 ('a'-'z'), the ellipsis dims 52 and up (52 is the
// outermost of the widest ellipsis). A label repeated within one operand names a diagonal.
// Sizes are not checked here: callers that see shapes check that a label's dims agree (or are
// 1, broadcast).
//
// Errors are invalid_argument statuses that say what is wrong with the equation. Pure
// functions: thread-safe, no state.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "tandem/status.h"

namespace tandem {

inline constexpr int kEinsumEllipsisLabel = 52;  // the first ellipsis dim's label

struct EinsumLabels {
  std::vector<std::vector<int>> inputs;  // per operand, the label of each dim
  std::vector<int> output;               // the label of each output dim
  int label_count = 0;                   // labels are < label_count
};

// The labels of `equation` for operands of ranks `ranks`.
Result<EinsumLabels> einsum_labels(const std::string& equation, const std::vector<size_t>& ranks);

}  // namespace tandem
