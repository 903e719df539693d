// Reference kernels: quantize ops. Not yet implemented.
#include "backends/reference/registry.h"

namespace tandem {

void register_quantize_kernels(KernelTable& t) { (void)t; }

}  // namespace tandem
