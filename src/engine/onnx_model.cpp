// OnnxModel and CompiledModel (tandem/model.h) over the loader, shape inference, the backend
// registry and PlacedModel.
#include "tandem/model.h"

#include "backends/backend.h"
#include <fstream>
#include <iterator>

#include "engine/inputs.h"
#include "engine/int8_model.h"
#include "engine/placement.h"
#include "engine/prepared_model.h"
#include "onnx/loader.h"
#include "passes/shape_inference.h"

namespace tandem {

struct OnnxModel::Impl {
  Model model;
  ModelDescription description;
  // Where the model came from, for compile() at Precision::int8, which rewrites the serialized
  // model (int8_model.h): the file (load), or a copy of the bytes (from_bytes).
  std::filesystem::path path;
  std::string bytes;
  std::filesystem::path base_dir;
  std::string display_name;
};

struct CompiledModel::Impl {
  std::shared_ptr<const Graph> graph;  // as compiled (input shapes fixed)
  std::unique_ptr<PlacedModel> placed;
  std::vector<IoInfo> inputs, outputs;
  PlacementInfo::Route placement;
};

namespace {

std::string op_key(const Node& n) { return (n.domain.empty() ? "" : n.domain + ":") + n.op_type; }

void count_ops(const Graph& g, std::map<std::string, int>& counts, std::map<std::string, const Node*>& examples) {
  for (const Node& n : g.nodes) {
    counts[op_key(n)]++;
    examples.emplace(op_key(n), &n);
    for (const Graph* sub : subgraphs_of(n)) count_ops(*sub, counts, examples);
  }
}

ModelDescription describe_model(const Model& m) {
  const Graph& g = *m.graph;
  ModelDescription d;
  d.ir_version = m.ir_version;
  d.producer_name = m.producer_name;
  d.producer_version = m.producer_version;
  d.opsets = m.opsets;
  d.metadata = m.metadata;
  for (const ValueInfo& vi : g.inputs) d.inputs.push_back(describe_io(g, vi, true));
  for (const ValueInfo& vi : g.outputs) d.outputs.push_back(describe_io(g, vi, false));
  d.initializer_count = g.initializers.size();
  for (const auto& [name, t] : g.initializers) d.initializer_bytes += t.nbytes();
  std::map<std::string, int> counts;
  std::map<std::string, const Node*> examples;
  count_ops(g, counts, examples);
  for (const auto& [op, c] : counts) d.node_count += c;
  return d;
}

}  // namespace

Result<OnnxModel> OnnxModel::load(const std::filesystem::path& path) {
  TANDEM_ASSIGN_OR_RETURN(Model loaded, load_model(path));
  auto impl = std::make_shared<Impl>();
  impl->description = describe_model(loaded);
  impl->model = std::move(loaded);
  impl->path = path;
  impl->base_dir = path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path();
  impl->display_name = path.filename().string();
  OnnxModel m;
  m.impl_ = std::move(impl);
  return m;
}

Result<OnnxModel> OnnxModel::from_bytes(std::string_view bytes, const std::filesystem::path& base_dir,
                                        const std::string& display_name) {
  TANDEM_ASSIGN_OR_RETURN(Model loaded, load_model_from_bytes(bytes, base_dir, display_name));
  auto impl = std::make_shared<Impl>();
  impl->description = describe_model(loaded);
  impl->model = std::move(loaded);
  impl->bytes = std::string(bytes);
  impl->base_dir = base_dir;
  impl->display_name = display_name;
  OnnxModel m;
  m.impl_ = std::move(impl);
  return m;
}

const ModelDescription& OnnxModel::description() const { return impl_->description; }

Result<OutputTypes> OnnxModel::infer_output_types(const std::map<std::string, Shape>& input_shapes) const {
  const Graph& g = *impl_->model.graph;
  TANDEM_ASSIGN_OR_RETURN(ShapeInferenceResult inferred, infer_shapes(g, input_shapes));
  OutputTypes out;
  for (const ValueInfo& vi : g.outputs) {
    IoInfo info;
    info.name = vi.name;
    if (const TypeInfo* t = inferred.type_of(vi.name)) {
      info = describe_io(g, ValueInfo{vi.name, *t}, false);
    } else {
      info.type = "unknown";
    }
    out.outputs.push_back(std::move(info));
  }
  out.warnings = inferred.warnings;
  return out;
}

std::vector<OpSupport> OnnxModel::op_support(const std::map<std::string, Shape>& input_shapes) const {
  const Graph& g = *impl_->model.graph;
  std::map<std::string, int> counts;
  std::map<std::string, const Node*> examples;
  count_ops(g, counts, examples);
  auto typed = infer_shapes(g, input_shapes);
  std::vector<OpSupport> ops;
  for (const auto& [op, c] : counts) {
    OpSupport s{op, c, {}};
    const NodeTypes types = typed ? node_types(*examples[op], *typed) : NodeTypes{};
    for (std::string_view name : available_backends())
      if (find_backend(name)->supports(*examples[op], types).is_ok()) s.backends.emplace_back(name);
    ops.push_back(std::move(s));
  }
  return ops;
}

Result<CompiledModel> OnnxModel::compile(const CompileSettings& settings) const {
  const std::string name = settings.backend.empty() ? std::string(available_backends().front()) : settings.backend;
  Backend* backend = find_backend(name);
  if (!backend) return invalid_argument("unknown backend '" + name + "'");
  TANDEM_RETURN_IF_ERROR(backend->supports_precision(settings.precision));
  std::shared_ptr<Graph> graph;
  if (settings.precision == Precision::int8) {  // the quantized rewrite (int8_model.h)
    std::string file_bytes;
    if (!impl_->path.empty()) {
      std::ifstream in(impl_->path, std::ios::binary);
      if (!in) return invalid_argument(impl_->path.string() + ": cannot open the model file");
      file_bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      if (in.bad()) return invalid_argument(impl_->path.string() + ": cannot read the model file");
    }
    TANDEM_ASSIGN_OR_RETURN(Int8Model q, quantize_for_int8(impl_->path.empty() ? impl_->bytes : file_bytes,
                                                           *impl_->model.graph, impl_->base_dir, impl_->display_name));
    graph = q.model.graph;
  } else {
    graph = std::make_shared<Graph>(*impl_->model.graph);
  }
  TANDEM_RETURN_IF_ERROR(fix_input_shapes(*graph, settings.input_shapes));
  std::vector<Backend*> backends{backend};
  if (!backend->is_reference()) backends.push_back(reference_backend());
  CompileOptions options;
  options.threads = settings.threads;
  options.precision = settings.precision;
  if (!settings.cache_dir.empty()) {
    TANDEM_RETURN_IF_ERROR(make_cache_folder(settings.cache_dir));
    options.cache_dir = settings.cache_dir;
  }
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<PlacedModel> placed, PlacedModel::create(graph, backends, options));
  auto impl = std::make_shared<CompiledModel::Impl>();
  impl->graph = graph;
  for (const ValueInfo& vi : graph->inputs) impl->inputs.push_back(describe_io(*graph, vi, true));
  for (const ValueInfo& vi : graph->outputs) impl->outputs.push_back(describe_io(*graph, vi, false));
  const PlacementReport& report = placed->report();
  impl->placement.backend = name;
  for (const NodePlacement& np : report.nodes) impl->placement.nodes.push_back({np.node, np.op_type, np.backend, np.declined});
  impl->placement.nodes_per_backend = report.nodes_per_backend;
  impl->placement.segments = report.segments;
  impl->placed = std::move(placed);
  CompiledModel compiled;
  compiled.impl_ = std::move(impl);
  return compiled;
}

const std::vector<IoInfo>& CompiledModel::inputs() const { return impl_->inputs; }
const std::vector<IoInfo>& CompiledModel::outputs() const { return impl_->outputs; }

Result<std::vector<Value>> CompiledModel::bind(const std::map<std::string, Value>& inputs) const {
  return bind_inputs(*impl_->graph, inputs);
}

Status CompiledModel::run(const std::vector<Value>& inputs, std::vector<Value>* outputs) const {
  return impl_->placed->run(inputs, outputs);
}

const PlacementInfo::Route& CompiledModel::placement() const { return impl_->placement; }

std::string CompiledModel::describe() const { return impl_->placed->describe(); }

}  // namespace tandem
