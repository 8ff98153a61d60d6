// How a graph's inputs are fed from the data pipeline: a feature-set input takes the
// fitted feature rows, `input u : set.column` an index column, each label input
// (label=true) its label column. Planned once per graph, then applied to every batch.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "compiler/sema/sema.h"
#include "runtime/data/dataset.h"
#include "runtime/exec/tensor.h"

namespace kiln::runtime {

enum class FeedKind { kFeatures, kIndex, kClass, kTarget };

struct Feed {
  std::string name;
  FeedKind kind = FeedKind::kFeatures;
  std::int64_t column = 0;  // among index columns / class labels / number labels
  ir::DType dtype = ir::DType::kF32;
  std::vector<std::int64_t> row_dims;  // dims after the batch dimension
};

// One Feed per input of `graph` (model `model` of `c`), except the trainer's `lr`.
// Throws TrainError when an input cannot be fed from `pipeline`.
std::vector<Feed> plan_feeds(const sema::Compilation& c, const std::string& model, const ir::Graph& graph,
                             const data::FittedPipeline& pipeline);

// The batch's tensors, one per feed. The counts say how the batch's index, class and
// target arrays are laid out per row.
std::map<std::string, Tensor> make_feeds(const std::vector<Feed>& plan, const data::Batch& batch,
                                         std::int64_t index_columns, std::int64_t class_labels,
                                         std::int64_t number_labels);

}  // namespace kiln::runtime
