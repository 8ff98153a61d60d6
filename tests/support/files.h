// Files for tests: the repository root, a temporary folder removed at the end of a test,
// and reading a whole small file. Shared by every test that touches the file system.
#pragma once

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

namespace kiln::testing {

inline std::filesystem::path source_dir() { return std::filesystem::path(KILN_SOURCE_DIR); }

class TempDir {
 public:
  std::filesystem::path path;

  TempDir() {
    std::random_device rd;
    path = std::filesystem::temp_directory_path() / ("kiln_test_" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::filesystem::path write(const std::string& name, const std::string& text) const {
    std::ofstream out(path / name, std::ios::binary);
    out << text;
    return path / name;
  }
  std::filesystem::path write(const std::string& name, const char* bytes, std::size_t size) const {
    return write(name, std::string(bytes, size));
  }
};

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace kiln::testing
