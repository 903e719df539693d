// fuzz_rest_request.cpp: libFuzzer entry point for the REST inference request decoder
// (src/server/rest_codec.h).
//
// The first byte chooses the Inference-Header-Content-Length header: absent (even), or present
// (odd) with the next two bytes as its little-endian value; every 8th input instead uses the
// following four bytes as the header's raw text, to reach the header parser's error paths. The
// rest is the body. The decoder must answer a request whose tensors are as declared, or one
// error line with a 400 or 413; it must never crash, leak, or allocate past the limits. Each
// input is also decoded with its large tensors parsed in pieces, and with binary inputs sharing
// the body's buffer, which must answer the same.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz_fail.h"
#include "server/rest_codec.h"
#include "server/side_tasks.h"

using tandem::fuzz::fail;

namespace {

// Another decode of the same body (`what` it did differently) must give what the plain decode
// gave: the same error, or the same tensors bit for bit.
void check_same_decode(const char* what, const std::optional<tandem::server::ProtocolError>& whole_error,
                       const tandem::server::InferRequest& whole,
                       const std::optional<tandem::server::ProtocolError>& other_error,
                       const tandem::server::InferRequest& other) {
  const std::string label(what);
  if (whole_error || other_error) {
    if (!whole_error || !other_error || whole_error->message != other_error->message ||
        whole_error->http_status != other_error->http_status)
      fail(label + " differs: '" + (whole_error ? whole_error->message : "ok") + "' against '" +
           (other_error ? other_error->message : "ok") + "'");
    return;
  }
  if (other.inputs.size() != whole.inputs.size() || other.id != whole.id) fail(label + " differs in its inputs");
  for (size_t i = 0; i < whole.inputs.size(); ++i) {
    const tandem::Tensor& a = whole.inputs[i].tensor;
    const tandem::Tensor& b = other.inputs[i].tensor;
    if (a.dtype() != b.dtype() || a.shape() != b.shape()) fail(label + " differs in a tensor's type or shape");
    if (a.dtype() == tandem::DataType::string) {
      for (int64_t k = 0; k < a.numel(); ++k)
        if (a.data<std::string>()[k] != b.data<std::string>()[k]) fail(label + " differs in a string");
    } else if (a.nbytes() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) != 0) {
      fail(label + " differs in tensor '" + whole.inputs[i].name + "'");
    }
  }
}

// Large tensors parsed in pieces (rest_json_split.h, here with sizes small enough for fuzz
// inputs, and no helper threads: the pieces run in turn).
void check_split_decode(std::string_view body, std::optional<std::string_view> header,
                        const tandem::server::RequestLimits& limits,
                        const std::optional<tandem::server::ProtocolError>& whole_error,
                        const tandem::server::InferRequest& whole) {
  using namespace tandem::server;
  static SideTasks no_helpers(0);
  JsonSplitOptions options;
  options.helpers = &no_helpers;
  options.min_span_bytes = 32;
  options.min_piece_bytes = 3;
  options.max_pieces = 4;
  InferRequest split;
  auto split_error = decode_rest_infer_request(body, header, limits, &split, &options);
  check_same_decode("split decode", whole_error, whole, split_error, split);
}

// The body in a buffer of its own, given as the owner: binary inputs may share it instead of
// being copied. Freed before the tensors are compared, they must still read it.
void check_shared_decode(std::string_view body, std::optional<std::string_view> header,
                         const tandem::server::RequestLimits& limits,
                         const std::optional<tandem::server::ProtocolError>& whole_error,
                         const tandem::server::InferRequest& whole) {
  using namespace tandem::server;
  InferRequest shared;
  std::optional<ProtocolError> shared_error;
  {
    auto owner = std::shared_ptr<char[]>(new char[body.size() + 1]);
    if (!body.empty()) std::memcpy(owner.get(), body.data(), body.size());
    shared_error =
        decode_rest_infer_request(std::string_view(owner.get(), body.size()), header, limits, &shared, nullptr, owner);
  }
  check_same_decode("decode sharing the body", whole_error, whole, shared_error, shared);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tandem::server;
  if (size < 1) return 0;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  const uint8_t mode = data[0];
  input.remove_prefix(1);
  std::optional<std::string> header;
  if (mode % 8 == 7 && input.size() >= 4) {
    header = std::string(input.substr(0, 4));
    input.remove_prefix(4);
  } else if (mode % 2 == 1 && input.size() >= 2) {
    header = std::to_string(static_cast<unsigned>(static_cast<uint8_t>(input[0])) |
                            (static_cast<unsigned>(static_cast<uint8_t>(input[1])) << 8));
    input.remove_prefix(2);
  }

  RequestLimits limits;
  limits.max_body_bytes = 1 << 20;
  limits.max_tensor_bytes = 1 << 20;
  limits.max_tensors = 16;
  InferRequest request;
  std::optional<std::string_view> header_view;
  if (header) header_view = *header;
  auto error = decode_rest_infer_request(input, header_view, limits, &request);
  check_split_decode(input, header_view, limits, error, request);
  check_shared_decode(input, header_view, limits, error, request);
  if (error) {
    if ((error->http_status != 400 && error->http_status != 413) || error->message.empty() ||
        error->message.find('\n') != std::string::npos)
      fail("bad error: " + std::to_string(error->http_status) + " " + error->message);
    (void)encode_rest_error(*error);
    return 0;
  }
  if (request.inputs.size() > limits.max_tensors || request.outputs.size() > limits.max_tensors)
    fail("more tensors than the limit");
  for (const InferTensor& t : request.inputs) {
    if (t.tensor.nbytes() > limits.max_tensor_bytes) fail("input '" + t.name + "' past the tensor limit");
    if (t.tensor.numel() > 0 && t.tensor.dtype() != tandem::DataType::string) {
      // Touch every byte so that ASan sees a buffer that is too small.
      const auto* p = static_cast<const unsigned char*>(t.tensor.raw_data());
      unsigned sum = 0;
      for (size_t i = 0; i < t.tensor.nbytes(); ++i) sum += p[i];
      if (sum == 0xffffffffu) std::fprintf(stderr, "%u\n", sum);
    }
  }
  // What decodes must encode again as a response.
  InferResponse response;
  response.outputs = request.inputs;
  for (InferTensor& t : response.outputs) t.binary = request.binary_outputs;
  RestBody body = encode_rest_infer_response(response);
  if (body.header_length && *body.header_length > body.body.size()) fail("response header length past its body");
  return 0;
}
