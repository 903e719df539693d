// model_io.cpp: see model_io.h.
#include "model_io.h"

#include <algorithm>
#include <map>

namespace tandem::server {

namespace {

std::string dims_text(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(dims[i]);
  }
  return s + "]";
}

}  // namespace

std::vector<int64_t> expected_dims(const IoInfo& io, const ModelConfig& config) {
  auto it = config.prepare.input_shapes.find(io.name);
  if (it != config.prepare.input_shapes.end()) return it->second;
  std::vector<int64_t> dims;
  for (const IoDim& d : io.dims) dims.push_back(d.value >= 0 ? d.value : -1);
  return dims;
}

std::optional<std::string> unservable_reason(const IoSchema& schema) {
  auto check = [](const IoInfo& io, const char* role) -> std::optional<std::string> {
    if (io.kind != "tensor")
      return std::string(role) + " '" + io.name + "' is a " + io.kind + (io.type.empty() ? "" : " (" + io.type + ")") +
             ", not a tensor: the Open Inference Protocol carries tensors only";
    if (io.dtype != DataType::undefined && protocol_dtype_name(io.dtype).empty())
      return std::string(role) + " '" + io.name + "' is " + io.type +
             ": the Open Inference Protocol has no datatype for " + std::string(dtype_name(io.dtype));
    return std::nullopt;
  };
  for (const IoInfo& io : schema.inputs)
    if (auto reason = check(io, "input")) return reason;
  for (const IoInfo& io : schema.outputs)
    if (auto reason = check(io, "output")) return reason;
  return std::nullopt;
}

std::optional<ProtocolError> validate_request(const InferRequest& request, const IoSchema& schema,
                                              const ModelConfig& config) {
  std::map<std::string, const InferTensor*> given;
  for (const InferTensor& t : request.inputs) {
    if (!given.emplace(t.name, &t).second) return bad_request("input '" + t.name + "' is given twice");
  }
  for (const auto& [name, t] : given) {
    auto io = std::find_if(schema.inputs.begin(), schema.inputs.end(), [&](const IoInfo& i) { return i.name == name; });
    if (io == schema.inputs.end()) return bad_request("model '" + request.model + "' has no input '" + name + "'");
    if (io->dtype != DataType::undefined && t->tensor.dtype() != io->dtype)
      return bad_request("input '" + name + "': datatype " + std::string(protocol_dtype_name(t->tensor.dtype())) +
                         " does not match the model's " + std::string(protocol_dtype_name(io->dtype)));
    const std::vector<int64_t> want = expected_dims(*io, config);
    const std::vector<int64_t>& got = t->tensor.shape();
    bool match = !io->has_shape && !config.prepare.input_shapes.count(name);
    if (!match && want.size() == got.size()) {
      match = true;
      for (size_t i = 0; i < want.size(); ++i) match = match && (want[i] < 0 || want[i] == got[i]);
    }
    if (!match)
      return bad_request("input '" + name + "': shape " + dims_text(got) + " does not match the model's " +
                         dims_text(want));
  }
  for (const IoInfo& io : schema.inputs)
    if (io.required && !given.count(io.name)) return bad_request("input '" + io.name + "' is missing");
  std::map<std::string, int> requested;
  for (const RequestedOutput& o : request.outputs) {
    if (++requested[o.name] > 1) return bad_request("output '" + o.name + "' is requested twice");
    auto io = std::find_if(schema.outputs.begin(), schema.outputs.end(), [&](const IoInfo& i) { return i.name == o.name; });
    if (io == schema.outputs.end()) return bad_request("model '" + request.model + "' has no output '" + o.name + "'");
  }
  return std::nullopt;
}

}  // namespace tandem::server
