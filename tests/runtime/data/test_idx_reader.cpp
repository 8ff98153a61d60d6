// IdxReader: the real Fashion-MNIST headers and first items, and clear errors for a
// truncated file (plain and gzip), wrong magic bytes and a missing file.
#include <sys/resource.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "runtime/data/data_error.h"
#include "runtime/data/idx_reader.h"
#include "tests/runtime/data/data_helpers.h"

using namespace kiln::data;
using namespace kiln::data::testing;

namespace {

const fs::path kFashion = "/usr/share/datasets/fashion-mnist";

// An IDX u8 file with the given dims and `items` items of data (may be fewer than dims[0]).
std::string idx_bytes(const std::vector<std::uint32_t>& dims, std::size_t items) {
  std::string out = {'\0', '\0', '\x08', static_cast<char>(dims.size())};
  for (std::uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((d >> shift) & 0xFF));
  }
  std::size_t per_item = 1;
  for (std::size_t i = 1; i < dims.size(); ++i) per_item *= dims[i];
  for (std::size_t i = 0; i < items * per_item; ++i) out.push_back(static_cast<char>(i % 251));
  return out;
}

std::string error_of(const fs::path& path) {
  try {
    IdxReader reader(path);
    std::vector<float> item;
    while (reader.next(item)) {
    }
  } catch (const DataError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("idx: the real Fashion-MNIST training set, 60000 x 28 x 28, first label 9", "[data]") {
  // tools/setup installs the Debian package dataset-fashion-mnist: its absence is a failure.
  INFO("Fashion-MNIST is not installed in " << kFashion.string() << "; run tools/setup/setup.sh");
  REQUIRE(fs::exists(kFashion / "train-images-idx3-ubyte.gz"));
  IdxReader images(kFashion / "train-images-idx3-ubyte.gz");
  CHECK(images.type_code() == 0x08);
  CHECK(images.dims() == std::vector<std::int64_t>{60000, 28, 28});
  CHECK(images.item_elements() == 784);
  std::vector<float> image;
  REQUIRE(images.next(image));
  REQUIRE(image.size() == 784);
  float peak = 0;
  for (float v : image) peak = std::max(peak, v);
  CHECK(peak <= 255.0f);
  CHECK(peak > 0.0f);

  IdxReader labels(kFashion / "train-labels-idx1-ubyte.gz");
  CHECK(labels.dims() == std::vector<std::int64_t>{60000});
  std::vector<float> label;
  REQUIRE(labels.next(label));
  CHECK(label == std::vector<float>{9.0f});
  std::int64_t n = 1;
  while (labels.next(label)) ++n;
  CHECK(n == 60000);
  CHECK(labels.items_read() == 60000);

  IdxReader test_images(kFashion / "t10k-images-idx3-ubyte.gz");
  CHECK(test_images.dims() == std::vector<std::int64_t>{10000, 28, 28});
}

TEST_CASE("idx: plain (uncompressed) files read the same way", "[data]") {
  TempDir dir;
  fs::path p = dir.write("small.idx", idx_bytes({3, 2, 2}, 3));
  IdxReader reader(p);
  std::vector<float> item;
  REQUIRE(reader.next(item));
  CHECK(item == std::vector<float>{0, 1, 2, 3});
  REQUIRE(reader.next(item));
  REQUIRE(reader.next(item));
  CHECK(item == std::vector<float>{8, 9, 10, 11});
  CHECK_FALSE(reader.next(item));
}

TEST_CASE("idx: a truncated file is an error naming the item", "[data]") {
  TempDir dir;
  fs::path p = dir.write("short.idx", idx_bytes({10, 2, 2}, 3));
  CHECK(error_of(p) == p.string() +
                           ": error: truncated IDX file: the header promises 10 items of 4 bytes, but "
                           "the data ends inside item 4");
  fs::path header_only = dir.write("header.idx", idx_bytes({10, 2, 2}, 0).substr(0, 9));
  CHECK(error_of(header_only) ==
        header_only.string() + ": error: truncated IDX header: the file ends inside the dimensions");
}

TEST_CASE("idx: a truncated gzip stream is an error, not a crash", "[data]") {
  fs::path real = kFashion / "train-labels-idx1-ubyte.gz";
  if (!fs::exists(real)) return;
  TempDir dir;
  std::string bytes = read_file(real);
  fs::path p = dir.write("cut.gz", bytes.substr(0, bytes.size() / 2));
  std::string message = error_of(p);
  CHECK_THAT(message, Catch::StartsWith(p.string() + ": error: truncated IDX file"));
}

TEST_CASE("idx: wrong magic bytes and missing files are clear errors", "[data]") {
  TempDir dir;
  fs::path text = dir.write("not.idx", "hello, world\n");
  CHECK(error_of(text) == text.string() +
                              ": error: not an IDX file: magic bytes 68 65 6c 6c, expected 00 00, a "
                              "type (08 u8, 09 i8, 0b i16, 0c i32, 0d f32, 0e f64) and 1 to 8 "
                              "dimensions");
  fs::path tiny = dir.write("tiny.idx", "\0\0", 2);
  CHECK(error_of(tiny) == tiny.string() + ": error: not an IDX file: only 2 bytes long");
  fs::path missing = dir.path / "missing-idx1-ubyte.gz";
  CHECK(error_of(missing) == missing.string() + ": error: no such file");
}

// Headers fuzz_readers found (tests/fuzz): a zero item dimension made the item size a
// product that overflowed on the way (and, were it 0, 2^32 empty items would read forever);
// items of a gigabyte promised by a file of a few bytes were allocated whole before the read
// found the file short.
TEST_CASE("idx: a zero item dimension and a header that promises far more than the file holds", "[data]") {
  TempDir dir;
  std::string zero = idx_bytes({3, 0xFFFFFFFFu, 0xFFFFFFFFu, 0}, 0);
  fs::path p = dir.write("zero.idx", zero);
  CHECK(error_of(p) == p.string() + ": error: IDX header gives dimension 3 of each item as 0; items hold no data");

  struct rusage before {};
  getrusage(RUSAGE_SELF, &before);
  fs::path big = dir.write("big.idx", idx_bytes({2, 1u << 15, 1u << 15}, 0) + std::string(100, 'x'));
  CHECK(error_of(big) == big.string() +
                             ": error: truncated IDX file: the header promises 2 items of 1073741824 bytes, but "
                             "the data ends inside item 1");
  struct rusage after {};
  getrusage(RUSAGE_SELF, &after);
  CHECK(after.ru_maxrss - before.ru_maxrss < 64 * 1024);  // KiB: the read allocated about what the file holds
}
