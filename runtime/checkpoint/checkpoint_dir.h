// A folder of checkpoints: the `latest` pointer, listing, clean-up of temporaries left by a
// crash, retention (latest N, one every K steps, best N by a holdout metric) and resolving
// what a user names (a checkpoint, a checkpoints folder, a run folder) to one checkpoint.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace kiln::checkpoint {

// Removes the .tmp-* entries a killed save leaves behind; returns their names.
std::vector<std::string> remove_stale_temporaries(const std::filesystem::path& dir);

// The checkpoint `latest` names, or nullopt when there is no `latest` yet. Throws
// CheckpointError when `latest` is unreadable or names a folder that is not there.
std::optional<std::filesystem::path> read_latest(const std::filesystem::path& dir);

struct CheckpointEntry {
  std::filesystem::path path;
  std::int64_t step = 0;
  nlohmann::json manifest;  // null when it cannot be read
  std::string problem;      // why the manifest cannot be read
};

// The ckpt-<step> folders of `dir`, by step.
std::vector<CheckpointEntry> list_checkpoints(const std::filesystem::path& dir);

struct RetentionPolicy {
  std::int64_t keep_last = 3;     // the newest N (0: only the one `latest` names)
  std::int64_t keep_every = 0;    // also every checkpoint whose step is a multiple of K (0: off)
  double keep_every_minutes = 0;  // also the first checkpoint of every K-minute window of the run (0: off)
  std::int64_t keep_best = 0;     // also the best N end-of-epoch checkpoints by best_metric
  std::string best_metric;        // a holdout metric; loss, rmse and mae are lower-is-better
};

// Deletes the checkpoints the policy does not keep (never the one `latest` names); returns them.
std::vector<std::filesystem::path> apply_retention(const std::filesystem::path& dir, const RetentionPolicy& policy);

bool lower_is_better(const std::string& metric);

// A folder with manifest.json is a checkpoint; one with `latest` is a checkpoints folder
// (its latest); a run folder means its checkpoints/latest. Throws CheckpointError.
std::filesystem::path resolve_checkpoint(const std::filesystem::path& what);

}  // namespace kiln::checkpoint
