// convert_to_fp16 (tandem/convert.h): serialized bytes in and out of the ONNX converter.
#include "tandem/convert.h"

#include <limits>

#include "onnx/fp16_converter.h"

namespace tandem {

Result<Fp16ModelConversion> convert_to_fp16(std::string_view model_bytes, const Fp16ConvertOptions& options) {
  if (model_bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max()))
    return Status(StatusCode::invalid_model, "the model is larger than a protobuf message may be");
  onnx::ModelProto proto;
  if (!proto.ParseFromArray(model_bytes.data(), static_cast<int>(model_bytes.size())))
    return Status(StatusCode::invalid_model, "not a serialized onnx ModelProto");
  TANDEM_ASSIGN_OR_RETURN(Fp16Conversion converted, convert_model_to_fp16(proto, options));
  Fp16ModelConversion out;
  if (!converted.model.SerializeToString(&out.model_bytes))
    return internal_error("the converted model cannot be serialized");
  out.report = std::move(converted.report);
  return out;
}

}  // namespace tandem
