// `kiln build`: a model and its trained weights as a deployable C artifact (docs/deploy.md).
// The forward graph is compiled at batch sizes 1, 2, 4, ..., max into one object file by
// the LLVM backend; generated C holds the glue (weights, batch splitting, the feature
// pipeline, a CSV/JSON-lines main, a smoke test and a benchmark), compiled with the
// system's `cc` and `ar`. Nothing of LLVM or the Kiln runtime is linked into the result.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace kiln::cli {

struct BuildArgs {
  std::string file, model, run, checkpoint, out;
  std::int64_t max_batch = 64;
  std::string weights = "embedded";  // embedded | file
  bool no_smoke = false;             // skip running the smoke test at the end
  int threads = 1;                   // threads one predict call may use (its caller's included)
  std::string cpu;                   // NAME.o's target CPU (an LLVM name); empty: this machine's
};

// Adds `build` to `app`; returns the subcommand.
CLI::App* add_build_command(CLI::App& app, BuildArgs& args);

// Runs it: 0 ok, 1 a user error (bad model, missing run folder, no C compiler), 2 internal.
int run_build(const BuildArgs& args, const std::vector<std::string>& stdlib_dirs, bool color);

}  // namespace kiln::cli
