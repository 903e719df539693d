#include "kernels/registry.h"

namespace tandem {

const KernelTable& reference_kernels() {
  static const KernelTable table = [] {
    KernelTable t;
    register_activation_kernels(t);
    register_control_flow_kernels(t);
    register_conv_kernels(t);
    register_detection_kernels(t);
    register_elementwise_kernels(t);
    register_generator_kernels(t);
    register_indexing_kernels(t);
    register_loss_kernels(t);
    register_matmul_kernels(t);
    register_einsum_kernels(t);
    register_normalization_kernels(t);
    register_pool_kernels(t);
    register_quantize_kernels(t);
    register_quantize_contrib_kernels(t);
    register_random_kernels(t);
    register_reduce_kernels(t);
    register_resize_kernels(t);
    register_rnn_kernels(t);
    register_sequence_kernels(t);
    register_shape_kernels(t);
    register_signal_kernels(t);
    register_text_kernels(t);
    register_training_kernels(t);
    return t;
  }();
  return table;
}

}  // namespace tandem
