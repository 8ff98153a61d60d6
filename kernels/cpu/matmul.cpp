// kiln_k_matmul: batched products over kiln_sgemm_slice, with the bias, relu and relu-gradient
// epilogue; kiln_k_matmul_chained hands each finished block of C to a generated function
// (an elementwise loop fused into the product) instead of storing C.
//
// Work units: each of the `batch` products is cut into `parts` blocks of C (rows or
// columns, whichever has more micro-tiles, on micro-tile boundaries, as gemm.cpp itself
// splits), and unit u of batch * parts goes to task u % tasks. Every task owns one
// workspace of kiln_sgemm_workspace_size(m, n, k) bytes (a sub-block never needs more), so
// scratch is threads times that. A unit calls kiln_sgemm_slice on its block alone (thread
// 0 of 1) and, with an epilogue, in row chunks of at most kEpilogueRows so that the bias
// and relu pass reads C while it is still in cache. Chained, a unit computes blocks of at
// most kChainRows × kChainCols into its own block buffer (after its workspace in the
// scratch) and calls the chain on each: C itself is never stored.
#include <algorithm>
#include <cstdint>
#include <cstring>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#include "kernels/cpu/common.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/kernels.h"

namespace kiln::cpu {
namespace {

constexpr Index kNr = 16;             // gemm.cpp's micro-tile columns (its rows: kiln_sgemm_tile_rows)
constexpr Index kEpilogueRows = 144;  // gemm.cpp's MC block, a multiple of 6 and 8
// A chained block: 144 rows (gemm.cpp's MC block) of up to 1024 columns, or 432 rows (three
// MC blocks: kiln_sgemm_slice packs each sliver of B once for all three) of up to 256; at
// most 576 KB, so it is still in L2 when the chain reads it. Whole rows of up to 1024
// columns keep the chain's other operands streaming: the CNN dense layer's Adam update,
// 1024 columns, took 0.5 ms longer as blocks of 256 columns, each row 4 KB from the next
// (docs/performance.md).
constexpr Index kChainRows = 3 * kEpilogueRows;
constexpr Index kChainCols = 1024;
// A block's rows for a unit `cols` wide: contiguous rows of up to 1024 columns (an optimizer
// step's reads and writes stream), or three MC blocks of narrower ones.
Index chain_rows(Index cols) {
  return cols > 256 ? kEpilogueRows : kChainRows;
}
// Below this many multiply-adds per task, waking another thread costs more than it saves.
constexpr Index kMatmulGrain = Index{1} << 16;

// A block of `rows` × `cols` of C (rows ldc apart) after its product: + bias, then act.
// `gate` points at the same block of a tensor of C's shape, rows gate_ld apart (act == 2 only).
void epilogue(float* c, Index ldc, Index rows, Index cols, const float* bias, int act, const float* gate,
              Index gate_ld) {
  bias_relu(c, ldc, rows, cols, bias, act);
  if (act == 2)
    for (Index i = 0; i < rows; ++i) {
      float* row = c + i * ldc;
      const float* g = gate + i * gate_ld;
      for (Index j = 0; j < cols; ++j) row[j] = g[j] > 0.0f ? row[j] : 0.0f;
    }
}

struct MatmulPlan {
  Index m, n, k;
  bool trans_a, trans_b;
  const float* a;
  Index a_stride;
  const float* b;
  Index b_stride;
  float* c;
  const float* bias;
  int act;
  const float* gate;           // act == 2: C's shape, every product's
  kiln_matmul_chain_fn chain;  // or null: C is stored
  void* chain_ctx;
  char* workspace;
  std::size_t workspace_stride;
  char* blocks;  // chained: each task's block buffer, block_stride bytes apart
  std::size_t block_stride;
  Index parts;      // blocks per product
  bool split_cols;  // blocks are column ranges (else row ranges)
  Index units;      // batch * parts
  Index tasks;
};

// The block of C rows [r0, r0 + rows) × columns [n0, n0 + cols) of product `item`, into `out`
// (rows ld apart) with the epilogue applied.
void product_block(const MatmulPlan& p, Index item, Index r0, Index rows, Index n0, Index cols, float* out, Index ld,
                   void* workspace) {
  const float* a = p.a + item * p.a_stride;
  const float* b = p.b + item * p.b_stride;
  const Index lda = p.trans_a ? p.m : p.k;
  const Index ldb = p.trans_b ? p.k : p.n;
  const float* a_block = p.trans_a ? a + r0 : a + r0 * lda;
  const float* b_block = p.trans_b ? b + n0 * ldb : b + n0;
  kiln_sgemm_slice(p.trans_a, p.trans_b, rows, cols, p.k, 1.0f, a_block, lda, b_block, ldb, 0.0f, out, ld, workspace, 0,
                   1);
  if (p.bias != nullptr || p.act != 0)
    epilogue(out, ld, rows, cols, p.bias != nullptr ? p.bias + n0 : nullptr, p.act,
             p.act == 2 ? p.gate + item * p.m * p.n + r0 * p.n + n0 : nullptr, p.n);
}

// Block `part` of product `item`: C rows [m0, m1) × columns [n0, n1).
void run_unit(const MatmulPlan& p, Index unit, void* workspace, float* block) {
  const Index item = unit / p.parts, part = unit % p.parts;
  Index m0 = 0, m1 = p.m, n0 = 0, n1 = p.n;
  if (p.split_cols) {
    const Range r = split_range(ceil_div(p.n, kNr), p.parts, part);
    n0 = min_index(p.n, r.begin * kNr), n1 = min_index(p.n, r.end * kNr);
  } else {
    const Index mr = kiln_sgemm_tile_rows();
    const Range r = split_range(ceil_div(p.m, mr), p.parts, part);
    m0 = min_index(p.m, r.begin * mr), m1 = min_index(p.m, r.end * mr);
  }
  if (m0 >= m1 || n0 >= n1) return;
  if (p.chain != nullptr) {
    const Index step = chain_rows(min_index(kChainCols, n1 - n0));
    for (Index r0 = m0; r0 < m1; r0 += step) {
      const Index rows = min_index(step, m1 - r0);
      for (Index c0 = n0; c0 < n1; c0 += kChainCols) {
        const Index cols = min_index(kChainCols, n1 - c0);
        product_block(p, item, r0, rows, c0, cols, block, cols, workspace);
        p.chain(p.chain_ctx, block, cols, item * p.m + r0, rows, c0, cols);
      }
    }
    return;
  }
  float* c = p.c + item * p.m * p.n;
  const Index chunk = p.bias != nullptr || p.act != 0 ? kEpilogueRows : m1 - m0;
  for (Index r0 = m0; r0 < m1; r0 += chunk) {
    const Index rows = min_index(chunk, m1 - r0);
    product_block(p, item, r0, rows, n0, n1 - n0, c + r0 * p.n + n0, p.n, workspace);
  }
}

// A few rows (batch-1 inference, the last layers' tiny products): packing B would cost more
// than the product, so stream B once per row. Non-transposed B: 64 columns of C in
// registers, one row of B at a time; transposed B: a dot product per element with eight
// partial sums. Both vectorise without reassociating the caller's sums across k. With more
// than one task, each task takes a range of 64-column chunks (the weights of a batch-1
// layer are read once, so two cores read half each).
constexpr Index kSmallRows = 4;
constexpr Index kSmallChunk = 64;
// A task whose share of B is larger than this (Zen 3's L2) finds some of it gone from L2 on
// the next call: its rows are then prefetched kPrefetchRows ahead (bench_gemm --paired,
// 1x784x256 in the AVX2 native build: 0.90-0.93 of OpenBLAS without, 0.97-1.02 with). A
// smaller share stays in L2, where the prefetches only cost issue slots (fashion_mlp's
// threaded batch-1 artifact, 0.4 MB a thread: 5.3 us without them, 5.5-6.6 with).
constexpr Index kPrefetchBytes = Index{512} << 10;
constexpr Index kPrefetchRows = 4;

// The rows of B that one row of C sums over, in order: every row (Dense), or only those whose
// element of A is not zero (Listed). A zero times a finite element of B adds exactly +0 to a
// sum that starts at +0, so leaving its row out changes no bit of C; it changes C only where
// such a row of B holds an infinity or a NaN (0 × inf is NaN), which Kiln's weights never do
// (the trainer stops at a non-finite parameter, `kiln build` refuses one).
template <class AAt>
struct DenseRows {
  Index count;
  const AAt& a_at;
  float a(Index t) const { return a_at(t); }
  Index k(Index t) const { return t; }
  Index ahead(Index t) const { return t + kPrefetchRows; }
};

// A row of A with many zeros (an image's background, a relu's output) is listed once per
// call: the nonzero elements' values and k, up to kListedMax of them; a row with fewer than
// one zero in kListedMinZeros (or a longer row) is summed densely, where listing would cost
// more than the rows it skips.
constexpr Index kListedMax = 2048;
constexpr Index kListedMinZeros = 8;
struct ListedRows {
  Index count;
  std::int32_t ks[kListedMax + 16 + kPrefetchRows];  // room for a vector store past the end
  float vs[kListedMax + 16];
  float a(Index t) const { return vs[t]; }
  Index k(Index t) const { return ks[t]; }
  Index ahead(Index t) const { return ks[t + kPrefetchRows]; }
};

#if !defined(__AVX512F__) && defined(__AVX2__)
// For each 8-bit mask, the positions of its set bits from the lowest, one a byte: the
// permutation that moves a vector's selected lanes to its front (AVX2 has no compress).
struct CompressTable {
  std::uint64_t at[256];
};
constexpr CompressTable make_compress_table() {
  CompressTable t{};
  for (unsigned mask = 0; mask < 256; ++mask) {
    unsigned n = 0;
    for (unsigned lane = 0; lane < 8; ++lane)
      if ((mask >> lane) & 1u) t.at[mask] |= std::uint64_t{lane} << (8 * n++);
  }
  return t;
}
constexpr CompressTable kCompress = make_compress_table();
#endif

// Lists the nonzero elements of a[0, k) (k <= kListedMax) into `rows`; returns false, listing
// nothing usable, where no element or fewer than one in kListedMinZeros is zero. NaN is not
// zero; -0.0 is.
bool list_nonzeros(const float* a, Index k, ListedRows& rows) {
  Index n = 0, kk = 0;
#if defined(__AVX512F__)
  const __m512i step = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (; kk + 16 <= k; kk += 16) {
    const __m512 v = _mm512_loadu_ps(a + kk);
    const __mmask16 nonzero = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NEQ_UQ);
    const __m512i index = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(kk)), step);
    _mm512_storeu_si512(rows.ks + n, _mm512_maskz_compress_epi32(nonzero, index));
    _mm512_storeu_ps(rows.vs + n, _mm512_maskz_compress_ps(nonzero, v));
    n += __builtin_popcount(static_cast<unsigned>(nonzero));
  }
#elif defined(__AVX2__)
  for (; kk + 8 <= k; kk += 8) {
    const __m256 v = _mm256_loadu_ps(a + kk);
    const int nonzero = _mm256_movemask_ps(_mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_NEQ_UQ));
    const __m256i lanes = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<long long>(kCompress.at[nonzero])));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(rows.ks + n),
                        _mm256_add_epi32(lanes, _mm256_set1_epi32(static_cast<int>(kk))));
    _mm256_storeu_ps(rows.vs + n, _mm256_permutevar8x32_ps(v, lanes));
    n += __builtin_popcount(static_cast<unsigned>(nonzero));
  }
#endif
  for (; kk < k; ++kk) {
    const float v = a[kk];
    rows.ks[n] = static_cast<std::int32_t>(kk);
    rows.vs[n] = v;
    n += v != 0.0f;
  }
  const Index zeros = k - n;
  if (zeros == 0 || zeros < k / kListedMinZeros) return false;
  rows.count = n;
  // Prefetches run kPrefetchRows ahead: past the end they fetch the last listed row again.
  for (Index t = 0; t < kPrefetchRows; ++t) rows.ks[n + t] = n > 0 ? rows.ks[n - 1] : 0;
  return true;
}

// Blocks of Width columns of a row of C from column j0 while they fit before n1 (a constant
// width: the accumulators stay in registers); returns where they stopped.
template <Index Width, bool Prefetch, class Rows>
Index column_blocks(const float* b, Index ldb, const Rows& rows, float* row, Index j0, Index n1) {
  for (; j0 + Width <= n1; j0 += Width) {
    float acc[Width] = {};
    for (Index t = 0; t < rows.count; ++t) {
      const float av = rows.a(t);
      const float* brow = b + rows.k(t) * ldb + j0;
      // Rows of B are a stride apart, a few lines a 4 KB page, where the hardware prefetchers
      // do not follow: fetch the row kPrefetchRows ahead (a prefetch past B's end is harmless).
      if (Prefetch)
        for (Index j = 0; j < Width; j += 16) __builtin_prefetch(b + rows.ahead(t) * ldb + j0 + j, 0, 3);
      for (Index j = 0; j < Width; ++j) acc[j] += av * brow[j];
    }
    for (Index j = 0; j < Width; ++j) row[j0 + j] = acc[j];
  }
  return j0;
}

// The last `width` (< 16) columns of a row of C, in one pass over k: blocks of 8, 4, 2 and 1
// columns in registers of fixed width (a variable-width accumulator array would live in
// memory), so the columns' dependency chains overlap instead of running one after another.
template <class Rows>
void small_tail(const float* b, Index ldb, const Rows& rows, Index width, float* out) {
  const bool h8 = (width & 8) != 0, h4 = (width & 4) != 0, h2 = (width & 2) != 0, h1 = (width & 1) != 0;
  const Index o4 = h8 ? 8 : 0, o2 = o4 + (h4 ? 4 : 0), o1 = o2 + (h2 ? 2 : 0);
  float s8[8] = {}, s4[4] = {}, s2[2] = {}, s1 = 0;
  for (Index t = 0; t < rows.count; ++t) {
    const float av = rows.a(t);
    const float* brow = b + rows.k(t) * ldb;
    if (h8)
      for (Index j = 0; j < 8; ++j) s8[j] += av * brow[j];
    if (h4)
      for (Index j = 0; j < 4; ++j) s4[j] += av * brow[o4 + j];
    if (h2)
      for (Index j = 0; j < 2; ++j) s2[j] += av * brow[o2 + j];
    if (h1) s1 += av * brow[o1];
  }
  if (h8)
    for (Index j = 0; j < 8; ++j) out[j] = s8[j];
  if (h4)
    for (Index j = 0; j < 4; ++j) out[o4 + j] = s4[j];
  if (h2)
    for (Index j = 0; j < 2; ++j) out[o2 + j] = s2[j];
  if (h1) out[o1] = s1;
}

// Columns [n0, n1) of C's row from `rows` of B (non-transposed).
template <bool Prefetch, class Rows>
void row_columns(const float* b, Index ldb, const Rows& rows, float* row, Index n0, Index n1) {
  Index j0 = column_blocks<kSmallChunk, Prefetch>(b, ldb, rows, row, n0, n1);
  j0 = column_blocks<16, Prefetch>(b, ldb, rows, row, j0, n1);
  if (j0 < n1) small_tail(b + j0, ldb, rows, n1 - j0, row + j0);
}

// Columns [n0, n1) of row i.
// A's orientation is a template parameter: a task called through kiln_parallel_for does not
// see the plan's constants, and a per-element select would sit in its inner loops.
template <bool TransA, bool Prefetch>
void small_row(const MatmulPlan& p, const float* a, const float* b, float* c, const float* gate, Index i, Index n0,
               Index n1) {
  const Index lda = TransA ? p.m : p.k;
  const auto a_at = [&](Index kk) { return TransA ? a[kk * lda + i] : a[i * lda + kk]; };
  float* row = c + i * p.n;
  if (!p.trans_b) {
    ListedRows listed;
    if (!TransA && p.k <= kListedMax && list_nonzeros(a + i * lda, p.k, listed))
      row_columns<Prefetch>(b, p.n, listed, row, n0, n1);
    else
      row_columns<Prefetch>(b, p.n, DenseRows<decltype(a_at)>{p.k, a_at}, row, n0, n1);
  } else {
    for (Index j = n0; j < n1; ++j) {
      const float* bcol = b + j * p.k;
      float part[8] = {};
      Index kk = 0;
      for (; kk + 8 <= p.k; kk += 8)
        for (Index l = 0; l < 8; ++l) part[l] += a_at(kk + l) * bcol[kk + l];
      float sum = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
      for (; kk < p.k; ++kk) sum += a_at(kk) * bcol[kk];
      row[j] = sum;
    }
  }
  float* out = row + n0;
  epilogue(out, p.n, 1, n1 - n0, p.bias != nullptr ? p.bias + n0 : nullptr, p.act,
           gate != nullptr ? gate + i * p.n + n0 : nullptr, p.n);
}

struct SmallPlan {
  const MatmulPlan* p;
  const float* a;
  const float* b;
  float* c;
  const float* gate;  // this product's, or null
  Index tasks;
};

void small_rows_task(void* ctx, Index task) {
  const SmallPlan& s = *static_cast<const SmallPlan*>(ctx);
  const Range chunks = split_range(ceil_div(s.p->n, kSmallChunk), s.tasks, task);
  const Index n0 = min_index(s.p->n, chunks.begin * kSmallChunk), n1 = min_index(s.p->n, chunks.end * kSmallChunk);
  if (n0 >= n1) return;
  const bool prefetch = !s.p->trans_b && s.p->k * (n1 - n0) * Index{sizeof(float)} > kPrefetchBytes;
  for (Index i = 0; i < s.p->m; ++i) {
    if (s.p->trans_a) {
      prefetch ? small_row<true, true>(*s.p, s.a, s.b, s.c, s.gate, i, n0, n1)
               : small_row<true, false>(*s.p, s.a, s.b, s.c, s.gate, i, n0, n1);
    } else {
      prefetch ? small_row<false, true>(*s.p, s.a, s.b, s.c, s.gate, i, n0, n1)
               : small_row<false, false>(*s.p, s.a, s.b, s.c, s.gate, i, n0, n1);
    }
  }
}

void small_rows(const MatmulPlan& p, const float* a, const float* b, float* c, const float* gate, int threads) {
  const Index chunks = ceil_div(p.n, kSmallChunk);
  SmallPlan s{&p, a, b, c, gate, min_index(useful_tasks(p.m * p.n * p.k, kMatmulGrain, threads), chunks)};
  if (s.tasks <= 1) {
    small_rows_task(&s, 0);
    return;
  }
  kiln_parallel_for(s.tasks, small_rows_task, &s);
}

void run_task(void* ctx, Index task) {
  const MatmulPlan& p = *static_cast<const MatmulPlan*>(ctx);
  void* workspace = p.workspace + static_cast<std::size_t>(task) * p.workspace_stride;
  float* block = p.chain != nullptr
                     ? reinterpret_cast<float*>(p.blocks + static_cast<std::size_t>(task) * p.block_stride)
                     : nullptr;
  for (Index unit = task; unit < p.units; unit += p.tasks) run_unit(p, unit, workspace, block);
}

// The chain over all m rows of C (in `block`, rows n apart; the few-rows path computes C
// whole) in ranges of columns over the threads, as the product itself was split.
struct ChainColumns {
  kiln_matmul_chain_fn chain;
  void* ctx;
  const float* block;
  Index r0, m, n, tasks;
};

void chain_columns_task(void* ctx, Index task) {
  const ChainColumns& s = *static_cast<const ChainColumns*>(ctx);
  const Range r = split_range(ceil_div(s.n, kNr), s.tasks, task);
  const Index c0 = min_index(s.n, r.begin * kNr), c1 = min_index(s.n, r.end * kNr);
  if (c0 < c1) s.chain(s.ctx, s.block + c0, s.n, s.r0, s.m, c0, c1 - c0);
}

void chain_columns(kiln_matmul_chain_fn chain, void* ctx, const float* block, Index r0, Index m, Index n, int threads) {
  ChainColumns s{chain, ctx, block, r0, m, n, min_index(useful_tasks(m * n, kMatmulGrain, threads), ceil_div(n, kNr))};
  if (s.tasks <= 1) return chain_columns_task(&s, 0);
  kiln_parallel_for(s.tasks, chain_columns_task, &s);
}

// Bytes of one task's workspace, and of its chained block buffer.
std::size_t workspace_bytes(Index m, Index n, Index k) {
  return aligned_bytes(kiln_sgemm_workspace_size(m, n, k));
}
std::size_t block_bytes(Index m, Index n) {  // either shape of block, whatever a unit's columns
  return float_bytes(
      std::max(min_index(m, kChainRows) * min_index(n, 256), min_index(m, kEpilogueRows) * min_index(n, kChainCols)));
}
// What the chained paths need after the workspaces: a block per task, or for a few rows
// (computed whole, then chained at once) all of C.
std::size_t chain_bytes(Index m, Index n, int threads) {
  return m <= kSmallRows ? float_bytes(m * n) : block_bytes(m, n) * static_cast<std::size_t>(threads);
}

}  // namespace
}  // namespace kiln::cpu

extern "C" {

std::size_t kiln_k_matmul_scratch(std::int64_t m, std::int64_t n, std::int64_t k, int threads) {
  using namespace kiln::cpu;
  if (threads < 1) threads = 1;
  return workspace_bytes(m, n, k) * static_cast<std::size_t>(threads) + kScratchAlign;
}

std::size_t kiln_k_matmul_chained_scratch(std::int64_t m, std::int64_t n, std::int64_t k, int threads) {
  using namespace kiln::cpu;
  if (threads < 1) threads = 1;
  return kiln_k_matmul_scratch(m, n, k, threads) + chain_bytes(m, n, threads);
}

void kiln_k_matmul_chained(std::int64_t batch, std::int64_t m, std::int64_t n, std::int64_t k, bool trans_a,
                           bool trans_b, const float* a, std::int64_t a_stride, const float* b, std::int64_t b_stride,
                           float* c, const float* bias, int act, const float* gate, kiln_matmul_chain_fn chain,
                           void* chain_ctx, void* scratch, int threads) {
  using namespace kiln::cpu;
  if (batch <= 0 || m <= 0 || n <= 0) return;
  if (threads < 1) threads = 1;
  if (act == 2 && gate == nullptr) act = 0;  // nothing to gate by
  MatmulPlan p{};
  p.m = m, p.n = n, p.k = k, p.trans_a = trans_a, p.trans_b = trans_b;
  p.a = a, p.a_stride = a_stride, p.b = b, p.b_stride = b_stride, p.c = c, p.bias = bias, p.act = act;
  p.gate = gate;
  p.chain = chain, p.chain_ctx = chain_ctx;
  p.workspace = align_scratch(scratch);
  p.workspace_stride = workspace_bytes(m, n, k);
  p.blocks = p.workspace + p.workspace_stride * static_cast<std::size_t>(threads);
  p.block_stride = block_bytes(m, n);
  const auto gate_of = [&](Index item) { return act == 2 ? gate + item * m * n : nullptr; };
  if (k <= 0) {  // empty sums: C is the epilogue of zeros
    for (Index item = 0; item < batch; ++item) {
      if (chain == nullptr) {
        float* ci = c + item * m * n;
        std::memset(ci, 0, static_cast<std::size_t>(m * n) * sizeof(float));
        epilogue(ci, n, m, n, bias, act, gate_of(item), n);
        continue;
      }
      float* block = reinterpret_cast<float*>(p.blocks);
      const Index step = chain_rows(min_index(kChainCols, n));
      for (Index r0 = 0; r0 < m; r0 += step) {
        const Index rows = min_index(step, m - r0);
        for (Index c0 = 0; c0 < n; c0 += kChainCols) {
          const Index cols = min_index(kChainCols, n - c0);
          std::memset(block, 0, static_cast<std::size_t>(rows * cols) * sizeof(float));
          epilogue(block, cols, rows, cols, bias != nullptr ? bias + c0 : nullptr, act,
                   act == 2 ? gate_of(item) + r0 * n + c0 : nullptr, n);
          chain(chain_ctx, block, cols, item * m + r0, rows, c0, cols);
        }
      }
    }
    return;
  }

  if (m <= kSmallRows) {
    for (Index item = 0; item < batch; ++item) {
      float* out = chain != nullptr ? reinterpret_cast<float*>(p.blocks) : c + item * m * n;
      small_rows(p, a + item * a_stride, b + item * b_stride, out, gate_of(item), threads);
      if (chain != nullptr) chain_columns(chain, chain_ctx, out, item * m, m, n, threads);
    }
    return;
  }
  const int tasks = useful_tasks(batch * m * n * k, kMatmulGrain, threads);
  const Index tiles_m = ceil_div(m, kiln_sgemm_tile_rows()), tiles_n = ceil_div(n, kNr);
  p.split_cols = tiles_n >= tiles_m;
  // Whole products per task when there are enough of them; otherwise cut each product.
  const Index per_product = batch >= tasks ? 1 : ceil_div(tasks, batch);
  p.parts = min_index(per_product, p.split_cols ? tiles_n : tiles_m);
  p.units = batch * p.parts;
  p.tasks = min_index(tasks, p.units);
  if (p.tasks <= 1) {
    run_task(&p, 0);
    return;
  }
  kiln_parallel_for(p.tasks, run_task, &p);
}

void kiln_k_matmul(std::int64_t batch, std::int64_t m, std::int64_t n, std::int64_t k, bool trans_a, bool trans_b,
                   const float* a, std::int64_t a_stride, const float* b, std::int64_t b_stride, float* c,
                   const float* bias, int act, const float* gate, void* scratch, int threads) {
  kiln_k_matmul_chained(batch, m, n, k, trans_a, trans_b, a, a_stride, b, b_stride, c, bias, act, gate, nullptr,
                        nullptr, scratch, threads);
}

}  // extern "C"
