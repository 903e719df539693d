// loader.h: ONNX protobuf files -> tandem's in-memory Model.
//
// The loader parses the ModelProto, converts initializers (including external-data files,
// refusing any path that leaves the model's folder), attributes and nested graphs, resolves
// each node's opset, and validates the graph structure: every input is defined before use
// (in the graph or an enclosing graph), no cycles, no duplicate producers. Errors are one
// line naming the file and, where one is involved, the node: "model.onnx: [Add 'n1'] ...".
// It does not check that ops are known: placement does, against the backends.
//
// Thread-safety: the functions are re-entrant; each call builds an independent Model.
#pragma once

#include <filesystem>
#include <string_view>

#include "graph/graph.h"
#include "tandem/value.h"

namespace tandem {

// Loads and validates a model file. External data is read relative to the file's folder.
Result<Model> load_model(const std::filesystem::path& path);

// Loads from serialized bytes; `base_dir` resolves external data (empty: external data refused);
// `display_name` prefixes error messages.
Result<Model> load_model_from_bytes(std::string_view bytes, const std::filesystem::path& base_dir,
                                    const std::string& display_name);

// Reads a serialized onnx TensorProto (e.g. a test case's input_0.pb).
Result<Tensor> load_tensor_pb(const std::filesystem::path& path);

// Reads a serialized TensorProto, SequenceProto or OptionalProto, as `type` says the value is.
Result<Value> load_value_pb(const std::filesystem::path& path, const TypeInfo& type);

// Serializes a tensor as an onnx TensorProto (for `tandem run --output-dir` and tools).
Result<std::string> serialize_tensor_pb(const Tensor& t, const std::string& name);

}  // namespace tandem
