// Shared by the data tests: a temporary folder, compiling feature sets from the real
// models or from inline text, and reading a whole small file.
#pragma once

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "compiler/sema/sema.h"
#include "runtime/data/rows.h"
#include "tests/support/files.h"

namespace kiln::data::testing {

namespace fs = std::filesystem;
using kiln::testing::read_file;
using kiln::testing::source_dir;
using kiln::testing::TempDir;

inline sema::SemaOptions sema_options() {
  sema::SemaOptions opts;
  opts.stdlib_dirs = {source_dir() / "stdlib"};
  return opts;
}

// Compiles a real model file; fails the test on errors.
inline std::unique_ptr<sema::Compilation> compile_model(const std::string& name) {
  auto c = sema::compile_file(source_dir() / "models" / name, sema_options());
  INFO(c->diags.render(c->sources));
  REQUIRE(c->diags.error_count() == 0);
  return c;
}

// Compiles `kiln` text as if it were `dir/features.kiln`; fails the test on errors.
inline std::unique_ptr<sema::Compilation> compile_text(const fs::path& dir, const std::string& kiln) {
  auto c = sema::compile_source(dir / "features.kiln", kiln, sema_options());
  INFO(c->diags.render(c->sources));
  REQUIRE(c->diags.error_count() == 0);
  return c;
}

// Every record `reader` gives: `describe(row)` for a row, "LINE: REASON" for a rejected one.
template <class Describe>
std::vector<std::string> read_records(SchemaReader& reader, Describe describe) {
  std::vector<std::string> got;
  Row row;
  RejectedRecord rejected;
  for (SchemaReader::Result r; (r = reader.next(row, rejected)) != SchemaReader::Result::kEnd;) {
    got.push_back(r == SchemaReader::Result::kRejected ? std::to_string(rejected.line) + ": " + rejected.reason
                                                       : describe(row));
  }
  return got;
}

}  // namespace kiln::data::testing
