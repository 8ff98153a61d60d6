// Checking `features` blocks: column types, levels and transform chains, the data source
// (csv(...) or idx(...)), and the width each column contributes to the model input. The
// result, FeatureSet, is what the data pipeline (next issue) executes; statistics are
// fitted later, on the training split only.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "compiler/ir/types.h"
#include "compiler/syntax/ast.h"
#include "compiler/syntax/diagnostics.h"

namespace kiln::sema {

enum class ColumnKind : std::uint8_t { kNumber, kCategory, kPixels };

struct TransformSpec {
  std::string name;  // fill, standardize, min_max, log1p, clip, scale, bucketize, one_hot, index, passthrough
  // Resolved arguments; which are used depends on name.
  std::string fill_mode;      // fill: "mean" | "median" | "constant"
  double constant = 0;        // fill(constant: v), scale(f)
  std::string constant_text;  // fill(constant: "x") on a category column
  double low = 0, high = 0;   // clip(lo, hi)
  std::vector<double> edges;  // bucketize([...])
  std::int64_t levels = 0;    // one_hot(levels: N), index(levels: N)
  Span span;
};

struct FeatureColumn {
  std::string name;
  Span span;
  ColumnKind kind = ColumnKind::kNumber;
  bool is_label = false;
  std::vector<std::string> levels;        // category[a, b, c] (in order); empty otherwise
  std::int64_t class_count = 0;           // category[N] or the number of listed levels
  std::vector<std::int64_t> pixel_shape;  // pixels[h, w] or pixels[h, w, c]
  std::vector<TransformSpec> transforms;
  bool is_index = false;   // ends in index(levels: N): its own i32 input
  std::int64_t width = 0;  // floats contributed to the feature-set input (0 for labels and index columns)
};

enum class SourceKind : std::uint8_t { kCsv, kIdx };

struct FeatureSet {
  std::string name;
  Span span;
  SourceKind source = SourceKind::kCsv;
  std::filesystem::path csv_path;    // csv("...") resolved against the .kiln file's folder
  std::filesystem::path idx_images;  // idx(images: ..., labels: ...)
  std::filesystem::path idx_labels;
  std::vector<FeatureColumn> columns;

  // The type of `input x : NAME`: f32[batch, width], or f32[batch, h, w, c] when the only
  // non-label, non-index column is pixels[h, w, c].
  ir::TensorType input_type() const;
  std::int64_t width() const;
  const FeatureColumn* find(const std::string& column) const;
  // The type of `input x : NAME.column` (an index column: i32[batch]; number: f32[batch, 1]).
  std::optional<ir::TensorType> column_type(const std::string& column) const;
  // The type of a label column in a loss: i32[batch] for categories, f32[batch] for numbers.
  std::optional<ir::TensorType> label_type(const std::string& column) const;
};

// Checks one features block; reports every problem to `diags`. `base_dir` is the folder of
// the file that declares it. When a csv source exists, its header row is read and every
// declared column must be in it (a missing file is a warning: check does not need data).
std::optional<FeatureSet> check_features(const ast::File& file, const ast::FeaturesDecl& decl,
                                         const std::filesystem::path& base_dir, const SourceManager& sources,
                                         Diagnostics& diags);

}  // namespace kiln::sema
