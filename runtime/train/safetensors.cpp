// safetensors reading and writing (see safetensors.h).
#include "runtime/train/safetensors.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "runtime/checkpoint/durable_io.h"
#include "runtime/checkpoint/tensor_file.h"

namespace kiln::runtime {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using checkpoint::from_safetensors_dtype;

}  // namespace

void write_safetensors(const fs::path& path, const std::vector<std::pair<std::string, const Tensor*>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // One serializer and one durable write for run files and checkpoints alike.
  try {
    checkpoint::replace_file_atomically(path, checkpoint::serialize_tensors(tensors, metadata));
  } catch (const std::runtime_error& e) {
    throw SafetensorsError(e.what());
  }
}

SafetensorsFile read_safetensors(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw SafetensorsError(path.string() + ": cannot open");
  std::error_code ec;
  std::uint64_t file_size = fs::file_size(path, ec);
  if (ec || file_size < 8) throw SafetensorsError(path.string() + ": too short to be a safetensors file");
  unsigned char size_le[8];
  in.read(reinterpret_cast<char*>(size_le), 8);
  std::uint64_t header_size = 0;
  for (int i = 0; i < 8; ++i) header_size |= static_cast<std::uint64_t>(size_le[i]) << (8 * i);
  if (header_size > kMaxSafetensorsHeader) {
    throw SafetensorsError(path.string() + ": header of " + std::to_string(header_size) + " bytes is over the limit");
  }
  if (8 + header_size > file_size) {
    throw SafetensorsError(path.string() + ": header claims " + std::to_string(header_size) +
                           " bytes but the file has " + std::to_string(file_size - 8));
  }
  std::string text(header_size, '\0');
  in.read(text.data(), static_cast<std::streamsize>(header_size));
  json header = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!header.is_object()) throw SafetensorsError(path.string() + ": header is not a JSON object");
  const std::uint64_t data_start = 8 + header_size;
  const std::uint64_t data_size = file_size - data_start;
  SafetensorsFile out;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (it->is_object()) {
        for (auto m = it->begin(); m != it->end(); ++m) {
          if (m->is_string()) out.metadata[m.key()] = m->get<std::string>();
        }
      }
      continue;
    }
    const std::string where = path.string() + ": tensor '" + it.key() + "'";
    const json& entry = *it;
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") || !entry.contains("data_offsets") ||
        !entry["dtype"].is_string() || !entry["shape"].is_array() || !entry["data_offsets"].is_array() ||
        entry["data_offsets"].size() != 2) {
      throw SafetensorsError(where + ": malformed header entry");
    }
    std::optional<ir::DType> dtype = from_safetensors_dtype(entry["dtype"].get<std::string>());
    if (!dtype) throw SafetensorsError(where + ": unsupported dtype " + entry["dtype"].get<std::string>());
    std::vector<std::int64_t> dims;
    for (const json& d : entry["shape"]) {
      if (!d.is_number_unsigned()) throw SafetensorsError(where + ": bad shape");
      dims.push_back(d.get<std::int64_t>());
    }
    const json& offsets = entry["data_offsets"];
    if (!offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned()) {
      throw SafetensorsError(where + ": bad data_offsets");
    }
    std::uint64_t begin = offsets[0].get<std::uint64_t>(), end = offsets[1].get<std::uint64_t>();
    Tensor t(*dtype, dims);
    if (begin > end || end > data_size || end - begin != t.bytes()) {
      throw SafetensorsError(where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                             ") do not fit its shape or the file");
    }
    in.seekg(static_cast<std::streamoff>(data_start + begin));
    in.read(static_cast<char*>(t.raw()), static_cast<std::streamsize>(t.bytes()));
    if (!in) throw SafetensorsError(where + ": truncated data");
    out.tensors.emplace(it.key(), std::move(t));
  }
  return out;
}

std::optional<std::string> non_finite_weight(const fs::path& file, const std::string& name, const Tensor& tensor) {
  const auto first_bad = [&](const auto* p) {
    for (std::int64_t i = 0; i < tensor.elements(); ++i)
      if (!std::isfinite(p[i])) return i;
    return std::int64_t{-1};
  };
  std::int64_t at = -1;
  double value = 0;
  if (tensor.dtype() == ir::DType::kF32) {
    at = first_bad(tensor.data<float>());
    if (at >= 0) value = tensor.data<float>()[at];
  } else if (tensor.dtype() == ir::DType::kF64) {
    at = first_bad(tensor.data<double>());
    if (at >= 0) value = tensor.data<double>()[at];
  }
  if (at < 0) return std::nullopt;
  std::vector<std::int64_t> index(tensor.dims().size());
  for (std::size_t d = index.size(); d-- > 0;) {
    index[d] = at % tensor.dims()[d];
    at /= tensor.dims()[d];
  }
  return fmt::format(
      "{}: tensor '{}' holds {} at [{}]; Kiln's trainer never writes a weight that is not finite (it stops at such "
      "an update), so this file was changed or written by other software: retrain, or use an earlier checkpoint",
      file.string(), name,
      std::isnan(value) ? "a NaN"
      : value > 0       ? "+inf"
                        : "-inf",
      fmt::join(index, ", "));
}

}  // namespace kiln::runtime
