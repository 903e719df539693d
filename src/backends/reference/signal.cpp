// Reference kernels: signal ops. Not yet implemented.
#include "backends/reference/registry.h"

namespace tandem {

void register_signal_kernels(KernelTable& t) { (void)t; }

}  // namespace tandem
