// Checkpoint folders: latest, listing, stale temporaries, retention (see checkpoint_dir.h).
#include "runtime/checkpoint/checkpoint_dir.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <set>

#include "runtime/checkpoint/checkpoint.h"

namespace kiln::checkpoint {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::optional<std::int64_t> step_of(const std::string& name) {
  if (name.rfind("ckpt-", 0) != 0 || name.size() == 5) return std::nullopt;
  std::int64_t step = 0;
  for (char ch : name.substr(5)) {
    if (ch < '0' || ch > '9') return std::nullopt;
    step = step * 10 + (ch - '0');
  }
  return step;
}

}  // namespace

bool lower_is_better(const std::string& metric) {
  return metric == "loss" || metric == "rmse" || metric == "mae";
}

std::vector<std::string> remove_stale_temporaries(const fs::path& dir) {
  std::vector<std::string> removed;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return removed;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (name.rfind(".tmp-", 0) == 0) {
      fs::remove_all(e.path(), ec);
      removed.push_back(name);
    }
  }
  std::sort(removed.begin(), removed.end());
  return removed;
}

std::optional<fs::path> read_latest(const fs::path& dir) {
  const fs::path pointer = dir / kLatestFile;
  std::error_code ec;
  if (!fs::exists(pointer, ec)) return std::nullopt;
  std::ifstream in(pointer);
  std::string name;
  if (!in || !std::getline(in, name) || !step_of(name)) {
    throw CheckpointError(pointer.string() + ": unreadable or not a checkpoint name ('" + name + "')");
  }
  if (!fs::is_directory(dir / name, ec)) {
    throw CheckpointError(pointer.string() + ": names " + name + ", which is not in " + dir.string());
  }
  return dir / name;
}

std::vector<CheckpointEntry> list_checkpoints(const fs::path& dir) {
  std::vector<CheckpointEntry> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    std::optional<std::int64_t> step = step_of(e.path().filename().string());
    if (!step || !e.is_directory()) continue;
    CheckpointEntry entry;
    entry.path = e.path();
    entry.step = *step;
    try {
      entry.manifest = read_manifest(e.path());
    } catch (const CheckpointError& err) {
      entry.problem = err.what();
    }
    out.push_back(std::move(entry));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.step < b.step; });
  return out;
}

std::vector<fs::path> apply_retention(const fs::path& dir, const RetentionPolicy& policy) {
  std::vector<CheckpointEntry> all = list_checkpoints(dir);
  std::set<fs::path> keep;
  if (std::optional<fs::path> latest = read_latest(dir)) keep.insert(*latest);
  for (std::size_t i = 0; i < all.size(); ++i) {
    if (static_cast<std::int64_t>(all.size() - i) <= policy.keep_last) keep.insert(all[i].path);
    if (policy.keep_every > 0 && all[i].step % policy.keep_every == 0) keep.insert(all[i].path);
  }
  if (policy.keep_every_minutes > 0) {
    // Windows of K minutes from the first checkpoint's save time; the first of each stays.
    std::optional<double> start;
    std::set<std::int64_t> windows;
    for (const CheckpointEntry& e : all) {
      if (!e.manifest.is_object() || !e.manifest.contains("saved_at_unix")) continue;
      double t = e.manifest["saved_at_unix"].get<double>();
      if (!start) start = t;
      auto window = static_cast<std::int64_t>((t - *start) / (60 * policy.keep_every_minutes));
      if (windows.insert(window).second) keep.insert(e.path);
    }
  }
  if (policy.keep_best > 0 && !policy.best_metric.empty()) {
    std::vector<std::pair<double, fs::path>> scored;
    for (const CheckpointEntry& e : all) {
      if (!e.manifest.is_object()) continue;
      const json& holdout = e.manifest.value("training", json::object()).value("epoch_holdout", json::object());
      if (!holdout.is_object() || !holdout.contains(policy.best_metric)) continue;
      double v = holdout[policy.best_metric].get<double>();
      scored.emplace_back(lower_is_better(policy.best_metric) ? v : -v, e.path);
    }
    std::stable_sort(scored.begin(), scored.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (std::size_t i = 0; i < scored.size() && static_cast<std::int64_t>(i) < policy.keep_best; ++i) {
      keep.insert(scored[i].second);
    }
  }
  std::vector<fs::path> removed;
  for (const CheckpointEntry& e : all) {
    if (keep.count(e.path)) continue;
    // Renamed first, so a crash mid-delete leaves a .tmp-* (cleaned up later), never a half checkpoint.
    std::error_code ec;
    fs::path doomed = dir / (".tmp-delete-" + e.path.filename().string() + "-" + std::to_string(::getpid()));
    fs::rename(e.path, doomed, ec);
    if (ec) continue;
    fs::remove_all(doomed, ec);
    removed.push_back(e.path);
  }
  return removed;
}

fs::path resolve_checkpoint(const fs::path& what) {
  std::error_code ec;
  if (fs::exists(what / kManifestFile, ec)) return what;
  for (const fs::path& dir : {what, what / "checkpoints"}) {
    if (fs::exists(dir / kLatestFile, ec)) return *read_latest(dir);
  }
  throw CheckpointError(
      what.string() +
      ": not a checkpoint (no manifest.json), a checkpoints folder (no latest) or a run folder with checkpoints");
}

}  // namespace kiln::checkpoint
