// Reference kernels: text ops. Not yet implemented.
#include "backends/reference/registry.h"

namespace tandem {

void register_text_kernels(KernelTable& t) { (void)t; }

}  // namespace tandem
