// precision.cpp: the names of tandem/precision.h's precisions.
#include "tandem/precision.h"

#include <string>

namespace tandem {

std::string_view precision_name(Precision p) {
  switch (p) {
    case Precision::fp32:
      return "fp32";
    case Precision::fp16:
      return "fp16";
    case Precision::bf16:
      return "bf16";
    case Precision::int8:
      return "int8";
  }
  return "unknown";
}

Result<Precision> parse_precision(std::string_view text) {
  for (Precision p : {Precision::fp32, Precision::fp16, Precision::bf16, Precision::int8})
    if (precision_name(p) == text) return p;
  return invalid_argument("unknown precision '" + std::string(text) + "' (use fp32, fp16, bf16, int8)");
}

}  // namespace tandem
