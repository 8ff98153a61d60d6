// Where a record reader's bytes come from: a file (gzip or not, read transparently by
// zlib's gz* API) or standard input ("-"), opened once.
//
// A pipe can be read only once, so a caller that must look at the start of the input
// before it picks a reader (is it JSON lines? which columns does the CSV header name?)
// must not open it a second time. Instead it asks the source to keep() what is read,
// reads through it, and rewind()s: the next reader gets those bytes again, then the rest.
// A regular file is read the same way, so a pipe and a file give the same records.
#pragma once

#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace kiln::data {

class ByteSource {
 public:
  // Opens `path`; "-" is standard input, named "<stdin>" in messages. Throws DataError
  // (line 0) when it does not exist, is a directory or cannot be opened.
  explicit ByteSource(const std::filesystem::path& path);
  ByteSource(const ByteSource&) = delete;
  ByteSource& operator=(const ByteSource&) = delete;

  // Whether `path` names standard input.
  static bool is_stdin(const std::filesystem::path& path) { return path == "-"; }

  // The path as given, or "<stdin>".
  const std::filesystem::path& name() const { return name_; }

  // Up to `n` bytes into `into`; 0 only at the end of the input. A read error or a gzip
  // stream cut short throws DataError at `line` (the reader's line of the next byte).
  std::size_t read(char* into, std::size_t n, std::int64_t line);

  // From now on keep the bytes read, until rewind() hands them out again from the start
  // and stops keeping.
  void keep();
  void rewind();

  // The first byte that is not a space, tab, CR or LF (-1 at the end), read while keeping
  // and rewound, so the input is still unread.
  int first_nonblank();

 private:
  struct GzClose {
    void operator()(gzFile f) const { gzclose(f); }
  };
  std::filesystem::path name_;
  std::unique_ptr<gzFile_s, GzClose> file_;
  bool keeping_ = false;
  // The bytes read while keeping, then after rewind() those still to hand out again: the
  // next is kept_[replay_at_] (replay_at_ == kept_.size(): none, read the file).
  std::vector<char> kept_;
  std::size_t replay_at_ = 0;
};

}  // namespace kiln::data
