// Helpers shared by the kernels/cpu sources (header-only, internal linkage): index
// arithmetic, scratch carving and the even split of a range over tasks. Same rules as the
// kernels: no allocation, no exceptions, no global state.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kiln::cpu {
namespace {

using Index = std::int64_t;

constexpr std::size_t kScratchAlign = 64;

[[maybe_unused]] inline Index min_index(Index x, Index y) {
  return x < y ? x : y;
}
[[maybe_unused]] inline Index max_index(Index x, Index y) {
  return x > y ? x : y;
}
// rows × cols of y (rows ld apart) + bias[j] (bias may be null), then relu when act == 1
// (NaN gives 0, as the reference's relu): the bias and relu epilogue of a product.
[[maybe_unused]] inline void bias_relu(float* y, Index ld, Index rows, Index cols, const float* bias, int act) {
  for (Index i = 0; i < rows; ++i) {
    float* row = y + i * ld;
    if (bias != nullptr)
      for (Index j = 0; j < cols; ++j) row[j] += bias[j];
    if (act == 1)
      for (Index j = 0; j < cols; ++j) row[j] = row[j] > 0.0f ? row[j] : 0.0f;
  }
}
[[maybe_unused]] inline Index round_up(Index x, Index to) {
  return (x + to - 1) / to * to;
}
[[maybe_unused]] inline Index ceil_div(Index x, Index y) {
  return (x + y - 1) / y;
}

// Bytes rounded up to whole cache lines, so consecutive scratch regions stay aligned.
[[maybe_unused]] inline std::size_t aligned_bytes(std::size_t bytes) {
  return (bytes + kScratchAlign - 1) & ~(kScratchAlign - 1);
}
[[maybe_unused]] inline std::size_t float_bytes(Index count) {
  return aligned_bytes(static_cast<std::size_t>(count > 0 ? count : 0) * sizeof(float));
}

// The first 64-byte boundary at or after p.
[[maybe_unused]] inline char* align_scratch(void* p) {
  auto address = reinterpret_cast<std::uintptr_t>(p);
  address = (address + kScratchAlign - 1) & ~static_cast<std::uintptr_t>(kScratchAlign - 1);
  return reinterpret_cast<char*>(address);
}

// [begin, end) of part `index` of `parts` near-equal parts of [0, extent).
struct Range {
  Index begin, end;
};
[[maybe_unused]] inline Range split_range(Index extent, Index parts, Index index) {
  return {extent * index / parts, extent * (index + 1) / parts};
}

// Tasks worth starting for `work` multiply-adds (or element visits) when each should have
// at least `grain` of them: between 1 and threads.
[[maybe_unused]] inline int useful_tasks(Index work, Index grain, int threads) {
  const Index by_work = work / (grain > 0 ? grain : 1);
  const Index t = min_index(threads < 1 ? 1 : threads, by_work);
  return t < 1 ? 1 : static_cast<int>(t);
}

}  // namespace
}  // namespace kiln::cpu
