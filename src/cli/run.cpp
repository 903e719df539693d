#include "cli/commands.h"

namespace tandem::cli {
void add_run_command(CLI::App& app, int* exit_code) { (void)app; (void)exit_code; }
void add_info_command(CLI::App& app, int* exit_code) { (void)app; (void)exit_code; }
}  // namespace tandem::cli
