// How long the runtime pool's worker takes to join a job after the pool has been idle: the
// property of this VM behind its bimodal two-thread figures (docs/performance.md).
//
//   build/benchmarks/pool_wakeup [IDLE_MS [JOBS [STEPS]]]
//
// JOBS times (default 40): sleep IDLE_MS (default 50; the worker polls for 200 us, then
// sleeps), then one job of two tasks of STEPS FMA steps each (default 2^20, about 1.7 ms;
// `pool_wakeup 0 20000 1024` times the hand-off of back-to-back jobs of ~1.7 us tasks). If the worker starts its
// task in time the job takes one task's time; if it has not started when the caller has
// finished its own, the caller runs the second task too (work stealing) and the job takes
// two. Prints how many jobs ran in parallel and the median and maximum job times.
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "runtime/exec/thread_pool.h"

namespace {

// 12 independent chains of 8-lane FMAs, `steps` times.
void fma_chains(long steps) {
  __m256 c[12];
  for (int i = 0; i < 12; ++i) c[i] = _mm256_set1_ps(0.1f * static_cast<float>(i));
  __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-3f);
  asm volatile("" : "+x"(x), "+x"(y));
  for (long s = 0; s < steps; ++s)
    for (__m256& v : c) v = _mm256_fmadd_ps(v, x, y);
  for (__m256& v : c) asm volatile("" : : "x"(v));
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  const int idle_ms = argc > 1 ? std::atoi(argv[1]) : 50;
  const int jobs = argc > 2 ? std::atoi(argv[2]) : 40;
  const long steps = argc > 3 ? std::atol(argv[3]) : 1L << 20;
  if (idle_ms < 0 || jobs < 1 || steps < 1) {
    std::fprintf(stderr, "usage: pool_wakeup [IDLE_MS >= 0 [JOBS >= 1 [STEPS >= 1]]]\n");
    return 2;
  }
  // One task alone, for the job time that means "in parallel".
  auto start = std::chrono::steady_clock::now();
  fma_chains(steps);
  const double task_ms = seconds_since(start) * 1e3;

  kiln::runtime::ThreadPool pool(2);
  std::vector<double> ms;
  int parallel = 0;
  for (int j = 0; j < jobs; ++j) {
    if (idle_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(idle_ms));
    start = std::chrono::steady_clock::now();
    pool.for_each_index(2, [steps](std::int64_t) { fma_chains(steps); });
    ms.push_back(seconds_since(start) * 1e3);
    if (ms.back() < 1.5 * task_ms) ++parallel;
  }
  std::sort(ms.begin(), ms.end());
  std::printf(
      "{\"idle_ms\": %d, \"jobs\": %d, \"task_ms\": %.4f, \"jobs_in_parallel\": %d, \"median_job_ms\": %.4f, "
      "\"max_job_ms\": %.4f}\n",
      idle_ms, jobs, task_ms, parallel, ms[ms.size() / 2], ms.back());
  return 0;
}
