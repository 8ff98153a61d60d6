// A checkpoint: a folder ckpt-<step> inside a checkpoints folder, holding
//   params.safetensors     parameters and model states (batch-norm statistics), safetensors layout
//   optimizer.safetensors  the opt.* states (moments, step counter): separable, `kiln ckpt strip` drops it
//   pipeline.json          the fitted feature pipeline (so `kiln predict --run CKPT` works as is)
//   manifest.json          everything else (docs/checkpoints.md): versions, source hashes, tensor
//                          names/shapes/dtypes/CRC32Cs, optimizer, position, RNG, data hash, metrics,
//                          each file's size and CRC32C, and its own CRC32C as its first field.
// Commit protocol: written into .tmp-ckpt-<step>-<pid> beside it, every file and the folder
// fsynced, renamed into place, the parent fsynced, then `latest` replaced the same way.
// A reader that follows `latest` never sees a half-written checkpoint.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/checkpoint/tensor_file.h"

namespace kiln::checkpoint {

// A checkpoint that cannot be used: corrupt, truncated, or not matching the model or run.
// The message lists every problem, each naming the file and the tensor.
struct CheckpointError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline constexpr int kFormatVersion = 1;
inline constexpr const char* kParamsFile = "params.safetensors";
inline constexpr const char* kOptimizerFile = "optimizer.safetensors";
inline constexpr const char* kPipelineFile = "pipeline.json";
inline constexpr const char* kManifestFile = "manifest.json";
inline constexpr const char* kLatestFile = "latest";
inline constexpr const char* kParamsFormat = "kiln-ckpt-params-1";
inline constexpr const char* kOptimizerFormat = "kiln-ckpt-optimizer-1";

struct CheckpointContents {
  std::int64_t step = 0;
  nlohmann::json manifest = nlohmann::json::object();  // the caller's fields; tensors and files are added
  NamedTensors params;                                 // parameters and model states
  NamedTensors optimizer;                              // opt.* states (empty: a stripped checkpoint)
  nlohmann::json pipeline = nlohmann::json::object();
};

// Writes `contents` as the folder `target` (which must not exist... it is replaced if it does,
// atomically), by way of a synced temporary beside it. Throws CheckpointIoError; on failure
// the temporary is removed and nothing else has changed.
void write_checkpoint_folder(const std::filesystem::path& target, const CheckpointContents& contents);

// Commits ckpt-<step> in `dir` (created when missing) and then points `latest` at it.
// Returns the checkpoint's path.
std::filesystem::path save_checkpoint(const std::filesystem::path& dir, const CheckpointContents& contents);

struct Checkpoint {
  std::filesystem::path path;
  nlohmann::json manifest;
  std::map<std::string, runtime::Tensor> params, optimizer;
  nlohmann::json pipeline;
};

// Every problem with the checkpoint folder: each checksum recomputed (manifest, files,
// tensors), sizes, layouts. Empty when it verifies.
std::vector<std::string> verify_checkpoint(const std::filesystem::path& ckpt);

// Reads and verifies; throws CheckpointError listing every problem. Nothing is returned
// unless everything verified.
Checkpoint load_checkpoint(const std::filesystem::path& ckpt);

// The manifest alone (its checksum verified); throws CheckpointError.
nlohmann::json read_manifest(const std::filesystem::path& ckpt);

// The folder name of a step's checkpoint: "ckpt-<step>".
std::string checkpoint_name(std::int64_t step);

}  // namespace kiln::checkpoint
