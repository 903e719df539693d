// Reference kernels: rnn ops. Not yet implemented.
#include "backends/reference/registry.h"

namespace tandem {

void register_rnn_kernels(KernelTable& t) { (void)t; }

}  // namespace tandem
