// safetensors reading and writing (see safetensors.h).
#include "runtime/train/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

namespace kiln::runtime {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const char* safetensors_dtype(ir::DType d) {
  switch (d) {
    case ir::DType::kF32: return "F32";
    case ir::DType::kF64: return "F64";
    case ir::DType::kI32: return "I32";
    case ir::DType::kI64: return "I64";
    case ir::DType::kBool: return "BOOL";
  }
  return "F32";
}

std::optional<ir::DType> from_safetensors_dtype(const std::string& s) {
  if (s == "F32") return ir::DType::kF32;
  if (s == "F64") return ir::DType::kF64;
  if (s == "I32") return ir::DType::kI32;
  if (s == "I64") return ir::DType::kI64;
  if (s == "BOOL") return ir::DType::kBool;
  return std::nullopt;
}

void write_all(int fd, const void* data, std::size_t size, const fs::path& path) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw SafetensorsError(path.string() + ": write failed: " + std::strerror(errno));
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
}

}  // namespace

void write_safetensors(const fs::path& path, const std::vector<std::pair<std::string, const Tensor*>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  std::uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    header[name] = {{"dtype", safetensors_dtype(t->dtype())},
                    {"shape", t->dims()},
                    {"data_offsets", {offset, offset + t->bytes()}}};
    offset += t->bytes();
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // align the data to 8 bytes
  std::uint64_t size = text.size();
  unsigned char size_le[8];
  for (int i = 0; i < 8; ++i) size_le[i] = static_cast<unsigned char>(size >> (8 * i));

  fs::path temp = path;
  temp += ".tmp";
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw SafetensorsError(temp.string() + ": cannot create: " + std::strerror(errno));
  try {
    write_all(fd, size_le, 8, temp);
    write_all(fd, text.data(), text.size(), temp);
    for (const auto& [name, t] : tensors) write_all(fd, t->raw(), t->bytes(), temp);
    if (::fsync(fd) != 0) throw SafetensorsError(temp.string() + ": fsync failed: " + std::strerror(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(temp.c_str());
    throw;
  }
  ::close(fd);
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    ::unlink(temp.c_str());
    throw SafetensorsError(path.string() + ": cannot rename into place: " + std::strerror(errno));
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

}  // namespace kiln::runtime
