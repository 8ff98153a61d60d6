// SchemaReader: binds the CSV header (or the IDX shapes) to the declared columns once,
// then turns each record into a Row or a RejectedRecord.
#include "runtime/data/rows.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <unordered_map>

#include "compiler/syntax/diagnostics.h"

namespace kiln::data {
namespace {

using sema::ColumnKind;
using sema::FeatureColumn;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool has_fill(const FeatureColumn& col) {
  for (const sema::TransformSpec& t : col.transforms) {
    if (t.name == "fill") return true;
  }
  return false;
}

// The number in a trimmed, non-empty cell into `v`; "" or the reason, naming the cell by
// `what()` ("number column 'age'", "pixel 3 of pixels column 'p'"), called only then.
template <typename What>
std::string read_number(std::string_view value, What what, double& v) {
  const char* end = value.data() + value.size();
  const char* begin = value.data();
  if (*begin == '+') ++begin;  // from_chars does not take a leading '+'
  auto [p, ec] = std::from_chars(begin, end, v);
  if (ec == std::errc::result_out_of_range && p == end) {
    // Beyond a double's range: an underflow is the nearest double (0 or a subnormal, as
    // strtod gives it, which is what an artifact's generated C reads cells with), an
    // overflow infinite (refused below).
    v = std::strtod(std::string(begin, end).c_str(), nullptr);
  } else if (ec != std::errc() || p != end) {
    return "'" + shorten(std::string(value), 40) + "' in " + what() + " is not a number";
  }
  if (!std::isfinite(v)) return "'" + std::string(value) + "' in " + what() + " is not a finite number";
  return "";
}

std::string join_names(const std::vector<std::string>& names) {
  return list_names(names, 12);
}

}  // namespace

// A JSON-lines file (gzip or not, or standard input), a line at a time: its bytes without
// the '\n'.
class SchemaReader::LineFile {
 public:
  explicit LineFile(std::shared_ptr<ByteSource> source) : source_(std::move(source)) {}
  LineFile(const LineFile&) = delete;
  LineFile& operator=(const LineFile&) = delete;

  // The next line into `line`; false at the end of the file.
  bool next(std::string& line) {
    line.clear();
    if (done_) return false;
    for (;;) {
      if (at_ == end_ && !refill()) {
        done_ = true;
        ++line_number_;
        return !line.empty();  // a last line without '\n'
      }
      const char* start = buffer_.data() + at_;
      const void* nl = std::memchr(start, '\n', end_ - at_);
      const std::size_t n = nl != nullptr ? static_cast<const char*>(nl) - start : end_ - at_;
      if (line.size() + n > CsvReader::kMaxRecordBytes) {
        throw DataError(path(), line_number_ + 1,
                        fmt::format("a line longer than {} MiB: not a record (is this a JSON-lines file?)",
                                    CsvReader::kMaxRecordBytes >> 20));
      }
      line.append(start, n);
      hash_.update(start, nl != nullptr ? n + 1 : n);
      at_ += nl != nullptr ? n + 1 : n;
      if (nl != nullptr) {
        ++line_number_;
        return true;
      }
    }
  }

  const std::filesystem::path& path() const { return source_->name(); }
  std::int64_t line_number() const { return line_number_; }  // of the line next() returned
  std::uint64_t content_hash() const { return hash_.value(); }
  std::uint64_t bytes_read() const { return bytes_; }

 private:
  bool refill() {
    buffer_.resize(1 << 16);
    at_ = 0;
    end_ = source_->read(buffer_.data(), buffer_.size(), line_number_ + 1);
    bytes_ += end_;
    return end_ > 0;
  }

  std::shared_ptr<ByteSource> source_;
  std::vector<char> buffer_;
  std::size_t at_ = 0, end_ = 0;
  std::int64_t line_number_ = 0;
  bool done_ = false;
  Fnv1a64 hash_;
  std::uint64_t bytes_ = 0;
};

bool looks_like_json_lines(const std::filesystem::path& path, ByteSource& source) {
  std::filesystem::path name = path.filename();
  if (name.extension() == ".gz") name = name.stem();
  const std::string ext = name.extension().string();
  if (ext == ".jsonl" || ext == ".ndjson" || ext == ".json") return true;
  return source.first_nonblank() == '{';
}

void reset_row(Row& row, std::size_t columns) {
  row.line = 0;
  row.numbers.assign(columns, std::numeric_limits<double>::quiet_NaN());
  row.texts.resize(columns);
  for (std::string& t : row.texts) t.clear();
  row.missing.assign(columns, 1);
  row.pixels.clear();
}

std::string shorten(const std::string& text, std::size_t limit) {
  if (text.size() <= limit) return text;
  return text.substr(0, limit) + "...";
}

SchemaReader::SchemaReader(const sema::FeatureSet& set, ReadOptions options) : set_(set), options_(options) {
  if (set.source == sema::SourceKind::kCsv && options.json_lines) {
    lines_ = std::make_unique<LineFile>(options.source ? options.source : std::make_shared<ByteSource>(set.csv_path));
    file_ = lines_->path();
    for (const FeatureColumn& col : set.columns) {
      pixel_keys_.emplace_back();
      if (col.kind != ColumnKind::kPixels) continue;
      for (std::int64_t i = 0; i < col.width; ++i) pixel_keys_.back().push_back(col.name + "_" + std::to_string(i));
    }
    return;
  }
  if (set.source == sema::SourceKind::kCsv) {
    csv_ = options.source ? std::make_unique<CsvReader>(options.source) : std::make_unique<CsvReader>(set.csv_path);
    file_ = csv_->path();
    CsvRecord header;
    if (!csv_->next(header)) {
      std::vector<std::string> names;
      for (const FeatureColumn& c : set.columns) names.push_back(c.name);
      throw DataError(file_, 1, "the file is empty; expected a header row naming the columns " + join_names(names));
    }
    header_fields_ = header.fields.size();
    std::vector<std::string> names;
    for (const std::string& f : header.fields) names.emplace_back(trim(f));
    for (const FeatureColumn& col : set.columns) {
      pixel_fields_.emplace_back();
      if (col.kind == ColumnKind::kPixels) {  // columns NAME_0 ... NAME_{n-1}, as an artifact reads them
        std::unordered_map<std::string_view, std::size_t> where;
        for (std::size_t i = names.size(); i-- > 0;) where.insert_or_assign(names[i], i);  // the first wins
        const std::int64_t n = col.width;
        for (std::int64_t i = 0; i < n; ++i) {
          const std::string name = col.name + "_" + std::to_string(i);
          auto it = where.find(name);
          if (it == where.end()) {
            throw DataError(file_, header.line,
                            fmt::format("column '{}' of features {} is not in the header: pixels column '{}' of {} "
                                        "values is read from the columns {}_0 ... {}_{}",
                                        name, set.name, col.name, n, col.name, col.name, n - 1));
          }
          pixel_fields_.back().push_back(it->second);
        }
        field_of_column_.push_back(0);
        continue;
      }
      std::size_t found = names.size();
      for (std::size_t i = 0; i < names.size(); ++i) {
        if (names[i] == col.name) {
          found = i;
          break;
        }
      }
      if (found == names.size()) {
        std::string best = closest_match(col.name, names);
        throw DataError(
            file_, header.line,
            "column '" + col.name + "' of features " + set.name + " is not in the header" +
                (best.empty() ? "; the header has " + join_names(names) : "; did you mean '" + best + "'?"));
      }
      field_of_column_.push_back(found);
    }
    return;
  }
  file_ = set.idx_images;
  images_ = std::make_unique<IdxReader>(set.idx_images);
  labels_ = std::make_unique<IdxReader>(set.idx_labels);
  if (labels_->count() != images_->count()) {
    throw DataError(
        set.idx_labels, 0,
        fmt::format("{} labels for {} images in {}", labels_->count(), images_->count(), set.idx_images.string()));
  }
  if (labels_->item_elements() != 1) {
    throw DataError(set.idx_labels, 0, "a labels file must hold one value per item (a 1-dimensional IDX file)");
  }
  for (const FeatureColumn& col : set.columns) {
    if (col.kind != ColumnKind::kPixels) continue;
    std::int64_t declared = 1;
    for (std::int64_t d : col.pixel_shape) declared *= d;
    if (declared != images_->item_elements()) {
      std::string actual;
      for (std::size_t i = 1; i < images_->dims().size(); ++i) {
        actual += (i > 1 ? "x" : "") + std::to_string(images_->dims()[i]);
      }
      throw DataError(file_, 0,
                      fmt::format("the images are {} ({} values) but column '{}' declares {} values", actual,
                                  images_->item_elements(), col.name, declared));
    }
  }
}

SchemaReader::~SchemaReader() = default;

std::uint64_t SchemaReader::content_hash() const {
  if (csv_) return csv_->content_hash();
  if (lines_) return lines_->content_hash();
  // Two streams: fold the labels' hash into the images' one.
  Fnv1a64 h;
  std::uint64_t parts[2] = {images_->content_hash(), labels_->content_hash()};
  h.update(parts, sizeof parts);
  return h.value();
}

std::uint64_t SchemaReader::bytes_read() const {
  return csv_ ? csv_->bytes_read() : lines_ ? lines_->bytes_read() : 0;
}

SchemaReader::Result SchemaReader::next(Row& row, RejectedRecord& rejected) {
  return csv_ ? next_csv(row, rejected) : lines_ ? next_json(row, rejected) : next_idx(row, rejected);
}

std::string SchemaReader::parse_cell(std::size_t c, const std::string& text, Row& row) const {
  const FeatureColumn& col = set_.columns[c];
  std::string_view value = trim(text);
  if (value.empty()) {
    row.missing[c] = 1;
    if (col.is_label) return "missing value in label column '" + col.name + "'";
    if (col.kind == ColumnKind::kNumber && !has_fill(col)) {
      return "missing value in number column '" + col.name + "', which has no fill(...)";
    }
    return "";
  }
  row.missing[c] = 0;
  if (col.kind == ColumnKind::kNumber) {
    double v = 0;
    std::string reason = read_number(
        value, [&] { return "number column '" + col.name + "'"; }, v);
    if (reason.empty()) row.numbers[c] = v;
    return reason;
  }
  // Category.
  if (!col.levels.empty()) {
    for (const std::string& level : col.levels) {
      if (level == value) {
        row.texts[c] = level;
        return "";
      }
    }
    std::string best = closest_match(std::string(value), col.levels);
    return "'" + shorten(std::string(value), 40) + "' is not a level of column '" + col.name + "' (" +
           join_names(col.levels) + ")" + (best.empty() ? "" : "; did you mean '" + best + "'?");
  }
  if (col.class_count > 0) {  // category[N]: integer classes 0..N-1
    std::int64_t k = -1;
    auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), k);
    if (ec != std::errc() || p != value.data() + value.size() || k < 0 || k >= col.class_count) {
      return fmt::format("'{}' in column '{}' is not a class of category[{}] (an integer 0..{})",
                         shorten(std::string(value), 40), col.name, col.class_count, col.class_count - 1);
    }
    row.texts[c] = std::to_string(k);
    return "";
  }
  row.texts[c].assign(value);
  return "";
}

std::string SchemaReader::parse_pixel(std::size_t c, std::size_t i, std::string_view text, Row& row) const {
  const FeatureColumn& col = set_.columns[c];
  const std::string_view value = trim(text);
  // Pixel i: the CSV column NAME_i, or element i of the JSON array NAME.
  const auto what = [&] { return "pixel " + std::to_string(i) + " of pixels column '" + col.name + "'"; };
  if (value.empty()) return "missing value in " + what();
  double v = 0;
  std::string reason = read_number(value, what, v);
  if (reason.empty()) row.pixels[i] = static_cast<float>(v);
  return reason;
}

SchemaReader::Result SchemaReader::next_csv(Row& row, RejectedRecord& rejected) {
  if (!csv_->next(record_)) return Result::kEnd;
  reset_row(row, set_.columns.size());
  row.line = record_.line;
  auto reject = [&](std::string reason) {
    rejected.line = record_.line;
    rejected.reason = std::move(reason);
    rejected.raw = record_.raw;
    return Result::kRejected;
  };
  if (!record_.malformed.empty()) return reject(record_.malformed);
  if (record_.fields.size() != header_fields_) {
    return reject(fmt::format("expected {} fields as in the header, found {}", header_fields_, record_.fields.size()));
  }
  for (std::size_t c = 0; c < set_.columns.size(); ++c) {
    if (set_.columns[c].kind == ColumnKind::kPixels) {
      const std::vector<std::size_t>& fields = pixel_fields_[c];
      row.pixels.assign(fields.size(), 0.0f);
      row.missing[c] = 0;
      for (std::size_t i = 0; i < fields.size(); ++i) {
        std::string reason = parse_pixel(c, i, record_.fields[fields[i]], row);
        if (!reason.empty()) return reject(std::move(reason));
      }
      continue;
    }
    std::string reason = parse_cell(c, record_.fields[field_of_column_[c]], row);
    if (!reason.empty()) return reject(std::move(reason));
  }
  return Result::kRow;
}

SchemaReader::Result SchemaReader::next_json(Row& row, RejectedRecord& rejected) {
  std::string line;
  for (;;) {
    if (!lines_->next(line)) return Result::kEnd;
    // Blank lines (white space alone) are not records.
    if (line.find_first_not_of(" \t\r\n") != std::string::npos) break;
  }
  reset_row(row, set_.columns.size());
  row.line = lines_->line_number();
  auto reject = [&](std::string reason) {
    rejected.line = row.line;
    rejected.reason = std::move(reason);
    rejected.raw = shorten(line);
    return Result::kRejected;
  };
  if (std::optional<JsonRecordError> e = parse_json_record(line, cells_)) return reject(describe(*e));
  // Keys to cells, the last one where a key comes twice (an image's hundreds of pixel keys
  // are looked up one by one).
  by_key_.clear();
  for (std::size_t i = 0; i < cells_.size(); ++i) by_key_.insert_or_assign(cells_[i].key, i);
  const auto cell_of = [&](std::string_view key) -> const JsonCell* {
    auto it = by_key_.find(key);
    return it == by_key_.end() ? nullptr : &cells_[it->second];
  };
  for (std::size_t c = 0; c < set_.columns.size(); ++c) {
    const FeatureColumn& col = set_.columns[c];
    if (col.kind == ColumnKind::kPixels) {
      const std::vector<std::string>& keys = pixel_keys_[c];
      row.pixels.assign(keys.size(), 0.0f);
      row.missing[c] = 0;
      for (std::size_t i = 0; i < keys.size(); ++i) {
        const JsonCell* cell = cell_of(keys[i]);
        std::string reason = parse_pixel(c, i, cell == nullptr || cell->null ? std::string_view() : cell->text, row);
        if (!reason.empty()) return reject(std::move(reason));
      }
      continue;
    }
    const JsonCell* cell = cell_of(col.name);
    if (cell == nullptr && col.is_label && options_.labels_optional) continue;  // stays missing
    std::string reason = parse_cell(c, cell == nullptr || cell->null ? std::string() : cell->text, row);
    if (!reason.empty()) return reject(std::move(reason));
  }
  return Result::kRow;
}

SchemaReader::Result SchemaReader::next_idx(Row& row, RejectedRecord& rejected) {
  std::vector<float> label;
  if (!images_->next(item_)) return Result::kEnd;
  if (!labels_->next(label)) {
    throw DataError(set_.idx_labels, 0, "the labels file ends before the images file");
  }
  reset_row(row, set_.columns.size());
  row.line = images_->items_read();
  for (std::size_t c = 0; c < set_.columns.size(); ++c) {
    const FeatureColumn& col = set_.columns[c];
    if (col.kind == ColumnKind::kPixels) {
      row.pixels = item_;
      row.missing[c] = 0;
      continue;
    }
    // Every other column of an IDX feature set reads the label file.
    float v = label[0];
    bool integral = std::isfinite(v) && v == std::trunc(v) && std::abs(v) < 1e15f;
    std::string text = col.kind == ColumnKind::kCategory && integral ? std::to_string(static_cast<std::int64_t>(v))
                                                                     : fmt::format("{}", v);
    std::string reason = parse_cell(c, text, row);
    if (!reason.empty()) {
      rejected.line = row.line;
      rejected.reason = std::move(reason);
      rejected.raw = fmt::format("item {}: label {}", row.line, v);
      return Result::kRejected;
    }
  }
  return Result::kRow;
}

}  // namespace kiln::data
