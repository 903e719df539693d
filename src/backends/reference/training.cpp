// Reference kernels: training ops. Not yet implemented.
#include "backends/reference/registry.h"

namespace tandem {

void register_training_kernels(KernelTable& t) { (void)t; }

}  // namespace tandem
