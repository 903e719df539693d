// Reference kernels: shape ops. Not yet implemented.
#include "backends/reference/registry.h"

namespace tandem {

void register_shape_kernels(KernelTable& t) { (void)t; }

}  // namespace tandem
