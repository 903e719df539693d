// Reference kernels: sequence ops. Not yet implemented.
#include "backends/reference/registry.h"

namespace tandem {

void register_sequence_kernels(KernelTable& t) { (void)t; }

}  // namespace tandem
