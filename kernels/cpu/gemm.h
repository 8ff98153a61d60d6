// Single-precision GEMM for the CPU backend: C = alpha·op(A)·op(B) + beta·C, row-major,
// op = identity or transpose. Plain C entry points with no exceptions and no allocation, so
// the same source can later be compiled to LLVM bitcode, specialised to constant shapes and
// inlined into a generated module; the caller owns all memory (see kiln_sgemm_workspace_size).
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" {

// Bytes of scratch one kiln_sgemm_slice call needs for packed panels of A and B (including
// slack for 64-byte alignment). kiln_sgemm with `threads` > 1 needs `threads` times this.
std::size_t kiln_sgemm_workspace_size(std::int64_t m, std::int64_t n, std::int64_t k);

// One worker's share of the product: of `thread_count` equal workers, number `thread_index`
// computes its block of C (columns of C when n has more micro-tiles than m, rows otherwise)
// using `workspace`, which must hold kiln_sgemm_workspace_size(m, n, k) bytes and not be
// shared with another worker. Calling every index once, in any order or in parallel,
// computes the whole product. beta == 0 never reads C (NaNs in C do not survive).
// op(A) is m×k (A stored m×lda, or k×lda when trans_a), op(B) is k×n (B stored k×ldb, or
// n×ldb when trans_b), C is m×ldc.
void kiln_sgemm_slice(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
                      const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
                      std::int64_t ldc, void* workspace, int thread_index, int thread_count);

// The whole product on the calling thread: kiln_sgemm_slice(..., 0, 1).
void kiln_sgemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
                std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc,
                void* workspace);

// The product split over `threads` std::thread workers (threads - 1 are started; the caller
// is the last). `workspace` holds threads × kiln_sgemm_workspace_size(m, n, k) bytes. Not
// part of the bitcode kernel set (kiln_k_matmul splits work over the runtime's thread pool
// instead). Starting threads allocates; this is the convenience path for tests.
void kiln_sgemm_threaded(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
                         const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
                         std::int64_t ldc, void* workspace, int threads);

// ---- Internal: the convolution kernels' micro-tile (kernels/cpu/conv.cpp) ----------------------
// This tile is KILN_SGEMM_MR × KILN_SGEMM_NR (6×16 in every build; the packed GEMM's own
// tile may have more rows, see kiln_sgemm_tile_rows). One run of the shared dimension: `len`
// steps whose A values lie at a_base[a + p·a_step + offset_i] (offset_i one of six per-row
// offsets) and whose B row is the 16 floats at b_base[b + p·b_step].
#define KILN_SGEMM_MR 6
#define KILN_SGEMM_NR 16
struct kiln_sgemm_run {
  std::int64_t a, b, len;
};
// C[i][j] (= or, with accumulate, +=) Σ over the runs of A(p, i)·B(p, j), for i < mr (<= 6)
// and j < nr (<= 16); only those elements of C (row stride ldc) are read or written, but
// all 6 offsets and all 16 B columns of every step are read, so they must be readable (pad
// with a repeated row and zero columns). No packing: A is read in place through the offsets,
// which is how an im2col matrix is read straight from a (padded) image.
void kiln_sgemm_offset_tile(const float* a_base, const std::int64_t* a_offsets, std::int64_t a_step,
                            const float* b_base, std::int64_t b_step, const kiln_sgemm_run* runs,
                            std::int64_t run_count, bool accumulate, float* c, std::int64_t ldc, std::int64_t mr,
                            std::int64_t nr);

// Which micro-kernel this build uses: "avx512-8x16", "avx2-fma-6x16" or "portable-6x16".
const char* kiln_sgemm_kernel_name(void);

// Rows of that micro-kernel's tile (8 or 6): callers that split C's rows between threads
// split on multiples of it, so that every block but the last holds whole tiles.
std::int64_t kiln_sgemm_tile_rows(void);

// Native library only (gemm_dispatch.cpp; the JIT picks a bitcode flavour by its target CPU
// instead): which copy of the GEMM the entry points above run, "avx512" or "avx2". The
// default is AVX-512 where the CPU has it. Returns false, changing nothing, for a name this
// CPU cannot run. For tests and benchmarks; not to be called while a product runs.
bool kiln_sgemm_select_kernel(const char* name);

}  // extern "C"
