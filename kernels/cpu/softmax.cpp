// Softmax, log-softmax and the cross-entropy losses in float32, stable as the reference:
// subtract the row maximum before exp (a NaN in a row makes the whole row NaN). Sums of
// exponentials accumulate in double, so long rows lose nothing; the elementwise sigmoid
// loss runs in double like the reference. Rows along a strided axis (inner > 1) are done
// kInnerChunk columns at a time with per-column statistics on the stack.
#include <cmath>
#include <limits>

#include "kernels/cpu/common.h"
#include "kernels/cpu/kernels.h"

namespace kiln::cpu {
namespace {

constexpr Index kInnerChunk = 64;

// Maximum (ignoring NaN, like fmax; -inf for an empty or all-NaN row) and log Σ exp(x - max).
struct RowStats {
  float max;
  double log_sum;
};

RowStats row_stats(const float* x, Index len) {
  float max = -std::numeric_limits<float>::infinity();
  for (Index a = 0; a < len; ++a) max = x[a] > max ? x[a] : max;
  double sum = 0.0;
  for (Index a = 0; a < len; ++a) sum += static_cast<double>(std::exp(x[a] - max));
  return {max, std::log(sum)};
}

template <bool kLog>
void normalise(const float* x, Index outer, Index axis, Index inner, float* y) {
  if (inner == 1) {
    for (Index o = 0; o < outer; ++o) {
      const float* row = x + o * axis;
      float* out = y + o * axis;
      const RowStats s = row_stats(row, axis);
      const auto log_sum = static_cast<float>(s.log_sum);
      if (kLog) {
        for (Index a = 0; a < axis; ++a) out[a] = (row[a] - s.max) - log_sum;
      } else {
        for (Index a = 0; a < axis; ++a) out[a] = std::exp((row[a] - s.max) - log_sum);
      }
    }
    return;
  }
  for (Index o = 0; o < outer; ++o) {
    for (Index i0 = 0; i0 < inner; i0 += kInnerChunk) {
      const Index width = min_index(kInnerChunk, inner - i0);
      const float* base = x + o * axis * inner + i0;
      float* out = y + o * axis * inner + i0;
      float max[kInnerChunk];
      double sum[kInnerChunk];
      for (Index i = 0; i < width; ++i) {
        max[i] = -std::numeric_limits<float>::infinity();
        sum[i] = 0.0;
      }
      for (Index a = 0; a < axis; ++a)
        for (Index i = 0; i < width; ++i) {
          const float v = base[a * inner + i];
          max[i] = v > max[i] ? v : max[i];
        }
      for (Index a = 0; a < axis; ++a)
        for (Index i = 0; i < width; ++i) sum[i] += static_cast<double>(std::exp(base[a * inner + i] - max[i]));
      float log_sum[kInnerChunk];
      for (Index i = 0; i < width; ++i) log_sum[i] = static_cast<float>(std::log(sum[i]));
      for (Index a = 0; a < axis; ++a)
        for (Index i = 0; i < width; ++i) {
          const float shifted = (base[a * inner + i] - max[i]) - log_sum[i];
          out[a * inner + i] = kLog ? shifted : std::exp(shifted);
        }
    }
  }
}

template <typename L>
void softmax_xent(const float* logits, const L* labels, Index rows, Index classes, float* loss) {
  for (Index r = 0; r < rows; ++r) {
    const float* row = logits + r * classes;
    const auto label = static_cast<Index>(labels[r]);
    if (label < 0 || label >= classes) {
      loss[r] = std::numeric_limits<float>::quiet_NaN();
      continue;
    }
    const RowStats s = row_stats(row, classes);
    loss[r] = static_cast<float>(static_cast<double>(s.max) + s.log_sum - static_cast<double>(row[label]));
  }
}

}  // namespace
}  // namespace kiln::cpu

extern "C" {

void kiln_k_softmax(const float* x, std::int64_t outer, std::int64_t axis, std::int64_t inner, float* y) {
  kiln::cpu::normalise<false>(x, outer, axis, inner, y);
}

void kiln_k_log_softmax(const float* x, std::int64_t outer, std::int64_t axis, std::int64_t inner, float* y) {
  kiln::cpu::normalise<true>(x, outer, axis, inner, y);
}

void kiln_k_softmax_xent_i32(const float* logits, const std::int32_t* labels, std::int64_t rows, std::int64_t classes,
                             float* loss) {
  kiln::cpu::softmax_xent(logits, labels, rows, classes, loss);
}

void kiln_k_softmax_xent_i64(const float* logits, const std::int64_t* labels, std::int64_t rows, std::int64_t classes,
                             float* loss) {
  kiln::cpu::softmax_xent(logits, labels, rows, classes, loss);
}

void kiln_k_sigmoid_xent(const float* x, const float* z, float* loss, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) {
    const double xv = static_cast<double>(x[i]);
    const double zv = static_cast<double>(z[i]);
    loss[i] = static_cast<float>(std::fmax(xv, 0.0) - xv * zv + std::log1p(std::exp(-std::fabs(xv))));
  }
}

}  // extern "C"
