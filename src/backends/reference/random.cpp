// Reference kernels: random ops. Not yet implemented.
#include "backends/reference/registry.h"

namespace tandem {

void register_random_kernels(KernelTable& t) { (void)t; }

}  // namespace tandem
