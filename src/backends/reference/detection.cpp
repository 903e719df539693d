// Reference kernels: detection ops. Not yet implemented.
#include "backends/reference/registry.h"

namespace tandem {

void register_detection_kernels(KernelTable& t) { (void)t; }

}  // namespace tandem
