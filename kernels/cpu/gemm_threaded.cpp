// kiln_sgemm_threaded: kiln_sgemm_slice fanned out over std::thread workers. Kept apart from
// gemm.cpp because the bitcode kernels must not depend on the C++ thread library;
// kiln_k_matmul (matmul.cpp) uses the runtime's thread pool instead.
#include <thread>
#include <vector>

#include "kernels/cpu/gemm.h"

extern "C" void kiln_sgemm_threaded(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                                    float alpha, const float* a, std::int64_t lda, const float* b, std::int64_t ldb,
                                    float beta, float* c, std::int64_t ldc, void* workspace, int threads) {
  if (threads < 1) threads = 1;
  const std::size_t stride = kiln_sgemm_workspace_size(m, n, k);
  auto slice_workspace = [&](int index) { return static_cast<void*>(static_cast<char*>(workspace) + stride * index); };
  std::vector<std::thread> workers;
  workers.reserve(static_cast<std::size_t>(threads - 1));
  for (int index = 0; index + 1 < threads; ++index)
    workers.emplace_back([=] {
      kiln_sgemm_slice(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, slice_workspace(index), index,
                       threads);
    });
  kiln_sgemm_slice(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, slice_workspace(threads - 1),
                   threads - 1, threads);
  for (std::thread& worker : workers) worker.join();
}
