// fuzz_grpc_request.cpp: libFuzzer entry point for the gRPC inference request decoder
// (src/server/grpc_codec.h).
//
// The input is a serialized inference.ModelInferRequest. The decoder must answer a request whose
// tensors are as declared (unique names, shapes within the limits), or one error line with a 400
// or 413; it must never crash, leak, or allocate past the limits. A decoded request's tensors are
// then encoded as a response and decoded again, which must give the same tensors.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>

#include "fuzz_fail.h"
#include "server/grpc_codec.h"

namespace {

using tandem::fuzz::fail;

bool same_elements(const tandem::Tensor& a, const tandem::Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  if (a.dtype() == tandem::DataType::string) {
    for (int64_t i = 0; i < a.numel(); ++i)
      if (a.data<std::string>()[i] != b.data<std::string>()[i]) return false;
    return true;
  }
  if (a.dtype() == tandem::DataType::boolean) {
    for (int64_t i = 0; i < a.numel(); ++i)
      if (a.data<bool>()[i] != b.data<bool>()[i]) return false;
    return true;
  }
  return a.nbytes() == b.nbytes() && (a.nbytes() == 0 || std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0);
}

}  // namespace

// Quiets protobuf's log line for every string field with invalid UTF-8 (the parse fails; that
// is all the fuzzer needs to know).
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tandem::server;
  inference::ModelInferRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;

  RequestLimits limits;
  limits.max_tensor_bytes = 1u << 20;
  limits.max_tensors = 16;
  InferRequest decoded;
  inference::ModelInferRequest taken = request;  // the decoder takes raw contents over
  if (auto err = decode_grpc_infer_request(&taken, limits, &decoded)) {
    if (err->message.empty() || err->message.find('\n') != std::string::npos)
      fail("error message is empty or not one line: " + err->message);
    if (err->http_status != 400 && err->http_status != 413)
      fail("unexpected HTTP status " + std::to_string(err->http_status) + ": " + err->message);
    return 0;
  }

  if (decoded.inputs.size() != static_cast<size_t>(request.inputs_size())) fail("input count differs");
  std::set<std::string> names;
  for (const InferTensor& input : decoded.inputs) {
    if (!names.insert(input.name).second) fail("duplicate input '" + input.name + "' accepted");
    if (!input.tensor.defined()) fail("input '" + input.name + "' has no datatype");
    if (input.tensor.nbytes() > limits.max_tensor_bytes) fail("input '" + input.name + "' exceeds the size limit");
  }

  // Round trip: what the encoder writes, the decoder reads back unchanged.
  InferResponse response;
  response.outputs = decoded.inputs;
  inference::ModelInferResponse encoded;
  encode_grpc_infer_response(response, &encoded);
  inference::ModelInferRequest again;
  again.set_model_name(request.model_name());
  for (int i = 0; i < encoded.outputs_size(); ++i) {
    auto* input = again.add_inputs();
    input->set_name(encoded.outputs(i).name());
    input->set_datatype(encoded.outputs(i).datatype());
    *input->mutable_shape() = encoded.outputs(i).shape();
    again.add_raw_input_contents(encoded.raw_output_contents(i));
  }
  InferRequest redecoded;
  if (auto err = decode_grpc_infer_request(&again, limits, &redecoded)) fail("round trip refused: " + err->message);
  for (size_t i = 0; i < decoded.inputs.size(); ++i)
    if (!same_elements(decoded.inputs[i].tensor, redecoded.inputs[i].tensor))
      fail("round trip changed input '" + decoded.inputs[i].name + "'");
  return 0;
}
