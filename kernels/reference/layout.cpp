// Layout kernels: copies of contiguous runs where the layout allows, element walks
// otherwise. Nothing clever: these are the oracle.
#include "kernels/reference/layout.h"

#include <cstring>
#include <vector>

#include "kernels/reference/elementwise.h"

namespace kiln::kernels::ref {

void copy_elements(const void* x, std::size_t bytes, void* out) {
  if (bytes > 0) std::memmove(out, x, bytes);
}

void transpose(std::size_t elem_size, const void* x, std::span<const std::int64_t> x_dims,
               std::span<const std::int64_t> perm, void* out) {
  const std::size_t rank = x_dims.size();
  std::vector<std::int64_t> x_strides(rank, 1);
  for (std::size_t a = rank; a-- > 1;) x_strides[a - 1] = x_strides[a] * x_dims[a];
  std::vector<std::int64_t> out_dims(rank), strides(rank);
  for (std::size_t k = 0; k < rank; ++k) {
    out_dims[k] = x_dims[static_cast<std::size_t>(perm[k])];
    strides[k] = x_strides[static_cast<std::size_t>(perm[k])];
  }
  const auto* src = static_cast<const std::byte*>(x);
  auto* dst = static_cast<std::byte*>(out);
  const std::int64_t n = element_count(out_dims);
  std::vector<std::int64_t> index(rank, 0);
  std::int64_t offset = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    std::memcpy(dst + static_cast<std::size_t>(i) * elem_size, src + static_cast<std::size_t>(offset) * elem_size,
                elem_size);
    for (std::size_t a = rank; a-- > 0;) {
      offset += strides[a];
      if (++index[a] < out_dims[a]) break;
      offset -= strides[a] * out_dims[a];
      index[a] = 0;
    }
  }
}

void broadcast_to(std::size_t elem_size, const void* x, std::span<const std::int64_t> x_dims, void* out,
                  std::span<const std::int64_t> out_dims) {
  const auto* src = static_cast<const std::byte*>(x);
  auto* dst = static_cast<std::byte*>(out);
  const std::int64_t n = element_count(out_dims);
  BroadcastCursor cursor(out_dims, {x_dims});
  for (std::int64_t i = 0; i < n; ++i, cursor.next()) {
    std::memcpy(dst + static_cast<std::size_t>(i) * elem_size,
                src + static_cast<std::size_t>(cursor.offset(0)) * elem_size, elem_size);
  }
}

void slice(std::size_t elem_size, const void* x, std::span<const std::int64_t> x_dims, std::size_t axis,
           std::int64_t start, std::int64_t end, void* out) {
  const std::int64_t outer = element_count(x_dims.first(axis));
  const std::int64_t inner = element_count(x_dims.subspan(axis + 1));
  const std::int64_t len = x_dims[axis];
  const auto* src = static_cast<const std::byte*>(x);
  auto* dst = static_cast<std::byte*>(out);
  const auto run = static_cast<std::size_t>((end - start) * inner) * elem_size;
  for (std::int64_t o = 0; o < outer; ++o) {
    copy_elements(src + static_cast<std::size_t>((o * len + start) * inner) * elem_size, run,
                  dst + static_cast<std::size_t>(o) * run);
  }
}

void concat(std::size_t elem_size, std::span<const void* const> parts, std::span<const std::int64_t> part_axis,
            std::int64_t outer, std::int64_t inner, void* out) {
  auto* dst = static_cast<std::byte*>(out);
  for (std::int64_t o = 0; o < outer; ++o) {
    for (std::size_t k = 0; k < parts.size(); ++k) {
      const auto run = static_cast<std::size_t>(part_axis[k] * inner) * elem_size;
      copy_elements(static_cast<const std::byte*>(parts[k]) + static_cast<std::size_t>(o) * run, run, dst);
      dst += run;
    }
  }
}

}  // namespace kiln::kernels::ref
