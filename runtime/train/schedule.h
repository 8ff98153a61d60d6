// Learning-rate schedules, as pure functions of the epoch position: constant, step decay,
// cosine with linear warm-up. The trainer feeds the result to the step graph's `lr` input.
#pragma once

#include <cstdint>

#include "compiler/sema/train_spec.h"

namespace kiln::runtime {

// The learning rate at `progress` epochs into training (fractional: epoch + batch/batches),
// for a run of `epochs` epochs with base rate `base`.
double learning_rate(const sema::ScheduleSpec& schedule, double base, double progress, std::int64_t epochs);

}  // namespace kiln::runtime
