// Predictions from a finished run: records are read with the features block's schema
// (label columns may be absent), go through the run's fitted pipeline — the very transform
// training used — and through the model's forward pass; one prediction per record comes
// out as CSV or JSON lines. Input records are CSV or JSON lines (data/json_record.h).
// Records that do not fit the schema are reported with their line and reason, and skipped.
#pragma once

#include <filesystem>
#include <ostream>
#include <string>

#include "compiler/sema/sema.h"
#include "runtime/exec/executor.h"

namespace kiln::runtime {

enum class PredictFormat { kCsv, kJsonLines };

struct PredictOptions {
  std::filesystem::path run_dir;
  std::filesystem::path input;  // CSV or JSON lines (data::looks_like_json_lines); empty: the block's own source
  PredictFormat format = PredictFormat::kCsv;
  Backend backend = Backend::kJit;
};

// Returns the number of records predicted. Throws TrainError (trainer.h) for a missing
// run, a schema problem in the input, or parameters that do not fit the model.
std::int64_t predict(const sema::Compilation& c, const sema::LoweredTrain& train, const PredictOptions& options,
                     std::ostream& out, std::ostream& errors);

}  // namespace kiln::runtime
