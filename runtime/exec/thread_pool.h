// The runtime's persistent thread pool: threads - 1 workers plus the calling thread run the
// indices of one parallel_for at a time. Workers spin briefly after a job (kernels often
// come 20-200 us apart) and then sleep on a condition variable. The global pool backs the
// extern "C" kiln_parallel_for that kernels/cpu and generated code call.
//
// Rules: a parallel_for from inside a task (any pool's worker, or a caller that is running
// its own job's indices) runs serially inline; a second thread calling while the pool is
// busy also runs its job inline; so nothing deadlocks. Task functions must not throw.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace kiln::runtime {

using TaskFn = void (*)(void* ctx, std::int64_t index);

class ThreadPool {
 public:
  // threads < 1 counts as 1 (no workers: every call runs on the caller).
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Workers + the caller.
  int size() const { return size_; }

  // Stops the workers and starts threads - 1 new ones (nothing when the size is already
  // that). Waits for a running job to finish.
  void resize(int threads);

  // Calls fn(ctx, i) for every i in [0, count) and returns when all have finished.
  void parallel_for(std::int64_t count, TaskFn fn, void* ctx);

  // Convenience for C++ callers: f(i) for every i.
  template <typename F>
  void for_each_index(std::int64_t count, F&& f) {
    using Fn = std::remove_reference_t<F>;
    parallel_for(
        count, [](void* ctx, std::int64_t i) { (*static_cast<Fn*>(ctx))(i); },
        const_cast<void*>(static_cast<const void*>(&f)));
  }

 private:
  // The indices are cut into one contiguous block per thread (the caller's is block 0,
  // worker w's block w), each with its own cursor: a thread takes its own block first, so
  // step after step the same thread runs the same indices and finds their data (a layer's
  // weight columns, say) in its own core's cache; then it takes what is left of the others.
  static constexpr int kMaxBlocks = 64;
  struct Job {
    TaskFn fn = nullptr;
    void* ctx = nullptr;
    std::int64_t count = 0;
    int blocks = 1;
    std::atomic<std::int64_t> next[kMaxBlocks];  // cursors, the first `blocks` in use
    std::atomic<std::int64_t> done{0};
    std::int64_t block_begin(int b) const { return count / blocks * b + (b < count % blocks ? b : count % blocks); }
  };

  void start(int threads);
  void stop();
  void worker_loop(std::uint64_t seen, int self);
  static void run_indices(Job& job, int self);

  int size_ = 1;
  std::vector<std::thread> workers_;
  std::mutex submit_;  // one job at a time; try_lock failure means "run inline"
  std::atomic<Job*> job_{nullptr};
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<int> active_{0};    // workers between picking up job_ and leaving it
  std::atomic<int> sleepers_{0};  // workers blocked (or about to block) on wake_
  std::atomic<bool> stopping_{false};
  std::mutex sleep_mutex_;
  std::condition_variable wake_;
};

// The process-wide pool, created on first use with thread_count_from_environment() threads.
ThreadPool& global_thread_pool();

// KILN_THREADS when it is a positive integer, else std::thread::hardware_concurrency() (at
// least 1).
int thread_count_from_environment();

// Resizes the global pool (threads < 1 counts as 1). Not to be called from inside a task.
void set_thread_count(int threads);
int thread_count();

}  // namespace kiln::runtime
