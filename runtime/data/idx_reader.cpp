// IdxReader: header check on open, then one item per next().
#include "runtime/data/idx_reader.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace kiln::data {
namespace {

std::size_t element_size(std::uint8_t type) {
  switch (type) {
    case 0x08:
    case 0x09: return 1;
    case 0x0B: return 2;
    case 0x0C:
    case 0x0D: return 4;
    case 0x0E: return 8;
    default: return 0;
  }
}

std::uint64_t big_endian(const unsigned char* p, std::size_t bytes) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < bytes; ++i) v = (v << 8) | p[i];
  return v;
}

float decode(std::uint8_t type, const unsigned char* p) {
  switch (type) {
    case 0x08: return static_cast<float>(p[0]);
    case 0x09: return static_cast<float>(static_cast<std::int8_t>(p[0]));
    case 0x0B: return static_cast<float>(static_cast<std::int16_t>(big_endian(p, 2)));
    case 0x0C: return static_cast<float>(static_cast<std::int32_t>(big_endian(p, 4)));
    case 0x0D: {
      auto bits = static_cast<std::uint32_t>(big_endian(p, 4));
      float f;
      std::memcpy(&f, &bits, 4);
      return f;
    }
    default: {
      std::uint64_t bits = big_endian(p, 8);
      double d;
      std::memcpy(&d, &bits, 8);
      return static_cast<float>(d);
    }
  }
}

}  // namespace

IdxReader::IdxReader(std::filesystem::path path) : path_(std::move(path)) {
  std::error_code ec;
  if (!std::filesystem::exists(path_, ec)) throw DataError(path_, 0, "no such file");
  if (std::filesystem::is_directory(path_, ec)) throw DataError(path_, 0, "is a directory, not an IDX file");
  file_.reset(gzopen(path_.c_str(), "rb"));
  if (file_ == nullptr) throw DataError(path_, 0, std::string("cannot open: ") + std::strerror(errno));
  unsigned char magic[4] = {0, 0, 0, 0};
  std::size_t got = read_bytes(magic, 4);
  if (got < 4) throw DataError(path_, 0, fmt::format("not an IDX file: only {} bytes long", got));
  element_bytes_ = element_size(magic[2]);
  if (magic[0] != 0 || magic[1] != 0 || element_bytes_ == 0 || magic[3] == 0 || magic[3] > 8) {
    throw DataError(path_, 0,
                    fmt::format("not an IDX file: magic bytes {:02x} {:02x} {:02x} {:02x}, expected 00 00, a type "
                                "(08 u8, 09 i8, 0b i16, 0c i32, 0d f32, 0e f64) and 1 to 8 dimensions",
                                magic[0], magic[1], magic[2], magic[3]));
  }
  type_ = magic[2];
  for (unsigned i = 0; i < magic[3]; ++i) {
    unsigned char b[4];
    if (read_bytes(b, 4) < 4) throw DataError(path_, 0, "truncated IDX header: the file ends inside the dimensions");
    dims_.push_back(static_cast<std::int64_t>(big_endian(b, 4)));
  }
  // Products in double first: up to eight 32-bit dimensions overflow any integer type.
  double item_bytes = static_cast<double>(element_bytes_);
  for (std::size_t i = 1; i < dims_.size(); ++i) item_bytes *= static_cast<double>(dims_[i]);
  if (item_bytes > static_cast<double>(std::int64_t{1} << 31)) {
    throw DataError(path_, 0,
                    fmt::format("IDX header promises items of {:.0f} bytes; that is not a real file", item_bytes));
  }
  // An empty item is no data (and would let a count of 2^32 items read nothing forever);
  // with every dimension at least 1, the partial products below stay within item_bytes.
  for (std::size_t i = 1; i < dims_.size(); ++i) {
    if (dims_[i] == 0) {
      throw DataError(path_, 0, fmt::format("IDX header gives dimension {} of each item as 0; items hold no data", i));
    }
  }
  for (std::size_t i = 1; i < dims_.size(); ++i) item_elements_ *= dims_[i];
  double total = item_bytes * static_cast<double>(dims_[0]);
  if (total > static_cast<double>(std::int64_t{1} << 40)) {
    throw DataError(path_, 0, fmt::format("IDX header promises {:.0f} bytes of data; that is not a real file", total));
  }
}

std::size_t IdxReader::read_bytes(void* into, std::size_t size) {
  std::size_t done = 0;
  auto* out = static_cast<char*>(into);
  while (done < size) {
    int n = gzread(file_.get(), out + done, static_cast<unsigned>(size - done));
    if (n < 0) {
      int code = 0;
      const char* message = gzerror(file_.get(), &code);
      if (code == Z_BUF_ERROR) {
        throw DataError(path_, 0,
                        fmt::format("truncated IDX file: the compressed data ends early, inside item {} of {}",
                                    items_read_ + 1, dims_.empty() ? 0 : dims_[0]));
      }
      throw DataError(path_, 0, std::string("read error: ") + (message != nullptr ? message : "unknown"));
    }
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  hash_.update(into, done);
  return done;
}

bool IdxReader::next(std::vector<float>& out) {
  if (items_read_ >= count()) return false;
  // The item buffer grows with the bytes that arrive (doubling, from 1 MiB), so a header
  // that promises items of up to 2 GiB costs no more memory than the file holds; from the
  // second item on it is already the item's size.
  const std::size_t need = static_cast<std::size_t>(item_elements_) * element_bytes_;
  std::size_t got = 0;
  while (got < need) {
    const std::size_t chunk = std::min(need - got, std::max(got, std::size_t{1} << 20));
    if (item_.size() < got + chunk) item_.resize(got + chunk);
    const std::size_t n = read_bytes(item_.data() + got, chunk);
    got += n;
    if (n < chunk) break;
  }
  if (got < need) {
    throw DataError(path_, 0,
                    fmt::format("truncated IDX file: the header promises {} items of {} bytes, but the data ends "
                                "inside item {}",
                                count(), need, items_read_ + 1));
  }
  out.resize(static_cast<std::size_t>(item_elements_));
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = decode(type_, item_.data() + i * element_bytes_);
  ++items_read_;
  return true;
}

}  // namespace kiln::data
