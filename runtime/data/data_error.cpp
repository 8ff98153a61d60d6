// DataError's message and the hash format.
#include "runtime/data/data_error.h"

#include <fmt/format.h>

namespace kiln::data {
namespace {

std::string render(const std::filesystem::path& file, std::int64_t line, const std::string& reason) {
  if (line > 0) return fmt::format("{}:{}: error: {}", file.string(), line, reason);
  return fmt::format("{}: error: {}", file.string(), reason);
}

}  // namespace

DataError::DataError(std::filesystem::path file, std::int64_t line, std::string reason)
    : std::runtime_error(render(file, line, reason)), file_(std::move(file)), line_(line), reason_(std::move(reason)) {}

std::string format_hash(std::uint64_t hash) {
  return fmt::format("fnv1a64:{:016x}", hash);
}

}  // namespace kiln::data
