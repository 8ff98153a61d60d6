// Shape ops that only move elements: reshape (a copy), transpose, broadcast_to, slice and
// concat. They are dtype-agnostic: elements are `elem_size`-byte blobs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace kiln::kernels::ref {

void copy_elements(const void* x, std::size_t bytes, void* out);

// out[j...] = x[i...] with out dim k = x dim perm[k] (perm already normalised).
void transpose(std::size_t elem_size, const void* x, std::span<const std::int64_t> x_dims,
               std::span<const std::int64_t> perm, void* out);

// Numpy broadcasting of x into out_dims.
void broadcast_to(std::size_t elem_size, const void* x, std::span<const std::int64_t> x_dims, void* out,
                  std::span<const std::int64_t> out_dims);

// Elements [start, end) along `axis`.
void slice(std::size_t elem_size, const void* x, std::span<const std::int64_t> x_dims, std::size_t axis,
           std::int64_t start, std::int64_t end, void* out);

// Joins parts along an axis: every part is [outer, part_axis[k], inner].
void concat(std::size_t elem_size, std::span<const void* const> parts, std::span<const std::int64_t> part_axis,
            std::int64_t outer, std::int64_t inner, void* out);

}  // namespace kiln::kernels::ref
