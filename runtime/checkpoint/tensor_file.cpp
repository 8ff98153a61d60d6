// Checkpoint tensor files (see tensor_file.h).
#include "runtime/checkpoint/tensor_file.h"

#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "runtime/checkpoint/crc32c.h"

namespace kiln::checkpoint {
namespace {

using nlohmann::json;

std::string names_of(const std::vector<TensorRecord>& records) {
  std::string out;
  for (const TensorRecord& r : records) out += (out.empty() ? "'" : ", '") + r.name + "'";
  return out.empty() ? "(none)" : out;
}

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

}  // namespace

std::optional<ir::DType> from_safetensors_dtype(const std::string& s) {
  if (s == "F32") return ir::DType::kF32;
  if (s == "F64") return ir::DType::kF64;
  if (s == "I32") return ir::DType::kI32;
  if (s == "I64") return ir::DType::kI64;
  if (s == "BOOL") return ir::DType::kBool;
  return std::nullopt;
}

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

std::string serialize_tensors(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata) {
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
  std::string out;
  out.reserve(8 + text.size() + offset);
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(static_cast<std::uint64_t>(text.size()) >> (8 * i)));
  out += text;
  for (const auto& [name, t] : tensors) out.append(static_cast<const char*>(t->raw()), t->bytes());
  return out;
}

std::map<std::string, runtime::Tensor> read_tensors(const std::string& bytes, const std::string& file,
                                                    const std::string& format,
                                                    const std::vector<TensorRecord>& expected,
                                                    std::vector<std::string>& problems) {
  std::map<std::string, runtime::Tensor> out;
  const std::string affected = "; tensors in it: " + names_of(expected);
  if (bytes.size() < 8) {
    problems.push_back(file + ": " + std::to_string(bytes.size()) +
                       " bytes, too short for a safetensors header (truncated)" + affected);
    return out;
  }
  std::uint64_t header_size = 0;
  for (int i = 0; i < 8; ++i)
    header_size |= static_cast<std::uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  if (header_size > kMaxHeaderBytes) {
    problems.push_back(file + ": header size field says " + std::to_string(header_size) + " bytes, over the limit of " +
                       std::to_string(kMaxHeaderBytes) + " (corrupt, or not a safetensors file)" + affected);
    return out;
  }
  if (8 + header_size > bytes.size()) {
    problems.push_back(file + ": header claims " + std::to_string(header_size) + " bytes but the file has only " +
                       std::to_string(bytes.size() - 8) + " after the size field (truncated or corrupt)" + affected);
    return out;
  }
  const std::string text = bytes.substr(8, header_size);
  if (text.empty() || text[0] != '{') {
    problems.push_back(file + ": wrong magic: the header does not start with '{' (not a safetensors file)" + affected);
    return out;
  }
  json header = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!header.is_object()) {
    problems.push_back(file + ": the header is not valid JSON (corrupt)" + affected);
    return out;
  }
  std::string found_format;
  if (header.contains("__metadata__") && header["__metadata__"].is_object() &&
      header["__metadata__"].contains("format") && header["__metadata__"]["format"].is_string()) {
    found_format = header["__metadata__"]["format"].get<std::string>();
  }
  if (found_format != format) {
    problems.push_back(file + ": wrong format '" + found_format + "' (expected '" + format + "')" + affected);
    return out;
  }
  const std::uint64_t data_start = 8 + header_size;
  const std::uint64_t data_size = bytes.size() - data_start;
  std::set<std::string> known;
  for (const TensorRecord& r : expected) {
    known.insert(r.name);
    const std::string where = file + ": tensor '" + r.name + "'";
    if (!header.contains(r.name)) {
      problems.push_back(where + ": missing from the file's header");
      continue;
    }
    const json& e = header[r.name];
    if (!e.is_object() || !e.contains("dtype") || !e["dtype"].is_string() || !e.contains("shape") ||
        !e["shape"].is_array() || !e.contains("data_offsets") || !e["data_offsets"].is_array() ||
        e["data_offsets"].size() != 2 || !e["data_offsets"][0].is_number_unsigned() ||
        !e["data_offsets"][1].is_number_unsigned()) {
      problems.push_back(where + ": malformed header entry");
      continue;
    }
    std::vector<std::int64_t> shape;
    bool shape_ok = true;
    for (const json& d : e["shape"]) {
      if (!d.is_number_unsigned())
        shape_ok = false;
      else
        shape.push_back(d.get<std::int64_t>());
    }
    std::optional<ir::DType> dtype = from_safetensors_dtype(e["dtype"].get<std::string>());
    if (!shape_ok || !dtype || e["dtype"].get<std::string>() != r.dtype || shape != r.shape) {
      problems.push_back(where + ": the header says " + e["dtype"].dump() + " " + e["shape"].dump() +
                         ", the manifest " + r.dtype + " " + shape_text(r.shape));
      continue;
    }
    runtime::Tensor t(*dtype, shape);
    std::uint64_t begin = e["data_offsets"][0].get<std::uint64_t>(), end = e["data_offsets"][1].get<std::uint64_t>();
    if (begin > end || end - begin != t.bytes()) {
      problems.push_back(where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                         ") do not match its shape");
      continue;
    }
    if (end > data_size) {
      problems.push_back(where + ": its data [" + std::to_string(begin) + ", " + std::to_string(end) +
                         ") lies past the end of the file's " + std::to_string(data_size) + " data bytes (truncated)");
      continue;
    }
    const char* data = bytes.data() + data_start + begin;
    std::uint32_t crc = crc32c(data, t.bytes());
    if (crc != r.crc) {
      problems.push_back(where + ": checksum mismatch (manifest " + crc_hex(r.crc) + ", data " + crc_hex(crc) +
                         "): the tensor's bytes are corrupt");
      continue;
    }
    if (t.bytes() > 0) std::memcpy(t.raw(), data, t.bytes());
    out.emplace(r.name, std::move(t));
  }
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() != "__metadata__" && !known.count(it.key())) {
      problems.push_back(file + ": tensor '" + it.key() + "' is in the file but not in the manifest");
    }
  }
  return out;
}

}  // namespace kiln::checkpoint
