// fuzz_einsum_equation.cpp: libFuzzer entry point for the Einsum equation parser
// (graph/einsum_equation.h), which the reference kernel, shape inference and the cpu backend
// share.
//
// The first byte gives the operand count (1-3) and the next ones their ranks (0-7); the rest is
// the equation. The parser must give one error line, or labels that fit the ranks: one per
// operand dim, every label below label_count, every output label used by some operand and none
// twice.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "fuzz_fail.h"
#include "graph/einsum_equation.h"

using tandem::fuzz::fail;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t operands = 1 + data[0] % 3;
  if (size < 1 + operands) return 0;
  std::vector<size_t> ranks;
  for (size_t i = 0; i < operands; ++i) ranks.push_back(data[1 + i] % 8);
  const std::string equation(reinterpret_cast<const char*>(data + 1 + operands), size - 1 - operands);
  auto parsed = tandem::einsum_labels(equation, ranks);
  if (!parsed) {
    const tandem::Status status = parsed.status();
    if (status.message().empty() || status.message().find('\n') != std::string::npos) fail("bad error message");
    return 0;
  }
  if (parsed->inputs.size() != operands) fail("operand count differs");
  std::vector<int> used(static_cast<size_t>(parsed->label_count), 0);
  for (size_t i = 0; i < operands; ++i) {
    if (parsed->inputs[i].size() != ranks[i]) fail("labels do not match the rank");
    for (int l : parsed->inputs[i]) {
      if (l < 0 || l >= parsed->label_count) fail("label out of range");
      used[static_cast<size_t>(l)]++;
    }
  }
  for (size_t j = 0; j < parsed->output.size(); ++j) {
    const int l = parsed->output[j];
    if (l < 0 || l >= parsed->label_count || used[static_cast<size_t>(l)] == 0) fail("output label not in an operand");
    if (std::count(parsed->output.begin(), parsed->output.end(), l) != 1) fail("output label twice");
  }
  return 0;
}
