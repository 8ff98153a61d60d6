// Indexing kernels; see indexing.h for the out-of-range policy.
#include "kernels/reference/indexing.h"

#include <cmath>
#include <cstring>
#include <type_traits>

namespace kiln::kernels::ref {

template <typename I>
void gather(const void* table, std::int64_t rows, std::size_t row_bytes, const I* indices, std::int64_t count,
            void* out) {
  const auto* src = static_cast<const std::byte*>(table);
  auto* dst = static_cast<std::byte*>(out);
  for (std::int64_t i = 0; i < count; ++i) {
    const auto index = static_cast<std::int64_t>(indices[i]);
    std::byte* row_out = dst + static_cast<std::size_t>(i) * row_bytes;
    if (index < 0 || index >= rows) {
      std::memset(row_out, 0, row_bytes);
    } else {
      std::memcpy(row_out, src + static_cast<std::size_t>(index) * row_bytes, row_bytes);
    }
  }
}

template <typename T, typename I>
void scatter_add(const I* indices, std::int64_t count, const T* updates, std::int64_t row, std::int64_t rows, T* out) {
  for (std::int64_t i = 0; i < rows * row; ++i) out[i] = T{0};
  for (std::int64_t i = 0; i < count; ++i) {
    const auto index = static_cast<std::int64_t>(indices[i]);
    if (index < 0 || index >= rows) continue;
    for (std::int64_t k = 0; k < row; ++k) out[index * row + k] += updates[i * row + k];
  }
}

template <typename T, typename I>
void one_hot(const I* indices, std::int64_t count, std::int64_t depth, T* out) {
  for (std::int64_t i = 0; i < count; ++i) {
    const auto index = static_cast<std::int64_t>(indices[i]);
    for (std::int64_t k = 0; k < depth; ++k) out[i * depth + k] = static_cast<T>(k == index);
  }
}

template <typename T>
void argmax(const T* x, std::int64_t outer, std::int64_t axis, std::int64_t inner, std::int32_t* out) {
  for (std::int64_t o = 0; o < outer; ++o) {
    for (std::int64_t i = 0; i < inner; ++i) {
      const T* row = x + o * axis * inner + i;
      std::int64_t best = 0;
      for (std::int64_t a = 1; a < axis; ++a) {
        const T v = row[a * inner];
        const T b = row[best * inner];
        bool better = v > b;
        if constexpr (std::is_floating_point_v<T>) better = better || (std::isnan(v) && !std::isnan(b));
        if (better) best = a;
      }
      out[o * inner + i] = static_cast<std::int32_t>(best);
    }
  }
}

template void gather<std::int32_t>(const void*, std::int64_t, std::size_t, const std::int32_t*, std::int64_t, void*);
template void gather<std::int64_t>(const void*, std::int64_t, std::size_t, const std::int64_t*, std::int64_t, void*);

#define KILN_INDEX_INSTANCES(T, I)                                                                   \
  template void scatter_add<T, I>(const I*, std::int64_t, const T*, std::int64_t, std::int64_t, T*); \
  template void one_hot<T, I>(const I*, std::int64_t, std::int64_t, T*);
KILN_INDEX_INSTANCES(float, std::int32_t)
KILN_INDEX_INSTANCES(float, std::int64_t)
KILN_INDEX_INSTANCES(double, std::int32_t)
KILN_INDEX_INSTANCES(double, std::int64_t)
KILN_INDEX_INSTANCES(std::int32_t, std::int32_t)
KILN_INDEX_INSTANCES(std::int32_t, std::int64_t)
KILN_INDEX_INSTANCES(std::int64_t, std::int32_t)
KILN_INDEX_INSTANCES(std::int64_t, std::int64_t)
#undef KILN_INDEX_INSTANCES
template void one_hot<bool, std::int32_t>(const std::int32_t*, std::int64_t, std::int64_t, bool*);
template void one_hot<bool, std::int64_t>(const std::int64_t*, std::int64_t, std::int64_t, bool*);

template void argmax<float>(const float*, std::int64_t, std::int64_t, std::int64_t, std::int32_t*);
template void argmax<double>(const double*, std::int64_t, std::int64_t, std::int64_t, std::int32_t*);
template void argmax<std::int32_t>(const std::int32_t*, std::int64_t, std::int64_t, std::int64_t, std::int32_t*);
template void argmax<std::int64_t>(const std::int64_t*, std::int64_t, std::int64_t, std::int64_t, std::int32_t*);

}  // namespace kiln::kernels::ref
