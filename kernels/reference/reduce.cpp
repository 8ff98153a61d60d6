// Reductions: one pass over x in memory order, accumulating into per-output slots.
#include "kernels/reference/reduce.h"

#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

namespace kiln::kernels::ref {

template <typename T>
void reduce(ReduceOp op, const T* x, std::span<const std::int64_t> dims, std::span<const bool> reduced, T* out) {
  using Acc = std::conditional_t<std::is_floating_point_v<T>, double, std::int64_t>;
  const std::size_t rank = dims.size();
  // Output strides of each input axis (0 on reduced axes).
  std::vector<std::int64_t> out_strides(rank, 0);
  std::int64_t out_n = 1, in_n = 1, count = 1;
  for (std::size_t axis = rank; axis-- > 0;) {
    in_n *= dims[axis];
    if (reduced[axis]) {
      count *= dims[axis];
    } else {
      out_strides[axis] = out_n;
      out_n *= dims[axis];
    }
  }
  const Acc init = op == ReduceOp::kMax ? static_cast<Acc>(std::numeric_limits<T>::lowest()) : Acc{0};
  std::vector<Acc> acc(static_cast<std::size_t>(out_n), init);
  std::vector<std::int64_t> index(rank, 0);
  std::int64_t o = 0;
  for (std::int64_t i = 0; i < in_n; ++i) {
    Acc& slot = acc[static_cast<std::size_t>(o)];
    const Acc v = static_cast<Acc>(x[i]);
    if (op != ReduceOp::kMax) {
      slot += v;
    } else if constexpr (std::is_floating_point_v<T>) {
      if (v > slot || std::isnan(v)) slot = std::isnan(slot) ? slot : v;
    } else if (v > slot) {
      slot = v;
    }
    for (std::size_t axis = rank; axis-- > 0;) {
      o += out_strides[axis];
      if (++index[axis] < dims[axis]) break;
      o -= out_strides[axis] * dims[axis];
      index[axis] = 0;
    }
  }
  for (std::int64_t j = 0; j < out_n; ++j) {
    const Acc a = acc[static_cast<std::size_t>(j)];
    if (op == ReduceOp::kMean) {
      out[j] = static_cast<T>(static_cast<double>(a) / static_cast<double>(count));
    } else {
      out[j] = static_cast<T>(a);
    }
  }
}

template void reduce<float>(ReduceOp, const float*, std::span<const std::int64_t>, std::span<const bool>, float*);
template void reduce<double>(ReduceOp, const double*, std::span<const std::int64_t>, std::span<const bool>, double*);
template void reduce<std::int32_t>(ReduceOp, const std::int32_t*, std::span<const std::int64_t>, std::span<const bool>,
                                   std::int32_t*);
template void reduce<std::int64_t>(ReduceOp, const std::int64_t*, std::span<const std::int64_t>, std::span<const bool>,
                                   std::int64_t*);

}  // namespace kiln::kernels::ref
