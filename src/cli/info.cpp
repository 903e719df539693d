// `tandem info`: what a model declares and needs.
#include <cstdio>
#include <map>

#include "backends/backend.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "graph/shape_inference.h"
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

int info_command(const std::string& path, const std::vector<std::string>& shape_args) {
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
  for (const auto& [op, c] : counts) std::printf("  %-28s %d\n", op.c_str(), c);
  std::vector<std::string> unsupported_ops;
  for (const auto& [op, node] : examples) {
    bool any = false;
    for (std::string_view name : available_backends()) any = any || find_backend(name)->supports(*node).is_ok();
    if (!any) unsupported_ops.push_back(op);
  }
  if (unsupported_ops.empty()) {
    std::printf("every op is supported by at least one backend\n");
  } else {
    std::printf("ops no backend can run\n");
    for (const auto& op : unsupported_ops) std::printf("  %s\n", op.c_str());
  }
  return unsupported_ops.empty() ? 0 : 3;
}

}  // namespace

void add_info_command(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("info", "Print a model's inputs, outputs, opsets and ops");
  auto path = std::make_shared<std::string>();
  auto shapes = std::make_shared<std::vector<std::string>>();
  cmd->add_option("model", *path, "ONNX model file")->required();
  cmd->add_option("--shape", *shapes, "NAME=DIMS: infer the outputs' shapes for these input shapes; repeatable");
  cmd->callback([path, shapes, exit_code] { *exit_code = info_command(*path, *shapes); });
}

}  // namespace tandem::cli
