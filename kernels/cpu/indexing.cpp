// Indexing kernels: gather (embedding lookup), scatter_add (its gradient), one_hot, argmax.
// Out-of-range indices never touch memory out of bounds: gather writes a zero row,
// scatter_add and one_hot skip them (as kernels/reference/indexing.h).
#include <cstring>

#include "kernels/cpu/common.h"
#include "kernels/cpu/kernels.h"

namespace kiln::cpu {
namespace {

template <typename I>
void gather(const void* table, Index rows, std::size_t row_bytes, const I* idx, Index count, void* out) {
  const auto* src = static_cast<const char*>(table);
  auto* dst = static_cast<char*>(out);
  for (Index i = 0; i < count; ++i) {
    const auto index = static_cast<Index>(idx[i]);
    char* row = dst + static_cast<std::size_t>(i) * row_bytes;
    if (index < 0 || index >= rows) {
      std::memset(row, 0, row_bytes);
    } else {
      std::memcpy(row, src + static_cast<std::size_t>(index) * row_bytes, row_bytes);
    }
  }
}

template <typename I>
void scatter_add(const I* idx, Index count, const float* updates, Index row, Index rows, float* out) {
  for (Index e = 0; e < rows * row; ++e) out[e] = 0.0f;
  for (Index i = 0; i < count; ++i) {
    const auto index = static_cast<Index>(idx[i]);
    if (index < 0 || index >= rows) continue;
    float* dst = out + index * row;
    const float* src = updates + i * row;
    for (Index k = 0; k < row; ++k) dst[k] += src[k];
  }
}

template <typename I>
void one_hot(const I* idx, Index count, Index depth, float* out) {
  for (Index i = 0; i < count; ++i) {
    float* row = out + i * depth;
    for (Index k = 0; k < depth; ++k) row[k] = 0.0f;
    const auto index = static_cast<Index>(idx[i]);
    if (index >= 0 && index < depth) row[index] = 1.0f;
  }
}

inline bool beats(float v, float best) {
  return v > best || (v != v && best == best);
}

constexpr Index kInnerChunk = 64;

}  // namespace
}  // namespace kiln::cpu

extern "C" {

void kiln_k_gather_i32(const void* table, std::int64_t rows, std::size_t row_bytes, const std::int32_t* idx,
                       std::int64_t count, void* out) {
  kiln::cpu::gather(table, rows, row_bytes, idx, count, out);
}
void kiln_k_gather_i64(const void* table, std::int64_t rows, std::size_t row_bytes, const std::int64_t* idx,
                       std::int64_t count, void* out) {
  kiln::cpu::gather(table, rows, row_bytes, idx, count, out);
}

void kiln_k_scatter_add_i32(const std::int32_t* idx, std::int64_t count, const float* updates, std::int64_t row,
                            std::int64_t rows, float* out) {
  kiln::cpu::scatter_add(idx, count, updates, row, rows, out);
}
void kiln_k_scatter_add_i64(const std::int64_t* idx, std::int64_t count, const float* updates, std::int64_t row,
                            std::int64_t rows, float* out) {
  kiln::cpu::scatter_add(idx, count, updates, row, rows, out);
}

void kiln_k_one_hot_i32(const std::int32_t* idx, std::int64_t count, std::int64_t depth, float* out) {
  kiln::cpu::one_hot(idx, count, depth, out);
}
void kiln_k_one_hot_i64(const std::int64_t* idx, std::int64_t count, std::int64_t depth, float* out) {
  kiln::cpu::one_hot(idx, count, depth, out);
}

void kiln_k_argmax(const float* x, std::int64_t outer, std::int64_t axis, std::int64_t inner, std::int32_t* out) {
  using namespace kiln::cpu;
  for (Index o = 0; o < outer; ++o) {
    const float* base = x + o * axis * inner;
    std::int32_t* dst = out + o * inner;
    if (inner == 1) {
      Index best = 0;
      for (Index a = 1; a < axis; ++a)
        if (beats(base[a], base[best])) best = a;
      dst[0] = static_cast<std::int32_t>(best);
      continue;
    }
    for (Index i0 = 0; i0 < inner; i0 += kInnerChunk) {
      const Index width = min_index(kInnerChunk, inner - i0);
      float best[kInnerChunk];
      std::int32_t where[kInnerChunk];
      for (Index i = 0; i < width; ++i) {
        best[i] = axis > 0 ? base[i0 + i] : 0.0f;
        where[i] = 0;
      }
      for (Index a = 1; a < axis; ++a) {
        const float* row = base + a * inner + i0;
        for (Index i = 0; i < width; ++i) {
          const bool better = beats(row[i], best[i]);
          best[i] = better ? row[i] : best[i];
          where[i] = better ? static_cast<std::int32_t>(a) : where[i];
        }
      }
      for (Index i = 0; i < width; ++i) dst[i0 + i] = where[i];
    }
  }
}

}  // extern "C"
