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

#include "compiler/sema/sema.h"

namespace kiln::data::testing {

namespace fs = std::filesystem;

inline fs::path source_dir() {
  return fs::path(KILN_SOURCE_DIR);
}

// A fresh folder under the system temp dir, removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device rd;
    path = fs::temp_directory_path() / ("kiln_data_" + std::to_string(rd()) + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  fs::path write(const std::string& name, const std::string& text) const {
    std::ofstream out(path / name, std::ios::binary);
    out << text;
    return path / name;
  }
  fs::path write(const std::string& name, const char* bytes, std::size_t size) const {
    return write(name, std::string(bytes, size));
  }
};

inline std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

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

}  // namespace kiln::data::testing
