// tandem: the command-line interface. See `tandem --help`.
#include <cstdio>
#include <exception>

#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{"tandem: run ONNX models on the best backend, with exact reference fallback"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("tandem ") + TANDEM_VERSION);
  int exit_code = 0;
  tandem::cli::add_run_command(app, &exit_code);
  tandem::cli::add_info_command(app, &exit_code);
  tandem::cli::add_conformance_command(app, &exit_code);
  tandem::cli::add_soak_command(app, &exit_code);
  tandem::cli::add_bench_command(app, &exit_code);
  tandem::cli::add_convert_command(app, &exit_code);
  tandem::cli::add_quantize_command(app, &exit_code);
  tandem::cli::add_serve_command(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tandem: %s\n", e.what());
    return 1;
  }
  return exit_code;
}
