// load_dataset's three passes and the batch iterator.
#include "runtime/data/dataset.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>

#include "runtime/data/sampling.h"

namespace kiln::data {
namespace {

// Rejected records as CSV: line,reason,record (the record as in the file, quoted).
class QuarantineWriter {
 public:
  explicit QuarantineWriter(const std::filesystem::path& path) : path_(path) {
    if (path.empty()) return;
    out_.open(path, std::ios::binary);
    if (!out_) throw DataError(path, 0, "cannot write the quarantine file");
    out_ << "line,reason,record\n";
  }
  void write(const RejectedRecord& r) {
    if (!out_.is_open()) return;
    out_ << r.line << ',' << quote(r.reason) << ',' << quote(r.raw) << '\n';
    if (!out_) throw DataError(path_, 0, "cannot write the quarantine file");
  }
  void close() {
    if (out_.is_open()) out_.close();
  }

  // RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled.
  static std::string quote(const std::string& field) {
    if (field.find_first_of(",\"\r\n") == std::string::npos) return field;
    std::string out = "\"";
    for (char c : field) {
      if (c == '"') out += '"';
      out += c;
    }
    return out + '"';
  }

 private:
  std::filesystem::path path_;
  std::ofstream out_;
};

// Visits the accepted rows of a fresh pass over the source, with their ordinal among the
// accepted rows of pass 1; checks the file did not change since.
template <typename Visit>
void for_each_accepted(const sema::FeatureSet& set, std::uint64_t expected_hash, std::int64_t expected_rows,
                       Visit&& visit) {
  SchemaReader reader(set);
  Row row;
  RejectedRecord rejected;
  std::int64_t ordinal = 0;
  for (;;) {
    SchemaReader::Result r = reader.next(row, rejected);
    if (r == SchemaReader::Result::kEnd) break;
    if (r == SchemaReader::Result::kRejected) continue;
    if (ordinal >= expected_rows) break;
    if (!visit(ordinal, row)) return;  // the visitor has what it needs
    ++ordinal;
  }
  if (ordinal != expected_rows || reader.content_hash() != expected_hash) {
    throw DataError(reader.file(), 0, "the file changed while it was being loaded; load it again");
  }
}

// The training rows of pass 2, for fit().
class TrainingRows : public RowSource {
 public:
  TrainingRows(const sema::FeatureSet& set, const std::vector<std::uint8_t>& in_train, std::uint64_t hash)
      : reader_(set), in_train_(in_train), hash_(hash) {}
  bool next(Row& row) override {
    RejectedRecord rejected;
    for (;;) {
      SchemaReader::Result r = reader_.next(row, rejected);
      if (r == SchemaReader::Result::kEnd) {
        if (ordinal_ != static_cast<std::int64_t>(in_train_.size()) || reader_.content_hash() != hash_) {
          throw DataError(reader_.file(), 0, "the file changed while it was being loaded; load it again");
        }
        return false;
      }
      if (r == SchemaReader::Result::kRejected) continue;
      if (ordinal_ >= static_cast<std::int64_t>(in_train_.size())) continue;
      if (in_train_[static_cast<std::size_t>(ordinal_++)]) return true;
    }
  }

 private:
  SchemaReader reader_;
  const std::vector<std::uint8_t>& in_train_;
  std::uint64_t hash_;
  std::int64_t ordinal_ = 0;
};

void size_arrays(Arrays& a, const FittedPipeline& p, std::int64_t rows) {
  a.rows = rows;
  a.row_shape = p.row_shape();
  a.width = p.width();
  a.index_columns = p.index_columns();
  a.class_labels = p.class_labels();
  a.number_labels = p.number_labels();
  auto n = static_cast<std::size_t>(rows);
  a.features.assign(n * static_cast<std::size_t>(a.width), 0.0f);
  a.indices.assign(n * static_cast<std::size_t>(a.index_columns), 0);
  a.classes.assign(n * static_cast<std::size_t>(a.class_labels), 0);
  a.targets.assign(n * static_cast<std::size_t>(a.number_labels), 0.0f);
  a.lines.assign(n, 0);
}

// Writes row `row` at position a.rows (the count so far); false when the pipeline refuses it.
std::string append_row(Arrays& a, const FittedPipeline& p, const Row& row) {
  auto at = static_cast<std::size_t>(a.rows);
  std::string reason = p.transform_into(row, a.features.data() + at * static_cast<std::size_t>(a.width),
                                        a.indices.data() + at * static_cast<std::size_t>(a.index_columns),
                                        a.classes.data() + at * static_cast<std::size_t>(a.class_labels),
                                        a.targets.data() + at * static_cast<std::size_t>(a.number_labels));
  if (reason.empty()) a.lines[at] = row.line, ++a.rows;
  return reason;
}

void shrink(Arrays& a) {
  auto n = static_cast<std::size_t>(a.rows);
  a.features.resize(n * static_cast<std::size_t>(a.width));
  a.indices.resize(n * static_cast<std::size_t>(a.index_columns));
  a.classes.resize(n * static_cast<std::size_t>(a.class_labels));
  a.targets.resize(n * static_cast<std::size_t>(a.number_labels));
  a.lines.resize(n);
}

void check_reject_share(const DataSummary& s, const std::filesystem::path& file, double max_share) {
  if (s.records == 0 || static_cast<double>(s.rejected) <= max_share * static_cast<double>(s.records)) return;
  std::string first;
  if (!s.first_rejects.empty()) {
    first = fmt::format("; the first, on line {}: {}", s.first_rejects[0].line, s.first_rejects[0].reason);
  }
  throw DataError(
      file, 0,
      fmt::format("{} of {} records ({:.2f}%) were rejected, more than max_reject_share = {} allows{}{}", s.rejected,
                  s.records, 100.0 * static_cast<double>(s.rejected) / static_cast<double>(s.records), max_share, first,
                  s.quarantine.empty() ? "" : "; all of them are in " + s.quarantine));
}

}  // namespace

LoadOptions load_options(const sema::TrainSpec& spec) {
  LoadOptions o;
  o.holdout = spec.holdout;
  o.seed = static_cast<std::uint64_t>(spec.seed);
  o.max_reject_share = spec.max_reject_share;
  return o;
}

std::vector<std::int64_t> Arrays::feature_shape() const {
  std::vector<std::int64_t> shape = {rows};
  shape.insert(shape.end(), row_shape.begin(), row_shape.end());
  return shape;
}

Dataset load_dataset(const sema::FeatureSet& set, const LoadOptions& options) {
  Dataset data;
  data.summary = DataSummary(set);
  DataSummary& summary = data.summary;
  summary.quarantine = options.quarantine_path.string();
  QuarantineWriter quarantine(options.quarantine_path);

  // Pass 1: validate, quarantine, summarise, hash; remember each row's class for the split.
  std::size_t label = set.columns.size();
  for (std::size_t c = 0; c < set.columns.size() && label == set.columns.size(); ++c) {
    if (set.columns[c].is_label && set.columns[c].kind == sema::ColumnKind::kCategory) label = c;
  }
  std::vector<std::int32_t> classes;
  std::filesystem::path file;
  std::uint64_t hash = 0;
  {
    SchemaReader reader(set);
    file = reader.file();
    const ColumnSummary* label_summary = label < set.columns.size() ? &summary.columns[label] : nullptr;
    Row row;
    RejectedRecord rejected;
    for (;;) {
      SchemaReader::Result r = reader.next(row, rejected);
      if (r == SchemaReader::Result::kEnd) break;
      if (r == SchemaReader::Result::kRejected) {
        summary.add_reject(rejected);
        quarantine.write(rejected);
        continue;
      }
      summary.add_row(row);
      if (label_summary != nullptr) {
        const std::vector<std::string>& names = label_summary->classes;
        auto k = std::find(names.begin(), names.end(), row.texts[label]) - names.begin();
        classes.push_back(static_cast<std::int32_t>(k));
      }
    }
    hash = reader.content_hash();
    summary.content_hash = format_hash(hash);
  }
  auto write_summary = [&] {
    if (!options.summary_path.empty()) summary.write(options.summary_path);
  };
  if (summary.records == 0) throw DataError(file, 0, "no data rows: the file has a header but no records");
  check_reject_share(summary, file, options.max_reject_share);
  if (summary.rows == 0) throw DataError(file, 0, "no valid rows: every record was rejected");

  SplitIndices split = split_rows(summary.rows, classes, options.holdout, options.seed);
  std::vector<std::uint8_t> in_train(static_cast<std::size_t>(summary.rows), 0);
  for (std::int64_t r : split.train) in_train[static_cast<std::size_t>(r)] = 1;

  // Pass 2: fit on the training split only.
  if (options.pipeline != nullptr) {
    data.pipeline = *options.pipeline;
  } else {
    TrainingRows training(set, in_train, hash);
    data.pipeline = fit(set, training);
  }
  if (data.pipeline.width() != set.width()) {
    throw DataError(file, 0,
                    fmt::format("the pipeline is {} wide but features {} is {} wide", data.pipeline.width(), set.name,
                                set.width()));
  }

  // Pass 3: transform into the arrays.
  size_arrays(data.train, data.pipeline, static_cast<std::int64_t>(split.train.size()));
  size_arrays(data.holdout, data.pipeline, static_cast<std::int64_t>(split.holdout.size()));
  data.train.rows = data.holdout.rows = 0;
  for_each_accepted(set, hash, summary.rows, [&](std::int64_t ordinal, const Row& row) {
    Arrays& into = in_train[static_cast<std::size_t>(ordinal)] ? data.train : data.holdout;
    std::string reason = append_row(into, data.pipeline, row);
    if (!reason.empty()) {
      RejectedRecord r{row.line, reason, ""};
      quarantine.write(r);
      --summary.rows;
      ++summary.rejected;
      if (summary.first_rejects.size() < DataSummary::kFirstRejects) summary.first_rejects.push_back(r);
    }
    return true;
  });
  shrink(data.train);
  shrink(data.holdout);
  quarantine.close();
  summary.train_rows = data.train.rows;
  summary.holdout_rows = data.holdout.rows;
  write_summary();
  check_reject_share(summary, file, options.max_reject_share);
  return data;
}

BatchIterator::BatchIterator(const Arrays& data, std::int64_t batch_size, std::uint64_t seed, std::int64_t epoch,
                             bool shuffle)
    : data_(data), batch_size_(std::max<std::int64_t>(batch_size, 1)) {
  if (shuffle) {
    order_ = epoch_order(data.rows, seed, epoch);
  } else {
    order_.resize(static_cast<std::size_t>(data.rows));
    for (std::size_t i = 0; i < order_.size(); ++i) order_[i] = static_cast<std::int64_t>(i);
  }
}

std::int64_t BatchIterator::batches() const {
  return (static_cast<std::int64_t>(order_.size()) + batch_size_ - 1) / batch_size_;
}

bool BatchIterator::next(Batch& batch) {
  if (at_ >= order_.size()) return false;
  std::size_t end = std::min(order_.size(), at_ + static_cast<std::size_t>(batch_size_));
  batch.rows = static_cast<std::int64_t>(end - at_);
  batch.positions.assign(order_.begin() + static_cast<std::ptrdiff_t>(at_),
                         order_.begin() + static_cast<std::ptrdiff_t>(end));
  auto gather = [&](const auto& from, auto& into, std::int64_t per_row) {
    auto n = static_cast<std::size_t>(per_row);
    into.resize(batch.positions.size() * n);
    for (std::size_t i = 0; i < batch.positions.size(); ++i) {
      auto src = from.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(batch.positions[i]) * n);
      std::copy(src, src + static_cast<std::ptrdiff_t>(n), into.begin() + static_cast<std::ptrdiff_t>(i * n));
    }
  };
  gather(data_.features, batch.features, data_.width);
  gather(data_.indices, batch.indices, data_.index_columns);
  gather(data_.classes, batch.classes, data_.class_labels);
  gather(data_.targets, batch.targets, data_.number_labels);
  at_ = end;
  return true;
}

}  // namespace kiln::data
