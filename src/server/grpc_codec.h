// grpc_codec.h: ModelInferRequest -> InferRequest and InferResponse -> ModelInferResponse
// (proto/grpc_predict_v2.proto). Kept apart from the service so that it can be fuzzed.
// Raw contents (raw_input_contents[i] for inputs[i]) take precedence; otherwise the typed
// `contents` field of the input's datatype is read. Every declared size is checked against the
// data and the limits (ProtocolError 400 / 413) before anything is allocated.
// Ownership: raw contents of fixed-size datatypes other than BOOL are moved out of the request
// into the decoded tensors, which share them (the 110 KB of an image are not copied again); the
// message keeps the rest, and an entry taken over is left empty, whatever the result.
// Thread-safety: functions of their arguments only.
#pragma once

#include <optional>

#include "grpc_predict_v2.pb.h"
#include "protocol.h"

namespace tandem::server {

std::optional<ProtocolError> decode_grpc_infer_request(inference::ModelInferRequest* in, const RequestLimits& limits,
                                                       InferRequest* out);
// Outputs go into raw_output_contents.
void encode_grpc_infer_response(const InferResponse& in, inference::ModelInferResponse* out);

}  // namespace tandem::server
