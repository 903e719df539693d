// Reference kernels: indexing ops. Not yet implemented.
#include "backends/reference/registry.h"

namespace tandem {

void register_indexing_kernels(KernelTable& t) { (void)t; }

}  // namespace tandem
