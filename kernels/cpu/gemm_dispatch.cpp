// The native library's GEMM entry points. gemm.cpp is compiled twice into the library, for
// AVX2+FMA (entry points suffixed _avx2) and for AVX-512 (_avx512); these forward to the copy
// the CPU can run, the AVX-512 one where it has AVX-512 F, VL, BW and DQ. The JIT does not
// use this file: it links the bitcode flavour that matches its target CPU instead.
#include <atomic>
#include <cstring>

#include "kernels/cpu/gemm.h"

extern "C" {
#define KILN_DECLARE_GEMM_VARIANT(suffix)                                                                        \
  std::size_t kiln_sgemm_workspace_size##suffix(std::int64_t m, std::int64_t n, std::int64_t k);                 \
  void kiln_sgemm_slice##suffix(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,      \
                                float alpha, const float* a, std::int64_t lda, const float* b, std::int64_t ldb, \
                                float beta, float* c, std::int64_t ldc, void* workspace, int thread_index,       \
                                int thread_count);                                                               \
  void kiln_sgemm_offset_tile##suffix(const float* a_base, const std::int64_t* a_offsets, std::int64_t a_step,   \
                                      const float* b_base, std::int64_t b_step, const kiln_sgemm_run* runs,      \
                                      std::int64_t run_count, bool accumulate, float* c, std::int64_t ldc,       \
                                      std::int64_t mr, std::int64_t nr);                                         \
  const char* kiln_sgemm_kernel_name##suffix(void);                                                              \
  std::int64_t kiln_sgemm_tile_rows##suffix(void);
KILN_DECLARE_GEMM_VARIANT(_avx2)
KILN_DECLARE_GEMM_VARIANT(_avx512)
#undef KILN_DECLARE_GEMM_VARIANT
}

namespace {

bool cpu_has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
}

// 1: the AVX-512 copy, 0: the AVX2 one.
std::atomic<int>& use_avx512() {
  static std::atomic<int> use{cpu_has_avx512() ? 1 : 0};
  return use;
}

}  // namespace

extern "C" {

std::size_t kiln_sgemm_workspace_size(std::int64_t m, std::int64_t n, std::int64_t k) {
  // Enough for either copy (their tiles differ in rows), whichever runs: the JIT sizes its
  // kernels' scratch through this function whatever bitcode flavour it links.
  const std::size_t avx2 = kiln_sgemm_workspace_size_avx2(m, n, k), avx512 = kiln_sgemm_workspace_size_avx512(m, n, k);
  return avx2 > avx512 ? avx2 : avx512;
}

void kiln_sgemm_slice(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
                      const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
                      std::int64_t ldc, void* workspace, int thread_index, int thread_count) {
  (use_avx512().load(std::memory_order_relaxed) ? kiln_sgemm_slice_avx512 : kiln_sgemm_slice_avx2)(
      trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, workspace, thread_index, thread_count);
}

void kiln_sgemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
                std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc,
                void* workspace) {
  kiln_sgemm_slice(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, workspace, 0, 1);
}

void kiln_sgemm_offset_tile(const float* a_base, const std::int64_t* a_offsets, std::int64_t a_step,
                            const float* b_base, std::int64_t b_step, const kiln_sgemm_run* runs,
                            std::int64_t run_count, bool accumulate, float* c, std::int64_t ldc, std::int64_t mr,
                            std::int64_t nr) {
  (use_avx512().load(std::memory_order_relaxed) ? kiln_sgemm_offset_tile_avx512 : kiln_sgemm_offset_tile_avx2)(
      a_base, a_offsets, a_step, b_base, b_step, runs, run_count, accumulate, c, ldc, mr, nr);
}

const char* kiln_sgemm_kernel_name(void) {
  return use_avx512().load(std::memory_order_relaxed) ? kiln_sgemm_kernel_name_avx512() : kiln_sgemm_kernel_name_avx2();
}

std::int64_t kiln_sgemm_tile_rows(void) {
  return use_avx512().load(std::memory_order_relaxed) ? kiln_sgemm_tile_rows_avx512() : kiln_sgemm_tile_rows_avx2();
}

bool kiln_sgemm_select_kernel(const char* name) {
  if (std::strcmp(name, "avx2") == 0) {
    use_avx512().store(0);
    return true;
  }
  if (std::strcmp(name, "avx512") == 0 && cpu_has_avx512()) {
    use_avx512().store(1);
    return true;
  }
  return false;
}

}  // extern "C"
