// Reference kernels: control_flow ops. Not yet implemented.
#include "backends/reference/registry.h"

namespace tandem {

void register_control_flow_kernels(KernelTable& t) { (void)t; }

}  // namespace tandem
