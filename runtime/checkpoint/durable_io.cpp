// Durable writes (see durable_io.h).
#include "runtime/checkpoint/durable_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>

namespace kiln::checkpoint {
namespace {

namespace fs = std::filesystem;

// -1: no limit; otherwise the bytes that may still be written.
std::atomic<std::int64_t> g_write_budget{-1};

std::string reason(int err) {
  return std::strerror(err);
}

// write(2), or the injected failure once the test budget is spent.
ssize_t write_some(int fd, const char* p, std::size_t size) {
  std::int64_t budget = g_write_budget.load();
  if (budget >= 0) {
    if (budget == 0) {
      errno = ENOSPC;
      return -1;
    }
    size = std::min<std::size_t>(size, static_cast<std::size_t>(budget));
  }
  ssize_t n = ::write(fd, p, size);
  if (n > 0 && budget >= 0) g_write_budget.fetch_sub(n);
  return n;
}

}  // namespace

void set_write_budget_for_testing(std::optional<std::uint64_t> bytes) {
  g_write_budget.store(bytes ? static_cast<std::int64_t>(*bytes) : -1);
}

void write_file_synced(const fs::path& path, std::string_view bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw CheckpointIoError(path.string() + ": cannot create: " + reason(errno));
  const char* p = bytes.data();
  std::size_t left = bytes.size();
  while (left > 0) {
    ssize_t n = write_some(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      throw CheckpointIoError(path.string() + ": write failed after " + std::to_string(bytes.size() - left) + " of " +
                              std::to_string(bytes.size()) + " bytes: " + reason(err));
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    throw CheckpointIoError(path.string() + ": fsync failed: " + reason(err));
  }
  if (::close(fd) != 0) throw CheckpointIoError(path.string() + ": close failed: " + reason(errno));
}

void sync_directory(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw CheckpointIoError(dir.string() + ": cannot open the folder to sync it: " + reason(errno));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) throw CheckpointIoError(dir.string() + ": fsync of the folder failed: " + reason(err));
}

void rename_path(const fs::path& from, const fs::path& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    throw CheckpointIoError("cannot rename " + from.string() + " to " + to.string() + ": " + reason(errno));
  }
}

void replace_file_atomically(const fs::path& path, std::string_view bytes) {
  fs::path temp = path.parent_path() / (".tmp-" + path.filename().string() + "-" + std::to_string(::getpid()));
  try {
    write_file_synced(temp, bytes);
    rename_path(temp, path);
  } catch (...) {
    ::unlink(temp.c_str());
    throw;
  }
  sync_directory(path.parent_path().empty() ? fs::path(".") : path.parent_path());
}

}  // namespace kiln::checkpoint
