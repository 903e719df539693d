// read_tensor_file (tandem/tensor_io.h): .npy through core/npy.h, TensorProto .pb through the
// ONNX loader. read_npy and write_npy are core/npy.cpp's; parse_dims and random_tensor are
// inputs.cpp's.
#include "tandem/tensor_io.h"

#include "core/npy.h"
#include "onnx/loader.h"

namespace tandem {

Result<Tensor> read_tensor_file(const std::filesystem::path& path) {
  const std::string ext = path.extension().string();
  if (ext == ".npy") return read_npy(path);
  if (ext == ".pb") {
    auto t = load_tensor_pb(path);
    if (!t) return Status(StatusCode::invalid_argument, t.status().message());
    return t;
  }
  return invalid_argument(path.string() + ": unknown file type; use .npy or an ONNX TensorProto .pb");
}

}  // namespace tandem
