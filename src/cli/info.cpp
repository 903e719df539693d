// `tandem info`: what a model declares and needs, which backends accept each op, and with
// --optimized what a backend makes of it (see docs/cpu-backend.md for the cpu backend's rewrites).
#include <cstdio>
#include <map>

#include "tandem/precision.h"
#include "backends/backend.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "engine/placement.h"
#include "passes/shape_inference.h"
#include "onnx/loader.h"

namespace tandem::cli {

namespace {

void count_ops(const Graph& g, std::map<std::string, int>& counts, std::map<std::string, const Node*>& examples) {
  for (const Node& n : g.nodes) {
    const std::string key = (n.domain.empty() ? "" : n.domain + ":") + n.op_type;
    counts[key]++;
    examples.emplace(key, &n);
    for (const Graph* sub : subgraphs_of(n)) count_ops(*sub, counts, examples);
  }
}

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
int print_optimized(const Graph& g, const std::map<std::string, Shape>& shapes, const InfoOptions& o) {
  const std::string name = o.backend.empty() ? std::string(available_backends().front()) : o.backend;
  Backend* backend = find_backend(name);
  if (!backend) return fail("info", "unknown backend '" + name + "'", 2);
  auto graph = std::make_shared<Graph>(g);
  Status fixed = fix_input_shapes(*graph, shapes);
  if (!fixed.is_ok()) return fail("info", fixed.message(), 2);
  std::vector<Backend*> backends{backend};
  if (backend->name() != "reference") backends.push_back(find_backend("reference"));
  CompileOptions options;
  options.threads = o.threads;
  auto precision = parse_precision(o.precision);
  if (!precision) return fail("info", precision.status().message(), 2);
  options.precision = *precision;
  if (Status ps = backend->supports_precision(*precision); !ps.is_ok()) return fail("info", ps.message());
  auto placed = PlacedModel::create(graph, backends, options);
  if (!placed) return fail("info", placed.status().message());
  const PlacementReport& report = (*placed)->report();
  std::string per_backend;
  for (const auto& [b, count] : report.nodes_per_backend)
    per_backend += (per_backend.empty() ? "" : ", ") + b + " " + std::to_string(count);
  std::printf("optimized for backend %s: nodes per backend: %s (%d segments)\n", name.c_str(), per_backend.c_str(),
              report.segments);
  for (const NodePlacement& n : report.nodes)
    if (n.backend != name && !n.declined.empty())
      std::printf("  on %s: %s\n", n.backend.c_str(), n.declined.front().second.c_str());  // the reason names the node
  std::fputs((*placed)->describe().c_str(), stdout);
  return 0;
}

int info_command(const InfoOptions& o) {
  const std::string& path = o.path;
  const std::vector<std::string>& shape_args = o.shapes;
  auto shapes = parse_shapes(shape_args);
  if (!shapes) return fail("info", shapes.status().message(), 2);
  auto model = load_model(path);
  if (!model) return fail("info", model.status().message());
  const Graph& g = *model->graph;
  std::printf("model %s\n", path.c_str());
  std::printf("  ir_version %lld, producer %s %s\n", static_cast<long long>(model->ir_version),
              model->producer_name.empty() ? "(unknown)" : model->producer_name.c_str(), model->producer_version.c_str());
  std::printf("opsets\n");
  for (const auto& [domain, version] : model->opsets)
    std::printf("  %s %lld\n", domain.empty() ? "ai.onnx" : domain.c_str(), static_cast<long long>(version));
  std::printf("inputs\n");
  for (const auto& vi : g.inputs)
    if (!g.initializers.count(vi.name)) std::printf("  %s %s\n", vi.name.c_str(), vi.type.to_string().c_str());
  std::printf("outputs\n");
  for (const auto& vi : g.outputs) std::printf("  %s %s\n", vi.name.c_str(), vi.type.to_string().c_str());
  if (!shapes->empty()) {
    // With concrete input shapes, show what tandem's own shape inference derives.
    auto inferred = infer_shapes(g, *shapes);
    if (!inferred) return fail("info", inferred.status().message());
    std::printf("outputs for the given input shapes\n");
    for (const auto& vi : g.outputs) {
      const TypeInfo* t = inferred->type_of(vi.name);
      std::printf("  %s %s\n", vi.name.c_str(), t ? t->to_string().c_str() : "unknown");
    }
    for (const std::string& w : inferred->warnings) std::printf("  warning: %s\n", w.c_str());
  }
  size_t weights = 0;
  for (const auto& [name, t] : g.initializers) weights += t.nbytes();
  std::printf("initializers %zu (%.2f MB)\n", g.initializers.size(), static_cast<double>(weights) / 1e6);
  std::map<std::string, int> counts;
  std::map<std::string, const Node*> examples;
  count_ops(g, counts, examples);
  int total = 0;
  for (const auto& [op, c] : counts) total += c;
  std::printf("nodes %d\n", total);
  // Each op with the backends that accept its first node (in preference order), with the
  // element types inference finds for it (unknown inside subgraphs).
  auto typed = infer_shapes(g, *shapes);
  std::vector<std::string> unsupported_ops;
  for (const auto& [op, c] : counts) {
    std::string accepted;
    const NodeTypes types = typed ? node_types(*examples[op], *typed) : NodeTypes{};
    for (std::string_view name : available_backends())
      if (find_backend(name)->supports(*examples[op], types).is_ok()) accepted += (accepted.empty() ? "" : ", ") + std::string(name);
    std::printf("  %-28s %-5d %s\n", op.c_str(), c, accepted.empty() ? "(no backend)" : accepted.c_str());
    if (accepted.empty()) unsupported_ops.push_back(op);
  }
  if (unsupported_ops.empty()) {
    std::printf("every op is supported by at least one backend\n");
  } else {
    std::printf("ops no backend can run\n");
    for (const auto& op : unsupported_ops) std::printf("  %s\n", op.c_str());
  }
  if (!unsupported_ops.empty()) return 3;
  return o.optimized ? print_optimized(g, *shapes, o) : 0;
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
  cmd->add_option("--precision", o->precision, "With --optimized: the lowest precision to compile for (fp32, bf16, fp16)");
  cmd->add_option("--threads", o->threads, "With --optimized: threads to compile for (default: physical cores)")
      ->check(CLI::NonNegativeNumber);
  cmd->callback([o, exit_code] { *exit_code = info_command(*o); });
}

}  // namespace tandem::cli
