// model_io.h (private to src/server): a model version's inputs as requests must give them, and
// the check of a request against them (Server::infer's validation). Plain functions.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "model_config.h"
#include "protocol.h"
#include "tandem/engine.h"

namespace tandem::server {

// The dims requests must match for input `io`: the config's input_shapes, else the declared
// dims, -1 for a dim that varies.
std::vector<int64_t> expected_dims(const IoInfo& io, const ModelConfig& config);

// Why a model with this schema cannot be served (nullopt when it can): an input or output that
// is not a tensor (a sequence, optional or map), or a tensor of an element type the protocol
// has no datatype for (complex, 8-bit floats). The Open Inference Protocol carries tensors of
// its datatypes only, so such a model fails to load, with this as its reason, rather than
// report ready and fail every request.
std::optional<std::string> unservable_reason(const IoSchema& schema);

// Unknown, missing or duplicate inputs, a datatype other than the model's, a shape not matching
// the fixed dims, unknown or duplicate requested outputs: bad_request naming the tensor.
std::optional<ProtocolError> validate_request(const InferRequest& request, const IoSchema& schema,
                                              const ModelConfig& config);

}  // namespace tandem::server
