// Softmax family; sums in double so rows of thousands of classes stay exact enough to
// judge faster kernels by.
#include "kernels/reference/softmax.h"

#include <cmath>
#include <limits>

namespace kiln::kernels::ref {
namespace {

// Max and log-sum-exp of one strided row; -inf rows (all -inf) give -inf.
template <typename T>
void row_stats(const T* x, std::int64_t len, std::int64_t stride, double& max, double& log_sum) {
  max = -std::numeric_limits<double>::infinity();
  for (std::int64_t a = 0; a < len; ++a) max = std::fmax(max, static_cast<double>(x[a * stride]));
  double sum = 0;
  for (std::int64_t a = 0; a < len; ++a) sum += std::exp(static_cast<double>(x[a * stride]) - max);
  log_sum = std::log(sum);
}

template <typename T, bool kLog>
void normalise(const T* x, std::int64_t outer, std::int64_t axis, std::int64_t inner, T* y) {
  for (std::int64_t o = 0; o < outer; ++o) {
    for (std::int64_t i = 0; i < inner; ++i) {
      const std::int64_t base = o * axis * inner + i;
      double max = 0, log_sum = 0;
      row_stats(x + base, axis, inner, max, log_sum);
      for (std::int64_t a = 0; a < axis; ++a) {
        const double shifted = static_cast<double>(x[base + a * inner]) - max;
        y[base + a * inner] = static_cast<T>(kLog ? shifted - log_sum : std::exp(shifted - log_sum));
      }
    }
  }
}

}  // namespace

template <typename T>
void softmax(const T* x, std::int64_t outer, std::int64_t axis, std::int64_t inner, T* y) {
  normalise<T, false>(x, outer, axis, inner, y);
}

template <typename T>
void log_softmax(const T* x, std::int64_t outer, std::int64_t axis, std::int64_t inner, T* y) {
  normalise<T, true>(x, outer, axis, inner, y);
}

template <typename T, typename L>
void softmax_cross_entropy(const T* logits, const L* labels, std::int64_t rows, std::int64_t classes, T* loss) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* row = logits + r * classes;
    const auto label = static_cast<std::int64_t>(labels[r]);
    if (label < 0 || label >= classes) {
      loss[r] = std::numeric_limits<T>::quiet_NaN();
      continue;
    }
    double max = 0, log_sum = 0;
    row_stats(row, classes, 1, max, log_sum);
    loss[r] = static_cast<T>(max + log_sum - static_cast<double>(row[label]));
  }
}

template <typename T>
void sigmoid_cross_entropy(const T* x, const T* z, T* loss, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) {
    const double xv = static_cast<double>(x[i]);
    const double zv = static_cast<double>(z[i]);
    loss[i] = static_cast<T>(std::fmax(xv, 0.0) - xv * zv + std::log1p(std::exp(-std::fabs(xv))));
  }
}

template void softmax<float>(const float*, std::int64_t, std::int64_t, std::int64_t, float*);
template void softmax<double>(const double*, std::int64_t, std::int64_t, std::int64_t, double*);
template void log_softmax<float>(const float*, std::int64_t, std::int64_t, std::int64_t, float*);
template void log_softmax<double>(const double*, std::int64_t, std::int64_t, std::int64_t, double*);
template void softmax_cross_entropy<float, std::int32_t>(const float*, const std::int32_t*, std::int64_t, std::int64_t,
                                                         float*);
template void softmax_cross_entropy<float, std::int64_t>(const float*, const std::int64_t*, std::int64_t, std::int64_t,
                                                         float*);
template void softmax_cross_entropy<double, std::int32_t>(const double*, const std::int32_t*, std::int64_t,
                                                          std::int64_t, double*);
template void softmax_cross_entropy<double, std::int64_t>(const double*, const std::int64_t*, std::int64_t,
                                                          std::int64_t, double*);
template void sigmoid_cross_entropy<float>(const float*, const float*, float*, std::int64_t);
template void sigmoid_cross_entropy<double>(const double*, const double*, double*, std::int64_t);

}  // namespace kiln::kernels::ref
