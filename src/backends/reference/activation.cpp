// Reference kernels: activation ops. Not yet implemented.
#include "backends/reference/registry.h"

namespace tandem {

void register_activation_kernels(KernelTable& t) { (void)t; }

}  // namespace tandem
