// Softmax, log-softmax and the two cross-entropy losses, all computed stably: softmax
// subtracts the row maximum before exp; the sigmoid loss uses
// max(x, 0) - x*z + log1p(exp(-|x|)), which never overflows.
#pragma once

#include <cstdint>

namespace kiln::kernels::ref {

// x viewed as [outer, axis, inner]; normalises along the middle axis. T: float, double.
template <typename T>
void softmax(const T* x, std::int64_t outer, std::int64_t axis, std::int64_t inner, T* y);
template <typename T>
void log_softmax(const T* x, std::int64_t outer, std::int64_t axis, std::int64_t inner, T* y);

// loss[r] = logsumexp(logits[r, :]) - logits[r, labels[r]] over rows of `classes`
// logits. A label outside [0, classes) gives NaN, so a bad label cannot pass unseen.
// T: float, double; L: int32_t, int64_t.
template <typename T, typename L>
void softmax_cross_entropy(const T* logits, const L* labels, std::int64_t rows, std::int64_t classes, T* loss);

// Elementwise binary cross-entropy of logits x against targets z in [0, 1].
template <typename T>
void sigmoid_cross_entropy(const T* x, const T* z, T* loss, std::int64_t n);

}  // namespace kiln::kernels::ref
