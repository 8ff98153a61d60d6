// CsvReader: RFC 4180 edge cases with their line numbers, errors that name file and line,
// gzip input, and a 100 MB file streamed through the fixed buffer in bounded memory.
#include <zlib.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <string>
#include <vector>

#include "runtime/data/csv_reader.h"
#include "runtime/data/data_error.h"
#include "tests/runtime/data/data_helpers.h"

using namespace kiln::data;
using namespace kiln::data::testing;

namespace {

std::vector<CsvRecord> read_all(const fs::path& path) {
  CsvReader reader(path);
  std::vector<CsvRecord> out;
  CsvRecord r;
  while (reader.next(r)) out.push_back(r);
  return out;
}

using Fields = std::vector<std::string>;

// Resident memory of this process in KiB (Linux), 0 where unknown.
long resident_kib() {
  std::ifstream in("/proc/self/status");
  std::string key;
  while (in >> key) {
    if (key == "VmRSS:") {
      long kib = 0;
      in >> kib;
      return kib;
    }
    in.ignore(1 << 20, '\n');
  }
  return 0;
}

}  // namespace

TEST_CASE("csv: quoted commas, quoted newlines and \"\" escapes keep line numbers right", "[data]") {
  TempDir dir;
  fs::path p = dir.write("a.csv",
                         "name,note,n\n"
                         "\"Smith, J\",plain,1\n"
                         "x,\"two\nlines\",2\n"
                         "y,\"say \"\"hi\"\"\",3\n"
                         "z,\"\",4\n");
  auto records = read_all(p);
  REQUIRE(records.size() == 5);
  CHECK(records[1].fields == Fields{"Smith, J", "plain", "1"});
  CHECK(records[2].fields == Fields{"x", "two\nlines", "2"});
  CHECK(records[3].fields == Fields{"y", "say \"hi\"", "3"});
  CHECK(records[4].fields == Fields{"z", "", "4"});
  CHECK(records[0].line == 1);
  CHECK(records[1].line == 2);
  CHECK(records[2].line == 3);  // where the record starts
  CHECK(records[3].line == 5);  // after the embedded newline
  CHECK(records[4].line == 6);
  CHECK(records[2].raw == "x,\"two\nlines\",2");
  CHECK(records[3].raw == "y,\"say \"\"hi\"\"\",3");
}

TEST_CASE("csv: CRLF line breaks, also inside quotes", "[data]") {
  TempDir dir;
  fs::path p = dir.write("crlf.csv", "a,b\r\n1,\"x\r\ny\"\r\n2,3\r\n");
  auto records = read_all(p);
  REQUIRE(records.size() == 3);
  CHECK(records[0].fields == Fields{"a", "b"});
  CHECK(records[1].fields == Fields{"1", "x\r\ny"});
  CHECK(records[2].fields == Fields{"2", "3"});
  CHECK(records[2].line == 4);
  CHECK(records[2].raw == "2,3");
}

TEST_CASE("csv: empty cells are empty fields, wherever they are", "[data]") {
  TempDir dir;
  fs::path p = dir.write("e.csv", "a,b,c\n,,\n1,,3\n,2,\n");
  auto records = read_all(p);
  REQUIRE(records.size() == 4);
  CHECK(records[1].fields == Fields{"", "", ""});
  CHECK(records[2].fields == Fields{"1", "", "3"});
  CHECK(records[3].fields == Fields{"", "2", ""});
}

TEST_CASE("csv: a trailing newline or none gives the same records; blank lines are skipped", "[data]") {
  TempDir dir;
  auto with = read_all(dir.write("with.csv", "a,b\n1,2\n"));
  auto without = read_all(dir.write("without.csv", "a,b\n1,2"));
  auto blank = read_all(dir.write("blank.csv", "a,b\n\n1,2\n\n"));
  REQUIRE(with.size() == 2);
  REQUIRE(without.size() == 2);
  REQUIRE(blank.size() == 2);
  CHECK(with[1].fields == without[1].fields);
  CHECK(without[1].fields == Fields{"1", "2"});
  CHECK(blank[1].line == 3);
}

TEST_CASE("csv: an unterminated quote at the end of the file is an error with its line", "[data]") {
  TempDir dir;
  fs::path p = dir.write("bad.csv", "a,b\n1,2\n3,\"open\nstill open\n");
  CsvReader reader(p);
  CsvRecord r;
  REQUIRE(reader.next(r));
  REQUIRE(reader.next(r));
  try {
    reader.next(r);
    FAIL("expected a DataError");
  } catch (const DataError& e) {
    CHECK(e.line() == 3);
    CHECK(std::string(e.what()) == p.string() +
                                       ":3: error: unterminated quoted field: the quote opened on line 3 "
                                       "is never closed before the end of the file");
  }
}

TEST_CASE("csv: text after a closing quote makes the record malformed, reading goes on", "[data]") {
  TempDir dir;
  auto records = read_all(dir.write("m.csv", "a,b\n\"x\"y,1\n2,3\n"));
  REQUIRE(records.size() == 3);
  CHECK(records[1].malformed == "unexpected text after the closing quote of field 1");
  CHECK(records[2].malformed.empty());
  CHECK(records[2].fields == Fields{"2", "3"});
}

TEST_CASE("csv: an empty file has no records; a missing file is an error", "[data]") {
  TempDir dir;
  CHECK(read_all(dir.write("empty.csv", "")).empty());
  fs::path missing = dir.path / "nope.csv";
  try {
    CsvReader reader(missing);
    FAIL("expected a DataError");
  } catch (const DataError& e) {
    CHECK(std::string(e.what()) == missing.string() + ": error: no such file");
  }
}

TEST_CASE("csv: gzip-compressed files read the same; the hash is over the decompressed bytes", "[data]") {
  TempDir dir;
  std::string text = "a,b\n1,\"x,y\"\n";
  fs::path plain = dir.write("p.csv", text);
  fs::path packed = dir.path / "p.csv.gz";
  gzFile gz = gzopen(packed.c_str(), "wb");
  REQUIRE(gz != nullptr);
  gzwrite(gz, text.data(), static_cast<unsigned>(text.size()));
  gzclose(gz);
  CsvReader a(plain), b(packed);
  CsvRecord ra, rb;
  while (a.next(ra)) {
    REQUIRE(b.next(rb));
    CHECK(ra.fields == rb.fields);
  }
  CHECK_FALSE(b.next(rb));
  Fnv1a64 expected;
  expected.update(text.data(), text.size());
  CHECK(a.content_hash() == expected.value());
  CHECK(b.content_hash() == expected.value());
}

TEST_CASE("csv: a 100 MB file streams through a fixed buffer in bounded memory", "[data]") {
  TempDir dir;
  fs::path p = dir.path / "big.csv";
  std::int64_t written = 0;
  {
    std::ofstream out(p, std::ios::binary);
    out << "id,text,value\n";
    std::string line;
    for (written = 0; out.tellp() < 100'000'000; ++written) {
      line = std::to_string(written) + ",\"row, number " + std::to_string(written) + "\"," +
             std::to_string(written % 997) + ".5\n";
      out << line;
    }
  }
  long before = resident_kib();
  CsvReader reader(p);
  CsvRecord r;
  REQUIRE(reader.next(r));
  std::int64_t rows = 0;
  std::size_t longest = 0;
  while (reader.next(r)) {
    if (rows % 500'000 == 0) {
      REQUIRE(r.fields.size() == 3);
      CHECK(r.fields[0] == std::to_string(rows));
      CHECK(r.line == rows + 2);
    }
    longest = std::max(longest, r.raw.size());
    ++rows;
  }
  long after = resident_kib();
  CHECK(rows == written);
  CHECK(reader.bytes_read() == fs::file_size(p));
  CHECK(reader.buffer_capacity() == CsvReader::kBufferBytes);
  CHECK(longest < 100);
  // Holding the rows would take far more than 100 MB; the reader must stay within a few MB.
  if (before > 0) CHECK(after - before < 16 * 1024);
}
