// Learning-rate schedules (see schedule.h). Warm-up ramps linearly from base/warmup-steps
// to base over the first `warmup` epochs, for step and cosine alike.
#include "runtime/train/schedule.h"

#include <algorithm>
#include <cmath>

namespace kiln::runtime {

double learning_rate(const sema::ScheduleSpec& schedule, double base, double progress, std::int64_t epochs) {
  const double warmup = static_cast<double>(schedule.warmup);
  if (warmup > 0 && progress < warmup) return base * std::max(progress, 1e-3 * warmup) / warmup;
  if (schedule.kind == "step" && schedule.every > 0) {
    double drops = std::floor(progress / static_cast<double>(schedule.every));
    return base * std::pow(schedule.factor, drops);
  }
  if (schedule.kind == "cosine") {
    double span = std::max(1.0, static_cast<double>(epochs) - warmup);
    double t = std::clamp((progress - warmup) / span, 0.0, 1.0);
    return base * 0.5 * (1 + std::cos(3.14159265358979323846 * t));
  }
  return base;
}

}  // namespace kiln::runtime
