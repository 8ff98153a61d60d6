// ByteSource (runtime/data/byte_source.h): what a caller reads while keeping comes back
// after rewind(), then the rest; a pipe is read once and gives the records a file gives;
// standard input is "-"; a gzip stream cut short is an error, not an early end.
#include <unistd.h>
#include <zlib.h>

#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

#include "runtime/data/byte_source.h"
#include "runtime/data/data_error.h"
#include "runtime/data/rows.h"
#include "tests/runtime/data/data_helpers.h"

using namespace kiln;
using namespace kiln::data;
using namespace kiln::data::testing;

namespace {

// Everything left in `source`, read `chunk` bytes at a time.
std::string drain(ByteSource& source, std::size_t chunk = 4096) {
  std::string out;
  std::vector<char> buffer(chunk);
  for (std::size_t n; (n = source.read(buffer.data(), chunk, 1)) > 0;) out.append(buffer.data(), n);
  return out;
}

std::string take(ByteSource& source, std::size_t n) {
  std::string out(n, '\0');
  std::size_t got = 0;
  while (got < n) {
    const std::size_t k = source.read(out.data() + got, n - got, 1);
    REQUIRE(k > 0);
    got += k;
  }
  return out;
}

// Text that spans several of the readers' 64 KiB buffers.
std::string numbered_lines(int lines) {
  std::string text;
  for (int i = 0; i < lines; ++i) text += "line " + std::to_string(i) + " of the input\n";
  return text;
}

// A pipe whose writer (a thread) writes `text` and closes its end; its read end as a path.
class Pipe {
 public:
  explicit Pipe(std::string text) {
    REQUIRE(pipe(fds_) == 0);
    writer_ = std::thread([this, text = std::move(text)] {
      std::size_t at = 0;
      while (at < text.size()) {
        const ssize_t n = write(fds_[1], text.data() + at, text.size() - at);
        if (n <= 0) break;
        at += static_cast<std::size_t>(n);
      }
      close(fds_[1]);
    });
  }
  ~Pipe() {
    writer_.join();
    close(fds_[0]);
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  std::filesystem::path path() const { return "/dev/fd/" + std::to_string(fds_[0]); }
  int read_end() const { return fds_[0]; }

 private:
  int fds_[2] = {-1, -1};
  std::thread writer_;
};

// Each record as "FILE:LINE: age city", or "FILE:LINE: REASON" when it is rejected.
std::vector<std::string> records(const sema::FeatureSet& set, const ReadOptions& options) {
  SchemaReader reader(set, options);
  std::vector<std::string> got = read_records(reader, [](const Row& row) {
    return std::to_string(row.line) + ": " + std::to_string(row.numbers[0]) + " " + row.texts[1];
  });
  for (std::string& line : got) line = reader.file().string() + ":" + line;
  return got;
}

// A features block of a number and a category, read from s.csv unless told otherwise.
sema::FeatureSet small_set(const fs::path& dir) {
  auto comp = compile_text(dir, R"(
features small from csv("s.csv") {
  age : number
  city : category -> one_hot(levels: 3)
}
)");
  return *comp->find_features("small");
}

}  // namespace

TEST_CASE("byte source: kept bytes come back after rewind, then the rest", "[data][byte_source]") {
  TempDir dir;
  const std::string text = numbered_lines(20000);  // about 440 KB
  const fs::path path = dir.write("in.txt", text);

  ByteSource source(path);
  CHECK(source.name() == path);
  source.keep();
  const std::string start = take(source, 100000);
  CHECK(start == text.substr(0, 100000));
  source.rewind();
  CHECK(drain(source, 777) == text);
  CHECK(drain(source) == "");  // the end stays the end

  // Keeping again part way through the replay: the bytes not yet handed out again are
  // kept with the new ones.
  ByteSource again(path);
  again.keep();
  CHECK(take(again, 10) == text.substr(0, 10));
  again.rewind();
  CHECK(take(again, 4) == text.substr(0, 4));
  again.keep();
  CHECK(take(again, 20) == text.substr(4, 20));  // 6 replayed, 14 new
  again.rewind();
  CHECK(drain(again, 3) == text.substr(4));

  // first_nonblank looks and leaves the input unread.
  const fs::path blank = dir.write("blank.txt", " \r\n\t\n{\"a\": 1}\n");
  ByteSource peek(blank);
  CHECK(peek.first_nonblank() == '{');
  CHECK(peek.first_nonblank() == '{');
  CHECK(drain(peek) == " \r\n\t\n{\"a\": 1}\n");
  ByteSource empty(dir.write("empty.txt", "\n\n"));
  CHECK(empty.first_nonblank() == -1);
  CHECK(drain(empty) == "\n\n");
}

TEST_CASE("byte source: what cannot be opened or read is a DataError naming it", "[data][byte_source]") {
  TempDir dir;
  CHECK_THROWS_WITH(ByteSource(dir.path / "absent.csv"), (dir.path / "absent.csv").string() + ": error: no such file");
  CHECK_THROWS_WITH(ByteSource(dir.path), dir.path.string() + ": error: is a directory, not a data file");

  // A gzip stream cut short: an error at the line being read, not a quiet early end (the
  // JSON-lines reader took it for the end of the file before).
  const std::string text = numbered_lines(5000);
  std::string packed;
  {
    const fs::path whole = dir.path / "whole.jsonl.gz";
    gzFile f = gzopen(whole.c_str(), "wb");
    REQUIRE(f != nullptr);
    gzwrite(f, text.data(), static_cast<unsigned>(text.size()));
    gzclose(f);
    packed = read_file(whole);
  }
  const fs::path cut = dir.write("cut.jsonl.gz", packed.substr(0, packed.size() / 2));
  ByteSource source(cut);
  CHECK_THROWS_WITH(drain(source), Catch::StartsWith(cut.string() + ":1: error: read error: "));

  sema::FeatureSet set = small_set(dir.path);
  set.csv_path = cut;
  ReadOptions json;
  json.json_lines = json.labels_optional = true;
  CHECK_THROWS_WITH(records(set, json), Catch::Contains("cut.jsonl.gz:") && Catch::Contains("read error"));
}

TEST_CASE("byte source: a pipe is read once and gives the records a file gives", "[data][byte_source]") {
  TempDir dir;
  sema::FeatureSet set = small_set(dir.path);

  // Long enough that the header's look reads far ahead of what it needs.
  std::string csv = "age,city\n";
  std::string jsonl = "\n";
  for (int i = 0; i < 6000; ++i) {
    csv += std::to_string(i) + ",c" + std::to_string(i % 3) + "\n";
    jsonl += "{\"age\": " + std::to_string(i) + ", \"city\": \"c" + std::to_string(i % 3) + "\"}\n";
  }
  csv += "x,c1\n";
  jsonl += "{\"age\": 1,}\n";

  // What kiln predict does with its --input: look at the start (format; header), rewind,
  // and hand the same source to the reader.
  const auto through = [&](const fs::path& path, bool json) {
    auto source = std::make_shared<ByteSource>(path);
    CHECK(looks_like_json_lines(path, *source) == json);
    if (!json) {
      source->keep();
      CsvRecord header;
      REQUIRE(CsvReader(source).next(header));
      CHECK(header.fields == std::vector<std::string>{"age", "city"});
      source->rewind();
    }
    ReadOptions options;
    options.json_lines = json;
    options.source = source;
    sema::FeatureSet from = set;
    from.csv_path = path;
    return records(from, options);
  };
  const auto renamed = [](std::vector<std::string> lines, const std::string& from, const std::string& to) {
    for (std::string& l : lines) l.replace(0, from.size(), to);
    return lines;
  };

  for (const bool json : {false, true}) {
    const std::string& text = json ? jsonl : csv;
    const fs::path file = dir.write(json ? "in.data" : "in.txt", text);
    const std::vector<std::string> want = through(file, json);
    REQUIRE(want.size() == 6001);
    CHECK(want.front() == file.string() + ":2: 0.000000 c0");  // JSON: after a blank line; CSV: the header
    CHECK_THAT(want.back(), Catch::Contains(json ? ":6002: not a JSON record" : ":6002: 'x' in number column"));

    Pipe pipe(text);
    const std::string name = pipe.path().string();
    CHECK(renamed(through(pipe.path(), json), name, file.string()) == want);
  }

  // Standard input ("-"), a pipe here: named <stdin> in messages.
  const std::vector<std::string> want = through(dir.write("in.txt", csv), false);
  Pipe pipe(csv);
  const int saved = dup(STDIN_FILENO);
  REQUIRE(saved >= 0);
  REQUIRE(dup2(pipe.read_end(), STDIN_FILENO) == STDIN_FILENO);
  std::vector<std::string> got;
  try {
    got = through("-", false);
  } catch (...) {
    dup2(saved, STDIN_FILENO);
    close(saved);
    throw;
  }
  dup2(saved, STDIN_FILENO);
  close(saved);
  CHECK(got == renamed(want, (dir.path / "in.txt").string(), "<stdin>"));
}
