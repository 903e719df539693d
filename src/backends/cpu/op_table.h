// op_table.h: the cpu backend's op table: which ONNX op types it knows, how each family checks
// a node (supports) and how it builds the node's spec (make).
//
// Entries are keyed by (domain, op type). The domain is the canonical one (graph.h
// canonical_domain: "" for ai.onnx); besides the default domain the table holds only the
// com.microsoft quantized ops of ONNX Runtime's QOperator format (kMicrosoftDomain), so a
// contrib op is never taken for a default-domain op of the same name, or the other way round.
//
// The table is built once, on first use, from the register_*_ops functions of the op family
// files (conv.cpp, pool.cpp, ...); it is immutable afterwards and safe to read from any thread.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "graph/graph.h"
#include "tandem/status.h"

namespace tandem::cpu {

class OpSpec;
struct Step;
struct FusionContext;

// How a family builds the spec of a node; null spec means "generic path".
using SupportsFn = Status (*)(const Node& node);
using MakeSpecFn = Result<std::unique_ptr<OpSpec>> (*)(FusionContext& f, const Step& step);

// The one non-default domain the cpu backend runs ops of.
inline constexpr const char* kMicrosoftDomain = "com.microsoft";

struct OpEntry {
  SupportsFn supports = nullptr;
  MakeSpecFn make = nullptr;
};

class OpTable {
 public:
  // A default-domain op.
  void add(const std::string& op, SupportsFn s, MakeSpecFn m) { table_[{std::string(), op}] = OpEntry{s, m}; }
  // A com.microsoft op (the only other domain the table takes; see the header comment).
  void add_microsoft(const std::string& op, SupportsFn s, MakeSpecFn m) {
    table_[{std::string(kMicrosoftDomain), op}] = OpEntry{s, m};
  }
  // The entry of a default-domain op.
  const OpEntry* find(const std::string& op) const { return find(std::string(), op); }
  // The entry of `op` in `domain` (canonical: "" for ai.onnx), or null.
  const OpEntry* find(const std::string& domain, const std::string& op) const {
    auto it = table_.find({domain, op});
    return it == table_.end() ? nullptr : &it->second;
  }
  // Every op in the table, sorted: default-domain ops by name, others as "domain.op" (the
  // op-coverage test iterates over it).
  std::vector<std::string> ops() const {
    std::vector<std::string> out;
    for (const auto& [key, entry] : table_) out.push_back(key.first.empty() ? key.second : key.first + "." + key.second);
    return out;
  }

 private:
  std::map<std::pair<std::string, std::string>, OpEntry> table_;  // (domain, op) -> entry
};

// The cpu op table, built on first use.
const OpTable& cpu_ops();
void register_activation_ops(OpTable& t);
void register_cast_ops(OpTable& t);
void register_conv_ops(OpTable& t);
void register_elementwise_ops(OpTable& t);
void register_einsum_ops(OpTable& t);
void register_indexing_ops(OpTable& t);
void register_matmul_ops(OpTable& t);
void register_normalization_ops(OpTable& t);
void register_pool_ops(OpTable& t);
void register_qelementwise_ops(OpTable& t);
void register_qgemm_ops(OpTable& t);
void register_qpool_ops(OpTable& t);
void register_qconv_ops(OpTable& t);
void register_qmatmul_ops(OpTable& t);
void register_quantize_ops(OpTable& t);
void register_reduce_ops(OpTable& t);
void register_resize_ops(OpTable& t);
void register_rnn_ops(OpTable& t);
void register_scatter_ops(OpTable& t);
void register_shape_ops(OpTable& t);
void register_shape_copy_ops(OpTable& t);

}  // namespace tandem::cpu
