#include "runtime/data/byte_source.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstring>

#include "runtime/data/data_error.h"

namespace kiln::data {

ByteSource::ByteSource(const std::filesystem::path& path) : name_(is_stdin(path) ? "<stdin>" : path) {
  if (is_stdin(path)) {
    // Its own descriptor, so that closing the source leaves the process's standard input open.
    const int fd = dup(STDIN_FILENO);
    if (fd >= 0) file_.reset(gzdopen(fd, "rb"));
    if (file_ == nullptr) {
      const int error = errno;
      if (fd >= 0) close(fd);
      throw DataError(name_, 0, std::string("cannot read standard input: ") + std::strerror(error));
    }
  } else {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) throw DataError(path, 0, "no such file");
    if (std::filesystem::is_directory(path, ec)) throw DataError(path, 0, "is a directory, not a data file");
    file_.reset(gzopen(path.c_str(), "rb"));
    if (file_ == nullptr) throw DataError(path, 0, std::string("cannot open: ") + std::strerror(errno));
  }
  gzbuffer(file_.get(), 1 << 16);
}

std::size_t ByteSource::read(char* into, std::size_t n, std::int64_t line) {
  if (replay_at_ < kept_.size()) {  // kept bytes not yet handed out again
    const std::size_t got = std::min(n, kept_.size() - replay_at_);
    std::memcpy(into, kept_.data() + replay_at_, got);
    replay_at_ += got;
    if (replay_at_ == kept_.size() && !keeping_) {
      std::vector<char>().swap(kept_);
      replay_at_ = 0;
    }
    return got;
  }
  const int got = gzread(file_.get(), into, static_cast<unsigned>(std::min<std::size_t>(n, INT_MAX)));
  int code = Z_OK;
  const char* message = gzerror(file_.get(), &code);
  // gzread returns 0 both at a clean end and at a gzip stream cut short; gzerror tells them apart.
  if (got < 0 || (got == 0 && code != Z_OK && code != Z_STREAM_END)) {
    throw DataError(name_, line, std::string("read error: ") + (message != nullptr ? message : "unknown"));
  }
  if (keeping_) {
    kept_.insert(kept_.end(), into, into + got);
    replay_at_ = kept_.size();
  }
  return static_cast<std::size_t>(got);
}

void ByteSource::keep() {
  keeping_ = true;
  // Bytes already handed out again are behind the new start; those still to hand out stay.
  kept_.erase(kept_.begin(), kept_.begin() + static_cast<std::ptrdiff_t>(replay_at_));
  replay_at_ = 0;
}

void ByteSource::rewind() {
  keeping_ = false;
  replay_at_ = 0;
}

int ByteSource::first_nonblank() {
  keep();
  int c = -1;
  char byte = 0;
  while (read(&byte, 1, 1) == 1) {
    if (byte != ' ' && byte != '\t' && byte != '\r' && byte != '\n') {
      c = static_cast<unsigned char>(byte);
      break;
    }
  }
  rewind();
  return c;
}

}  // namespace kiln::data
