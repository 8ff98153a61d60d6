// What every data reader throws when a file cannot be used at all (missing, truncated,
// wrong format, a missing header column, too many bad rows), and the content hash the
// readers compute over the bytes they stream, for lineage. Bad *rows* are not errors:
// they are rejected, counted and quarantined (see dataset.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace kiln::data {

// A user error in a data file. what() reads "file:line: error: reason", or
// "file: error: reason" when the problem has no line (line == 0).
class DataError : public std::runtime_error {
 public:
  DataError(std::filesystem::path file, std::int64_t line, std::string reason);

  const std::filesystem::path& file() const { return file_; }
  std::int64_t line() const { return line_; }
  const std::string& reason() const { return reason_; }

 private:
  std::filesystem::path file_;
  std::int64_t line_;
  std::string reason_;
};

// 64-bit FNV-1a over a byte stream: simple, stable across platforms, good enough to tell
// two versions of a data file apart (not a cryptographic hash).
class Fnv1a64 {
 public:
  void update(const void* bytes, std::size_t size) {
    const auto* p = static_cast<const unsigned char*>(bytes);
    for (std::size_t i = 0; i < size; ++i) {
      state_ ^= p[i];
      state_ *= 0x100000001b3ULL;
    }
  }
  std::uint64_t value() const { return state_; }

 private:
  std::uint64_t state_ = 0xcbf29ce484222325ULL;
};

// "fnv1a64:0123456789abcdef"
std::string format_hash(std::uint64_t hash);

}  // namespace kiln::data
