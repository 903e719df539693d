// Reference kernels: pool ops. Not yet implemented.
#include "backends/reference/registry.h"

namespace tandem {

void register_pool_kernels(KernelTable& t) { (void)t; }

}  // namespace tandem
