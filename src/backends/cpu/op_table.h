// op_table.h: the cpu backend's op table: which ONNX op types (default domain) it knows, how
// each family checks a node (supports) and how it builds the node's spec (make).
//
// The table is built once, on first use, from the register_*_ops functions of the op family
// files (conv.cpp, pool.cpp, ...); it is immutable afterwards and safe to read from any thread.
#pragma once

#include <map>
#include <memory>
#include <string>
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

struct OpEntry {
  SupportsFn supports = nullptr;
  MakeSpecFn make = nullptr;
};

class OpTable {
 public:
  void add(const std::string& op, SupportsFn s, MakeSpecFn m) { table_[op] = OpEntry{s, m}; }
  const OpEntry* find(const std::string& op) const {
    auto it = table_.find(op);
    return it == table_.end() ? nullptr : &it->second;
  }
  // Every op type in the table, sorted (the op-coverage test iterates over it).
  std::vector<std::string> ops() const {
    std::vector<std::string> out;
    for (const auto& [op, entry] : table_) out.push_back(op);
    return out;
  }

 private:
  std::map<std::string, OpEntry> table_;
};

// The cpu op table (default domain only), built on first use.
const OpTable& cpu_ops();
void register_activation_ops(OpTable& t);
void register_cast_ops(OpTable& t);
void register_conv_ops(OpTable& t);
void register_elementwise_ops(OpTable& t);
void register_matmul_ops(OpTable& t);
void register_normalization_ops(OpTable& t);
void register_pool_ops(OpTable& t);
void register_qconv_ops(OpTable& t);
void register_qmatmul_ops(OpTable& t);
void register_quantize_ops(OpTable& t);
void register_reduce_ops(OpTable& t);
void register_resize_ops(OpTable& t);
void register_shape_ops(OpTable& t);

}  // namespace tandem::cpu
