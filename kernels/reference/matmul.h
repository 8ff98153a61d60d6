// Batched matrix product with transpose flags and numpy rules: [..., m, k] @ [..., k, n]
// with broadcast leading dimensions; a rank-1 left operand is a row, a rank-1 right one a
// column, and their unit dimension is absent from the output.
#pragma once

#include <cstdint>
#include <span>

namespace kiln::kernels::ref {

// a_dims / b_dims as stored (before transposition); out_dims as the shape rule gives
// them. transpose_a reads a's last two axes swapped (ignored for vectors), likewise b.
// Products accumulate in double (int64 for integers).
// T: float, double, int32_t, int64_t.
template <typename T>
void matmul(const T* a, std::span<const std::int64_t> a_dims, const T* b, std::span<const std::int64_t> b_dims,
            bool transpose_a, bool transpose_b, T* out, std::span<const std::int64_t> out_dims);

}  // namespace kiln::kernels::ref
