// Packed, cache-blocked SGEMM in the Goto/BLIS layout. Loop nest, outermost first:
//   jc (NC columns of C, B block in L3) → pc (KC of the shared dimension; B packed once per
//   block) → ic (MC rows, A block packed into L2) → jr (NR) → ir (MR) → micro-kernel.
// The AVX2 micro-kernel keeps an MR×NR = 6×16 tile of C in 12 ymm registers and streams a KC-long
// packed A sliver (6 floats a step) and B sliver (16 floats a step, in L1). Packing pads edge
// slivers with zeros, so the micro-kernel always runs full tiles; only its store is clipped.
// A non-transposed B is packed by the first micro-tile of each sliver as it runs, or, for at
// most 64 rows of C, not packed at all — unless its rows are a multiple of 4 KB apart, where
// each sliver is packed into one reused buffer; with at most 64 columns of C, A is read in
// place instead of packed.
// With AVX-512 at compile time the tile is 8×16 in 8 zmm registers (one B load and eight
// FMAs with their A broadcasts folded in a step, edges through masked stores; A slivers hold
// 8 floats a step): on Zen 4 the ymm kernel's step of 12 FMAs, 6 broadcasts and 2 loads keeps
// the FMA pipes less busy (bench_gemm's kiln_avx2 rows against its kiln rows), and batches of
// 64 or 256 rows split into whole 8-row tiles. kiln_sgemm_offset_tile stays 6×16 in every
// build. Without AVX2+FMA the same blocking runs a portable scalar micro-kernel.
//
// The bitcode flavours compile this file once each. The native library compiles it twice
// (AVX2 and AVX-512, KILN_GEMM_SUFFIX naming each copy's entry points) and gemm_dispatch.cpp
// picks one at run time by what the CPU has.
#include "kernels/cpu/gemm.h"

#include <cstring>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define KILN_GEMM_AVX2 1
#else
#define KILN_GEMM_AVX2 0
#endif
#if KILN_GEMM_AVX2 && defined(__AVX512F__)
#define KILN_GEMM_AVX512 1
#else
#define KILN_GEMM_AVX512 0
#endif

#ifdef KILN_GEMM_SUFFIX
#define KILN_GEMM_CONCAT2(a, b) a##b
#define KILN_GEMM_CONCAT(a, b) KILN_GEMM_CONCAT2(a, b)
#define KILN_GEMM_ENTRY(name) KILN_GEMM_CONCAT(name, KILN_GEMM_SUFFIX)
#else
#define KILN_GEMM_ENTRY(name) name
#endif

namespace {

using Index = std::int64_t;

// Rows of the packed micro-tile: 6 (12 ymm accumulators), or 8 with AVX-512 (8 zmm ones, of
// 32 registers; batches of 64 or 256 rows then split into whole tiles).
constexpr Index kMr = KILN_GEMM_AVX512 ? 8 : 6;
// Rows of kiln_sgemm_offset_tile's micro-tile (A read in place through one offset a row).
constexpr Index kOffsetMr = 6;
constexpr Index kNr = 16;
// Zen 3: 32 KB L1d holds a KC×NR B sliver (16 KB) plus the A sliver; 512 KB L2 holds the
// MC×KC packed A block (144 KB); NC×KC packed B (3 MB) sits in the 32 MB L3.
constexpr Index kKc = 256;
constexpr Index kMc = 144;
constexpr Index kNc = 3072;
constexpr std::size_t kAlign = 64;
// Widest C (columns) whose A is read in place rather than packed (see gemm_block).
constexpr Index kInPlaceAMaxCols = 64;
// Packed B (bytes) small enough to stay in L2 while A is streamed past it whole rows at a time.
constexpr Index kInPlaceBBytes = Index{384} << 10;
// Rows of C (at most) for which every micro-tile reads a non-transposed B in place (see
// gemm_block), and the KC of that path: a longer block than kKc (one pass over C for the
// MLP's k = 784), its A sliver streaming from L2.
constexpr Index kInPlaceBMaxRows = 64;
constexpr Index kFewRowsKc = 1024;
// When B's rows are a multiple of 4 KB apart and C has at most kInPlaceBMaxRows rows, B is
// packed one sliver at a time into one reused buffer, in KC blocks of up to kFewRowsKc, and
// the packing micro-tile prefetches B's rows this many ahead into L2, on into the next
// sliver's (see PackAhead).
constexpr Index kPackAheadRows = 64;
static_assert(kMc % kMr == 0 && kNc % kNr == 0, "cache blocks must hold whole micro-tiles");
static_assert(kInPlaceBMaxRows <= kMc, "gemm_few_rows packs all its rows of A as one block");
static_assert(kOffsetMr == KILN_SGEMM_MR && kNr == KILN_SGEMM_NR, "gemm.h publishes the offset micro-tile");

Index min_index(Index x, Index y) {
  return x < y ? x : y;
}
Index round_up(Index x, Index to) {
  return (x + to - 1) / to * to;
}

float* align_up(void* p) {
  auto address = reinterpret_cast<std::uintptr_t>(p);
  address = (address + kAlign - 1) & ~static_cast<std::uintptr_t>(kAlign - 1);
  return reinterpret_cast<float*>(address);
}

// Packed-buffer sizes in floats: A block is MC×KC; the B block is KC × (NC or less, rounded
// to NR), each rounded to whole cache lines so the B block starts aligned.
Index packed_a_floats(Index m, Index k) {
  const Index blocked = min_index(round_up(m, kMr), kMc) * min_index(k, kKc);
  // gemm_few_rows, for any slice of at most kInPlaceBMaxRows rows.
  const Index few_rows = min_index(round_up(m, kMr), round_up(kInPlaceBMaxRows, kMr)) * min_index(k, kFewRowsKc);
  return round_up(blocked > few_rows ? blocked : few_rows, kAlign / sizeof(float));
}
Index packed_b_floats(Index n, Index k) {
  const Index blocked = min_index(round_up(n, kNr), kNc) * min_index(k, kKc);
  // With A read in place, B may be packed whole (see gemm_block): up to kInPlaceBBytes.
  const Index whole = min_index(round_up(n, kNr) * k, kInPlaceBBytes / Index{sizeof(float)});
  // A few rows of C against a B whose rows are 4 KB apart: the reused sliver and, after it,
  // a last narrower one.
  const Index sliver_pair = 2 * kNr * min_index(k, kFewRowsKc);
  const Index larger = blocked > whole ? blocked : whole;
  return larger > sliver_pair ? larger : sliver_pair;
}

#if KILN_GEMM_AVX2
// col[j] lane i = r[i] lane j: an 8×8 transpose in registers.
[[gnu::always_inline]] inline void transpose8(const __m256 (&r)[8], __m256 (&col)[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  col[0] = _mm256_permute2f128_ps(u0, u4, 0x20), col[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  col[2] = _mm256_permute2f128_ps(u2, u6, 0x20), col[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  col[4] = _mm256_permute2f128_ps(u0, u4, 0x31), col[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  col[6] = _mm256_permute2f128_ps(u2, u6, 0x31), col[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// out[j·out_stride + i] = src[i·ld + j] for i, j < 8: one 8×8 transpose through memory.
[[gnu::always_inline]] inline void transpose8x8(const float* src, Index ld, float* out, Index out_stride) {
  __m256 r[8], col[8];
  for (Index i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * ld);
  transpose8(r, col);
  for (Index j = 0; j < 8; ++j) _mm256_storeu_ps(out + j * out_stride, col[j]);
}
#endif

#if KILN_GEMM_AVX512
// out[p·MR + i] = rows[i][p] for a full panel of MR = 8 rows: 8×8 transposes, each giving 8
// whole steps of the sliver.
void pack_a_panel(const float* src, Index ld, Index kc, float* out) {
  Index p = 0;
  for (; p + 8 <= kc; p += 8) transpose8x8(src + p, ld, out + p * kMr, kMr);
  for (; p < kc; ++p)
    for (Index i = 0; i < kMr; ++i) out[p * kMr + i] = src[i * ld + p];
}
#elif KILN_GEMM_AVX2
// out[p·MR + i] = rows[i][p] for a full panel of MR rows: 8×8 transposes of 8 columns (two
// zero rows), each column stored 8 wide so that the next column's store overwrites the 2
// extra floats; only the panel's last column is stored 6 wide.
void pack_a_panel(const float* src, Index ld, Index kc, float* out) {
  Index p = 0;
  for (; p + 8 <= kc; p += 8) {
    __m256 r[8], col[8];
    for (Index i = 0; i < kMr; ++i) r[i] = _mm256_loadu_ps(src + i * ld + p);
    r[6] = r[7] = _mm256_setzero_ps();
    transpose8(r, col);
    float* o = out + p * kMr;
    for (Index j = 0; j < 7; ++j) _mm256_storeu_ps(o + j * kMr, col[j]);
    if (p + 8 < kc) {
      _mm256_storeu_ps(o + 7 * kMr, col[7]);
    } else {
      _mm_storeu_ps(o + 7 * kMr, _mm256_castps256_ps128(col[7]));
      _mm_storel_pi(reinterpret_cast<__m64*>(o + 7 * kMr + 4), _mm256_extractf128_ps(col[7], 1));
    }
  }
  for (; p < kc; ++p)
    for (Index i = 0; i < kMr; ++i) out[p * kMr + i] = src[i * ld + p];
}
#else
void pack_a_panel(const float* src, Index ld, Index kc, float* out) {
  for (Index i = 0; i < kMr; ++i)
    for (Index p = 0; p < kc; ++p) out[p * kMr + i] = src[i * ld + p];
}
#endif

// op(A)[row0 .. row0+mc) × [pc .. pc+kc) into MR-row slivers: sliver s holds, for each p,
// the MR values op(A)[row0 + s·MR + i][pc + p] at dst[s·MR·kc + p·MR + i]; rows past mc are 0.
void pack_a(bool trans_a, const float* a, Index lda, Index row0, Index mc, Index pc, Index kc, float* dst) {
  for (Index s = 0; s < mc; s += kMr) {
    const Index rows = min_index(kMr, mc - s);
    float* out = dst + s * kc;
    if (!trans_a && rows == kMr) {
      pack_a_panel(a + (row0 + s) * lda + pc, lda, kc, out);
    } else if (!trans_a) {
      for (Index i = 0; i < rows; ++i) {
        const float* src = a + (row0 + s + i) * lda + pc;
        for (Index p = 0; p < kc; ++p) out[p * kMr + i] = src[p];
      }
    } else if (rows == kMr) {  // one copy of constant size a step (a loop here was copied float by float)
      for (Index p = 0; p < kc; ++p) std::memcpy(out + p * kMr, a + (pc + p) * lda + row0 + s, sizeof(float) * kMr);
    } else {
      for (Index p = 0; p < kc; ++p) {
        const float* src = a + (pc + p) * lda + row0 + s;
        for (Index i = 0; i < rows; ++i) out[p * kMr + i] = src[i];
      }
    }
    for (Index i = rows; i < kMr; ++i)
      for (Index p = 0; p < kc; ++p) out[p * kMr + i] = 0.0f;
  }
}

#if KILN_GEMM_AVX2
// out[p·NR + j] = rows[j][p] for p < kc (a multiple of 8 handled in 8×8 transposes, the rest
// one by one), j < NR: one full sliver of a transposed B.
void transpose_sliver(const float* src, Index ld, Index kc, float* out) {
  Index p = 0;
  for (; p + 8 <= kc; p += 8)
    for (Index h = 0; h < kNr; h += 8) transpose8x8(src + h * ld + p, ld, out + p * kNr + h, kNr);
  for (; p < kc; ++p)
    for (Index j = 0; j < kNr; ++j) out[p * kNr + j] = src[j * ld + p];
}
#else
void transpose_sliver(const float* src, Index ld, Index kc, float* out) {
  for (Index j = 0; j < kNr; ++j)
    for (Index p = 0; p < kc; ++p) out[p * kNr + j] = src[j * ld + p];
}
#endif

// op(B)[pc .. pc+kc) × [col0 .. col0+nc) into NR-column slivers: dst[s·NR·kc + p·NR + j] =
// op(B)[pc + p][col0 + s·NR + j]; columns past nc are 0.
void pack_b(bool trans_b, const float* b, Index ldb, Index pc, Index kc, Index col0, Index nc, float* dst) {
  const Index full = nc / kNr * kNr;  // columns in whole slivers
  if (!trans_b) {
    // Row by row, so B is read sequentially (a sliver at a time would stride ldb per load).
    for (Index p = 0; p < kc; ++p) {
      const float* src = b + (pc + p) * ldb + col0;
      for (Index s = 0; s < full; s += kNr) std::memcpy(dst + s * kc + p * kNr, src + s, sizeof(float) * kNr);
      if (full < nc) {
        float* out = dst + full * kc + p * kNr;
        for (Index j = 0; j < nc - full; ++j) out[j] = src[full + j];
        for (Index j = nc - full; j < kNr; ++j) out[j] = 0.0f;
      }
    }
    return;
  }
  for (Index s = 0; s < nc; s += kNr) {
    const Index cols = min_index(kNr, nc - s);
    float* out = dst + s * kc;
    if (cols == kNr) {
      transpose_sliver(b + (col0 + s) * ldb + pc, ldb, kc, out);
      continue;
    }
    for (Index j = 0; j < cols; ++j) {
      const float* src = b + (col0 + s + j) * ldb + pc;
      for (Index p = 0; p < kc; ++p) out[p * kNr + j] = src[p];
    }
    for (Index j = cols; j < kNr; ++j)
      for (Index p = 0; p < kc; ++p) out[p * kNr + j] = 0.0f;
  }
}

#if !KILN_GEMM_AVX512
// C[0..mr) × [0..nr) = alpha·tile + beta·C from a full MR×NR tile (row stride kNr); beta == 0
// does not read C.
void store_partial(const float* tile, float* c, Index ldc, float alpha, float beta, Index mr, Index nr) {
  for (Index i = 0; i < mr; ++i)
    for (Index j = 0; j < nr; ++j) {
      const float value = alpha * tile[i * kNr + j];
      c[i * ldc + j] = beta == 0.0f ? value : value + beta * c[i * ldc + j];
    }
}
#endif

// The prefetches of a micro-tile that packs the sliver of B it reads (B in place, rows ldb
// apart, beyond the hardware prefetchers): one into L2 each step, of `first` + p·ldb for
// steps p < switch_at, then of `next` + (p − switch_at)·ldb (none when next is null). The
// tile of a large block fetches the sliver after next, row for row ({B + 2·NR, kc, null});
// a few rows' tile runs kPackAheadRows ahead in its own sliver and on into the next one.
struct PackAhead {
  const float* first;
  Index switch_at;
  const float* next;
};

#if KILN_GEMM_AVX512

// The MR×16 accumulator tile: one zmm register a row.
using Tile = __m512[kMr];

[[gnu::always_inline]] inline __mmask16 first_lanes(Index nr) {
  return static_cast<__mmask16>((1u << nr) - 1u);
}

// C[0..mr) × [0..nr) = alpha·tile + beta·C (beta == 0 does not read C) from a tile of
// Rows zmm registers; a narrow tile's columns through a lane mask.
template <Index Rows>
[[gnu::always_inline]] inline void store_tile(const __m512 (&t)[Rows], float* c, Index ldc, float alpha, float beta,
                                              Index mr, Index nr) {
  const __m512 valpha = _mm512_set1_ps(alpha), vbeta = _mm512_set1_ps(beta);
  if (mr == Rows && nr == kNr) {
    for (Index i = 0; i < Rows; ++i) {
      float* row = c + i * ldc;
      __m512 v = _mm512_mul_ps(valpha, t[i]);
      if (beta != 0.0f) v = _mm512_fmadd_ps(vbeta, _mm512_loadu_ps(row), v);
      _mm512_storeu_ps(row, v);
    }
    return;
  }
  const __mmask16 mask = first_lanes(nr);
  // A constant trip count and no early exit: t[i] with a variable i would put the tile in
  // memory for the whole micro-kernel, and clang-16 tuning for znver4 (-march=znver4) does
  // not fully unroll this loop when it breaks at mr (ctest gemm_tile_in_registers checks
  // every AVX-512 -march). The bitcode and the native library are built without -march, but
  // the code must not depend on it.
  for (Index i = 0; i < Rows; ++i) {
    if (i < mr) {
      float* row = c + i * ldc;
      __m512 v = _mm512_mul_ps(valpha, t[i]);
      if (beta != 0.0f) v = _mm512_fmadd_ps(vbeta, _mm512_maskz_loadu_ps(mask, row), v);
      _mm512_mask_storeu_ps(row, mask, v);
    }
  }
}

// With pack_out: B is read in place (stride b_stride) and each of its kc rows of 16 floats is
// also stored to pack_out, the packed sliver that the next micro-tiles of this column read.
void micro_kernel(Index kc, const float* a, const float* b, Index b_stride, float* c, Index ldc, float alpha,
                  float beta, Index mr, Index nr, float* pack_out = nullptr, PackAhead ahead = {},
                  bool prefetch_ahead = false) {
  Tile t;
  for (__m512& row : t) row = _mm512_setzero_ps();
  for (Index i = 0; i < mr; ++i) _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
  const float* fetch = ahead.first;
  for (Index p = 0; p < kc; ++p) {
    const __m512 bv = _mm512_loadu_ps(b);
    if (pack_out != nullptr) {
      if (p == ahead.switch_at) fetch = ahead.next;
      if (fetch != nullptr) {
        _mm_prefetch(reinterpret_cast<const char*>(fetch), _MM_HINT_T1);
        fetch += b_stride;
      }
      _mm512_storeu_ps(pack_out, bv);
      pack_out += kNr;
    } else {
      _mm_prefetch(reinterpret_cast<const char*>(b + 8 * b_stride), _MM_HINT_T0);
      // The first tile of a sliver of B read in place: also fetch this row of the sliver
      // after next into L2, as the packing tile does (B may come from L3 or memory).
      if (prefetch_ahead) _mm_prefetch(reinterpret_cast<const char*>(b + 2 * kNr), _MM_HINT_T1);
    }
    for (Index i = 0; i < kMr; ++i) t[i] = _mm512_fmadd_ps(_mm512_set1_ps(a[i]), bv, t[i]);
    a += kMr;
    b += b_stride;
  }
  store_tile(t, c, ldc, alpha, beta, mr, nr);
}

// One row of C: c[0..n) = alpha·Σp a[p·a_stride]·B[p][0..n) + beta·c, B read in place. Four
// accumulators across 64 columns hide the FMA latency that a 1-row micro-tile cannot; the
// last columns go through a lane mask.
void row_times_b(Index n, Index k, float alpha, const float* a, Index a_stride, const float* b, Index ldb, float beta,
                 float* c) {
  const __m512 valpha = _mm512_set1_ps(alpha), vbeta = _mm512_set1_ps(beta);
  auto finish = [&](__m512 acc, float* out, __mmask16 mask) {
    acc = _mm512_mul_ps(valpha, acc);
    if (beta != 0.0f) acc = _mm512_fmadd_ps(vbeta, _mm512_maskz_loadu_ps(mask, out), acc);
    _mm512_mask_storeu_ps(out, mask, acc);
  };
  Index j = 0;
  for (; j + 64 <= n; j += 64) {
    __m512 acc[4];
    for (__m512& v : acc) v = _mm512_setzero_ps();
    const float* row = b + j;
    for (Index p = 0; p < k; ++p, row += ldb) {
      const __m512 ap = _mm512_set1_ps(a[p * a_stride]);
      for (Index v = 0; v < 4; ++v) acc[v] = _mm512_fmadd_ps(ap, _mm512_loadu_ps(row + 16 * v), acc[v]);
    }
    for (Index v = 0; v < 4; ++v) finish(acc[v], c + j + 16 * v, first_lanes(16));
  }
  for (; j < n; j += 16) {
    const __mmask16 mask = first_lanes(min_index(16, n - j));
    __m512 acc = _mm512_setzero_ps();
    for (Index p = 0; p < k; ++p)
      acc = _mm512_fmadd_ps(_mm512_set1_ps(a[p * a_stride]), _mm512_maskz_loadu_ps(mask, b + p * ldb + j), acc);
    finish(acc, c + j, mask);
  }
}

// The FMA step is written out, as in the AVX2 kernel below (six offsets through a lambda
// stay in memory with clang-16). Always inlined, in all three copies: a product of short k
// (50176x25x32, conv1 as im2col: 25 steps a tile) lost a sixth of its speed to a call per
// tile when the masked store made this function too big for clang's inliner (bench_gemm
// --paired, Kiln / oneDNN 0.85 against 1.00-1.03 inlined; ctest gemm_tile_in_registers).
[[gnu::always_inline]] inline void offset_tile(const float* a_base, const Index* off, Index a_step, const float* b_base,
                                               Index b_step, const kiln_sgemm_run* runs, Index run_count,
                                               bool accumulate, float* c, Index ldc, Index mr, Index nr) {
  __m512 c0 = _mm512_setzero_ps(), c1 = _mm512_setzero_ps(), c2 = _mm512_setzero_ps();
  __m512 c3 = _mm512_setzero_ps(), c4 = _mm512_setzero_ps(), c5 = _mm512_setzero_ps();
  const Index o0 = off[0], o1 = off[1], o2 = off[2], o3 = off[3], o4 = off[4], o5 = off[5];
  for (Index r = 0; r < run_count; ++r) {
    const float* a = a_base + runs[r].a;
    const float* b = b_base + runs[r].b;
    for (Index p = runs[r].len; p > 0; --p) {
      const __m512 bv = _mm512_loadu_ps(b);
      c0 = _mm512_fmadd_ps(_mm512_set1_ps(a[o0]), bv, c0);
      c1 = _mm512_fmadd_ps(_mm512_set1_ps(a[o1]), bv, c1);
      c2 = _mm512_fmadd_ps(_mm512_set1_ps(a[o2]), bv, c2);
      c3 = _mm512_fmadd_ps(_mm512_set1_ps(a[o3]), bv, c3);
      c4 = _mm512_fmadd_ps(_mm512_set1_ps(a[o4]), bv, c4);
      c5 = _mm512_fmadd_ps(_mm512_set1_ps(a[o5]), bv, c5);
      a += a_step;
      b += b_step;
    }
  }
  const __m512 t[kOffsetMr] = {c0, c1, c2, c3, c4, c5};
  store_tile(t, c, ldc, 1.0f, accumulate ? 1.0f : 0.0f, mr, nr);
}

#elif KILN_GEMM_AVX2

// The 6×16 accumulator tile, 12 ymm registers once the constant loops below are unrolled.
using Tile = __m256[kMr][2];

// One step over the shared dimension: tile row i += a_i · (b0 | b1), where row_a(i) points at a_i.
template <typename RowA>
[[gnu::always_inline]] inline void tile_step(Tile& t, __m256 b0, __m256 b1, RowA row_a) {
  for (Index i = 0; i < kMr; ++i) {
    const __m256 ai = _mm256_broadcast_ss(row_a(i));
    t[i][0] = _mm256_fmadd_ps(ai, b0, t[i][0]);
    t[i][1] = _mm256_fmadd_ps(ai, b1, t[i][1]);
  }
}

// C[0..mr) × [0..nr) = alpha·tile + beta·C (beta == 0 does not read C).
[[gnu::always_inline]] inline void store_tile(const Tile& t, float* c, Index ldc, float alpha, float beta, Index mr,
                                              Index nr) {
  if (mr == kMr && nr == kNr) {
    const __m256 valpha = _mm256_set1_ps(alpha), vbeta = _mm256_set1_ps(beta);
    for (Index i = 0; i < kMr; ++i) {
      float* row = c + i * ldc;
      __m256 lo = _mm256_mul_ps(valpha, t[i][0]);
      __m256 hi = _mm256_mul_ps(valpha, t[i][1]);
      if (beta != 0.0f) {
        lo = _mm256_fmadd_ps(vbeta, _mm256_loadu_ps(row), lo);
        hi = _mm256_fmadd_ps(vbeta, _mm256_loadu_ps(row + 8), hi);
      }
      _mm256_storeu_ps(row, lo);
      _mm256_storeu_ps(row + 8, hi);
    }
    return;
  }
  alignas(32) float tile[kMr * kNr];
  for (Index i = 0; i < kMr; ++i) {
    _mm256_store_ps(tile + i * kNr, t[i][0]);
    _mm256_store_ps(tile + i * kNr + 8, t[i][1]);
  }
  store_partial(tile, c, ldc, alpha, beta, mr, nr);
}

// With pack_out: B is read in place (stride b_stride) and each of its kc rows of 16 floats is
// also stored to pack_out, the packed sliver that the next micro-tiles of this column read.
void micro_kernel(Index kc, const float* a, const float* b, Index b_stride, float* c, Index ldc, float alpha,
                  float beta, Index mr, Index nr, float* pack_out = nullptr, PackAhead ahead = {},
                  bool prefetch_ahead = false) {
  Tile t;
  for (auto& row : t) row[0] = row[1] = _mm256_setzero_ps();
  for (Index i = 0; i < mr; ++i) _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
  const float* fetch = ahead.first;
  for (Index p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_loadu_ps(b);
    const __m256 b1 = _mm256_loadu_ps(b + 8);
    if (pack_out != nullptr) {
      if (p == ahead.switch_at) fetch = ahead.next;
      if (fetch != nullptr) {
        _mm_prefetch(reinterpret_cast<const char*>(fetch), _MM_HINT_T1);
        fetch += b_stride;
      }
      _mm256_store_ps(pack_out, b0);
      _mm256_store_ps(pack_out + 8, b1);
      pack_out += kNr;
    } else {
      _mm_prefetch(reinterpret_cast<const char*>(b + 8 * b_stride), _MM_HINT_T0);
      // The first tile of a sliver of B read in place: also fetch this row of the sliver
      // after next into L2, as the packing tile does (B may come from L3 or memory).
      if (prefetch_ahead) _mm_prefetch(reinterpret_cast<const char*>(b + 2 * kNr), _MM_HINT_T1);
    }
    tile_step(t, b0, b1, [a](Index i) { return a + i; });
    a += kMr;
    b += b_stride;
  }
  store_tile(t, c, ldc, alpha, beta, mr, nr);
}

// One row of C: c[0..n) = alpha·Σp a[p·a_stride]·B[p][0..n) + beta·c, B read in place. Eight
// accumulators across 64 columns hide the FMA latency that a 1-row micro-tile cannot.
void row_times_b(Index n, Index k, float alpha, const float* a, Index a_stride, const float* b, Index ldb, float beta,
                 float* c) {
  const __m256 valpha = _mm256_set1_ps(alpha), vbeta = _mm256_set1_ps(beta);
  auto finish = [&](__m256 acc, float* out) {
    acc = _mm256_mul_ps(valpha, acc);
    if (beta != 0.0f) acc = _mm256_fmadd_ps(vbeta, _mm256_loadu_ps(out), acc);
    _mm256_storeu_ps(out, acc);
  };
  Index j = 0;
  for (; j + 64 <= n; j += 64) {
    __m256 acc[8];
    for (__m256& v : acc) v = _mm256_setzero_ps();
    const float* row = b + j;
    for (Index p = 0; p < k; ++p, row += ldb) {
      const __m256 ap = _mm256_broadcast_ss(a + p * a_stride);
      for (Index v = 0; v < 8; ++v) acc[v] = _mm256_fmadd_ps(ap, _mm256_loadu_ps(row + 8 * v), acc[v]);
    }
    for (Index v = 0; v < 8; ++v) finish(acc[v], c + j + 8 * v);
  }
  for (; j + 8 <= n; j += 8) {
    __m256 acc = _mm256_setzero_ps();
    for (Index p = 0; p < k; ++p)
      acc = _mm256_fmadd_ps(_mm256_broadcast_ss(a + p * a_stride), _mm256_loadu_ps(b + p * ldb + j), acc);
    finish(acc, c + j);
  }
  for (; j < n; ++j) {
    float dot = 0.0f;
    for (Index p = 0; p < k; ++p) dot += a[p * a_stride] * b[p * ldb + j];
    c[j] = beta == 0.0f ? alpha * dot : alpha * dot + beta * c[j];
  }
}

// The FMA step is written out (not tile_step): with six offsets through a lambda, clang-16
// keeps them in memory and the convolutions ran at half speed.
[[gnu::always_inline]] inline void offset_tile(const float* a_base, const Index* off, Index a_step, const float* b_base,
                                               Index b_step, const kiln_sgemm_run* runs, Index run_count,
                                               bool accumulate, float* c, Index ldc, Index mr, Index nr) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  const Index o0 = off[0], o1 = off[1], o2 = off[2], o3 = off[3], o4 = off[4], o5 = off[5];
  for (Index r = 0; r < run_count; ++r) {
    const float* a = a_base + runs[r].a;
    const float* b = b_base + runs[r].b;
    for (Index p = runs[r].len; p > 0; --p) {
      const __m256 b0 = _mm256_loadu_ps(b);
      const __m256 b1 = _mm256_loadu_ps(b + 8);
      __m256 ai = _mm256_broadcast_ss(a + o0);
      c00 = _mm256_fmadd_ps(ai, b0, c00);
      c01 = _mm256_fmadd_ps(ai, b1, c01);
      ai = _mm256_broadcast_ss(a + o1);
      c10 = _mm256_fmadd_ps(ai, b0, c10);
      c11 = _mm256_fmadd_ps(ai, b1, c11);
      ai = _mm256_broadcast_ss(a + o2);
      c20 = _mm256_fmadd_ps(ai, b0, c20);
      c21 = _mm256_fmadd_ps(ai, b1, c21);
      ai = _mm256_broadcast_ss(a + o3);
      c30 = _mm256_fmadd_ps(ai, b0, c30);
      c31 = _mm256_fmadd_ps(ai, b1, c31);
      ai = _mm256_broadcast_ss(a + o4);
      c40 = _mm256_fmadd_ps(ai, b0, c40);
      c41 = _mm256_fmadd_ps(ai, b1, c41);
      ai = _mm256_broadcast_ss(a + o5);
      c50 = _mm256_fmadd_ps(ai, b0, c50);
      c51 = _mm256_fmadd_ps(ai, b1, c51);
      a += a_step;
      b += b_step;
    }
  }
  const Tile t = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  store_tile(t, c, ldc, 1.0f, accumulate ? 1.0f : 0.0f, mr, nr);
}

#else

// Portable path: the same tile, written so that a compiler can vectorise the j loop for
// whatever vector width the target has.
void micro_kernel(Index kc, const float* a, const float* b, Index b_stride, float* c, Index ldc, float alpha,
                  float beta, Index mr, Index nr, float* pack_out = nullptr, PackAhead ahead = {},
                  bool prefetch_ahead = false) {
  (void)ahead, (void)prefetch_ahead;
  float tile[kMr * kNr] = {};
  for (Index p = 0; p < kc; ++p) {
    if (pack_out != nullptr)
      for (Index j = 0; j < kNr; ++j) pack_out[p * kNr + j] = b[p * b_stride + j];
    for (Index i = 0; i < kMr; ++i) {
      const float ai = a[p * kMr + i];
      for (Index j = 0; j < kNr; ++j) tile[i * kNr + j] += ai * b[p * b_stride + j];
    }
  }
  store_partial(tile, c, ldc, alpha, beta, mr, nr);
}

// One row of C: c[0..n) = alpha·Σp a[p·a_stride]·B[p][0..n) + beta·c, B read in place.
void row_times_b(Index n, Index k, float alpha, const float* a, Index a_stride, const float* b, Index ldb, float beta,
                 float* c) {
  for (Index j = 0; j < n; ++j) c[j] = beta == 0.0f ? 0.0f : beta * c[j];
  for (Index p = 0; p < k; ++p) {
    const float ap = alpha * a[p * a_stride];
    for (Index j = 0; j < n; ++j) c[j] += ap * b[p * ldb + j];
  }
}

[[gnu::always_inline]] inline void offset_tile(const float* a_base, const Index* off, Index a_step, const float* b_base,
                                               Index b_step, const kiln_sgemm_run* runs, Index run_count,
                                               bool accumulate, float* c, Index ldc, Index mr, Index nr) {
  float tile[kMr * kNr] = {};
  for (Index r = 0; r < run_count; ++r) {
    const float* a = a_base + runs[r].a;
    const float* b = b_base + runs[r].b;
    for (Index p = 0; p < runs[r].len; ++p, a += a_step, b += b_step)
      for (Index i = 0; i < kMr; ++i) {
        const float ai = a[off[i]];
        for (Index j = 0; j < kNr; ++j) tile[i * kNr + j] += ai * b[j];
      }
  }
  store_partial(tile, c, ldc, 1.0f, accumulate ? 1.0f : 0.0f, mr, nr);
}

#endif

// C[rows] × [cols] *= beta (or = 0), for the k == 0 / alpha == 0 cases.
void scale_c(float* c, Index ldc, Index m0, Index m1, Index n0, Index n1, float beta) {
  for (Index i = m0; i < m1; ++i)
    for (Index j = n0; j < n1; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
}

// The step that splits `extent` into the fewest blocks of at most `limit`, all about equal
// and a multiple of `multiple` (a last block of 16 after three of 256 wastes the C traffic).
Index balanced_step(Index extent, Index limit, Index multiple) {
  const Index blocks = (extent + limit - 1) / limit;
  return min_index(limit, round_up((extent + blocks - 1) / blocks, multiple));
}

// Few rows (see gemm_block): the micro-tiles read op(B) = B rows in place (stride ldb)
// instead of a packed copy; with one tile of rows every element of B is used once, and
// with up to kInPlaceBMaxRows the few tiles of a sliver find its rows in L1 or L2 after the
// first. Only a last sliver narrower than NR is packed, so that no load runs past the end
// of B.
void gemm_few_rows(bool trans_a, Index m0, Index m1, Index n0, Index n1, Index k, float alpha, const float* a,
                   Index lda, const float* b, Index ldb, float beta, float* c, Index ldc, float* packed_a,
                   float* packed_b) {
  const Index rows = m1 - m0;
  if (rows == 1) {
    const float* row = trans_a ? a + m0 : a + m0 * lda;
    row_times_b(n1 - n0, k, alpha, row, trans_a ? lda : 1, b + n0, ldb, beta, c + m0 * ldc + n0);
    return;
  }
  const Index kc_step = balanced_step(k, kFewRowsKc, 8);
  for (Index pc = 0; pc < k; pc += kc_step) {
    const Index kc = min_index(kc_step, k - pc);
    const float block_beta = pc == 0 ? beta : 1.0f;
    pack_a(trans_a, a, lda, m0, rows, pc, kc, packed_a);
    for (Index jr = n0; jr < n1; jr += kNr) {
      const Index nr = min_index(kNr, n1 - jr);
      const float* sliver = b + pc * ldb + jr;
      Index stride = ldb;
      if (nr < kNr) {
        pack_b(false, b, ldb, pc, kc, jr, nr, packed_b);
        sliver = packed_b;
        stride = kNr;
      }
      for (Index ir = 0; ir < rows; ir += kMr) {
        micro_kernel(kc, packed_a + ir * kc, sliver, stride, c + (m0 + ir) * ldc + jr, ldc, alpha, block_beta,
                     min_index(kMr, rows - ir), nr, nullptr, {}, ir == 0 && stride == ldb);
      }
    }
  }
}

// The blocked product restricted to rows [m0, m1) and columns [n0, n1) of C.
void gemm_block(bool trans_a, bool trans_b, Index m0, Index m1, Index n0, Index n1, Index k, float alpha,
                const float* a, Index lda, const float* b, Index ldb, float beta, float* c, Index ldc, float* packed_a,
                float* packed_b) {
  const Index kc_step = balanced_step(k, kKc, 8);
  // Up to kInPlaceBMaxRows rows, packing B (even inside the first micro-tile of each sliver)
  // costs more than the few tiles of each sliver gain from it (64x784x256 on one core: 113.4
  // against 111.1 GFLOP/s; 64x3136x1008: 113.2 against 107.2) — unless B's rows are a
  // multiple of 4 KB apart, where a sliver's rows crowd into a few cache sets and do not stay
  // cached from one tile to the next (64x3136x1024: 74.5 against 101.4; docs/performance.md).
  if (!trans_b && (m1 - m0 <= kMr || (m1 - m0 <= kInPlaceBMaxRows && ldb * Index{sizeof(float)} % 4096 != 0))) {
    gemm_few_rows(trans_a, m0, m1, n0, n1, k, alpha, a, lda, b, ldb, beta, c, ldc, packed_a, packed_b);
    return;
  }
  const Index mc_step = balanced_step(m1 - m0, kMc, kMr);
  const Index nc_step = balanced_step(n1 - n0, kNc, kNr);
  // Few columns (a convolution's im2col rows times its filters): each row of A is used by
  // only a few slivers, so packing A would cost about as much as the product. The micro-tile
  // reads A in place through six row offsets instead (kiln_sgemm_offset_tile's kernel).
  const bool a_in_place =
      !trans_a && alpha == 1.0f && (beta == 0.0f || beta == 1.0f) && n1 - n0 <= kInPlaceAMaxCols && m1 - m0 > kMr;
  if (a_in_place) {
    // Whole rows of A per micro-tile (six sequential streams) when all of packed B fits in L2.
    const Index in_place_kc = k * round_up(n1 - n0, kNr) * Index{sizeof(float)} <= kInPlaceBBytes ? k : kc_step;
    for (Index pc = 0; pc < k; pc += in_place_kc) {
      const Index kc = min_index(in_place_kc, k - pc);
      const bool accumulate = pc > 0 || beta == 1.0f;
      pack_b(trans_b, b, ldb, pc, kc, n0, n1 - n0, packed_b);
      const kiln_sgemm_run run{0, 0, kc};
      for (Index ic = m0; ic < m1; ic += mc_step) {
        const Index mc = min_index(mc_step, m1 - ic);
        for (Index jr = 0; jr < n1 - n0; jr += kNr) {
          const Index nr = min_index(kNr, n1 - n0 - jr);
          for (Index ir = 0; ir < mc; ir += kOffsetMr) {
            const Index mr = min_index(kOffsetMr, mc - ir);
            Index off[kOffsetMr];
            for (Index i = 0; i < kOffsetMr; ++i) off[i] = (ic + ir + min_index(i, mr - 1)) * lda;
            offset_tile(a + pc, off, 1, packed_b + jr * kc, kNr, &run, 1, accumulate, c + (ic + ir) * ldc + n0 + jr,
                        ldc, mr, nr);
          }
        }
      }
    }
    return;
  }
  // Non-transposed B: rather than a separate packing pass, the first micro-tile of each full
  // sliver reads B in place and stores the packed copy as it goes, so the copy overlaps its
  // FMAs, and it prefetches the sliver after next (bench_gemm, one core: 64x784x256 went
  // from 85.6 to 104 GFLOP/s with the AVX2 kernel; docs/performance.md).
  const bool fused = !trans_b;
  // A few rows here means B's rows are a multiple of 4 KB apart (see above): each sliver is
  // packed into the one buffer that its few micro-tiles then read, in KC blocks of up to
  // kFewRowsKc (fewer passes over C), and the packing tile prefetches kPackAheadRows rows
  // ahead, on into the next sliver, instead of the sliver after next, whose 4 KB-strided
  // rows crowd into a few L2 sets (64x3136x1024, bench_gemm --paired, Kiln / oneDNN: one
  // thread 0.91-0.99 before, 1.00-1.01 after; two threads 0.88-0.95, 0.91-1.00;
  // docs/performance.md).
  // (One block of rows, so all the micro-tiles of a sliver run before the next is packed.)
  const bool few_rows = fused && m1 - m0 <= kInPlaceBMaxRows && m1 - m0 <= mc_step;
  const Index block_kc = few_rows ? balanced_step(k, kFewRowsKc, 8) : kc_step;
  for (Index jc = n0; jc < n1; jc += nc_step) {
    const Index nc = min_index(nc_step, n1 - jc);
    const Index full = nc / kNr * kNr;  // columns in whole slivers
    for (Index pc = 0; pc < k; pc += block_kc) {
      const Index kc = min_index(block_kc, k - pc);
      // Where sliver jr is packed; a few rows' slivers all share the first.
      auto sliver_at = [&](Index jr) { return few_rows ? packed_b + (jr < full ? 0 : kNr * kc) : packed_b + jr * kc; };
      // The first KC block applies beta; later ones accumulate onto it.
      const float block_beta = pc == 0 ? beta : 1.0f;
      if (fused) {  // only the last, narrower sliver is packed up front
        if (full < nc) pack_b(false, b, ldb, pc, kc, jc + full, nc - full, sliver_at(full));
      } else {
        pack_b(trans_b, b, ldb, pc, kc, jc, nc, packed_b);
      }
      for (Index ic = m0; ic < m1; ic += mc_step) {
        const Index mc = min_index(mc_step, m1 - ic);
        pack_a(trans_a, a, lda, ic, mc, pc, kc, packed_a);
        for (Index jr = 0; jr < nc; jr += kNr) {
          const Index nr = min_index(kNr, nc - jr);
          float* sliver = sliver_at(jr);
          Index ir = 0;
          if (fused && ic == m0 && nr == kNr) {  // the first micro-tile packs the sliver it reads
            const float* in_place = b + pc * ldb + jc + jr;
            PackAhead ahead{in_place + 2 * kNr, kc, nullptr};
            if (few_rows) {
              // The stream runs on into the next full sliver, or the next KC block's first.
              const float* next = jr + 2 * kNr <= full ? in_place + kNr
                                  : pc + kc < k        ? b + (pc + kc) * ldb + jc
                                                       : nullptr;
              ahead = kc > kPackAheadRows ? PackAhead{in_place + kPackAheadRows * ldb, kc - kPackAheadRows, next}
                                          : PackAhead{next, 0, next};
            }
            micro_kernel(kc, packed_a, in_place, ldb, c + ic * ldc + jc + jr, ldc, alpha, block_beta,
                         min_index(kMr, mc), nr, sliver, ahead);
            ir = kMr;
          }
          for (; ir < mc; ir += kMr) {
            const Index mr = min_index(kMr, mc - ir);
            micro_kernel(kc, packed_a + ir * kc, sliver, kNr, c + (ic + ir) * ldc + jc + jr, ldc, alpha, block_beta, mr,
                         nr);
          }
        }
      }
    }
  }
}

}  // namespace

extern "C" {

std::size_t KILN_GEMM_ENTRY(kiln_sgemm_workspace_size)(std::int64_t m, std::int64_t n, std::int64_t k) {
  if (m <= 0 || n <= 0 || k <= 0) return 0;
  return static_cast<std::size_t>(packed_a_floats(m, k) + packed_b_floats(n, k)) * sizeof(float) + kAlign;
}

void KILN_GEMM_ENTRY(kiln_sgemm_slice)(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                                       float alpha, const float* a, std::int64_t lda, const float* b, std::int64_t ldb,
                                       float beta, float* c, std::int64_t ldc, void* workspace, int thread_index,
                                       int thread_count) {
  if (m <= 0 || n <= 0 || thread_count < 1 || thread_index < 0 || thread_index >= thread_count) return;
  // Split whichever dimension has more micro-tiles, on micro-tile boundaries, so every
  // worker runs full tiles except at the matrix edge.
  Index m0 = 0, m1 = m, n0 = 0, n1 = n;
  const Index tiles_m = (m + kMr - 1) / kMr;
  const Index tiles_n = (n + kNr - 1) / kNr;
  if (tiles_n >= tiles_m) {
    n0 = min_index(n, tiles_n * thread_index / thread_count * kNr);
    n1 = min_index(n, tiles_n * (thread_index + 1) / thread_count * kNr);
  } else {
    m0 = min_index(m, tiles_m * thread_index / thread_count * kMr);
    m1 = min_index(m, tiles_m * (thread_index + 1) / thread_count * kMr);
  }
  if (m0 >= m1 || n0 >= n1) return;
  if (k <= 0 || alpha == 0.0f) {
    scale_c(c, ldc, m0, m1, n0, n1, beta);
    return;
  }
  float* packed_a = align_up(workspace);
  float* packed_b = packed_a + packed_a_floats(m, k);
  gemm_block(trans_a, trans_b, m0, m1, n0, n1, k, alpha, a, lda, b, ldb, beta, c, ldc, packed_a, packed_b);
}

#ifndef KILN_GEMM_SUFFIX  // the native library's kiln_sgemm is in gemm_dispatch.cpp
void kiln_sgemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
                std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc,
                void* workspace) {
  kiln_sgemm_slice(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, workspace, 0, 1);
}
#endif

void KILN_GEMM_ENTRY(kiln_sgemm_offset_tile)(const float* a_base, const std::int64_t* a_offsets, std::int64_t a_step,
                                             const float* b_base, std::int64_t b_step, const kiln_sgemm_run* runs,
                                             std::int64_t run_count, bool accumulate, float* c, std::int64_t ldc,
                                             std::int64_t mr, std::int64_t nr) {
  offset_tile(a_base, a_offsets, a_step, b_base, b_step, runs, run_count, accumulate, c, ldc, mr, nr);
}

const char* KILN_GEMM_ENTRY(kiln_sgemm_kernel_name)(void) {
  return KILN_GEMM_AVX512 ? "avx512-8x16" : KILN_GEMM_AVX2 ? "avx2-fma-6x16" : "portable-6x16";
}

std::int64_t KILN_GEMM_ENTRY(kiln_sgemm_tile_rows)(void) {
  return kMr;
}

}  // extern "C"
