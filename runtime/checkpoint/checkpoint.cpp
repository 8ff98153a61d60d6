// Checkpoint folders: writing with the commit protocol, reading with every checksum checked
// (see checkpoint.h).
#include "runtime/checkpoint/checkpoint.h"

#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "runtime/checkpoint/crc32c.h"
#include "runtime/checkpoint/durable_io.h"
#include "runtime/data/json_fields.h"

namespace kiln::checkpoint {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The manifest's own checksum is its first field; it covers the file's bytes with that
// field taken out, so any changed byte (even white space) is caught and the file stays JSON.
constexpr std::string_view kManifestPrefix = "{\n  \"manifest_crc32c\": \"";

std::string manifest_text(const json& body) {
  std::string text = body.dump(2) + "\n";
  std::uint32_t crc = crc32c(text);
  return std::string(kManifestPrefix) + crc_hex(crc) + "\"," + text.substr(1);
}

json tensor_records(const NamedTensors& tensors) {
  json out = json::array();
  for (const auto& [name, t] : tensors) {
    out.push_back({{"name", name},
                   {"dtype", safetensors_dtype(t->dtype())},
                   {"shape", t->dims()},
                   {"crc32c", crc_hex(crc32c(t->raw(), t->bytes()))}});
  }
  return out;
}

std::optional<std::string> slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<TensorRecord> records_from(const json& list, const std::string& where, std::vector<std::string>& problems) {
  std::vector<TensorRecord> out;
  if (!list.is_array()) {
    problems.push_back(where + ": missing tensor list");
    return out;
  }
  for (const json& e : list) {
    try {
      TensorRecord r;
      r.name = e.at("name").get<std::string>();
      r.dtype = e.at("dtype").get<std::string>();
      r.shape = e.at("shape").get<std::vector<std::int64_t>>();
      r.crc = static_cast<std::uint32_t>(std::stoul(e.at("crc32c").get<std::string>(), nullptr, 16));
      out.push_back(std::move(r));
    } catch (const std::exception&) {
      problems.push_back(where + ": malformed tensor entry " + e.dump());
    }
  }
  return out;
}

struct Verified {
  json manifest;
  std::map<std::string, runtime::Tensor> params, optimizer;
  json pipeline;
  std::vector<std::string> problems;
};

// Checks the file's size and CRC32C against the manifest's "files" entry; returns its bytes.
std::optional<std::string> checked_file(const fs::path& ckpt, const std::string& name, const json& manifest,
                                        std::vector<std::string>& problems) {
  const fs::path path = ckpt / name;
  std::optional<std::string> bytes = slurp(path);
  if (!bytes) {
    problems.push_back(path.string() + ": missing or unreadable");
    return std::nullopt;
  }
  if (!manifest.contains("files") || !manifest["files"].contains(name)) {
    problems.push_back(path.string() + ": not listed in the manifest");
    return bytes;
  }
  const json& rec = manifest["files"][name];
  auto expected_size = rec.value("bytes", std::uint64_t{0});
  if (bytes->size() != expected_size) {
    problems.push_back(path.string() + ": " + std::to_string(bytes->size()) + " bytes, the manifest records " +
                       std::to_string(expected_size) + (bytes->size() < expected_size ? " (truncated)" : " (grown)"));
  }
  std::string crc = crc_hex(crc32c(*bytes));
  if (crc != rec.value("crc32c", std::string())) {
    problems.push_back(path.string() + ": file checksum mismatch (manifest " + rec.value("crc32c", std::string()) +
                       ", file " + crc + ")");
  }
  return bytes;
}

Verified verify(const fs::path& ckpt) {
  Verified v;
  try {
    v.manifest = read_manifest(ckpt);
  } catch (const CheckpointError& e) {
    v.problems.push_back(e.what());
    return v;
  }
  const json& m = v.manifest;
  if (m.value("checkpoint_format", 0) != kFormatVersion) {
    v.problems.push_back((ckpt / kManifestFile).string() + ": checkpoint format " +
                         std::to_string(m.value("checkpoint_format", 0)) + ", this Kiln reads format " +
                         std::to_string(kFormatVersion));
    return v;
  }
  auto check_tensors = [&](const char* file, const char* format, const char* list,
                           std::map<std::string, runtime::Tensor>& into) {
    std::vector<std::string> problems;
    std::vector<TensorRecord> records = records_from(m.value(list, json()), (ckpt / kManifestFile).string(), problems);
    std::optional<std::string> bytes = checked_file(ckpt, file, m, problems);
    if (bytes) into = read_tensors(*bytes, (ckpt / file).string(), format, records, problems);
    v.problems.insert(v.problems.end(), problems.begin(), problems.end());
  };
  check_tensors(kParamsFile, kParamsFormat, "parameters", v.params);
  if (!m.value("stripped", false)) check_tensors(kOptimizerFile, kOptimizerFormat, "optimizer_state", v.optimizer);
  std::vector<std::string> problems;
  if (std::optional<std::string> text = checked_file(ckpt, kPipelineFile, m, problems)) {
    v.pipeline = json::parse(*text, nullptr, false);
    if (v.pipeline.is_discarded()) problems.push_back((ckpt / kPipelineFile).string() + ": not valid JSON (corrupt)");
  }
  v.problems.insert(v.problems.end(), problems.begin(), problems.end());
  return v;
}

// The first field of a (checksummed, parsed) manifest whose type is not the one Kiln reads,
// named by its path ("training.seed is string; expected a non-negative integer"), or empty.
// Only what Kiln reads is checked, and only checkpoint_format, files and parameters must be
// there (the trainer says what a resume lacks); other fields may be anything. A manifest of
// another checkpoint_format is left to verify(), which reports the version.
std::string manifest_schema_problem(const json& m) {
  using data::JsonKind;
  constexpr JsonKind kInteger = JsonKind::kInteger, kUnsigned = JsonKind::kUnsigned, kNumber = JsonKind::kNumber,
                     kString = JsonKind::kString, kBool = JsonKind::kBool, kObject = JsonKind::kObject,
                     kArray = JsonKind::kArray;
  std::string problem;
  // Checks object[key] (when present, or required) and returns it, or null after a problem.
  const auto field = [&](const json& object, const std::string& at, const std::string& key, JsonKind kind,
                         bool required) -> const json* {
    if (!problem.empty()) return nullptr;
    const std::string where = data::json_path(at, key);
    const auto it = object.find(key);
    if (it == object.end()) {
      if (required) problem = where + " is missing";
      return nullptr;
    }
    problem = data::json_kind_problem(*it, kind, where);
    return problem.empty() ? &*it : nullptr;
  };
  if (!field(m, "", "checkpoint_format", kInteger, true) || m["checkpoint_format"] != kFormatVersion) return problem;
  field(m, "", "step", kInteger, false);
  field(m, "", "stripped", kBool, false);
  field(m, "", "saved_at_unix", kNumber, false);
  field(m, "", "model", kString, false);
  field(m, "", "parameters", kArray, true);
  field(m, "", "optimizer_state", kArray, false);
  if (const json* files = field(m, "", "files", kObject, true)) {
    for (auto it = files->begin(); it != files->end() && problem.empty(); ++it) {
      const std::string at = "files." + it.key();
      problem = data::json_kind_problem(*it, kObject, at);
      field(*it, at, "bytes", kUnsigned, true);
      field(*it, at, "crc32c", kString, true);
    }
  }
  if (const json* t = field(m, "", "training", kObject, false)) {
    for (const char* key : {"seed", "global_step"}) field(*t, "training", key, kUnsigned, false);
    for (const char* key : {"batch", "steps_per_epoch", "epoch", "batch_in_epoch", "since_best", "best_epoch"})
      field(*t, "training", key, kInteger, false);
    for (const char* key : {"lr", "loss_sum", "best"}) field(*t, "training", key, kNumber, false);
    field(*t, "training", "early_stopped", kBool, false);
    if (const json* h = field(*t, "training", "epoch_holdout", kObject, false))
      for (auto it = h->begin(); it != h->end(); ++it) field(*h, "training.epoch_holdout", it.key(), kNumber, true);
  }
  if (const json* metrics = field(m, "", "metrics", kArray, false)) {
    for (std::size_t i = 0; i < metrics->size() && problem.empty(); ++i) {
      const json& e = (*metrics)[i];
      const std::string at = "metrics[" + std::to_string(i) + "]";
      problem = data::json_kind_problem(e, kObject, at);
      field(e, at, "epoch", kInteger, false);
      for (const char* key : {"train_loss", "seconds", "samples_per_second", "lr"}) field(e, at, key, kNumber, false);
      if (const json* h = field(e, at, "holdout", kObject, false))
        for (auto it = h->begin(); it != h->end(); ++it) field(*h, at + ".holdout", it.key(), kNumber, true);
    }
  }
  if (const json* d = field(m, "", "data", kObject, false)) field(*d, "data", "content_hash", kString, false);
  return problem;
}

}  // namespace

std::string checkpoint_name(std::int64_t step) {
  return "ckpt-" + std::to_string(step);
}

json read_manifest(const fs::path& ckpt) {
  const fs::path path = ckpt / kManifestFile;
  std::optional<std::string> text = slurp(path);
  if (!text)
    throw CheckpointError(path.string() + ": missing or unreadable (is " + ckpt.string() + " a checkpoint folder?)");
  const std::size_t hex_at = kManifestPrefix.size();
  if (text->compare(0, hex_at, kManifestPrefix) != 0 || text->size() < hex_at + 10 ||
      text->compare(hex_at + 8, 2, "\",") != 0) {
    throw CheckpointError(
        path.string() +
        ": wrong magic: does not start with the manifest_crc32c field (corrupt, or not a Kiln checkpoint manifest)");
  }
  const std::string stored = text->substr(hex_at, 8);
  const std::string body = "{" + text->substr(hex_at + 10);
  const std::string computed = crc_hex(crc32c(body));
  if (stored != computed) {
    throw CheckpointError(path.string() + ": manifest checksum mismatch (stored " + stored + ", computed " + computed +
                          "): the manifest is corrupt");
  }
  json m = json::parse(*text, nullptr, false);
  if (!m.is_object()) throw CheckpointError(path.string() + ": not a JSON object (corrupt)");
  if (const std::string problem = manifest_schema_problem(m); !problem.empty())
    throw CheckpointError(path.string() + ": malformed manifest: " + problem);
  return m;
}

void write_checkpoint_folder(const fs::path& target, const CheckpointContents& c) {
  const fs::path parent = target.parent_path();
  fs::create_directories(parent);
  const fs::path temp = parent / (".tmp-" + target.filename().string() + "-" + std::to_string(::getpid()));
  std::error_code ec;
  fs::remove_all(temp, ec);
  try {
    if (!fs::create_directory(temp, ec)) throw CheckpointIoError(temp.string() + ": cannot create: " + ec.message());
    json manifest = c.manifest;
    manifest["checkpoint_format"] = kFormatVersion;
    manifest["step"] = c.step;
    if (!manifest.contains("saved_at_unix")) {  // for retention by minutes; tests may set it
      manifest["saved_at_unix"] =
          std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    }
    manifest["parameters"] = tensor_records(c.params);
    manifest["optimizer_state"] = tensor_records(c.optimizer);
    manifest["stripped"] = c.optimizer.empty();
    json files = json::object();
    auto write = [&](const char* name, const std::string& bytes) {
      write_file_synced(temp / name, bytes);
      files[name] = {{"bytes", bytes.size()}, {"crc32c", crc_hex(crc32c(bytes))}};
    };
    write(kParamsFile, serialize_tensors(c.params, {{"format", kParamsFormat}}));
    if (!c.optimizer.empty()) write(kOptimizerFile, serialize_tensors(c.optimizer, {{"format", kOptimizerFormat}}));
    write(kPipelineFile, c.pipeline.dump(2) + "\n");
    manifest["files"] = files;
    write_file_synced(temp / kManifestFile, manifest_text(manifest));
    sync_directory(temp);
    if (fs::exists(target)) {
      // Same step written again (a resume from an older `latest` after a crash between the
      // rename and the pointer update): move the old copy aside, then replace it.
      const fs::path old = parent / (".tmp-replaced-" + target.filename().string() + "-" + std::to_string(::getpid()));
      fs::remove_all(old, ec);
      rename_path(target, old);
      rename_path(temp, target);
      fs::remove_all(old, ec);
    } else {
      rename_path(temp, target);
    }
    sync_directory(parent);
  } catch (...) {
    fs::remove_all(temp, ec);
    throw;
  }
}

fs::path save_checkpoint(const fs::path& dir, const CheckpointContents& c) {
  const fs::path target = dir / checkpoint_name(c.step);
  write_checkpoint_folder(target, c);
  replace_file_atomically(dir / kLatestFile, checkpoint_name(c.step) + "\n");
  return target;
}

std::vector<std::string> verify_checkpoint(const fs::path& ckpt) {
  return verify(ckpt).problems;
}

Checkpoint load_checkpoint(const fs::path& ckpt) {
  Verified v = verify(ckpt);
  if (!v.problems.empty()) {
    std::string message = "checkpoint " + ckpt.string() + " does not verify (" + std::to_string(v.problems.size()) +
                          " problem" + (v.problems.size() == 1 ? "" : "s") + "); nothing was loaded:";
    for (const std::string& p : v.problems) message += "\n  " + p;
    throw CheckpointError(message);
  }
  return Checkpoint{ckpt, std::move(v.manifest), std::move(v.params), std::move(v.optimizer), std::move(v.pipeline)};
}

}  // namespace kiln::checkpoint
