// Durable file writes for the checkpoint commit protocol: write, fsync the file, fsync the
// folder, rename. Every write goes through one function, so a test can make the disk
// "fill up" after a given number of bytes (set_write_budget_for_testing) and check that a
// failed save leaves the previous checkpoint and `latest` untouched.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string_view>

namespace kiln::checkpoint {

// An I/O failure while saving (a full disk, no permission); the message names the path and
// the system's reason.
struct CheckpointIoError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Creates `path` (truncating), writes `bytes`, fsyncs it. Throws CheckpointIoError.
void write_file_synced(const std::filesystem::path& path, std::string_view bytes);
// fsyncs a folder, so the names created, renamed or removed in it are on disk.
void sync_directory(const std::filesystem::path& dir);
// rename(2), which replaces `to` when it is a file; throws CheckpointIoError.
void rename_path(const std::filesystem::path& from, const std::filesystem::path& to);
// Writes `bytes` to `path` by a synced temporary in the same folder and a rename, then syncs the folder.
void replace_file_atomically(const std::filesystem::path& path, std::string_view bytes);

// Test hook: after `bytes` more bytes, every write fails with ENOSPC ("no space left on
// device"); nullopt turns the limit off.
void set_write_budget_for_testing(std::optional<std::uint64_t> bytes);

}  // namespace kiln::checkpoint
