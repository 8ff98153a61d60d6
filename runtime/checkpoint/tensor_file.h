// A checkpoint's tensor files, in the safetensors layout (8-byte little-endian header size,
// a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, contiguous
// row-major data) so any safetensors reader takes them as they are. Unlike
// runtime/train/safetensors.h this works on bytes in memory: the saver checksums what it
// writes, and the reader checks every tensor against the manifest and names each problem.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/exec/tensor.h"

namespace kiln::checkpoint {

inline constexpr std::uint64_t kMaxHeaderBytes = 16u << 20;  // 16 MiB of JSON is far past any model

using NamedTensors = std::vector<std::pair<std::string, const runtime::Tensor*>>;

// The file's bytes; `metadata` goes into __metadata__ (its "format" entry is a checkpoint
// file's "magic").
std::string serialize_tensors(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata);

// What the manifest records about one tensor.
struct TensorRecord {
  std::string name;
  std::string dtype;  // safetensors spelling: F32, I64, ...
  std::vector<std::int64_t> shape;
  std::uint32_t crc = 0;
};

const char* safetensors_dtype(ir::DType d);
std::optional<ir::DType> from_safetensors_dtype(const std::string& name);  // "F32" -> kF32

// Parses `bytes` (the contents of `file`, for messages) and checks them against `expected`
// and `format`: every problem goes into `problems`, each naming the file and, where there is
// one, the tensor. Returns the tensors that verified.
std::map<std::string, runtime::Tensor> read_tensors(const std::string& bytes, const std::string& file,
                                                    const std::string& format,
                                                    const std::vector<TensorRecord>& expected,
                                                    std::vector<std::string>& problems);

}  // namespace kiln::checkpoint
