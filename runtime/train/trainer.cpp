// The training loop (see trainer.h). Feeds are matched to graph inputs once: a feature-set
// input takes the fitted feature rows, `input u : set.column` an index column, and each
// label input (label=true) its label column. Steps run on the reference executor until
// the LLVM backend lands; nothing here knows which backend it drives.
#include "runtime/train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "compiler/autodiff/optimizer.h"
#include "runtime/data/data_error.h"
#include "runtime/data/dataset.h"
#include "runtime/exec/executor.h"
#include "runtime/train/feeds.h"
#include "runtime/train/metrics.h"
#include "runtime/train/progress.h"
#include "runtime/train/safetensors.h"
#include "runtime/train/schedule.h"

namespace kiln::runtime {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Which model output and which label the loss compares: the first names of each in the
// loss expression.
struct LossRoles {
  std::string prediction;
  std::string label;
};

LossRoles loss_roles(const sema::Compilation& c, const sema::LoweredTrain& t) {
  LossRoles roles;
  const ast::File& file = c.root->ast;
  std::vector<ast::ExprId> stack = {t.spec.loss};
  std::vector<std::string> names;
  while (!stack.empty()) {
    const ast::Expr& e = file.expr(stack.back());
    stack.pop_back();
    if (e.kind == ast::ExprKind::kName) names.push_back(e.text);
    for (auto it = e.args.rbegin(); it != e.args.rend(); ++it) stack.push_back(it->value);
    if (e.rhs != ast::kNoExpr) stack.push_back(e.rhs);
    if (e.lhs != ast::kNoExpr && e.kind != ast::ExprKind::kCall) stack.push_back(e.lhs);
  }
  for (const std::string& n : names) {
    for (const ir::NamedValue& o : t.graph.outputs()) {
      if (o.name == n && roles.prediction.empty()) roles.prediction = n;
    }
    for (const ir::NamedValue& in : t.graph.inputs()) {
      if (in.name == n && t.graph.node(in.value).attrs.get_bool("label") && roles.label.empty()) roles.label = n;
    }
  }
  return roles;
}

void copy_variables(Executor& from, Executor& to, const ir::Graph& graph) {
  auto copy = [&](const std::string& name) {
    Tensor& src = from.variable(name);
    Tensor& dst = to.variable(name);
    std::memcpy(dst.raw(), src.raw(), src.bytes());
  };
  for (const ir::NamedValue& p : graph.parameters()) copy(p.name);
  for (const ir::NamedValue& s : graph.states()) copy(s.name);
}

bool lower_is_better(const std::string& metric) { return metric == "loss" || metric == "rmse" || metric == "mae"; }

class Evaluator {
 public:
  Evaluator(const sema::Compilation& c, const sema::LoweredTrain& t, const data::FittedPipeline& pipeline,
            std::int64_t batch)
      : t_(t), batch_(batch), roles_(loss_roles(c, t)), plan_(plan_feeds(c, t.spec.model, t.graph, pipeline)) {
    for (const data::FittedColumn& col : pipeline.columns) {
      if (col.is_label && col.name == roles_.label && col.kind == sema::ColumnKind::kCategory) {
        classes_ = static_cast<int>(col.classes.size());
      }
    }
  }

  std::map<std::string, double> run(Executor& trained, const data::Arrays& holdout, std::uint64_t seed) {
    if (holdout.rows == 0) return {};
    ClassificationMetrics classification(std::max(classes_, 2));
    RegressionMetrics regression;
    data::BatchIterator it(holdout, batch_, seed, 0, /*shuffle=*/false);
    data::Batch batch;
    while (it.next(batch)) {
      Executor& exec = executor_for(batch.rows);
      copy_variables(trained, exec, t_.graph);
      std::map<std::string, Tensor> feeds = make_feeds(plan_, batch, holdout.index_columns, holdout.class_labels, holdout.number_labels);
      StepOptions options;
      options.seed = seed;
      std::map<std::string, Tensor> out = exec.run(feeds, options);
      double loss = out.at("loss").data<float>()[0];
      if (!roles_.prediction.empty() && out.count(roles_.prediction) && !roles_.label.empty()) {
        const Tensor& pred = out.at(roles_.prediction);
        const Tensor& label = feeds.at(roles_.label);
        if (classes_ > 0 && pred.elements() == batch.rows * classes_) {
          classification.add_logits(pred.data<float>(), label.data<std::int32_t>(), batch.rows);
        } else if (classes_ == 0 && pred.elements() == batch.rows && label.elements() == batch.rows) {
          regression.add(pred.data<float>(), label.data<float>(), batch.rows);
        }
      }
      classification.add_loss(loss * static_cast<double>(batch.rows), batch.rows);
      regression.add_loss(loss * static_cast<double>(batch.rows), batch.rows);
    }
    if (classification.rows() > 0) return classification.all();
    if (regression.rows() > 0) return regression.all();
    return {{"loss", classification.mean_loss()}};
  }

 private:
  Executor& executor_for(std::int64_t rows) {
    auto& slot = executors_[rows];
    if (!slot) slot = make_reference_executor(t_.graph, rows);
    return *slot;
  }

  const sema::LoweredTrain& t_;
  std::int64_t batch_;
  LossRoles roles_;
  std::vector<Feed> plan_;
  int classes_ = 0;
  std::map<std::int64_t, std::unique_ptr<Executor>> executors_;
};

void write_params(const fs::path& path, Executor& exec, const ir::Graph& graph, const std::string& model) {
  std::vector<std::pair<std::string, const Tensor*>> tensors;
  for (const ir::NamedValue& p : graph.parameters()) tensors.emplace_back(p.name, &exec.variable(p.name));
  for (const ir::NamedValue& s : graph.states()) tensors.emplace_back(s.name, &exec.variable(s.name));
  write_safetensors(path, tensors, {{"model", model}, {"format", "kiln-params-1"}});
}

// Loads the train block's data (or, with `test`, its separate test set, all of it in the
// `train` arrays, through the run's fitted pipeline).
data::Dataset load(const sema::Compilation& c, const sema::LoweredTrain& t, std::uint64_t seed,
                   const fs::path& run_dir, const data::FittedPipeline* pipeline, bool test = false) {
  const std::string& name = test ? t.spec.test : t.spec.data;
  const sema::FeatureSet* set = c.find_features(name);
  if (set == nullptr) throw TrainError("unknown features block '" + name + "'");
  data::LoadOptions options = data::load_options(t.spec);
  options.seed = seed;
  options.pipeline = pipeline;
  if (test) options.holdout = 0;
  if (!run_dir.empty() && pipeline == nullptr) {
    options.quarantine_path = run_dir / "quarantine.csv";
    options.summary_path = run_dir / "data_summary.json";
  }
  try {
    return data::load_dataset(*set, options);
  } catch (const data::DataError& e) {
    throw TrainError(e.what());
  }
}

}  // namespace

TrainResult train(const sema::Compilation& c, const sema::LoweredTrain& t, const TrainOptions& options,
                  std::ostream& log) {
  const sema::TrainSpec& spec = t.spec;
  const std::uint64_t seed = options.seed.value_or(static_cast<std::uint64_t>(spec.seed));
  const std::int64_t epochs = options.epochs.value_or(spec.epochs);
  const std::int64_t batch = spec.batch;
  fs::create_directories(options.run_dir);

  data::Dataset data = load(c, t, seed, options.run_dir, nullptr);
  data.pipeline.save(options.run_dir / "pipeline.json");
  if (data.train.rows < batch) {
    throw TrainError("the training split has " + std::to_string(data.train.rows) + " rows, fewer than one batch of " +
                     std::to_string(batch));
  }

  autodiff::TrainingStep step = autodiff::build_training_step(t);
  if (!step.ok()) {
    std::string why;
    for (const Diagnostic& d : step.diagnostics) why += render_diagnostic(d, c.sources);
    throw TrainError("cannot build the training step:\n" + why);
  }
  std::vector<Feed> plan = plan_feeds(c, spec.model, step.graph, data.pipeline);
  std::unique_ptr<Executor> exec = make_reference_executor(step.graph, batch);
  exec->initialize(seed);
  Evaluator evaluator(c, t, data.pipeline, batch);

  TrainResult result;
  Progress progress(log, options.terminal);
  std::ofstream metrics_file(options.run_dir / "metrics.jsonl", std::ios::trunc);
  const std::int64_t batches_per_epoch = data.train.rows / batch;  // the last partial batch is dropped
  const std::int64_t steps_per_epoch =
      options.max_steps_per_epoch > 0 ? std::min(options.max_steps_per_epoch, batches_per_epoch) : batches_per_epoch;
  std::uint64_t global_step = 0;
  double best = 0;
  std::int64_t since_best = 0;
  const std::string stop_metric = spec.early_stop ? spec.early_stop->metric : std::string();

  for (std::int64_t epoch = 0; epoch < epochs; ++epoch) {
    auto started = std::chrono::steady_clock::now();
    progress.start_epoch(epoch + 1, epochs, steps_per_epoch * batch);
    data::BatchIterator it(data.train, batch, seed, epoch);
    data::Batch b;
    double loss_sum = 0;
    double lr = spec.optimizer.lr;
    for (std::int64_t s = 0; s < steps_per_epoch && it.next(b); ++s) {
      if (b.rows != batch) break;
      std::map<std::string, Tensor> feeds = make_feeds(plan, b, data.train.index_columns, data.train.class_labels, data.train.number_labels);
      lr = learning_rate(spec.schedule, spec.optimizer.lr,
                         static_cast<double>(epoch) + static_cast<double>(s) / static_cast<double>(steps_per_epoch), epochs);
      Tensor rate(ir::DType::kF32, {});
      rate.data<float>()[0] = static_cast<float>(lr);
      feeds.emplace(std::string(autodiff::kLearningRateInput), std::move(rate));
      StepOptions step_options;
      step_options.seed = seed;
      step_options.step = global_step;
      step_options.training = true;
      step_options.hold_updates = true;  // checked before they land: a NaN must not reach the weights
      std::map<std::string, Tensor> out = exec->run(feeds, step_options);
      double loss = out.at("loss").data<float>()[0];
      std::optional<std::string> bad_update = exec->pending_non_finite();
      if (!std::isfinite(loss) || bad_update) {
        exec->discard_updates();
        std::string where = "step " + std::to_string(global_step + 1) + " (epoch " + std::to_string(epoch + 1) + ")";
        // The op that produced the first non-finite value (forward or backward) is found by
        // running the same batch again, checking every result.
        if (auto node = exec->first_non_finite(feeds, step_options)) {
          const ir::Node& n = step.graph.node(*node);
          where += ": the first NaN or infinity comes from op " + std::string(ir::core_ops().get(n.op).name) +
                   (n.name.empty() ? "" : " ('" + n.name + "')") + " at " + c.sources.location(n.span);
          for (auto f = n.expansion.rbegin(); f != n.expansion.rend(); ++f) {
            where += ", in layer " + f->layer + " called at " + c.sources.location(f->call_site);
          }
        }
        std::string what = !std::isfinite(loss) ? "the loss is " + std::string(std::isnan(loss) ? "NaN" : "infinite")
                                                : "the update of '" + *bad_update + "' is not finite (a NaN or "
                                                  "infinite gradient)";
        throw TrainError(what + " at " + where + "\nhint: lower the learning rate, or clip gradients with clip_grad = 1.0");
      }
      exec->commit_updates();
      loss_sum += loss;
      ++global_step;
      progress.advance(batch, loss);
    }
    EpochResult er;
    er.epoch = epoch + 1;
    er.train_loss = steps_per_epoch > 0 ? loss_sum / static_cast<double>(steps_per_epoch) : 0;
    er.holdout = evaluator.run(*exec, data.holdout, seed);
    er.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    er.samples_per_second = er.seconds > 0 ? static_cast<double>(steps_per_epoch * batch) / er.seconds : 0;
    er.learning_rate = lr;
    json line = {{"epoch", er.epoch}, {"train_loss", er.train_loss}, {"holdout", er.holdout},
                 {"seconds", er.seconds}, {"samples_per_second", er.samples_per_second}, {"lr", lr}};
    metrics_file << line.dump() << "\n" << std::flush;
    std::string summary = "epoch " + std::to_string(er.epoch) + "/" + std::to_string(epochs) + "  train loss " +
                          std::to_string(er.train_loss);
    for (const auto& [name, value] : er.holdout) summary += "  " + name + " " + std::to_string(value);
    summary += "  " + Progress::human(er.samples_per_second) + " samples/s";
    progress.end_epoch(summary);
    result.epochs.push_back(er);

    if (!stop_metric.empty() && er.holdout.count(stop_metric)) {
      double value = er.holdout.at(stop_metric);
      bool better = result.best_epoch == 0 || (lower_is_better(stop_metric) ? value < best : value > best);
      if (better) {
        best = value;
        result.best_epoch = er.epoch;
        since_best = 0;
      } else if (++since_best >= spec.early_stop->patience) {
        result.early_stopped = true;
        log << "early stop: " << stop_metric << " has not improved for " << since_best << " epochs (best "
            << best << " at epoch " << result.best_epoch << ")\n";
        break;
      }
    }
  }
  if (result.best_epoch == 0 && !result.epochs.empty()) result.best_epoch = result.epochs.back().epoch;

  if (!spec.test.empty()) {
    data::Dataset test = load(c, t, seed, {}, &data.pipeline, /*test=*/true);
    result.test = evaluator.run(*exec, test.train, seed);
    std::string line = "test set '" + spec.test + "' (" + std::to_string(test.train.rows) + " rows):";
    for (const auto& [name, value] : result.test) line += "  " + name + " " + std::to_string(value);
    log << line << "\n";
  }
  write_params(options.run_dir / "params.safetensors", *exec, t.graph, spec.model);
  json run = {{"model", spec.model},
              {"seed", seed},
              {"epochs", result.epochs.size()},
              {"batch", batch},
              {"early_stopped", result.early_stopped},
              {"data_hash", data.summary.content_hash},
              {"final", result.epochs.empty() ? json::object() : json(result.epochs.back().holdout)},
              {"test", result.test}};
  std::ofstream(options.run_dir / "run.json") << run.dump(2) << "\n";
  return result;
}

std::map<std::string, double> evaluate_run(const sema::Compilation& c, const sema::LoweredTrain& t,
                                           const fs::path& run_dir) {
  json run;
  {
    std::ifstream in(run_dir / "run.json");
    if (!in) throw TrainError(run_dir.string() + ": no run.json (is this a kiln train run folder?)");
    run = json::parse(in, nullptr, false);
    if (!run.is_object() || !run.contains("seed")) throw TrainError((run_dir / "run.json").string() + ": malformed");
  }
  data::FittedPipeline pipeline;
  try {
    pipeline = data::FittedPipeline::load(run_dir / "pipeline.json");
  } catch (const data::DataError& e) {
    throw TrainError(e.what());
  }
  const auto seed = run["seed"].get<std::uint64_t>();
  data::Dataset data = load(c, t, seed, {}, &pipeline);
  SafetensorsFile params;
  try {
    params = read_safetensors(run_dir / "params.safetensors");
  } catch (const SafetensorsError& e) {
    throw TrainError(e.what());
  }
  auto holder = make_reference_executor(t.graph, 1);
  auto load_into = [&](const std::string& name) {
    auto it = params.tensors.find(name);
    if (it == params.tensors.end()) throw TrainError((run_dir / "params.safetensors").string() + ": no tensor '" + name + "'");
    Tensor& dst = holder->variable(name);
    if (dst.dims() != it->second.dims() || dst.dtype() != it->second.dtype()) {
      throw TrainError((run_dir / "params.safetensors").string() + ": tensor '" + name + "' is " +
                       it->second.to_string() + ", but the model's is " + dst.to_string());
    }
    std::memcpy(dst.raw(), it->second.raw(), dst.bytes());
  };
  for (const ir::NamedValue& p : t.graph.parameters()) load_into(p.name);
  for (const ir::NamedValue& s : t.graph.states()) load_into(s.name);
  Evaluator evaluator(c, t, pipeline, t.spec.batch);
  std::map<std::string, double> metrics = evaluator.run(*holder, data.holdout, seed);
  if (!t.spec.test.empty()) {
    data::Dataset test = load(c, t, seed, {}, &pipeline, /*test=*/true);
    for (const auto& [name, value] : evaluator.run(*holder, test.train, seed)) metrics["test_" + name] = value;
  }
  return metrics;
}

}  // namespace kiln::runtime
