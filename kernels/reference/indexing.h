// Integer-indexed kernels: gather (embedding lookup), scatter_add (its gradient),
// one_hot and argmax. Indices outside the table never read or write out of bounds:
// gather yields a zero row, scatter_add and one_hot skip them.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kiln::kernels::ref {

// out[i, :] = table[indices[i], :] for rows of `row_bytes` bytes (dtype-agnostic).
// I: int32_t, int64_t.
template <typename I>
void gather(const void* table, std::int64_t rows, std::size_t row_bytes, const I* indices, std::int64_t count,
            void* out);

// out = zeros[rows, row]; out[indices[i], :] += updates[i, :]. T: float, double, int32_t,
// int64_t; I: int32_t, int64_t.
template <typename T, typename I>
void scatter_add(const I* indices, std::int64_t count, const T* updates, std::int64_t row, std::int64_t rows, T* out);

// out[i, :] = the one-hot vector of indices[i] (all zeros when out of range).
// T: any of float, double, int32_t, int64_t, bool.
template <typename T, typename I>
void one_hot(const I* indices, std::int64_t count, std::int64_t depth, T* out);

// x viewed as [outer, axis, inner]: the index of the first maximum along the middle axis
// (a NaN counts as the maximum, as in numpy). T: float, double, int32_t, int64_t.
template <typename T>
void argmax(const T* x, std::int64_t outer, std::int64_t axis, std::int64_t inner, std::int32_t* out);

}  // namespace kiln::kernels::ref
