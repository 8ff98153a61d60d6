// `kiln ckpt ls|show|verify|diff|strip`: looking into checkpoint folders (docs/checkpoints.md).
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace kiln::cli {

struct CkptArgs {
  CLI::App* ls = nullptr;
  CLI::App* show = nullptr;
  CLI::App* verify = nullptr;
  CLI::App* diff = nullptr;
  CLI::App* strip = nullptr;
  std::string dir, other, out;
};

// Adds `ckpt` and its subcommands to `app`; returns the `ckpt` subcommand.
CLI::App* add_ckpt_command(CLI::App& app, CkptArgs& args);

// Runs the parsed subcommand: 0 ok, 1 a problem (a checkpoint that does not verify, a bad path).
int run_ckpt(const CkptArgs& args);

}  // namespace kiln::cli
