// Seeded random draws and fills: random_uniform, random_normal, full. Element i of a draw
// depends only on (seed, stream, step, i) through Philox (philox.h), never on the order
// of evaluation, so a faster backend must reproduce these numbers exactly (uniform) or to
// libm accuracy (normal).
#pragma once

#include <cstdint>

namespace kiln::kernels::ref {

struct RandomKey {
  std::uint64_t seed = 0;
  std::uint64_t stream = 0;
  std::uint64_t step = 0;
};

// Value i = low + (high - low) * u_i computed in T, with u_i from the top 24 bits of word
// i (block i / 4, word i % 4). A result that rounds up to `high` is nudged just below it,
// keeping the interval half-open.
template <typename T>
void random_uniform(RandomKey key, double low, double high, T* out, std::int64_t n);

// Value i = mean + stddev * sqrt(-2 ln u1) * cos(2 pi u2), with (u1, u2) from words 2j and
// 2j + 1 (j = i % 2) of block i / 2; u1 in (0, 1], u2 in [0, 1). Computed in double.
template <typename T>
void random_normal(RandomKey key, double mean, double stddev, T* out, std::int64_t n);

template <typename T>
void fill(T value, T* out, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) out[i] = value;
}

}  // namespace kiln::kernels::ref
