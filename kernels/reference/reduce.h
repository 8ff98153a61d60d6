// Reductions (sum, mean, max) over any set of axes. The output holds the kept axes in
// order; keepdims only changes the dims the caller reports, never the layout.
#pragma once

#include <cstdint>
#include <span>

namespace kiln::kernels::ref {

enum class ReduceOp { kSum, kMean, kMax };

// `reduced[axis]` marks the axes to reduce (same length as dims). Sums accumulate in
// double (int64 for integers) so the oracle is more exact than the kernels it checks.
// An empty reduction gives 0 for sum, NaN for mean, the lowest value for max; max
// propagates NaN. T: float, double, int32_t, int64_t (mean: floats only).
template <typename T>
void reduce(ReduceOp op, const T* x, std::span<const std::int64_t> dims, std::span<const bool> reduced, T* out);

}  // namespace kiln::kernels::ref
