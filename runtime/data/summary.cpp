// DataSummary: per-column accumulation and its JSON form.
#include "runtime/data/summary.h"

#include <fstream>

#include "runtime/data/data_error.h"

namespace kiln::data {

DataSummary::DataSummary(const sema::FeatureSet& set) : features(set.name) {
  if (set.source == sema::SourceKind::kCsv) {
    sources = {set.csv_path.string()};
  } else {
    sources = {set.idx_images.string(), set.idx_labels.string()};
  }
  for (const sema::FeatureColumn& col : set.columns) {
    ColumnSummary c;
    c.name = col.name;
    c.kind = col.kind;
    c.is_label = col.is_label;
    if (col.is_label && col.kind == sema::ColumnKind::kCategory) {
      c.classes = col.levels;
      if (c.classes.empty()) {
        for (std::int64_t k = 0; k < col.class_count; ++k) c.classes.push_back(std::to_string(k));
      }
      c.class_rows.assign(c.classes.size(), 0);
    }
    columns.push_back(std::move(c));
  }
}

void DataSummary::add_row(const Row& row) {
  ++records;
  ++rows;
  for (std::size_t i = 0; i < columns.size(); ++i) {
    ColumnSummary& c = columns[i];
    if (c.kind == sema::ColumnKind::kPixels) continue;
    if (row.missing[i]) {
      ++c.missing;
      continue;
    }
    if (c.kind == sema::ColumnKind::kNumber) {
      double v = row.numbers[i];
      ++c.count;
      c.sum += v;
      c.min = std::min(c.min, v);
      c.max = std::max(c.max, v);
    } else if (!c.classes.empty()) {
      for (std::size_t k = 0; k < c.classes.size(); ++k) {
        if (c.classes[k] == row.texts[i]) ++c.class_rows[k];
      }
    }
  }
}

void DataSummary::add_reject(const RejectedRecord& reject) {
  ++records;
  ++rejected;
  if (first_rejects.size() < kFirstRejects) first_rejects.push_back(reject);
}

nlohmann::ordered_json DataSummary::to_json() const {
  using nlohmann::ordered_json;
  ordered_json cols = ordered_json::array();
  for (const ColumnSummary& c : columns) {
    ordered_json j;
    j["name"] = c.name;
    j["kind"] = c.kind == sema::ColumnKind::kNumber     ? "number"
                : c.kind == sema::ColumnKind::kCategory ? "category"
                                                        : "pixels";
    if (c.is_label) j["label"] = true;
    if (c.kind != sema::ColumnKind::kPixels) j["missing"] = c.missing;
    if (c.kind == sema::ColumnKind::kNumber && c.count > 0) {
      j["min"] = c.min;
      j["max"] = c.max;
      j["mean"] = c.sum / static_cast<double>(c.count);
    }
    if (!c.classes.empty()) {
      ordered_json balance;
      for (std::size_t k = 0; k < c.classes.size(); ++k) balance[c.classes[k]] = c.class_rows[k];
      j["classes"] = std::move(balance);
    }
    cols.push_back(std::move(j));
  }
  ordered_json rejects = ordered_json::array();
  for (const RejectedRecord& r : first_rejects) rejects.push_back({{"line", r.line}, {"reason", r.reason}});
  ordered_json doc;
  doc["features"] = features;
  doc["sources"] = sources;
  doc["content_hash"] = content_hash;
  doc["records"] = records;
  doc["rows"] = rows;
  doc["rejected"] = rejected;
  doc["train_rows"] = train_rows;
  doc["holdout_rows"] = holdout_rows;
  if (!quarantine.empty()) doc["quarantine"] = quarantine;
  doc["first_rejects"] = std::move(rejects);
  doc["columns"] = std::move(cols);
  return doc;
}

void DataSummary::write(const std::filesystem::path& path) const {
  std::ofstream out(path);
  out << to_json().dump(2) << "\n";
  if (!out) throw DataError(path, 0, "cannot write the data summary");
}

}  // namespace kiln::data
