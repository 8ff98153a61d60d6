// The thread pool. One job at a time lives on the caller's stack; job_ points at it while
// it runs. A worker announces itself in active_ before it reads job_, and the caller
// clears job_ and waits for active_ to drop to zero before its stack frame goes, so no
// worker can touch a finished job (all of these atomics are sequentially consistent).
// Indices are handed out by one fetch_add each on a block's cursor (thread_pool.h: each
// thread first runs its own contiguous block); completion is counted in job.done.
#include "runtime/exec/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>

#include "kernels/cpu/kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define KILN_CPU_RELAX() _mm_pause()
#else
#define KILN_CPU_RELAX() \
  do {                   \
  } while (false)
#endif

namespace kiln::runtime {

namespace {

// Set for pool workers for their whole life and for a caller while it runs its own job's
// indices: a parallel_for from such a thread runs inline.
thread_local bool t_inside_task = false;

// How long an idle worker polls for the next job before sleeping, and how long a caller
// polls for the last indices before yielding its time slice between polls.
constexpr auto kWorkerSpin = std::chrono::microseconds(200);
constexpr int kPausesBeforeYield = 256;

void run_serially(std::int64_t count, TaskFn fn, void* ctx) {
  for (std::int64_t i = 0; i < count; ++i) fn(ctx, i);
}

}  // namespace

ThreadPool::ThreadPool(int threads) {
  start(threads);
}

ThreadPool::~ThreadPool() {
  stop();
}

void ThreadPool::start(int threads) {
  size_ = threads < 1 ? 1 : threads;
  stopping_.store(false);
  workers_.reserve(static_cast<std::size_t>(size_ - 1));
  // Workers count generations from now, not from whenever the OS first runs them: a job
  // posted before a worker starts must still wake it.
  const std::uint64_t generation = generation_.load();
  for (int i = 1; i < size_; ++i) workers_.emplace_back([this, generation, i] { worker_loop(generation, i); });
}

void ThreadPool::stop() {
  stopping_.store(true);
  {
    std::lock_guard<std::mutex> lock(sleep_mutex_);
    wake_.notify_all();
  }
  for (std::thread& worker : workers_) worker.join();
  workers_.clear();
}

void ThreadPool::resize(int threads) {
  std::lock_guard<std::mutex> lock(submit_);
  if ((threads < 1 ? 1 : threads) == size_) return;  // keep the running workers (and their caches)
  stop();
  start(threads);
}

void ThreadPool::run_indices(Job& job, int self) {
  for (int o = 0; o < job.blocks; ++o) {
    const int b = (self + o) % job.blocks;
    const std::int64_t end = job.block_begin(b + 1);
    for (;;) {
      const std::int64_t i = job.next[b].fetch_add(1, std::memory_order_relaxed);
      if (i >= end) break;
      job.fn(job.ctx, i);
      job.done.fetch_add(1, std::memory_order_release);
    }
  }
}

void ThreadPool::worker_loop(std::uint64_t seen, int self) {
  t_inside_task = true;
  for (;;) {
    // Poll for a new generation, then sleep.
    const auto spin_until = std::chrono::steady_clock::now() + kWorkerSpin;
    int polls = 0;
    while (generation_.load() == seen && !stopping_.load()) {
      if (++polls < kPausesBeforeYield) {
        KILN_CPU_RELAX();
        continue;
      }
      if (std::chrono::steady_clock::now() >= spin_until) break;
      std::this_thread::yield();
    }
    if (generation_.load() == seen && !stopping_.load()) {
      std::unique_lock<std::mutex> lock(sleep_mutex_);
      sleepers_.fetch_add(1);
      wake_.wait(lock, [&] { return generation_.load() != seen || stopping_.load(); });
      sleepers_.fetch_sub(1);
    }
    if (stopping_.load()) return;
    seen = generation_.load();
    active_.fetch_add(1);
    if (Job* job = job_.load()) run_indices(*job, self);
    active_.fetch_sub(1);
  }
}

void ThreadPool::parallel_for(std::int64_t count, TaskFn fn, void* ctx) {
  if (count <= 0) return;
  if (count == 1 || size_ == 1 || t_inside_task) return run_serially(count, fn, ctx);
  std::unique_lock<std::mutex> submit(submit_, std::try_to_lock);
  if (!submit.owns_lock()) return run_serially(count, fn, ctx);

  Job job;
  job.fn = fn;
  job.ctx = ctx;
  job.count = count;
  job.blocks = static_cast<int>(std::min<std::int64_t>({count, size_, kMaxBlocks}));
  for (int b = 0; b < job.blocks; ++b) job.next[b].store(job.block_begin(b), std::memory_order_relaxed);
  job_.store(&job);
  generation_.fetch_add(1);
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lock(sleep_mutex_);
    wake_.notify_all();
  }

  t_inside_task = true;
  run_indices(job, 0);
  t_inside_task = false;

  // Wait for the indices other threads took, then for every worker to let go of the job.
  for (int polls = 0; job.done.load(std::memory_order_acquire) < count; ++polls) {
    if (polls < kPausesBeforeYield) {
      KILN_CPU_RELAX();
    } else {
      std::this_thread::yield();
    }
  }
  job_.store(nullptr);
  for (int polls = 0; active_.load() != 0; ++polls) {
    if (polls < kPausesBeforeYield) {
      KILN_CPU_RELAX();
    } else {
      std::this_thread::yield();
    }
  }
}

int thread_count_from_environment() {
  if (const char* text = std::getenv("KILN_THREADS")) {
    char* end = nullptr;
    const long value = std::strtol(text, &end, 10);
    if (end != text && *end == '\0' && value > 0 && value <= 4096) return static_cast<int>(value);
  }
  const unsigned hardware = std::thread::hardware_concurrency();
  return hardware == 0 ? 1 : static_cast<int>(hardware);
}

ThreadPool& global_thread_pool() {
  static ThreadPool pool(thread_count_from_environment());
  return pool;
}

void set_thread_count(int threads) {
  global_thread_pool().resize(threads);
}

int thread_count() {
  return global_thread_pool().size();
}

}  // namespace kiln::runtime

extern "C" void kiln_parallel_for(std::int64_t count, kiln_task_fn fn, void* ctx) {
  kiln::runtime::global_thread_pool().parallel_for(count, fn, ctx);
}
