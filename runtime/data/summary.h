// The data summary written next to every load, for people and for lineage: how many
// records were read and rejected, per column the missing count (and min / max / mean for
// numbers, the class balance for a category label), and a content hash of the raw bytes.
#pragma once

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "compiler/sema/features.h"
#include "runtime/data/rows.h"

namespace kiln::data {

struct ColumnSummary {
  std::string name;
  sema::ColumnKind kind = sema::ColumnKind::kNumber;
  bool is_label = false;
  std::int64_t missing = 0;
  // Number columns, over the non-missing values of accepted rows (the raw values, before
  // any transform).
  std::int64_t count = 0;
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  double sum = 0;
  // A category label: rows per class, in declared order.
  std::vector<std::string> classes;
  std::vector<std::int64_t> class_rows;
};

struct DataSummary {
  std::string features;
  std::vector<std::string> sources;  // the files read
  std::string content_hash;          // "fnv1a64:..." over the raw (decompressed) bytes
  std::int64_t records = 0;          // data records read (header excluded)
  std::int64_t rows = 0;             // accepted rows
  std::int64_t rejected = 0;         // records rejected (schema, or a value the pipeline cannot use)
  std::int64_t train_rows = 0, holdout_rows = 0;
  std::string quarantine;                     // where the rejected records are, "" when not written
  std::vector<RejectedRecord> first_rejects;  // the first few, for messages
  std::vector<ColumnSummary> columns;

  static constexpr std::size_t kFirstRejects = 5;

  explicit DataSummary(const sema::FeatureSet& set);
  DataSummary() = default;
  void add_row(const Row& row);
  void add_reject(const RejectedRecord& reject);
  nlohmann::ordered_json to_json() const;
  void write(const std::filesystem::path& path) const;  // throws DataError
};

}  // namespace kiln::data
