// `tandem info`: what a model declares and needs, which backends accept each op, and with
// --optimized what a backend makes of it (see docs/cpu-backend.md for the cpu backend's rewrites).
#include <cstdio>
#include <map>

#include "cli_util.h"
#include "commands.h"
#include "tandem/backend_info.h"
#include "tandem/model.h"
#include "tandem/precision.h"

namespace tandem::cli {

namespace {

struct InfoOptions {
  std::string path;
  std::vector<std::string> shapes;
  bool optimized = false;
  std::string backend;  // --optimized: the preferred backend (default: this build's first)
  int threads = 0;      // --optimized: CompileOptions::threads (0: the backend's default)
  std::string precision = "fp32";  // --optimized: CompileOptions::precision
};

// The model as `backend` (with reference fallback) compiles it: placement, then each segment's
// rewritten graph. With every input shape fixed, the cpu backend also lists its kernels.
int print_optimized(const OnnxModel& model, const std::map<std::string, Shape>& shapes, const InfoOptions& o) {
  CompileSettings settings;
  settings.backend = o.backend.empty() ? list_backends().front().name : o.backend;
  settings.threads = o.threads;
  for (const auto& [name, s] : shapes) settings.input_shapes[name] = s;
  auto precision = parse_precision(o.precision);
  if (!precision) return fail("info", precision.status().message(), 2);
  settings.precision = *precision;
  auto compiled = model.compile(settings);
  if (!compiled) return fail("info", compiled.status().message(), compiled.status().code() == StatusCode::invalid_argument ? 2 : 1);
  const PlacementInfo::Route& placement = compiled->placement();
  std::string per_backend;
  for (const auto& [b, count] : placement.nodes_per_backend)
    per_backend += (per_backend.empty() ? "" : ", ") + b + " " + std::to_string(count);
  std::printf("optimized for backend %s: nodes per backend: %s (%d segments)\n", settings.backend.c_str(),
              per_backend.c_str(), placement.segments);
  for (const PlacementInfo::NodeInfo& n : placement.nodes)
    if (n.backend != settings.backend && !n.declined.empty())
      std::printf("  on %s: %s\n", n.backend.c_str(), n.declined.front().second.c_str());  // the reason names the node
  std::fputs(compiled->describe().c_str(), stdout);
  return 0;
}

int info_command(const InfoOptions& o) {
  const std::string& path = o.path;
  auto shapes = parse_shapes(o.shapes);
  if (!shapes) return fail("info", shapes.status().message(), 2);
  auto model = OnnxModel::load(path);
  if (!model) return fail("info", model.status().message());
  const ModelDescription& d = model->description();
  std::printf("model %s\n", path.c_str());
  std::printf("  ir_version %lld, producer %s %s\n", static_cast<long long>(d.ir_version),
              d.producer_name.empty() ? "(unknown)" : d.producer_name.c_str(), d.producer_version.c_str());
  std::printf("opsets\n");
  for (const auto& [domain, version] : d.opsets)
    std::printf("  %s %lld\n", domain.empty() ? "ai.onnx" : domain.c_str(), static_cast<long long>(version));
  std::printf("inputs\n");
  for (const IoInfo& in : d.inputs)
    if (in.required) std::printf("  %s %s\n", in.name.c_str(), in.type.c_str());
  std::printf("outputs\n");
  for (const IoInfo& out : d.outputs) std::printf("  %s %s\n", out.name.c_str(), out.type.c_str());
  if (!shapes->empty()) {
    // With concrete input shapes, show what tandem's own shape inference derives.
    auto inferred = model->infer_output_types(*shapes);
    if (!inferred) return fail("info", inferred.status().message());
    std::printf("outputs for the given input shapes\n");
    for (const IoInfo& out : inferred->outputs) std::printf("  %s %s\n", out.name.c_str(), out.type.c_str());
    for (const std::string& w : inferred->warnings) std::printf("  warning: %s\n", w.c_str());
  }
  std::printf("initializers %zu (%.2f MB)\n", d.initializer_count, static_cast<double>(d.initializer_bytes) / 1e6);
  std::printf("nodes %d\n", d.node_count);
  // Each op with the backends that accept its first node (in preference order), with the
  // element types inference finds for it (unknown inside subgraphs).
  std::vector<std::string> unsupported_ops;
  for (const OpSupport& op : model->op_support(*shapes)) {
    std::string accepted;
    for (const std::string& b : op.backends) accepted += (accepted.empty() ? "" : ", ") + b;
    std::printf("  %-28s %-5d %s\n", op.op.c_str(), op.count, accepted.empty() ? "(no backend)" : accepted.c_str());
    if (accepted.empty()) unsupported_ops.push_back(op.op);
  }
  if (unsupported_ops.empty()) {
    std::printf("every op is supported by at least one backend\n");
  } else {
    std::printf("ops no backend can run\n");
    for (const auto& op : unsupported_ops) std::printf("  %s\n", op.c_str());
  }
  if (!unsupported_ops.empty()) return 3;
  return o.optimized ? print_optimized(*model, *shapes, o) : 0;
}

}  // namespace

void add_info_command(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("info", "Print a model's inputs, outputs, opsets and ops");
  auto o = std::make_shared<InfoOptions>();
  cmd->add_option("model", o->path, "ONNX model file")->required();
  cmd->add_option("--shape", o->shapes, "NAME=DIMS: infer the outputs' shapes for these input shapes; repeatable");
  cmd->add_flag("--optimized", o->optimized,
                "Also print the graph as a backend rewrites it: placement, folded and fused steps, and (with every "
                "input shape fixed) kernels, shapes and layouts");
  cmd->add_option("--backend", o->backend, "With --optimized: the backend to compile for (default: the preferred one)");
  cmd->add_option("--precision", o->precision, "With --optimized: the lowest precision to compile for (fp32, bf16, fp16, int8: the quantized rewrite)");
  cmd->add_option("--threads", o->threads, "With --optimized: threads to compile for (default: physical cores)")
      ->check(CLI::NonNegativeNumber);
  cmd->callback([o, exit_code] { *exit_code = info_command(*o); });
}

}  // namespace tandem::cli
