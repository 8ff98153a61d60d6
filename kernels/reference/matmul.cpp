// Batched matmul: per output matrix, i-p-j loops over a double accumulator row, so the
// innermost loop walks b and the accumulator contiguously in the common, untransposed case.
#include "kernels/reference/matmul.h"

#include <algorithm>
#include <type_traits>
#include <vector>

#include "kernels/reference/elementwise.h"

namespace kiln::kernels::ref {

template <typename T>
void matmul(const T* a, std::span<const std::int64_t> a_dims, const T* b, std::span<const std::int64_t> b_dims,
            bool transpose_a, bool transpose_b, T* out, std::span<const std::int64_t> out_dims) {
  using Acc = std::conditional_t<std::is_floating_point_v<T>, double, std::int64_t>;
  const bool a_vector = a_dims.size() == 1;
  const bool b_vector = b_dims.size() == 1;
  const bool ta = transpose_a && !a_vector;
  const bool tb = transpose_b && !b_vector;
  // Stored matrix sizes: a is rows_a x cols_a in memory, b is rows_b x cols_b.
  const std::int64_t rows_a = a_vector ? 1 : a_dims[a_dims.size() - 2];
  const std::int64_t cols_a = a_dims.back();
  const std::int64_t rows_b = b_vector ? b_dims[0] : b_dims[b_dims.size() - 2];
  const std::int64_t cols_b = b_vector ? 1 : b_dims.back();
  const std::int64_t m = ta ? cols_a : rows_a;
  const std::int64_t k = ta ? rows_a : cols_a;
  const std::int64_t n = tb ? rows_b : cols_b;

  // Leading (batch) dimensions: a's and b's broadcast into the output's.
  const Dims lead_a = a_vector ? Dims{} : a_dims.first(a_dims.size() - 2);
  const Dims lead_b = b_vector ? Dims{} : b_dims.first(b_dims.size() - 2);
  const std::size_t out_matrix_rank = (a_vector ? 0 : 1) + (b_vector ? 0 : 1);
  const Dims lead_out = out_dims.first(out_dims.size() - out_matrix_rank);
  const std::int64_t batches = element_count(lead_out);
  BroadcastCursor cursor(lead_out, {lead_a, lead_b});

  std::vector<Acc> row(static_cast<std::size_t>(n));
  for (std::int64_t batch = 0; batch < batches; ++batch, cursor.next()) {
    const T* am = a + cursor.offset(0) * rows_a * cols_a;
    const T* bm = b + cursor.offset(1) * rows_b * cols_b;
    T* om = out + batch * m * n;
    for (std::int64_t i = 0; i < m; ++i) {
      std::fill(row.begin(), row.end(), Acc{0});
      for (std::int64_t p = 0; p < k; ++p) {
        const Acc av = static_cast<Acc>(ta ? am[p * cols_a + i] : am[i * cols_a + p]);
        if (tb) {
          for (std::int64_t j = 0; j < n; ++j)
            row[static_cast<std::size_t>(j)] += av * static_cast<Acc>(bm[j * cols_b + p]);
        } else {
          const T* brow = bm + p * cols_b;
          for (std::int64_t j = 0; j < n; ++j) row[static_cast<std::size_t>(j)] += av * static_cast<Acc>(brow[j]);
        }
      }
      for (std::int64_t j = 0; j < n; ++j) om[i * n + j] = static_cast<T>(row[static_cast<std::size_t>(j)]);
    }
  }
}

#define KILN_MATMUL_INSTANCE(T)                                                                                   \
  template void matmul<T>(const T*, std::span<const std::int64_t>, const T*, std::span<const std::int64_t>, bool, \
                          bool, T*, std::span<const std::int64_t>);
KILN_MATMUL_INSTANCE(float)
KILN_MATMUL_INSTANCE(double)
KILN_MATMUL_INSTANCE(std::int32_t)
KILN_MATMUL_INSTANCE(std::int64_t)
#undef KILN_MATMUL_INSTANCE

}  // namespace kiln::kernels::ref
