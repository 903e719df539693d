// tandem/model.h: an ONNX model as tandem reads it, for looking at and for running directly.
//
//   auto model = tandem::OnnxModel::load("m.onnx");
//   const tandem::ModelDescription& d = model->description();   // inputs, outputs, opsets, ops
//   auto compiled = model->compile({.backend = "cpu"});           // placed and compiled once
//   auto bound = compiled->bind({{"x", tandem::Value::of(x)}});
//   std::vector<tandem::Value> outputs;
//   compiled->run(*bound, &outputs);                               // on the calling thread
//
// OnnxModel is the parsed, validated model (the loader's one-line errors name the file and
// node). CompiledModel is the model placed on one backend, nodes that backend declines on the
// reference backend, and compiled: the shortest path from inputs to outputs, with no routes,
// no fallback, no time budgets and no worker threads. Applications that serve requests use
// the Engine (tandem/engine.h); CompiledModel is for tools, benchmarks and tests that want one
// backend's answer and its cost.
//
// Ownership: both are cheap-to-copy handles to immutable shared state; a CompiledModel keeps
// what it needs alive on its own (it may outlive its OnnxModel).
// Thread-safety: every method is const and thread-safe; many threads may run() one
// CompiledModel at once, each with its own outputs vector.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tandem/engine.h"
#include "tandem/precision.h"
#include "tandem/status.h"
#include "tandem/value.h"

namespace tandem {

// One op type of a model: how many nodes use it and which backends accept it.
struct OpSupport {
  std::string op;  // "Conv", or "domain:Op" outside the default domain
  int count = 0;   // nodes, nested graphs included
  // The backends (list_backends() order) that accept the first node of this type, judged with
  // the element types shape inference finds for it (unknown inside nested graphs).
  std::vector<std::string> backends;
};

struct ModelDescription {
  int64_t ir_version = 0;
  std::string producer_name;
  std::string producer_version;
  std::map<std::string, int64_t> opsets;  // domain ("" is ai.onnx) -> version
  std::map<std::string, std::string> metadata;
  // Every graph input (those an initializer backs have IoInfo::required false) and output.
  std::vector<IoInfo> inputs;
  std::vector<IoInfo> outputs;
  size_t initializer_count = 0;
  uint64_t initializer_bytes = 0;
  int node_count = 0;  // nested graphs included
};

// What shape inference derives for the graph outputs from concrete input shapes.
struct OutputTypes {
  std::vector<IoInfo> outputs;        // IoInfo::type is "unknown" where nothing was derived
  std::vector<std::string> warnings;  // one line each
};

struct CompileSettings {
  std::string backend;  // empty: the first of list_backends()
  int threads = 0;      // 0: the backend's default
  // The backend must honour it natively. int8 compiles the model rewritten with dynamic
  // quantization (per-channel int8 weights, activations quantized per call; see
  // tandem/precision.h): unsupported when nothing in it can be quantized.
  Precision precision = Precision::fp32;
  // Fixed input shapes that specialise compilation (requests must then match them).
  std::map<std::string, std::vector<int64_t>> input_shapes;
  // Where backends keep what they measured while compiling (the cpu backend's timed kernel
  // choices) for later compiles to reuse: the same folder as EngineOptions::cache_dir, so a
  // benchmark and an engine sharing it compile alike. Created if missing. Empty: none kept.
  std::filesystem::path cache_dir;
};

class CompiledModel {
 public:
  // The inputs and outputs as compiled (dims fixed by CompileSettings::input_shapes).
  const std::vector<IoInfo>& inputs() const;
  const std::vector<IoInfo>& outputs() const;
  // Checks named values against the declared inputs (dtype, rank, fixed dims; no unknown
  // names; every required input present) and orders them for run(). Errors name the input.
  Result<std::vector<Value>> bind(const std::map<std::string, Value>& inputs) const;
  // Runs once on the calling thread. `inputs` come from bind(); `*outputs` receives the
  // outputs in declared order. Tensors an earlier run left in `*outputs` are written in place
  // when their dtype and shape still fit and nobody else holds them (a loop that keeps one
  // outputs vector allocates nothing on the cpu backend). On failure `*outputs` is unspecified.
  Status run(const std::vector<Value>& inputs, std::vector<Value>* outputs) const;
  // Where each node runs (PlacementInfo::Route::backend is the backend compiled for).
  const PlacementInfo::Route& placement() const;
  // Each segment (backend, node count) and what its backend made of it: folded constants,
  // fusions and, with every input shape fixed, kernels and layouts; one item a line.
  std::string describe() const;

 private:
  friend class OnnxModel;
  CompiledModel() = default;
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

class OnnxModel {
 public:
  // Reads and validates a model file; external data is read relative to its folder.
  static Result<OnnxModel> load(const std::filesystem::path& path);
  // The same from serialized bytes; `base_dir` resolves external data (empty: refused) and
  // `display_name` prefixes error messages. The model keeps a copy of the bytes (compile at
  // Precision::int8 rewrites them); a model from load() re-reads its file instead.
  static Result<OnnxModel> from_bytes(std::string_view bytes, const std::filesystem::path& base_dir,
                                      const std::string& display_name);

  const ModelDescription& description() const;
  // The output types shape inference derives for these input shapes (by input name).
  Result<OutputTypes> infer_output_types(const std::map<std::string, Shape>& input_shapes) const;
  // Every op type, sorted by name, with the backends that accept it. `input_shapes` sharpen
  // the element types backends are asked about (inputs not named keep their declared dims).
  std::vector<OpSupport> op_support(const std::map<std::string, Shape>& input_shapes = {}) const;
  // Places and compiles the model. Errors: invalid_argument for an unknown backend or input
  // shapes that disagree with the model; unsupported for a precision the backend cannot
  // honour natively; the backend's own errors otherwise.
  Result<CompiledModel> compile(const CompileSettings& settings = {}) const;

 private:
  OnnxModel() = default;
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace tandem
