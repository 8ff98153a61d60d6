// kiln_k_reduce: sum, mean and max over any set of axes of a float32 tensor.
//
// Axes of size 1 are dropped and neighbouring axes that are both reduced or both kept are
// merged, so every pattern becomes alternating runs. Then:
//   [R]        (everything)       one contiguous row reduction;
//   [K, R]     (trailing axes)    one row reduction per output;
//   [R, K]     (leading axes: the bias gradient, sum over the batch of [B, N]) column sums,
//              kColumnChunk columns at a time, rows added in float across a block of
//              kRowBlock rows and the blocks added in double;
//   otherwise                     row reductions (innermost reduced) or rows added into the
//                                 output (innermost kept), accumulating in the float output.
// Row sums use 16 float lanes over blocks of kRowBlockSum elements, the block sums added in
// double, so a sum of millions keeps about float precision. Max propagates NaN and an empty
// max is the lowest float, as the reference.
#include <cmath>
#include <limits>

#include "kernels/cpu/common.h"
#include "kernels/cpu/kernels.h"

namespace kiln::cpu {
namespace {

constexpr int kMaxRank = 8;
constexpr Index kLanes = 16;
constexpr Index kRowBlockSum = 4096;
constexpr Index kColumnChunk = 256;
constexpr Index kRowBlock = 64;
constexpr float kLowest = std::numeric_limits<float>::lowest();

enum Op { kSum = 0, kMean = 1, kMax = 2 };

// Reference max: a NaN replaces the running value and then stays.
inline float max_step(float best, float v) {
  if (best != best) return best;
  return (v > best || v != v) ? v : best;
}

double sum_row(const float* x, Index len) {
  double total = 0.0;
  for (Index b0 = 0; b0 < len; b0 += kRowBlockSum) {
    const Index end = min_index(len, b0 + kRowBlockSum);
    float lanes[kLanes] = {};
    Index i = b0;
    for (; i + kLanes <= end; i += kLanes)
      for (Index l = 0; l < kLanes; ++l) lanes[l] += x[i + l];
    float tail = 0.0f;
    for (; i < end; ++i) tail += x[i];
    float block = tail;
    for (Index l = 0; l < kLanes; ++l) block += lanes[l];
    total += static_cast<double>(block);
  }
  return total;
}

float max_row(const float* x, Index len) {
  float lanes[kLanes];
  bool nan[kLanes];
  for (Index l = 0; l < kLanes; ++l) lanes[l] = kLowest, nan[l] = false;
  Index i = 0;
  for (; i + kLanes <= len; i += kLanes)
    for (Index l = 0; l < kLanes; ++l) {
      const float v = x[i + l];
      lanes[l] = v > lanes[l] ? v : lanes[l];
      nan[l] = nan[l] || v != v;
    }
  float best = kLowest;
  bool any_nan = false;
  for (Index l = 0; l < kLanes; ++l) {
    best = lanes[l] > best ? lanes[l] : best;
    any_nan = any_nan || nan[l];
  }
  for (; i < len; ++i) {
    best = x[i] > best ? x[i] : best;
    any_nan = any_nan || x[i] != x[i];
  }
  return any_nan ? std::numeric_limits<float>::quiet_NaN() : best;
}

// out[j] = Σ_r x[r, j] (or max) over rows × cols, row-major.
void reduce_columns(int op, const float* x, Index rows, Index cols, double scale, float* out) {
  if (op == kMax) {
    for (Index j = 0; j < cols; ++j) out[j] = kLowest;
    for (Index r = 0; r < rows; ++r) {
      const float* row = x + r * cols;
      for (Index j = 0; j < cols; ++j) out[j] = max_step(out[j], row[j]);
    }
    return;
  }
  for (Index j0 = 0; j0 < cols; j0 += kColumnChunk) {
    const Index width = min_index(kColumnChunk, cols - j0);
    double total[kColumnChunk];
    for (Index j = 0; j < width; ++j) total[j] = 0.0;
    for (Index r0 = 0; r0 < rows; r0 += kRowBlock) {
      const Index r1 = min_index(rows, r0 + kRowBlock);
      float block[kColumnChunk];
      for (Index j = 0; j < width; ++j) block[j] = 0.0f;
      for (Index r = r0; r < r1; ++r) {
        const float* row = x + r * cols + j0;
        for (Index j = 0; j < width; ++j) block[j] += row[j];
      }
      for (Index j = 0; j < width; ++j) total[j] += static_cast<double>(block[j]);
    }
    for (Index j = 0; j < width; ++j) out[j0 + j] = static_cast<float>(total[j] * scale);
  }
}

}  // namespace
}  // namespace kiln::cpu

extern "C" void kiln_k_reduce(int op, const float* x, int rank, const std::int64_t* dims, const std::uint8_t* reduced,
                              float* out) {
  using namespace kiln::cpu;
  Index out_n = 1, count = 1;
  for (int a = 0; a < rank; ++a) (reduced[a] != 0 ? count : out_n) *= dims[a];
  if (out_n <= 0) return;
  const float empty = op == kSum ? 0.0f : (op == kMean ? std::numeric_limits<float>::quiet_NaN() : kLowest);
  if (count <= 0) {
    for (Index j = 0; j < out_n; ++j) out[j] = empty;
    return;
  }
  const double scale = op == kMean ? 1.0 / static_cast<double>(count) : 1.0;

  // Merged runs, outermost first.
  Index run[kMaxRank];
  bool run_reduced[kMaxRank];
  int runs = 0;
  for (int a = 0; a < rank && a < kMaxRank; ++a) {
    if (dims[a] == 1) continue;
    const bool r = reduced[a] != 0;
    if (runs > 0 && run_reduced[runs - 1] == r) {
      run[runs - 1] *= dims[a];
    } else {
      run[runs] = dims[a], run_reduced[runs] = r, ++runs;
    }
  }
  if (runs == 0) {  // a single element
    out[0] = op == kMax ? max_step(kLowest, x[0]) : static_cast<float>(static_cast<double>(x[0]) * scale);
    return;
  }

  const Index inner = run[runs - 1];
  const bool inner_reduced = run_reduced[runs - 1];
  auto finish_row = [&](const float* row) {
    return op == kMax ? max_row(row, inner) : static_cast<float>(sum_row(row, inner) * scale);
  };
  if (runs == 1 && inner_reduced) {
    out[0] = finish_row(x);
    return;
  }
  if (runs == 1) {  // nothing reduced but size-1 axes
    for (Index j = 0; j < inner; ++j) out[j] = op == kMax ? max_step(kLowest, x[j]) : x[j];
    if (op == kMean)
      for (Index j = 0; j < inner; ++j) out[j] = static_cast<float>(static_cast<double>(out[j]) * scale);
    return;
  }
  if (runs == 2 && inner_reduced) {  // [K, R]
    for (Index o = 0; o < run[0]; ++o) out[o] = finish_row(x + o * inner);
    return;
  }
  if (runs == 2) {  // [R, K]
    reduce_columns(op, x, run[0], inner, scale, out);
    return;
  }

  // General alternating pattern: walk the outer runs with an odometer, tracking the output
  // offset (kept runs only), and fold each innermost row into the float output.
  Index out_stride[kMaxRank];
  Index stride = inner_reduced ? 1 : inner;
  for (int r = runs - 1; r-- > 0;) {
    out_stride[r] = run_reduced[r] ? 0 : stride;
    if (!run_reduced[r]) stride *= run[r];
  }
  for (Index j = 0; j < out_n; ++j) out[j] = op == kMax ? kLowest : 0.0f;
  Index index[kMaxRank] = {};
  Index rows = 1;
  for (int r = 0; r + 1 < runs; ++r) rows *= run[r];
  Index o = 0;
  for (Index row = 0; row < rows; ++row) {
    const float* src = x + row * inner;
    if (inner_reduced) {
      if (op == kMax) {
        out[o] = max_step(out[o], max_row(src, inner));
      } else {
        out[o] += static_cast<float>(sum_row(src, inner));
      }
    } else if (op == kMax) {
      for (Index j = 0; j < inner; ++j) out[o + j] = max_step(out[o + j], src[j]);
    } else {
      for (Index j = 0; j < inner; ++j) out[o + j] += src[j];
    }
    for (int r = runs - 1; r-- > 0;) {
      o += out_stride[r];
      if (++index[r] < run[r]) break;
      o -= out_stride[r] * run[r];
      index[r] = 0;
    }
  }
  if (op == kMean)
    for (Index j = 0; j < out_n; ++j) out[j] = static_cast<float>(static_cast<double>(out[j]) * scale);
}
