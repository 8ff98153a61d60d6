// The training loop (see trainer.h). Feeds are matched to graph inputs once: a feature-set
// input takes the fitted feature rows, `input u : set.column` an index column, and each
// label input (label=true) its label column. Steps run on the executor of
// TrainOptions::backend (the LLVM JIT by default); nothing else here knows which it is.
#include "runtime/train/trainer.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <set>

#include "compiler/autodiff/optimizer.h"
#include "compiler/codegen/codegen.h"
#include "runtime/checkpoint/checkpoint.h"
#include "runtime/checkpoint/run_state.h"
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

// "model.kiln:9:12, in layer dense called at model.kiln:20:8": where a graph node came from.
std::string origin(const sema::Compilation& c, const ir::Node& n) {
  std::string where = c.sources.location(n.span);
  for (auto f = n.expansion.rbegin(); f != n.expansion.rend(); ++f)
    where += ", in layer " + f->layer + " called at " + c.sources.location(f->call_site);
  return where;
}

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

bool lower_is_better(const std::string& metric) {
  return metric == "loss" || metric == "rmse" || metric == "mae";
}

class Evaluator {
 public:
  Evaluator(const sema::Compilation& c, const sema::LoweredTrain& t, const data::FittedPipeline& pipeline,
            std::int64_t batch, Backend backend)
      : t_(t),
        batch_(batch),
        backend_(backend),
        roles_(loss_roles(c, t)),
        plan_(plan_feeds(c, t.spec.model, t.graph, pipeline)) {
    for (const data::FittedColumn& col : pipeline.columns) {
      if (col.is_label && col.name == roles_.label && col.kind == sema::ColumnKind::kCategory) {
        classes_ = static_cast<int>(col.classes.size());
        confusion_.classes = col.classes;
      }
    }
  }

  std::map<std::string, double> run(Executor& trained, const data::Arrays& holdout, std::uint64_t seed) {
    if (holdout.rows == 0) return {};
    prepare(holdout.rows);
    ClassificationMetrics classification(std::max(classes_, 2));
    RegressionMetrics regression;
    data::BatchIterator it(holdout, batch_, seed, 0, /*shuffle=*/false);
    data::Batch batch;
    std::set<Executor*> current;  // executors given the trained variables in this evaluation
    while (it.next(batch)) {
      Executor& exec = executor_for(batch.rows);
      if (current.insert(&exec).second) copy_variables(trained, exec, t_.graph);
      std::map<std::string, Tensor> feeds =
          make_feeds(plan_, batch, holdout.index_columns, holdout.class_labels, holdout.number_labels);
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
    if (classification.rows() > 0) {
      confusion_.counts = classification.confusion();
      return classification.all();
    }
    if (regression.rows() > 0) return regression.all();
    return {{"loss", classification.mean_loss()}};
  }

  const Confusion& confusion() const { return confusion_; }
  std::string compile_summary() const { return runtime::compile_summary(executors_, "evaluation step", compile_wall_); }

 private:
  Confusion confusion_;

  Executor& executor_for(std::int64_t rows) {
    auto& slot = executors_[rows];
    if (!slot) {
      const auto start = std::chrono::steady_clock::now();
      slot = make_executor(t_.graph, rows, backend_);
      compile_wall_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    return *slot;
  }

  // A set of `rows` needs the full batch and, unless it divides evenly, one for the last
  // rows: two JIT compiles that do not depend on each other, so they run at once.
  void prepare(std::int64_t rows) {
    std::vector<std::int64_t> missing;
    for (std::int64_t size : {rows >= batch_ ? batch_ : std::int64_t{0}, rows % batch_}) {
      auto it = executors_.find(size);
      if (size > 0 && (it == executors_.end() || !it->second)) missing.push_back(size);
    }
    if (missing.size() < 2 || backend_ != Backend::kJit) return;
    const auto start = std::chrono::steady_clock::now();
    auto other = std::async(std::launch::async, [&] { return make_executor(t_.graph, missing[1], backend_); });
    std::unique_ptr<Executor> first = make_executor(t_.graph, missing[0], backend_);
    executors_[missing[1]] = other.get();
    executors_[missing[0]] = std::move(first);
    compile_wall_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  const sema::LoweredTrain& t_;
  std::int64_t batch_;
  Backend backend_;
  LossRoles roles_;
  std::vector<Feed> plan_;
  int classes_ = 0;
  std::map<std::int64_t, std::unique_ptr<Executor>> executors_;
  double compile_wall_ = 0;  // seconds spent making executors (compiles run two at a time)
};

void write_params(const fs::path& path, Executor& exec, const ir::Graph& graph, const std::string& model) {
  std::vector<std::pair<std::string, const Tensor*>> tensors;
  for (const ir::NamedValue& p : graph.parameters()) tensors.emplace_back(p.name, &exec.variable(p.name));
  for (const ir::NamedValue& s : graph.states()) tensors.emplace_back(s.name, &exec.variable(s.name));
  write_safetensors(path, tensors, {{"model", model}, {"format", "kiln-params-1"}});
}

// Loads the train block's data (or, with `test`, its separate test set, all of it in the
// `train` arrays, through the run's fitted pipeline).
data::Dataset load(const sema::Compilation& c, const sema::LoweredTrain& t, std::uint64_t seed, const fs::path& run_dir,
                   const data::FittedPipeline* pipeline, bool test = false) {
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
  const std::int64_t epochs = options.epochs.value_or(spec.epochs);
  const std::int64_t batch = spec.batch;
  fs::create_directories(options.run_dir);
  const fs::path ckpt_dir = options.run_dir / "checkpoints";
  const bool checkpointing = options.checkpoints || options.checkpoint_every > 0;

  // A resume reads (and verifies) its checkpoint before anything else happens.
  std::optional<checkpoint::Checkpoint> resume_from;
  if (checkpointing || !options.resume.empty()) {
    for (const std::string& name : checkpoint::remove_stale_temporaries(ckpt_dir)) {
      log << "removed " << (ckpt_dir / name).string() << " (left by an interrupted save)\n";
    }
  }
  try {
    if (options.resume == "latest") {
      if (std::optional<fs::path> latest = checkpoint::read_latest(ckpt_dir)) {
        resume_from = checkpoint::load_checkpoint(*latest);
      } else {
        log << "no checkpoint in " << ckpt_dir.string() << " yet: starting from the beginning\n";
      }
    } else if (!options.resume.empty()) {
      resume_from = checkpoint::load_checkpoint(checkpoint::resolve_checkpoint(options.resume));
    }
  } catch (const checkpoint::CheckpointError& e) {
    throw TrainError(std::string("cannot resume: ") + e.what());
  }
  if (resume_from) {
    // The manifest's types are checked when it is read (checkpoint.cpp); what a resume needs
    // must also be there.
    const json& m = resume_from->manifest;
    std::string missing;
    const auto need = [&](const json& object, const std::string& where, std::initializer_list<const char*> keys) {
      for (const char* key : keys)
        if (missing.empty() && !object.contains(key)) missing = where + key;
    };
    need(m, "", {"training", "metrics"});
    if (missing.empty()) {
      need(m["training"], "training.",
           {"seed", "batch", "steps_per_epoch", "epoch", "batch_in_epoch", "global_step", "lr", "loss_sum", "best",
            "since_best", "best_epoch", "early_stopped"});
      for (std::size_t i = 0; i < m["metrics"].size(); ++i)
        need(m["metrics"][i], "metrics[" + std::to_string(i) + "].",
             {"epoch", "train_loss", "holdout", "seconds", "samples_per_second", "lr"});
    }
    if (!missing.empty()) {
      throw TrainError("cannot resume: " + resume_from->path.string() + "/manifest.json has no " + missing +
                       " (a checkpoint without its training state cannot be resumed; --warm-start takes its weights)");
    }
  }
  const json* saved = resume_from ? &resume_from->manifest.at("training") : nullptr;
  if (resume_from && resume_from->manifest.value("model", "") != spec.model) {
    throw TrainError("cannot resume: " + resume_from->path.string() + " is a checkpoint of model '" +
                     resume_from->manifest.value("model", "") + "', not '" + spec.model + "'");
  }
  std::uint64_t seed = options.seed.value_or(static_cast<std::uint64_t>(spec.seed));
  if (saved) {
    const auto saved_seed = saved->at("seed").get<std::uint64_t>();
    if (options.seed && *options.seed != saved_seed) {
      throw TrainError("cannot resume with --seed " + std::to_string(*options.seed) +
                       ": the checkpoint's run has seed " + std::to_string(saved_seed) + " (drop --seed to resume it)");
    }
    seed = saved_seed;
    if (saved->at("batch").get<std::int64_t>() != batch) {
      throw TrainError("cannot resume: the checkpoint's run has batch " + saved->at("batch").dump() +
                       ", the train block " + std::to_string(batch) +
                       " (the position in the epoch would be meaningless)");
    }
  }

  data::Dataset data;
  if (resume_from) {
    // The checkpoint's fitted pipeline, not a refit; the data must be the data it was fitted on.
    data::FittedPipeline pipeline;
    try {
      pipeline = data::FittedPipeline::from_json(resume_from->pipeline);
    } catch (const data::DataError& e) {
      throw TrainError(resume_from->path.string() + "/pipeline.json: " + e.what());
    }
    data = load(c, t, seed, {}, &pipeline);
    const std::string saved_hash = resume_from->manifest.value("data", json::object()).value("content_hash", "");
    if (data.summary.content_hash != saved_hash) {
      throw TrainError("cannot resume: the training data changed since the checkpoint (features '" + spec.data +
                       "' now hashes to " + data.summary.content_hash + ", the checkpoint recorded " + saved_hash +
                       ")\nhint: restore the data, or start afresh from its weights with --warm-start " +
                       resume_from->path.string());
    }
  } else {
    data = load(c, t, seed, options.run_dir, nullptr);
  }
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
  std::unique_ptr<Executor> exec;
  try {
    exec = make_executor(step.graph, batch, options.backend);
  } catch (const codegen::UnsupportedOp& e) {
    throw TrainError(std::string("cannot compile the training step: ") + e.what() + "\n  the op comes from " +
                     origin(c, step.graph.node(e.node)));
  } catch (const std::runtime_error& e) {
    throw TrainError(std::string("cannot compile the training step: ") + e.what());
  }
  if (options.backend == Backend::kJit) {
    log << fmt::format("compiled the training step (batch {}) with LLVM in {:.2f} s\n", batch, exec->compile_seconds());
  }
  exec->initialize(seed);
  Evaluator evaluator(c, t, data.pipeline, batch, options.backend);

  // Model variables (parameters, then states such as batch-norm statistics) and the
  // optimizer's states (every other state of the step graph: opt.*).
  std::vector<std::string> model_names, optimizer_names;
  for (const ir::NamedValue& p : t.graph.parameters()) model_names.push_back(p.name);
  for (const ir::NamedValue& s : t.graph.states()) model_names.push_back(s.name);
  for (const ir::NamedValue& s : step.graph.states()) {
    if (std::find(model_names.begin(), model_names.end(), s.name) == model_names.end())
      optimizer_names.push_back(s.name);
  }
  auto load_or_throw = [&](const checkpoint::Checkpoint& ck, const std::vector<std::string>& names,
                           const std::map<std::string, Tensor>& tensors, const std::string& what) {
    std::vector<std::string> problems = checkpoint::load_variables(*exec, names, tensors, what);
    if (problems.empty()) return;
    std::string message = ck.path.string() + " does not fit model '" + spec.model + "' (" +
                          std::to_string(problems.size()) + " problem" + (problems.size() == 1 ? "" : "s") + "):";
    for (const std::string& p : problems) message += "\n  " + p;
    throw TrainError(message +
                     "\nhint: a changed model cannot resume; rename a changed layer to train it from scratch");
  };
  if (!options.warm_start.empty()) {
    if (resume_from) throw TrainError("--warm-start and --resume exclude each other");
    try {
      checkpoint::Checkpoint ck = checkpoint::load_checkpoint(checkpoint::resolve_checkpoint(options.warm_start));
      load_or_throw(ck, model_names, ck.params, "parameter");
      log << "warm start: weights from " << ck.path.string() << " (step " << ck.manifest.value("step", 0)
          << "); optimizer state, epoch and step start afresh\n";
    } catch (const checkpoint::CheckpointError& e) {
      throw TrainError(std::string("cannot warm-start: ") + e.what());
    }
  }

  TrainResult result;
  std::int64_t start_epoch = 0, start_batch = 0;
  std::uint64_t global_step = 0;
  double resumed_loss_sum = 0, resumed_lr = spec.optimizer.lr;
  double best = 0;
  std::int64_t since_best = 0;
  const json optimizer = checkpoint::optimizer_record(spec);
  if (resume_from) {
    const checkpoint::Checkpoint& ck = *resume_from;
    load_or_throw(ck, model_names, ck.params, "parameter");
    std::vector<std::string> changed =
        checkpoint::optimizer_differences(ck.manifest.value("optimizer", json()), optimizer);
    if (!changed.empty() && !options.reset_optimizer) {
      std::string message = "cannot resume: the optimizer changed since the checkpoint " + ck.path.string() + ":";
      for (const std::string& d : changed) message += "\n  " + d;
      throw TrainError(message +
                       "\nhint: --reset-optimizer resumes with fresh optimizer state, or restore the train block");
    }
    if (options.reset_optimizer) {
      log << "--reset-optimizer: the optimizer state starts afresh\n";
    } else {
      load_or_throw(ck, optimizer_names, ck.optimizer, "optimizer state");
    }
    start_epoch = saved->at("epoch").get<std::int64_t>();
    start_batch = saved->at("batch_in_epoch").get<std::int64_t>();
    global_step = saved->at("global_step").get<std::uint64_t>();
    resumed_loss_sum = saved->at("loss_sum").get<double>();
    resumed_lr = saved->at("lr").get<double>();
    best = saved->at("best").get<double>();
    since_best = saved->at("since_best").get<std::int64_t>();
    result.best_epoch = saved->at("best_epoch").get<std::int64_t>();
    result.early_stopped = saved->at("early_stopped").get<bool>();
    for (const json& e : ck.manifest.at("metrics")) {
      EpochResult er;
      er.epoch = e.at("epoch").get<std::int64_t>();
      er.train_loss = e.at("train_loss").get<double>();
      er.holdout = e.at("holdout").get<std::map<std::string, double>>();
      er.seconds = e.at("seconds").get<double>();
      er.samples_per_second = e.at("samples_per_second").get<double>();
      er.learning_rate = e.at("lr").get<double>();
      result.epochs.push_back(er);
    }
    result.resumed_at_step = static_cast<std::int64_t>(global_step);
    log << "resuming from " << ck.path.string() << ": epoch " << start_epoch + 1 << ", batch " << start_batch
        << ", step " << global_step << "\n";
  } else if (checkpointing) {
    std::error_code ec;
    std::vector<checkpoint::CheckpointEntry> old = checkpoint::list_checkpoints(ckpt_dir);
    if (!old.empty()) {
      log << "starting afresh: removing " << old.size() << " checkpoint(s) of an earlier run in " << ckpt_dir.string()
          << " (--resume latest continues a run instead)\n";
      fs::remove(ckpt_dir / checkpoint::kLatestFile, ec);
      for (const auto& e : old) fs::remove_all(e.path, ec);
    }
  }

  Progress progress(log, options.terminal);
  std::ofstream metrics_file(options.run_dir / "metrics.jsonl", std::ios::trunc);
  auto epoch_json = [](const EpochResult& er) {
    return json{{"epoch", er.epoch},
                {"train_loss", er.train_loss},
                {"holdout", er.holdout},
                {"seconds", er.seconds},
                {"samples_per_second", er.samples_per_second},
                {"lr", er.learning_rate}};
  };
  for (const EpochResult& er : result.epochs) metrics_file << epoch_json(er).dump() << "\n" << std::flush;
  const std::int64_t batches_per_epoch = data.train.rows / batch;  // the last partial batch is dropped
  const std::int64_t steps_per_epoch =
      options.max_steps_per_epoch > 0 ? std::min(options.max_steps_per_epoch, batches_per_epoch) : batches_per_epoch;
  if (saved && saved->at("steps_per_epoch").get<std::int64_t>() != steps_per_epoch) {
    throw TrainError("cannot resume: the checkpoint's run has " + saved->at("steps_per_epoch").dump() +
                     " steps per epoch, this one " + std::to_string(steps_per_epoch) + " (a different --max-steps?)");
  }
  const std::string stop_metric = spec.early_stop ? spec.early_stop->metric : std::string();

  // Commits a checkpoint of the state "about to run batch `batch_pos` of epoch `epoch_pos`".
  const json sources = checkpoint::source_hashes(c);
  auto save = [&](std::int64_t epoch_pos, std::int64_t batch_pos, double loss_sum, double lr,
                  const EpochResult* ended) {
    auto started = std::chrono::steady_clock::now();
    checkpoint::CheckpointContents contents;
    contents.step = static_cast<std::int64_t>(global_step);
    for (const std::string& n : model_names) contents.params.emplace_back(n, &exec->variable(n));
    for (const std::string& n : optimizer_names) contents.optimizer.emplace_back(n, &exec->variable(n));
    json metrics = json::array();
    for (const EpochResult& er : result.epochs) metrics.push_back(epoch_json(er));
    contents.manifest = {
        {"kiln_version", options.kiln_version},
        {"model", spec.model},
        {"source", sources},
        {"optimizer", optimizer},
        {"schedule",
         {{"kind", spec.schedule.kind},
          {"every", spec.schedule.every},
          {"factor", spec.schedule.factor},
          {"warmup", spec.schedule.warmup}}},
        {"training",
         {{"seed", seed},
          {"batch", batch},
          {"epochs", epochs},
          {"steps_per_epoch", steps_per_epoch},
          {"epoch", epoch_pos},
          {"batch_in_epoch", batch_pos},
          {"global_step", global_step},
          {"schedule_progress",
           static_cast<double>(epoch_pos) + static_cast<double>(batch_pos) / static_cast<double>(steps_per_epoch)},
          {"lr", lr},
          {"loss_sum", loss_sum},
          {"best", best},
          {"since_best", since_best},
          {"best_epoch", result.best_epoch},
          {"early_stopped", result.early_stopped},
          {"epoch_holdout", ended ? json(ended->holdout) : json::object()}}},
        {"rng",
         {{"generator", "philox4x32-10"},
          {"seed", seed},
          {"step", global_step},
          {"data_order", "epoch_order(seed, epoch): xoshiro256** from derive_seed(seed, 2, epoch)"}}},
        {"data",
         {{"features", spec.data},
          {"content_hash", data.summary.content_hash},
          {"train_rows", data.train.rows},
          {"holdout_rows", data.holdout.rows}}},
        {"metrics", metrics}};
    contents.pipeline = data.pipeline.to_json();
    try {
      checkpoint::save_checkpoint(ckpt_dir, contents);
      checkpoint::apply_retention(ckpt_dir, options.retention);
    } catch (const std::exception& e) {
      std::string previous;
      try {
        if (auto latest = checkpoint::read_latest(ckpt_dir)) previous = latest->filename().string();
      } catch (const std::exception&) {
      }
      throw TrainError("saving the checkpoint of step " + std::to_string(global_step) + " failed: " + e.what() +
                       (previous.empty() ? std::string("\nno earlier checkpoint exists")
                                         : "\nthe previous checkpoint " + (ckpt_dir / previous).string() +
                                               " is intact and `latest` still names it; resume with --resume latest"));
    }
    result.checkpoint_seconds.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  };

  for (std::int64_t epoch = start_epoch; epoch < epochs && !result.early_stopped; ++epoch) {
    auto started = std::chrono::steady_clock::now();
    const std::int64_t first = epoch == start_epoch ? start_batch : 0;
    progress.start_epoch(epoch + 1, epochs, steps_per_epoch * batch);
    data::BatchIterator it(data.train, batch, seed, epoch);
    data::Batch b;
    double loss_sum = first > 0 ? resumed_loss_sum : 0;
    double lr = first > 0 ? resumed_lr : spec.optimizer.lr;
    for (std::int64_t s = 0; s < first && it.next(b); ++s) {
    }  // the batches this epoch ran before the checkpoint
    for (std::int64_t s = first; s < steps_per_epoch && it.next(b); ++s) {
      if (b.rows != batch) break;
      std::map<std::string, Tensor> feeds =
          make_feeds(plan, b, data.train.index_columns, data.train.class_labels, data.train.number_labels);
      lr = learning_rate(spec.schedule, spec.optimizer.lr,
                         static_cast<double>(epoch) + static_cast<double>(s) / static_cast<double>(steps_per_epoch),
                         epochs);
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
                   (n.name.empty() ? "" : " ('" + n.name + "')") + " at " + origin(c, n);
        }
        std::string what = !std::isfinite(loss) ? "the loss is " + std::string(std::isnan(loss) ? "NaN" : "infinite")
                                                : "the update of '" + *bad_update +
                                                      "' is not finite (a NaN or "
                                                      "infinite gradient)";
        throw TrainError(what + " at " + where +
                         "\nhint: lower the learning rate, or clip gradients with clip_grad = 1.0");
      }
      exec->commit_updates();
      loss_sum += loss;
      ++global_step;
      progress.advance(batch, loss);
      // A step checkpoint on an epoch's last batch would duplicate the epoch's own.
      if (options.checkpoint_every > 0 && global_step % static_cast<std::uint64_t>(options.checkpoint_every) == 0 &&
          s + 1 < steps_per_epoch) {
        save(epoch, s + 1, loss_sum, lr, nullptr);
      }
    }
    EpochResult er;
    er.epoch = epoch + 1;
    er.train_loss = steps_per_epoch > 0 ? loss_sum / static_cast<double>(steps_per_epoch) : 0;
    er.holdout = evaluator.run(*exec, data.holdout, seed);
    er.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    er.samples_per_second = er.seconds > 0 ? static_cast<double>(steps_per_epoch * batch) / er.seconds : 0;
    er.learning_rate = lr;
    metrics_file << epoch_json(er).dump() << "\n" << std::flush;
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
        log << "early stop: " << stop_metric << " has not improved for " << since_best << " epochs (best " << best
            << " at epoch " << result.best_epoch << ")\n";
      }
    }
    if (checkpointing) save(epoch + 1, 0, 0, lr, &er);
  }
  if (result.best_epoch == 0 && !result.epochs.empty()) result.best_epoch = result.epochs.back().epoch;
  if (!result.checkpoint_seconds.empty()) {
    double sum = 0, most = 0;
    for (double s : result.checkpoint_seconds) {
      sum += s;
      most = std::max(most, s);
    }
    char line[160];
    std::snprintf(line, sizeof line, "checkpoints: %zu saved in %s, pause mean %.2f ms, max %.2f ms\n",
                  result.checkpoint_seconds.size(), ckpt_dir.string().c_str(),
                  1e3 * sum / static_cast<double>(result.checkpoint_seconds.size()), 1e3 * most);
    log << line;
  }

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
  if (!evaluator.confusion().counts.empty()) {
    run["confusion"] = {{"classes", evaluator.confusion().classes}, {"counts", evaluator.confusion().counts}};
  }
  std::ofstream(options.run_dir / "run.json") << run.dump(2) << "\n";
  return result;
}

std::map<std::string, double> evaluate_run(const sema::Compilation& c, const sema::LoweredTrain& t,
                                           const fs::path& run_dir, Confusion* confusion, Backend backend,
                                           std::ostream* log) {
  data::FittedPipeline pipeline;
  SafetensorsFile params;
  std::uint64_t seed = 0;
  std::error_code ec;
  if (fs::exists(run_dir / checkpoint::kManifestFile, ec)) {
    // A checkpoint folder: everything verified before it is used.
    try {
      checkpoint::Checkpoint ck = checkpoint::load_checkpoint(run_dir);
      seed = ck.manifest.at("training").at("seed").get<std::uint64_t>();
      pipeline = data::FittedPipeline::from_json(ck.pipeline);
      params.tensors = std::move(ck.params);
    } catch (const checkpoint::CheckpointError& e) {
      throw TrainError(e.what());
    } catch (const data::DataError& e) {
      throw TrainError(e.what());
    }
  } else {
    json run;
    {
      std::ifstream in(run_dir / "run.json");
      if (!in) throw TrainError(run_dir.string() + ": no run.json (is this a kiln train run folder or a checkpoint?)");
      run = json::parse(in, nullptr, false);
      if (!run.is_object() || !run.contains("seed") || !run["seed"].is_number_unsigned()) {
        throw TrainError((run_dir / "run.json").string() +
                         ": malformed: expected an object with the run's \"seed\" (a non-negative integer)");
      }
    }
    try {
      pipeline = data::FittedPipeline::load(run_dir / "pipeline.json");
    } catch (const data::DataError& e) {
      throw TrainError(e.what());
    }
    seed = run["seed"].get<std::uint64_t>();
    try {
      params = read_safetensors(run_dir / "params.safetensors");
    } catch (const SafetensorsError& e) {
      throw TrainError(e.what());
    }
  }
  data::Dataset data = load(c, t, seed, {}, &pipeline);
  auto holder = make_reference_executor(t.graph, 1);
  auto load_into = [&](const std::string& name) {
    auto it = params.tensors.find(name);
    if (it == params.tensors.end())
      throw TrainError((run_dir / "params.safetensors").string() + ": no tensor '" + name + "'");
    Tensor& dst = holder->variable(name);
    if (dst.dims() != it->second.dims() || dst.dtype() != it->second.dtype()) {
      throw TrainError((run_dir / "params.safetensors").string() + ": tensor '" + name + "' is " +
                       it->second.to_string() + ", but the model's is " + dst.to_string());
    }
    if (auto bad = non_finite_weight(run_dir / "params.safetensors", name, it->second)) throw TrainError(*bad);
    std::memcpy(dst.raw(), it->second.raw(), dst.bytes());
  };
  for (const ir::NamedValue& p : t.graph.parameters()) load_into(p.name);
  for (const ir::NamedValue& s : t.graph.states()) load_into(s.name);
  Evaluator evaluator(c, t, pipeline, t.spec.batch, backend);
  std::map<std::string, double> metrics = evaluator.run(*holder, data.holdout, seed);
  if (confusion != nullptr) *confusion = evaluator.confusion();
  if (!t.spec.test.empty()) {
    data::Dataset test = load(c, t, seed, {}, &pipeline, /*test=*/true);
    for (const auto& [name, value] : evaluator.run(*holder, test.train, seed)) metrics["test_" + name] = value;
  }
  if (log != nullptr) {
    const std::string summary = evaluator.compile_summary();
    if (!summary.empty()) *log << summary << "\n";
  }
  return metrics;
}

std::string format_confusion(const Confusion& confusion) {
  std::size_t width = 8;
  for (const std::string& c : confusion.classes) width = std::max(width, c.size() + 2);
  auto cell = [&](const std::string& text) { return std::string(width - std::min(width, text.size()), ' ') + text; };
  std::string out(width, ' ');
  for (const std::string& c : confusion.classes) out += cell(c);
  out += "\n";
  for (std::size_t r = 0; r < confusion.counts.size(); ++r) {
    out += cell(r < confusion.classes.size() ? confusion.classes[r] : std::to_string(r));
    for (std::int64_t n : confusion.counts[r]) out += cell(std::to_string(n));
    out += "\n";
  }
  return out;
}

}  // namespace kiln::runtime
