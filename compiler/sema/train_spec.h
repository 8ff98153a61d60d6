// Checking `train` and `promote` blocks: known fields, their types and ranges, required
// fields, optimizer and schedule calls, metric names, promotion gates. The loss expression
// is lowered by sema proper (it needs the model's graph); here it is only recorded.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "compiler/syntax/ast.h"
#include "compiler/syntax/diagnostics.h"

namespace kiln::sema {

struct OptimizerSpec {
  std::string kind;  // sgd, adam, adamw
  double lr = 1e-3;
  double momentum = 0;
  bool nesterov = false;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0;
  Span span;
};

struct ScheduleSpec {
  std::string kind = "constant";  // constant, step, cosine
  std::int64_t every = 0;         // step(every: epochs)
  double factor = 0.1;            // step(factor:)
  std::int64_t warmup = 0;        // cosine(warmup: epochs) — also allowed on step
  Span span;
};

struct EarlyStopSpec {
  std::string metric;
  std::int64_t patience = 5;
  Span span;
};

struct TrainSpec {
  std::string model;
  Span span;
  std::string data;  // features block
  Span data_span;
  std::string test;  // optional features block for a separate test split
  Span test_span;
  ast::ExprId loss = ast::kNoExpr;
  OptimizerSpec optimizer;
  std::int64_t batch = 64;
  std::int64_t epochs = 10;
  double holdout = 0.2;
  std::int64_t seed = 0;
  std::vector<std::string> metrics;
  ScheduleSpec schedule;
  std::optional<EarlyStopSpec> early_stop;
  double clip_grad = 0;  // 0 = off
  double max_reject_share = 0.01;
};

// A promotion gate: `metric OP value`, where either side may mention production.METRIC.
struct GateSpec {
  ast::ExprId condition = ast::kNoExpr;
  Span span;
};

struct PromoteSpec {
  std::string model;
  Span span;
  std::vector<GateSpec> gates;
  std::int64_t shadow = 0;
  double canary = 0;
  std::optional<GateSpec> rollback;
};

// The metric names Kiln knows (accuracy, auc, precision, recall, f1, rmse, mae, loss).
const std::vector<std::string>& known_metrics();

std::optional<TrainSpec> check_train(const ast::File& file, const ast::TrainDecl& decl, const SourceManager& sources,
                                     Diagnostics& diags);
std::optional<PromoteSpec> check_promote(const ast::File& file, const ast::PromoteDecl& decl,
                                         const SourceManager& sources, Diagnostics& diags);

}  // namespace kiln::sema
