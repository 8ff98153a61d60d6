// Loading a FeatureSet's source for training: validated rows -> quarantine + summary ->
// seeded (stratified) train/holdout split -> pipeline fitted on the training split ->
// arrays the executor takes (features f32, index columns i32, labels i32 or f32) -> batches
// in a per-epoch order that depends on (seed, epoch) alone.
//
// The file is streamed three times rather than held in memory: validate (and count, hash,
// summarise), fit on the training rows, transform into the arrays. The content hash is
// checked on each pass, so a file that changes under the loader is an error, not a mix.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "compiler/sema/features.h"
#include "compiler/sema/train_spec.h"
#include "runtime/data/pipeline.h"
#include "runtime/data/summary.h"

namespace kiln::data {

struct LoadOptions {
  double holdout = 0.2;  // share of rows in the holdout split; 0 puts everything in train
  std::uint64_t seed = 0;
  double max_reject_share = 0.01;         // loading stops when more records than this are rejected
  std::filesystem::path quarantine_path;  // rejected records as CSV; "" writes none
  std::filesystem::path summary_path;     // the summary as JSON; "" writes none
  // Apply this pipeline instead of fitting one (a separate test split, serving).
  const FittedPipeline* pipeline = nullptr;
};

// holdout, seed and max_reject_share from a train block.
LoadOptions load_options(const sema::TrainSpec& spec);

// One split as arrays, row-major, rows in file order.
struct Arrays {
  std::int64_t rows = 0;
  std::vector<std::int64_t> row_shape;  // one row of features: [width] or [h, w, c]
  std::int64_t width = 0;               // floats per row
  std::vector<float> features;          // rows x width
  std::int64_t index_columns = 0;
  std::vector<std::int32_t> indices;  // rows x index_columns
  std::int64_t class_labels = 0;
  std::vector<std::int32_t> classes;  // rows x class_labels
  std::int64_t number_labels = 0;
  std::vector<float> targets;       // rows x number_labels
  std::vector<std::int64_t> lines;  // each row's line (CSV) or item number (IDX)

  std::vector<std::int64_t> feature_shape() const;  // [rows, ...row_shape]
};

struct Dataset {
  FittedPipeline pipeline;
  Arrays train, holdout;
  DataSummary summary;
};

// Throws DataError: a missing or unreadable file, a missing header column, an unterminated
// quote, no valid rows, or a reject share above options.max_reject_share (the summary and
// quarantine are written first, so they can be inspected).
Dataset load_dataset(const sema::FeatureSet& set, const LoadOptions& options);

// A batch, gathered into contiguous buffers in the iterator's order.
struct Batch {
  std::int64_t rows = 0;
  std::vector<std::int64_t> positions;  // row positions in the Arrays
  std::vector<float> features;
  std::vector<std::int32_t> indices;
  std::vector<std::int32_t> classes;
  std::vector<float> targets;
};

class BatchIterator {
 public:
  // All rows of `data` in batches of `batch_size` (the last one may be smaller), in the
  // order epoch_order(rows, seed, epoch), or in file order when `shuffle` is false.
  BatchIterator(const Arrays& data, std::int64_t batch_size, std::uint64_t seed, std::int64_t epoch,
                bool shuffle = true);
  bool next(Batch& batch);
  std::int64_t batches() const;
  const std::vector<std::int64_t>& order() const { return order_; }

 private:
  const Arrays& data_;
  std::int64_t batch_size_;
  std::vector<std::int64_t> order_;
  std::size_t at_ = 0;
};

}  // namespace kiln::data
