// registry.h: the reference backend's table of kernels, and one registration function per op
// family file (elementwise.cpp defines register_elementwise_kernels, and so on). Each
// family file registers the ops it implements; registry.cpp calls them all once.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "kernels/kernel.h"

namespace tandem {

class KernelTable {
 public:
  // `domain` is canonical: "" for ai.onnx, "ai.onnx.ml", "ai.onnx.preview.training",
  // "com.microsoft" (ONNX Runtime's contrib ops).
  void add(const std::string& domain, const std::string& op_type, KernelFn fn) { table_[{domain, op_type}] = fn; }
  KernelFn find(const std::string& domain, const std::string& op_type) const {
    auto it = table_.find({domain, op_type});
    return it == table_.end() ? nullptr : it->second;
  }
  std::vector<std::pair<std::string, std::string>> ops() const {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& [key, fn] : table_) out.push_back(key);
    return out;
  }

 private:
  std::map<std::pair<std::string, std::string>, KernelFn> table_;
};

// The complete reference table, built on first use (thread-safe static init).
const KernelTable& reference_kernels();

void register_activation_kernels(KernelTable& t);
void register_control_flow_kernels(KernelTable& t);
void register_conv_kernels(KernelTable& t);
void register_detection_kernels(KernelTable& t);
void register_elementwise_kernels(KernelTable& t);
void register_generator_kernels(KernelTable& t);
void register_indexing_kernels(KernelTable& t);
void register_loss_kernels(KernelTable& t);
void register_matmul_kernels(KernelTable& t);
void register_einsum_kernels(KernelTable& t);
void register_normalization_kernels(KernelTable& t);
void register_pool_kernels(KernelTable& t);
void register_quantize_kernels(KernelTable& t);
void register_quantize_contrib_kernels(KernelTable& t);  // com.microsoft quantized ops
void register_random_kernels(KernelTable& t);
void register_reduce_kernels(KernelTable& t);
void register_resize_kernels(KernelTable& t);
void register_rnn_kernels(KernelTable& t);
void register_sequence_kernels(KernelTable& t);
void register_shape_kernels(KernelTable& t);
void register_signal_kernels(KernelTable& t);
void register_text_kernels(KernelTable& t);
void register_training_kernels(KernelTable& t);

}  // namespace tandem
