// libFuzzer entry point for the runtime's file readers: the first byte picks one, the rest is
// the file. For any bytes, each reader either reads them or refuses them with its own error
// (DataError, SafetensorsError, or problems listed by the checkpoint reader), whose message
// names the file; it never crashes, hangs or reads out of bounds.
//   0: data::CsvReader (RFC 4180, streaming): records start on increasing lines, and a
//      record's raw text holds a line break only inside quotes.
//   1: data::IdxReader: at most count() items, each item_elements() floats.
//   2: checkpoint::read_tensors (a checkpoint's safetensors bytes against its manifest).
//   3: runtime::read_safetensors (Kiln's weight files).
//   4: data::FittedPipeline::from_json (a run's pipeline.json, once it parses as JSON).
//   5: data::parse_json_record on each line (kiln predict's JSON lines): a refusal names a
//      column within the line and a reason; a record's cells hold no NUL byte and, written
//      back as JSON, parse to the same cells.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "runtime/checkpoint/tensor_file.h"
#include "runtime/data/csv_reader.h"
#include "runtime/data/idx_reader.h"
#include "runtime/data/json_record.h"
#include "runtime/data/pipeline.h"
#include "runtime/train/safetensors.h"

namespace {

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz_readers: %s\n", what.c_str());
  std::abort();
}

// The input as a file of its own (the readers take paths), removed afterwards.
struct TempFile {
  std::filesystem::path path;
  TempFile(const std::uint8_t* data, std::size_t size, const char* suffix) {
    std::string name = (std::filesystem::temp_directory_path() / "kiln-fuzz-XXXXXX").string() + suffix;
    const int fd = mkstemps(name.data(), static_cast<int>(std::string(suffix).size()));
    if (fd < 0) fail("cannot make a temporary file");
    std::size_t done = 0;
    while (done < size) {
      const ssize_t n = write(fd, data + done, size - done);
      if (n <= 0) fail("cannot write the temporary file");
      done += static_cast<std::size_t>(n);
    }
    close(fd);
    path = name;
  }
  ~TempFile() {
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }
};

void expect_named(const std::string& message, const std::filesystem::path& path) {
  if (message.find(path.string()) == std::string::npos) fail("an error that does not name the file: " + message);
}

void fuzz_csv(const std::uint8_t* data, std::size_t size) {
  TempFile file(data, size, ".csv");
  try {
    kiln::data::CsvReader reader(file.path);
    kiln::data::CsvRecord record;
    std::int64_t last = 0;
    while (reader.next(record)) {
      if (record.line <= last) fail("records out of line order");
      last = record.line;
      if (record.raw.find('\n') != std::string::npos && record.raw.find('"') == std::string::npos)
        fail("a record spans lines without a quote");
      if (record.fields.empty()) fail("a record without fields");
    }
  } catch (const kiln::data::DataError& e) {
    expect_named(e.what(), file.path);
  }
}

void fuzz_idx(const std::uint8_t* data, std::size_t size) {
  TempFile file(data, size, ".idx");
  try {
    kiln::data::IdxReader reader(file.path);
    std::vector<float> item;
    std::int64_t items = 0;
    while (reader.next(item)) {
      if (static_cast<std::int64_t>(item.size()) != reader.item_elements()) fail("an item of another size");
      if (++items > reader.count()) fail("more items than the header's count");
    }
  } catch (const kiln::data::DataError& e) {
    expect_named(e.what(), file.path);
  }
}

void fuzz_checkpoint_tensors(const std::uint8_t* data, std::size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  const std::vector<kiln::checkpoint::TensorRecord> expected = {{"w", "F32", {2, 3}, 0x805104b9},
                                                                {"step", "I64", {}, 0x516b2987}};
  std::vector<std::string> problems;
  const auto tensors = kiln::checkpoint::read_tensors(bytes, "fuzz.safetensors", "kiln-checkpoint", expected, problems);
  for (const std::string& p : problems) expect_named(p, "fuzz.safetensors");
  for (const auto& [name, t] : tensors)
    if (name != "w" && name != "step") fail("a tensor the manifest does not list: " + name);
}

void fuzz_safetensors(const std::uint8_t* data, std::size_t size) {
  TempFile file(data, size, ".safetensors");
  try {
    const kiln::runtime::SafetensorsFile f = kiln::runtime::read_safetensors(file.path);
    for (const auto& [name, t] : f.tensors) (void)t.bytes();
  } catch (const kiln::runtime::SafetensorsError& e) {
    expect_named(e.what(), file.path);
  }
}

void fuzz_pipeline(const std::uint8_t* data, std::size_t size) {
  const nlohmann::json doc = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return;
  try {
    const kiln::data::FittedPipeline p = kiln::data::FittedPipeline::from_json(doc);
    (void)p.to_json();
  } catch (const kiln::data::DataError& e) {
    if (std::string(e.what()).find("json.exception") != std::string::npos)
      fail("the JSON library's text: " + std::string(e.what()));
  }
}

// A JSON string literal of `text` (control bytes as \u escapes).
std::string quoted(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
      out += esc;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

void fuzz_json_lines(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<kiln::data::JsonCell> cells, again;
  for (std::size_t at = 0; at <= text.size();) {
    std::size_t end = text.find('\n', at);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(at, end - at);
    at = end + 1;
    if (auto e = kiln::data::parse_json_record(line, cells)) {
      if (e->column < 1 || e->column > line.size() + 1) fail("a column outside the line: " + describe(*e));
      if (e->reason.empty()) fail("a refusal without a reason");
      continue;
    }
    std::string written = "{";
    for (const kiln::data::JsonCell& c : cells) {
      if (c.text.find('\0') != std::string::npos || c.key.find('\0') != std::string::npos) fail("a NUL in a cell");
      written += (written.size() > 1 ? "," : "") + quoted(c.key) + ":" + (c.null ? "null" : quoted(c.text));
    }
    written += "}";
    if (auto e = kiln::data::parse_json_record(written, again)) fail("a record written back is refused: " + written);
    if (again.size() != cells.size()) fail("a record written back has other cells: " + written);
    for (std::size_t i = 0; i < cells.size(); ++i) {
      if (again[i].key != cells[i].key || again[i].text != cells[i].text || again[i].null != cells[i].null)
        fail("a record written back has other cells: " + written);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t which = data[0] % 6;
  ++data, --size;
  switch (which) {
    case 0: fuzz_csv(data, size); break;
    case 1: fuzz_idx(data, size); break;
    case 2: fuzz_checkpoint_tensors(data, size); break;
    case 3: fuzz_safetensors(data, size); break;
    case 4: fuzz_pipeline(data, size); break;
    default: fuzz_json_lines(data, size); break;
  }
  return 0;
}
