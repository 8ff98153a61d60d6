// Layout kernels over elem_size-byte elements: copy2d (slice and concat) and transpose.
//
// transpose drops unit axes and merges output axes that are contiguous in the input, then
//   - innermost output axis contiguous in the input: memcpy runs under an odometer;
//   - the next-to-innermost output axis contiguous in the input (a batched 2-D transpose):
//     kTile × kTile tiles, so both sides are walked a cache line at a time;
//   - otherwise: one element at a time under the odometer.
// Elements of 1, 2, 4 and 8 bytes move as integers; other sizes by memcpy.
#include <cstring>

#include "kernels/cpu/common.h"
#include "kernels/cpu/kernels.h"

namespace kiln::cpu {
namespace {

constexpr int kMaxRank = 8;
constexpr Index kTile = 16;

template <typename T>
struct Blob {
  static void copy(char* dst, const char* src, std::size_t) { std::memcpy(dst, src, sizeof(T)); }
  static std::size_t size(std::size_t) { return sizeof(T); }
};
struct AnyBlob {
  static void copy(char* dst, const char* src, std::size_t n) { std::memcpy(dst, src, n); }
  static std::size_t size(std::size_t n) { return n; }
};

struct Shape {
  int rank = 0;
  Index dims[kMaxRank];
  Index strides[kMaxRank];  // input strides, in elements, of each output axis
};

// out[p, q] = in[q·in_row + p] for a P × Q block of the output (rows of out_row elements).
template <typename B>
void transpose_2d(std::size_t es, const char* src, Index in_row, char* dst, Index out_row, Index p_len, Index q_len) {
  const std::size_t size = B::size(es);
  for (Index p0 = 0; p0 < p_len; p0 += kTile) {
    const Index p1 = min_index(p_len, p0 + kTile);
    for (Index q0 = 0; q0 < q_len; q0 += kTile) {
      const Index q1 = min_index(q_len, q0 + kTile);
      for (Index p = p0; p < p1; ++p) {
        char* out = dst + static_cast<std::size_t>(p * out_row) * size;
        for (Index q = q0; q < q1; ++q)
          B::copy(out + static_cast<std::size_t>(q) * size, src + static_cast<std::size_t>(q * in_row + p) * size, es);
      }
    }
  }
}

// Visits every index of the outer `axes` axes of s, in row-major order, with the input offset.
template <typename Visit>
void for_each_outer(const Shape& s, int axes, Visit&& visit) {
  Index count = 1;
  for (int a = 0; a < axes; ++a) count *= s.dims[a];
  Index index[kMaxRank] = {};
  Index offset = 0;
  for (Index i = 0; i < count; ++i) {
    visit(i, offset);
    for (int a = axes; a-- > 0;) {
      offset += s.strides[a];
      if (++index[a] < s.dims[a]) break;
      offset -= s.strides[a] * s.dims[a];
      index[a] = 0;
    }
  }
}

template <typename B>
void transpose_shape(std::size_t es, const char* x, const Shape& s, char* out) {
  const std::size_t size = B::size(es);
  const int r = s.rank;
  const Index inner = s.dims[r - 1];
  if (s.strides[r - 1] == 1) {
    const std::size_t run = static_cast<std::size_t>(inner) * size;
    for_each_outer(s, r - 1, [&](Index i, Index offset) {
      std::memcpy(out + static_cast<std::size_t>(i) * run, x + static_cast<std::size_t>(offset) * size, run);
    });
    return;
  }
  if (r >= 2 && s.strides[r - 2] == 1) {
    const Index p_len = s.dims[r - 2];
    const std::size_t plane = static_cast<std::size_t>(p_len * inner) * size;
    for_each_outer(s, r - 2, [&](Index i, Index offset) {
      transpose_2d<B>(es, x + static_cast<std::size_t>(offset) * size, s.strides[r - 1],
                      out + static_cast<std::size_t>(i) * plane, inner, p_len, inner);
    });
    return;
  }
  const Index stride = s.strides[r - 1];
  for_each_outer(s, r - 1, [&](Index i, Index offset) {
    char* dst = out + static_cast<std::size_t>(i * inner) * size;
    for (Index j = 0; j < inner; ++j)
      B::copy(dst + static_cast<std::size_t>(j) * size, x + static_cast<std::size_t>(offset + j * stride) * size, es);
  });
}

}  // namespace
}  // namespace kiln::cpu

extern "C" {

void kiln_k_copy2d(std::size_t elem_size, const void* src, std::int64_t src_stride, void* dst, std::int64_t dst_stride,
                   std::int64_t rows, std::int64_t row_elems) {
  if (rows <= 0 || row_elems <= 0 || elem_size == 0) return;
  const auto* from = static_cast<const char*>(src);
  auto* to = static_cast<char*>(dst);
  const std::size_t run = static_cast<std::size_t>(row_elems) * elem_size;
  if (src_stride == row_elems && dst_stride == row_elems) {
    std::memmove(to, from, run * static_cast<std::size_t>(rows));
    return;
  }
  for (std::int64_t r = 0; r < rows; ++r)
    std::memmove(to + static_cast<std::size_t>(r * dst_stride) * elem_size,
                 from + static_cast<std::size_t>(r * src_stride) * elem_size, run);
}

void kiln_k_transpose(std::size_t elem_size, const void* x, int rank, const std::int64_t* dims,
                      const std::int64_t* perm, void* out) {
  using namespace kiln::cpu;
  if (elem_size == 0) return;
  Index in_strides[kMaxRank];
  Index total = 1;
  for (int a = rank; a-- > 0;) {
    in_strides[a] = total;
    total *= dims[a];
  }
  if (total <= 0) return;
  Shape s;
  for (int k = 0; k < rank; ++k) {
    const Index d = dims[perm[k]];
    if (d == 1) continue;
    const Index stride = in_strides[perm[k]];
    if (s.rank > 0 && s.strides[s.rank - 1] == stride * d) {
      s.dims[s.rank - 1] *= d;
      s.strides[s.rank - 1] = stride;
    } else {
      s.dims[s.rank] = d, s.strides[s.rank] = stride, ++s.rank;
    }
  }
  if (s.rank == 0) s.dims[0] = 1, s.strides[0] = 1, s.rank = 1;
  const auto* src = static_cast<const char*>(x);
  auto* dst = static_cast<char*>(out);
  switch (elem_size) {
    case 1: return transpose_shape<Blob<std::uint8_t>>(1, src, s, dst);
    case 2: return transpose_shape<Blob<std::uint16_t>>(2, src, s, dst);
    case 4: return transpose_shape<Blob<std::uint32_t>>(4, src, s, dst);
    case 8: return transpose_shape<Blob<std::uint64_t>>(8, src, s, dst);
    default: return transpose_shape<AnyBlob>(elem_size, src, s, dst);
  }
}

}  // extern "C"
