// Reference kernels: matmul ops. Not yet implemented.
#include "backends/reference/registry.h"

namespace tandem {

void register_matmul_kernels(KernelTable& t) { (void)t; }

}  // namespace tandem
