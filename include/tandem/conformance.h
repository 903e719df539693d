// tandem/conformance.h: running one case of the ONNX backend-test suite.
//
// A case is a folder holding model.onnx and test_data_set_<n>/ folders of input_<i>.pb and
// output_<i>.pb (serialized TensorProto, SequenceProto or OptionalProto). The model is placed
// on the named backend (nodes it declines on the reference backend), run on every data set,
// and each expected output is compared within the tolerance (tandem/compare.h).
// Thread-safety: re-entrant; cases may run concurrently.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "tandem/compare.h"

namespace tandem {

struct ConformanceResult {
  enum class Outcome { passed, failed, skipped };
  std::string name;  // the case folder's name
  Outcome outcome = Outcome::passed;
  // Why a case failed (the first difference, or the error, naming the output or node) or was
  // skipped: it draws random numbers (random-number ops, Dropout in training mode) or has no
  // data set. Empty when it passed.
  std::string reason;
};

// Runs the case in `case_dir` on `backend` (a name from list_backends(); an unknown name
// fails the case).
ConformanceResult run_conformance_case(const std::filesystem::path& case_dir, std::string_view backend,
                                       const Tolerance& tolerance = {});

}  // namespace tandem
