// commands.h: the CLI's subcommands. Each add_*_command registers its options on `app` and
// stores its exit code in `*exit_code` when it runs. Errors print one line on stderr.
#pragma once

#include <CLI/CLI.hpp>

namespace tandem::cli {

void add_conformance_command(CLI::App& app, int* exit_code);
void add_run_command(CLI::App& app, int* exit_code);
void add_info_command(CLI::App& app, int* exit_code);
void add_soak_command(CLI::App& app, int* exit_code);
void add_bench_command(CLI::App& app, int* exit_code);
void add_convert_command(CLI::App& app, int* exit_code);
void add_quantize_command(CLI::App& app, int* exit_code);
void add_serve_command(CLI::App& app, int* exit_code);

}  // namespace tandem::cli
