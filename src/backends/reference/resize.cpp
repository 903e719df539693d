// Reference kernels: resize ops. Not yet implemented.
#include "backends/reference/registry.h"

namespace tandem {

void register_resize_kernels(KernelTable& t) { (void)t; }

}  // namespace tandem
