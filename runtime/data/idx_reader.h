// A streaming reader for IDX files (the MNIST / Fashion-MNIST format), gzip-compressed or
// plain: the header is checked on open, then items (one image, one label) are read one at
// a time, so memory stays one item regardless of the file size.
//
// Format: bytes 0-1 are zero, byte 2 is the element type (0x08 u8, 0x09 i8, 0x0B i16,
// 0x0C i32, 0x0D f32, 0x0E f64), byte 3 the number of dimensions; then each dimension as a
// big-endian u32 (the first is the item count), then the elements, big-endian, row-major.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <vector>

#include "runtime/data/data_error.h"

namespace kiln::data {

class IdxReader {
 public:
  // Opens the file and checks its header; throws DataError (missing file, wrong magic,
  // a header that promises more than 2^40 bytes, ...).
  explicit IdxReader(std::filesystem::path path);
  IdxReader(const IdxReader&) = delete;
  IdxReader& operator=(const IdxReader&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::uint8_t type_code() const { return type_; }
  const std::vector<std::int64_t>& dims() const { return dims_; }  // [count, ...item dims]
  std::int64_t count() const { return dims_[0]; }
  std::int64_t item_elements() const { return item_elements_; }
  std::int64_t items_read() const { return items_read_; }

  // Reads the next item, converted to float, into `out` (resized to item_elements()).
  // False after count() items. Throws DataError when the file ends early.
  bool next(std::vector<float>& out);

  // FNV-1a of the decompressed bytes read so far (header included).
  std::uint64_t content_hash() const { return hash_.value(); }

 private:
  // Reads exactly `size` bytes; false at a clean end of file before the first byte.
  std::size_t read_bytes(void* into, std::size_t size);

  std::filesystem::path path_;
  struct GzClose {
    void operator()(gzFile f) const { gzclose(f); }
  };
  std::unique_ptr<gzFile_s, GzClose> file_;  // closed also when the constructor throws
  std::uint8_t type_ = 0;
  std::size_t element_bytes_ = 1;
  std::vector<std::int64_t> dims_;
  std::int64_t item_elements_ = 1;
  std::int64_t items_read_ = 0;
  std::vector<unsigned char> item_;
  Fnv1a64 hash_;
};

}  // namespace kiln::data
