// Reference kernels: elementwise ops. Not yet implemented.
#include "backends/reference/registry.h"

namespace tandem {

void register_elementwise_kernels(KernelTable& t) { (void)t; }

}  // namespace tandem
