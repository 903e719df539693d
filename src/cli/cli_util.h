// cli_util.h: helpers shared by the CLI's subcommands.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "tandem/engine.h"
#include "tandem/status.h"
#include "tandem/tensor.h"

namespace tandem::cli {

// Prints "tandem <command>: <message>" on stderr and returns `code`.
int fail(const std::string& command, const std::string& message, int code = 1);

// Parses repeated NAME=VALUE options, splitting at the first '='.
Result<std::map<std::string, std::string>> parse_assignments(const std::vector<std::string>& items,
                                                             const std::string& option);
// Parses repeated --shape NAME=DIMS options.
Result<std::map<std::string, Shape>> parse_shapes(const std::vector<std::string>& items);

// The shape to feed input `in`: `*override_shape` (from --shape), which must have the declared
// rank and agree with the fixed dims; without one, the declared dims, which must all be fixed.
Result<Shape> concrete_shape(const IoInfo& in, const Shape* override_shape);

// "x" -> "x"; "out/0:1" -> "out_0_1": characters outside [A-Za-z0-9._-] become '_'.
std::string sanitize_file_name(const std::string& name);

// "min -0.5 max 3.25 mean 0.875" for numeric tensors; a preview for strings.
std::string summarize(const Tensor& t);

}  // namespace tandem::cli
