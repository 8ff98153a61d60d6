// The trainer: loads a train block's data (validated, split, pipeline fitted on the
// training split), compiles the whole training step (forward, loss, gradients, optimizer
// update) on an Executor, and runs epochs of batches in a seeded order, evaluating the
// holdout after each epoch. A run folder receives metrics.jsonl (one JSON line per epoch),
// params.safetensors, pipeline.json, data_summary.json, quarantine.csv and run.json, and
// (with checkpoints on) checkpoints/ckpt-<step> folders (runtime/checkpoint). Same seed,
// same data: bit-identical parameters, also across a kill and a resume.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "compiler/sema/sema.h"
#include "runtime/checkpoint/checkpoint_dir.h"
#include "runtime/exec/executor.h"

namespace kiln::runtime {

// A problem a user can fix (bad data, a NaN loss, a model the trainer cannot feed); the
// message is complete and names files, lines and ops.
struct TrainError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct TrainOptions {
  std::optional<std::int64_t> epochs;    // overrides the train block
  std::optional<std::uint64_t> seed;     // overrides the train block
  std::filesystem::path run_dir;         // created when missing
  bool terminal = false;                 // draw a progress bar (else plain lines)
  std::int64_t max_steps_per_epoch = 0;  // 0: every batch (short runs for tests and smoke checks)

  // Checkpoints (docs/checkpoints.md) go to run_dir/checkpoints.
  bool checkpoints = false;           // one at the end of each epoch (kiln train turns this on)
  std::int64_t checkpoint_every = 0;  // also one every N steps (turns checkpoints on)
  checkpoint::RetentionPolicy retention;
  // "" starts afresh (removing an earlier run's checkpoints); "latest" resumes from
  // run_dir/checkpoints/latest (or starts afresh when there is none yet); anything else names
  // a checkpoint, a checkpoints folder or a run folder.
  std::string resume;
  bool reset_optimizer = false;      // resume although the optimizer changed: its state restarts
  std::filesystem::path warm_start;  // start afresh from this checkpoint's weights (no optimizer state)
  std::string kiln_version = "dev";  // recorded in manifests
  Backend backend = Backend::kJit;   // where steps and evaluations run
};

struct EpochResult {
  std::int64_t epoch = 0;  // 1-based
  double train_loss = 0;
  std::map<std::string, double> holdout;  // metric -> value on the holdout split
  double seconds = 0;
  double samples_per_second = 0;
  double learning_rate = 0;
};

struct TrainResult {
  std::vector<EpochResult> epochs;
  bool early_stopped = false;
  std::int64_t best_epoch = 0;             // by the early-stopping metric (or the last epoch)
  std::map<std::string, double> test;      // on the train block's `test` features, when it names one
  std::vector<double> checkpoint_seconds;  // the training pause of each checkpoint saved
  std::int64_t resumed_at_step = -1;       // the global step resumed from, -1 for a fresh start
};

// Trains the model of `train` (compiled in `c`). Progress goes to `log`.
TrainResult train(const sema::Compilation& c, const sema::LoweredTrain& train, const TrainOptions& options,
                  std::ostream& log);

// Evaluates the parameters of a finished run (`run_dir`) on the holdout split of the same
// data, seed and fitted pipeline as the run: the metrics by name, plus test_METRIC on the
// train block's `test` features when it names one.
// `run_dir` may also be a checkpoint folder (its manifest gives the seed; every checksum is
// verified first).
// For a classification model, `confusion` (when given) receives the holdout's confusion
// matrix, rows the true class, columns the predicted one, in the label's class order.
struct Confusion {
  std::vector<std::string> classes;
  std::vector<std::vector<std::int64_t>> counts;
};
// With `log`, a line there says how long the JIT took to compile the evaluation step (once
// per batch size the holdout and test sets need).
std::map<std::string, double> evaluate_run(const sema::Compilation& c, const sema::LoweredTrain& train,
                                           const std::filesystem::path& run_dir, Confusion* confusion = nullptr,
                                           Backend backend = Backend::kJit, std::ostream* log = nullptr);

// "true \ predicted" table for people.
std::string format_confusion(const Confusion& confusion);

}  // namespace kiln::runtime
