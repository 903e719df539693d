// cli_util.h: helpers shared by the CLI's subcommands.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "tandem/value.h"

namespace tandem::cli {

// Prints "tandem <command>: <message>" on stderr and returns `code`.
int fail(const std::string& command, const std::string& message, int code = 1);

// Parses repeated NAME=VALUE options, splitting at the first '='.
Result<std::map<std::string, std::string>> parse_assignments(const std::vector<std::string>& items,
                                                             const std::string& option);
// Parses repeated --shape NAME=DIMS options.
Result<std::map<std::string, Shape>> parse_shapes(const std::vector<std::string>& items);

// Reads a tensor from .npy or an ONNX TensorProto .pb file (by extension).
Result<Tensor> read_tensor_file(const std::string& path);

// "x" -> "x"; "out/0:1" -> "out_0_1": characters outside [A-Za-z0-9._-] become '_'.
std::string sanitize_file_name(const std::string& name);

// "min -0.5 max 3.25 mean 0.875" for numeric tensors; a preview for strings.
std::string summarize(const Tensor& t);

}  // namespace tandem::cli
