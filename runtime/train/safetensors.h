// Tensors on disk in the safetensors layout (8-byte little-endian header size, a JSON
// header {name: {dtype, shape, data_offsets}}, then contiguous row-major data), so other
// tools can read Kiln's weights as they are. Writes are atomic (temporary file, fsync,
// rename); reads check every offset and size against the file before trusting it.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "runtime/exec/tensor.h"

namespace kiln::runtime {

// A file that is not a valid safetensors file; the message names the file (and tensor).
struct SafetensorsError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline constexpr std::uint64_t kMaxSafetensorsHeader = 100u << 20;  // 100 MiB of JSON

void write_safetensors(const std::filesystem::path& path,
                       const std::vector<std::pair<std::string, const Tensor*>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
};

SafetensorsFile read_safetensors(const std::filesystem::path& path);

// Why `tensor`, the weight `name` read from `file`, cannot be used: its first element that is
// an infinity or a NaN, where it has one ("FILE: tensor 'h1.w' holds a NaN at [3, 17]; ...").
// Kiln's trainer never writes such a weight, and the compiled kernels may skip a weight's
// row where the input is zero (0 × inf would be NaN), so predict, evaluate and build refuse it.
std::optional<std::string> non_finite_weight(const std::filesystem::path& file, const std::string& name,
                                             const Tensor& tensor);

}  // namespace kiln::runtime
