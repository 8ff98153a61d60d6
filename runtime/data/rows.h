// From a FeatureSet's source to validated rows. SchemaReader streams the csv(...) or
// idx(...) source and checks every record against the declared columns: a record that
// does not fit (wrong field count, text in a number column, a level that was not
// declared, a missing value with no fill) comes back as a RejectedRecord with its line
// and reason, never as an exception. Problems with the file as a whole (missing, empty, a
// declared column absent from the header) throw DataError.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "compiler/sema/features.h"
#include "runtime/data/byte_source.h"
#include "runtime/data/csv_reader.h"
#include "runtime/data/idx_reader.h"
#include "runtime/data/json_record.h"

namespace kiln::data {

// One validated record, by column of the FeatureSet (same order as FeatureSet::columns).
struct Row {
  std::int64_t line = 0;              // CSV: the line where the record starts; IDX: the item number (1-based)
  std::vector<double> numbers;        // number columns: the value, NaN when missing
  std::vector<std::string> texts;     // category columns: the value ("" when missing); category[N]: "0".."N-1"
  std::vector<std::uint8_t> missing;  // 1 when the cell was empty
  std::vector<float> pixels;          // the pixels column (IDX sources), row-major
};

// Anything that hands out rows one at a time: the training split while fitting, a
// vector of rows in tests and serving.
class RowSource {
 public:
  virtual ~RowSource() = default;
  virtual bool next(Row& row) = 0;
};

class VectorRowSource : public RowSource {
 public:
  explicit VectorRowSource(const std::vector<Row>& rows) : rows_(rows) {}
  bool next(Row& row) override {
    if (at_ >= rows_.size()) return false;
    row = rows_[at_++];
    return true;
  }

 private:
  const std::vector<Row>& rows_;
  std::size_t at_ = 0;
};

struct RejectedRecord {
  std::int64_t line = 0;
  std::string reason;
  std::string raw;  // the record as in the file (CSV) or a description of the item (IDX)
};

// How a csv(...) source's file is read.
struct ReadOptions {
  // The file holds JSON lines (json_record.h: one object per line, keys naming columns),
  // not CSV. A record without a column's key has that cell missing.
  bool json_lines = false;
  // JSON lines: a record without a label column's key is read with the label missing
  // instead of being rejected (predictions need no labels; a label that is there is
  // still checked).
  bool labels_optional = false;
  // Read this source instead of opening the features block's file (standard input, or a
  // file whose start the caller has read and rewound: byte_source.h).
  std::shared_ptr<ByteSource> source;
};

// Whether `source`, opened from `path` (or standard input, "-"), is to be read as JSON
// lines: a .jsonl, .ndjson or .json name (before a .gz), or a first non-blank byte '{' (what
// an artifact's predictor decides by too). The start is read and rewound, so the source is
// still unread.
bool looks_like_json_lines(const std::filesystem::path& path, ByteSource& source);

class SchemaReader {
 public:
  enum class Result { kRow, kRejected, kEnd };

  // Opens the source and, for CSV, reads the header: every declared column must be in it
  // (DataError naming the column, with a did-you-mean). For IDX, the image shape must match
  // the pixels column and both files must hold the same number of items. JSON lines have
  // no header: each record names its cells.
  explicit SchemaReader(const sema::FeatureSet& set, ReadOptions options = {});
  ~SchemaReader();

  Result next(Row& row, RejectedRecord& rejected);

  // The file rows come from (csv path, or the images file), for messages.
  const std::filesystem::path& file() const { return file_; }
  // FNV-1a over the raw bytes read so far (IDX: images then labels, as separate streams
  // combined); complete once next() returned kEnd.
  std::uint64_t content_hash() const;
  std::uint64_t bytes_read() const;

 private:
  Result next_csv(Row& row, RejectedRecord& rejected);
  Result next_json(Row& row, RejectedRecord& rejected);
  Result next_idx(Row& row, RejectedRecord& rejected);
  // Checks one cell of column `c`; "" when it is fine, else the reason.
  std::string parse_cell(std::size_t c, const std::string& text, Row& row) const;
  // Pixel i of pixels column `c` (a CSV or JSON source's cell NAME_i) into row.pixels.
  std::string parse_pixel(std::size_t c, std::size_t i, std::string_view text, Row& row) const;

  const sema::FeatureSet& set_;
  ReadOptions options_;
  std::filesystem::path file_;
  class LineFile;
  std::unique_ptr<LineFile> lines_;  // JSON lines
  std::vector<JsonCell> cells_;
  std::unordered_map<std::string_view, std::size_t> by_key_;  // a JSON record's keys -> cells_ (views into them)
  std::vector<std::vector<std::string>> pixel_keys_;          // JSON: of a pixels column, its keys NAME_i
  std::unique_ptr<CsvReader> csv_;
  std::size_t header_fields_ = 0;
  std::vector<std::size_t> field_of_column_;            // CSV: header position of each declared column
  std::vector<std::vector<std::size_t>> pixel_fields_;  // CSV: of a pixels column, its NAME_i columns' positions
  std::unique_ptr<IdxReader> images_, labels_;
  CsvRecord record_;
  std::vector<float> item_;
};

// Resets `row` to hold `columns` columns, all missing.
void reset_row(Row& row, std::size_t columns);

// A record for the quarantine file and messages: at most `limit` bytes of it.
std::string shorten(const std::string& text, std::size_t limit = 200);

}  // namespace kiln::data
