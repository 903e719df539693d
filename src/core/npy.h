// npy.h: NumPy .npy files (format versions 1-3), for tensors in and out of the CLI, tests and
// benchmarks. Little-endian numeric dtypes and bool; C order only.
#pragma once

#include <filesystem>
#include <string>

#include "tandem/status.h"
#include "tandem/tensor.h"

namespace tandem {

Result<Tensor> read_npy(const std::filesystem::path& path);
// Parses .npy bytes already in memory; `name` prefixes error messages.
Result<Tensor> parse_npy(const std::string& bytes, const std::string& name);
Status write_npy(const std::filesystem::path& path, const Tensor& t);

}  // namespace tandem
