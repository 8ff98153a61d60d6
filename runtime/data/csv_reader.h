// A streaming RFC 4180 CSV reader: one record at a time through a fixed 64 KiB buffer, so
// memory stays bounded by the longest record, never the file. Quoted fields may hold
// commas, newlines and "" escapes; CRLF and LF both end a record; gzip-compressed files
// and standard input are read transparently (byte_source.h). Each record knows the line
// it starts on.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "runtime/data/byte_source.h"
#include "runtime/data/data_error.h"

namespace kiln::data {

struct CsvRecord {
  std::vector<std::string> fields;  // unquoted, "" unescaped; an empty cell is ""
  std::int64_t line = 0;            // 1-based line where the record starts
  std::string raw;                  // the record's text as in the file, without its line break
  // Non-empty when the record breaks the format in a recoverable way (text after a closing
  // quote): the record is still returned so that the caller can reject it with this reason.
  std::string malformed;
};

class CsvReader {
 public:
  static constexpr std::size_t kBufferBytes = 64 * 1024;
  // A record this long is not data but a runaway quote; reading stops with an error.
  static constexpr std::size_t kMaxRecordBytes = 16u << 20;

  // Throws DataError when the file cannot be opened.
  explicit CsvReader(const std::filesystem::path& path);
  // Reads `source` from where it is (a caller that read the start of a pipe to decide what
  // it holds rewinds it first: byte_source.h).
  explicit CsvReader(std::shared_ptr<ByteSource> source);
  CsvReader(const CsvReader&) = delete;
  CsvReader& operator=(const CsvReader&) = delete;

  // The next record; false at the end of the file. Completely empty lines are skipped.
  // Throws DataError (with the line) on an unterminated quote, an oversized record or a
  // read error.
  bool next(CsvRecord& record);

  // As in messages: the path, or "<stdin>".
  const std::filesystem::path& path() const { return source_->name(); }
  // FNV-1a of the (decompressed) bytes read so far: the whole file once next() returned false.
  std::uint64_t content_hash() const { return hash_.value(); }
  std::uint64_t bytes_read() const { return bytes_read_; }
  // The reader's own buffer; it never grows.
  std::size_t buffer_capacity() const { return buffer_.capacity(); }

 private:
  int get();   // the next byte, or -1 at the end of the file
  int peek();  // the next byte without consuming it
  bool refill();

  std::shared_ptr<ByteSource> source_;
  std::vector<char> buffer_;
  std::size_t pos_ = 0, len_ = 0;
  bool eof_ = false;
  std::int64_t line_ = 1;  // line of the next byte
  Fnv1a64 hash_;
  std::uint64_t bytes_read_ = 0;
};

}  // namespace kiln::data
