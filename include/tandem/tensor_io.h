// tandem/tensor_io.h: tensors in and out of files, and tensors made up for trying a model.
//
//   auto x = tandem::read_tensor_file("x.npy");          // or an ONNX TensorProto .pb
//   auto r = tandem::random_tensor(tandem::DataType::float32, {1, 3, 48, 192}, /*seed=*/7);
//   tandem::write_npy("y.npy", y);
//
// .npy files: NumPy format versions 1-3, little-endian numeric dtypes and bool, C order.
// Errors are invalid_argument naming the file. Thread-safety: pure functions (each call opens
// its own file).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "tandem/status.h"
#include "tandem/tensor.h"

namespace tandem {

Result<Tensor> read_npy(const std::filesystem::path& path);
// Writes `t` as a version 1 .npy file (string tensors cannot be written).
Status write_npy(const std::filesystem::path& path, const Tensor& t);

// Reads a tensor from a .npy file or an ONNX TensorProto .pb file, chosen by extension.
Result<Tensor> read_tensor_file(const std::filesystem::path& path);

// Parses dims written "1x3x640x640" (also "1,3,640,640"; "scalar" or "" for rank 0).
Result<Shape> parse_dims(const std::string& text);

// A tensor of seeded pseudo-random values: floats uniform in [0, 1), integers in [0, 10),
// bools fair coin flips. The same seed gives the same values on every platform.
Result<Tensor> random_tensor(DataType dtype, const Shape& shape, uint64_t seed);

}  // namespace tandem
