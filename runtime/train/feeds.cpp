// Feeding a graph from the data pipeline's arrays (see feeds.h).
#include "runtime/train/feeds.h"

#include <cstring>

#include "compiler/autodiff/optimizer.h"
#include "runtime/train/trainer.h"

namespace kiln::runtime {

std::vector<Feed> plan_feeds(const sema::Compilation& c, const std::string& model, const ir::Graph& graph,
                             const data::FittedPipeline& pipeline) {
  std::map<std::string, const ast::TypeExpr*> declared;
  if (auto it = c.root->models.find(model); it != c.root->models.end()) {
    for (const ast::Stmt& st : it->second->body) {
      if (st.kind == ast::StmtKind::kInput) declared[st.names[0]] = &st.type;
    }
  }
  std::vector<Feed> feeds;
  for (const ir::NamedValue& in : graph.inputs()) {
    if (in.name == autodiff::kLearningRateInput) continue;  // fed by the trainer itself
    const ir::Node& node = graph.node(in.value);
    Feed f;
    f.name = in.name;
    f.dtype = node.type.dtype;
    for (std::size_t i = 1; i < node.type.shape.rank(); ++i) f.row_dims.push_back(node.type.shape[i].size);
    auto column_position = [&](auto wanted) -> std::optional<std::int64_t> {
      std::int64_t k = 0;
      for (const data::FittedColumn& col : pipeline.columns) {
        if (!wanted(col)) continue;
        if (col.name == (node.attrs.get_bool("label") ? in.name
                         : declared.count(in.name)    ? declared[in.name]->member
                                                      : ""))
          return k;
        ++k;
      }
      return std::nullopt;
    };
    if (node.attrs.get_bool("label")) {
      if (auto k = column_position(
              [](const data::FittedColumn& col) { return col.is_label && col.kind == sema::ColumnKind::kCategory; })) {
        f.kind = FeedKind::kClass;
        f.column = *k;
      } else if (auto n = column_position([](const data::FittedColumn& col) {
                   return col.is_label && col.kind != sema::ColumnKind::kCategory;
                 })) {
        f.kind = FeedKind::kTarget;
        f.column = *n;
      } else {
        throw TrainError("the data has no label column '" + in.name + "'");
      }
    } else if (declared.count(in.name) && !declared[in.name]->is_tensor && !declared[in.name]->member.empty()) {
      auto k = column_position([](const data::FittedColumn& col) { return col.is_index; });
      if (!k) {
        throw TrainError("input '" + in.name + "' reads column '" + declared[in.name]->member +
                         "', which is not an index column: only index(...) columns can be their own input");
      }
      f.kind = FeedKind::kIndex;
      f.column = *k;
    } else {
      f.kind = FeedKind::kFeatures;
      if (f.row_dims != pipeline.row_shape()) {
        throw TrainError("input '" + in.name + "' is " + node.type.to_string() + ", but a row of features '" +
                         pipeline.features + "' has shape [" + std::to_string(pipeline.width()) + "]");
      }
    }
    feeds.push_back(std::move(f));
  }
  return feeds;
}

// The batch's tensors, one per feed.
std::map<std::string, Tensor> make_feeds(const std::vector<Feed>& plan, const data::Batch& batch,
                                         std::int64_t index_columns, std::int64_t class_labels,
                                         std::int64_t number_labels) {
  std::map<std::string, Tensor> out;
  const std::int64_t rows = batch.rows;
  for (const Feed& f : plan) {
    std::vector<std::int64_t> dims = {rows};
    dims.insert(dims.end(), f.row_dims.begin(), f.row_dims.end());
    Tensor t(f.dtype, dims);
    switch (f.kind) {
      case FeedKind::kFeatures:
        std::memcpy(t.raw(), batch.features.data(), batch.features.size() * sizeof(float));
        break;
      case FeedKind::kIndex:
        for (std::int64_t r = 0; r < rows; ++r) t.data<std::int32_t>()[r] = batch.indices[r * index_columns + f.column];
        break;
      case FeedKind::kClass:
        for (std::int64_t r = 0; r < rows; ++r) t.data<std::int32_t>()[r] = batch.classes[r * class_labels + f.column];
        break;
      case FeedKind::kTarget: {
        std::int64_t per_row = t.elements() / std::max<std::int64_t>(rows, 1);
        for (std::int64_t r = 0; r < rows; ++r) {
          for (std::int64_t k = 0; k < per_row; ++k) {
            t.data<float>()[r * per_row + k] = batch.targets[r * number_labels + f.column];
          }
        }
        break;
      }
    }
    out.emplace(f.name, std::move(t));
  }
  return out;
}

}  // namespace kiln::runtime
