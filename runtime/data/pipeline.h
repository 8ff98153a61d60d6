// The feature pipeline as part of the model: `fit` learns each column's statistics
// (fill values, means and deviations, ranges, vocabularies) from the TRAINING SPLIT ONLY,
// and the resulting FittedPipeline turns a validated Row into the model's inputs. It
// round-trips through JSON exactly, so training, evaluation and serving apply the same
// transform. Rules (ties, empty columns, buckets) are spelled out in docs/data.md.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "compiler/sema/features.h"
#include "runtime/data/rows.h"

namespace kiln::data {

// One step of a column's chain with its fitted or declared parameters.
struct FittedStage {
  std::string op;         // fill, standardize, min_max, log1p, clip, scale, bucketize, one_hot, index, passthrough
  std::string fill_mode;  // fill: mean | median | constant
  double value = 0;       // fill: the value filled in (fitted for mean/median); scale: the factor
  std::string text;       // fill(constant: "x") on a category column
  double mean = 0, stddev = 1;  // standardize (population deviation)
  double low = 0, high = 0;     // min_max: the training range; clip: the bounds
  std::vector<double> edges;    // bucketize
  std::int64_t levels = 0;      // one_hot / index: N

  bool operator==(const FittedStage&) const = default;
};

struct FittedColumn {
  std::string name;
  sema::ColumnKind kind = sema::ColumnKind::kNumber;
  bool is_label = false;
  bool is_index = false;
  std::vector<std::int64_t> pixel_shape;
  std::int64_t width = 0;   // floats in the feature row (0 for labels and index columns)
  std::int64_t offset = 0;  // where they start
  std::vector<FittedStage> stages;
  std::vector<std::string> classes;     // a category label: class id -> its value
  std::vector<std::string> vocabulary;  // one_hot / index: slot -> value (at most N; unknown is slot N)

  bool operator==(const FittedColumn& other) const {
    return name == other.name && kind == other.kind && is_label == other.is_label && is_index == other.is_index &&
           pixel_shape == other.pixel_shape && width == other.width && offset == other.offset &&
           stages == other.stages && classes == other.classes && vocabulary == other.vocabulary;
  }
};

// One row through the pipeline, for serving and tests (datasets write straight into arrays).
struct TransformedRow {
  std::vector<float> features;        // width() floats
  std::vector<std::int32_t> indices;  // one per index column, in column order
  std::vector<std::int32_t> classes;  // one per category label
  std::vector<float> targets;         // one per number label
};

class FittedPipeline {
 public:
  std::string features;  // the FeatureSet's name
  std::vector<FittedColumn> columns;

  std::int64_t width() const { return width_; }
  // The shape of one row of the feature-set input: [width], or [h, w, c] for an image set.
  const std::vector<std::int64_t>& row_shape() const { return row_shape_; }
  std::int64_t index_columns() const { return index_columns_; }
  std::int64_t class_labels() const { return class_labels_; }
  std::int64_t number_labels() const { return number_labels_; }

  // Writes one row's outputs at the given places (each sized as above). Returns "" on
  // success, or why the row cannot be used (a value that is not finite after the chain).
  // With `labels_optional` (prediction input has no labels), a missing or unknown label
  // writes -1 / NaN instead of failing.
  std::string transform_into(const Row& row, float* features, std::int32_t* indices, std::int32_t* classes,
                             float* targets, bool labels_optional = false) const;
  // The same, allocating; throws DataError(file = features name, line = row.line) on failure.
  TransformedRow transform(const Row& row) const;

  nlohmann::json to_json() const;
  // Throws DataError on a malformed document.
  static FittedPipeline from_json(const nlohmann::json& doc);
  void save(const std::filesystem::path& path) const;
  static FittedPipeline load(const std::filesystem::path& path);

  // Recomputes offsets, shapes and lookup tables after `columns` changed.
  void finish();

  bool operator==(const FittedPipeline& other) const { return features == other.features && columns == other.columns; }

 private:
  std::int64_t width_ = 0;
  std::vector<std::int64_t> row_shape_;
  std::int64_t index_columns_ = 0, class_labels_ = 0, number_labels_ = 0;
  // Per column: value -> slot (one_hot / index) or class id (category label).
  std::vector<std::unordered_map<std::string, std::int32_t>> lookup_;
};

// Fits every column on `training_rows` (validated rows of the training split only).
// Throws DataError when there are no rows.
FittedPipeline fit(const sema::FeatureSet& set, RowSource& training_rows);

// The median of the finite values (the mean of the two middle ones for an even count);
// 0 when there are none. Reorders `values`.
double median_of(std::vector<double>& values);

}  // namespace kiln::data
