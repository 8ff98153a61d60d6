// The runtime thread pool: every index runs exactly once, nested calls run inline without
// deadlock, many tiny jobs in a row, concurrent callers, resizing, and KILN_THREADS.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "runtime/exec/thread_pool.h"

using kiln::runtime::ThreadPool;

namespace {

// Counts how often each index ran.
struct Counts {
  explicit Counts(std::int64_t n) : hits(static_cast<std::size_t>(n)) {}
  std::vector<std::atomic<int>> hits;
  bool each_once() const {
    for (const auto& h : hits)
      if (h.load() != 1) return false;
    return true;
  }
};

void count_index(void* ctx, std::int64_t i) {
  static_cast<Counts*>(ctx)->hits[static_cast<std::size_t>(i)].fetch_add(1);
}

// Runs two tasks on `pool` that wait (up to 10 s) for each other, so they finish at once only
// when two threads run them; returns the threads that ran index 0 and index 1.
struct TwoTasks {
  std::thread::id ran_on[2];
  bool met = false;  // both tasks saw the other arrive
};
TwoTasks run_two_waiting_tasks(ThreadPool& pool) {
  TwoTasks out;
  std::atomic<int> arrived{0}, saw_both{0};
  pool.for_each_index(2, [&](std::int64_t i) {
    out.ran_on[i] = std::this_thread::get_id();
    arrived.fetch_add(1);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (arrived.load() < 2 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    if (arrived.load() >= 2) saw_both.fetch_add(1);
  });
  out.met = saw_both.load() == 2;
  return out;
}

}  // namespace

TEST_CASE("ThreadPool runs every index exactly once", "[thread_pool][cpu_kernels]") {
  for (const int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    CHECK(pool.size() == threads);
    for (const std::int64_t count : {0, 1, 2, 3, 7, 64, 1000, 100003}) {
      INFO("threads " << threads << " count " << count);
      Counts counts(count);
      pool.parallel_for(count, count_index, &counts);
      CHECK(counts.each_once());
    }
  }
  ThreadPool zero(0);  // counts as 1
  CHECK(zero.size() == 1);
  // More threads than the job has blocks (64): the extra workers start on another's block.
  ThreadPool wide(70);
  for (const std::int64_t count : {5, 1000, 100003}) {
    INFO("70 threads, count " << count);
    Counts counts(count);
    wide.parallel_for(count, count_index, &counts);
    CHECK(counts.each_once());
  }
}

TEST_CASE("ThreadPool: nested calls run inline, tasks really run in parallel", "[thread_pool][cpu_kernels]") {
  ThreadPool pool(3);
  std::atomic<std::int64_t> total{0};
  pool.for_each_index(6, [&](std::int64_t outer) {
    // Nested on the same pool and on the global one (kiln_parallel_for): must not deadlock.
    pool.for_each_index(10, [&](std::int64_t inner) { total += outer * 100 + inner; });
    Counts counts(17);
    kiln_parallel_for(17, count_index, &counts);
    if (counts.each_once()) total += 1000000;
  });
  std::int64_t want = 6 * 1000000;
  for (std::int64_t o = 0; o < 6; ++o)
    for (std::int64_t i = 0; i < 10; ++i) want += o * 100 + i;
  CHECK(total.load() == want);

  // Two tasks that wait for each other can only finish if two threads run them at once.
  const TwoTasks two = run_two_waiting_tasks(pool);
  INFO("same thread: " << (two.ran_on[0] == two.ran_on[1])
                       << ", caller ran index 0: " << (two.ran_on[0] == std::this_thread::get_id()));
  CHECK(two.met);
}

TEST_CASE("ThreadPool: many tiny jobs and concurrent callers", "[thread_pool][cpu_kernels]") {
  ThreadPool pool(3);
  std::atomic<std::int64_t> sum{0};
  for (int call = 0; call < 20000; ++call) pool.for_each_index(3, [&](std::int64_t i) { sum += i + 1; });
  CHECK(sum.load() == 20000 * 6);

  // Other threads submitting at the same time: each job still runs all of its indices.
  std::atomic<std::int64_t> concurrent{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 3; ++t)
    callers.emplace_back([&] {
      for (int call = 0; call < 2000; ++call) pool.for_each_index(5, [&](std::int64_t i) { concurrent += i; });
    });
  for (auto& c : callers) c.join();
  CHECK(concurrent.load() == 3 * 2000 * 10);
}

TEST_CASE("The global pool: set_thread_count, KILN_THREADS, kiln_parallel_for", "[thread_pool][cpu_kernels]") {
  const int before = kiln::runtime::thread_count();
  kiln::runtime::set_thread_count(2);
  CHECK(kiln::runtime::thread_count() == 2);
  Counts counts(1001);
  kiln_parallel_for(1001, count_index, &counts);
  CHECK(counts.each_once());
  kiln::runtime::set_thread_count(0);
  CHECK(kiln::runtime::thread_count() == 1);
  kiln::runtime::set_thread_count(before);

  const char* saved = std::getenv("KILN_THREADS");
  const std::string saved_value = saved != nullptr ? saved : "";
  ::setenv("KILN_THREADS", "5", 1);
  CHECK(kiln::runtime::thread_count_from_environment() == 5);
  ::setenv("KILN_THREADS", "zero", 1);
  const int fallback = kiln::runtime::thread_count_from_environment();
  CHECK(fallback >= 1);
  ::setenv("KILN_THREADS", "-3", 1);
  CHECK(kiln::runtime::thread_count_from_environment() == fallback);
  if (saved != nullptr) {
    ::setenv("KILN_THREADS", saved_value.c_str(), 1);
  } else {
    ::unsetenv("KILN_THREADS");
  }
}

TEST_CASE("ThreadPool: resizing to the size it has keeps its workers", "[thread_pool][cpu_kernels]") {
  // Which thread other than the caller runs one of two tasks that wait for each other.
  ThreadPool pool(2);
  const auto worker_id = [&pool] {
    const TwoTasks two = run_two_waiting_tasks(pool);
    return two.ran_on[0] == std::this_thread::get_id() ? two.ran_on[1] : two.ran_on[0];
  };
  const std::thread::id first = worker_id();
  REQUIRE(first != std::this_thread::get_id());
  // A benchmark or a service may set the count before every call: that must not restart the
  // workers (a new thread each call, and its caches cold).
  pool.resize(2);
  CHECK(worker_id() == first);
  pool.resize(1);
  CHECK(pool.size() == 1);
  pool.resize(2);
  CHECK(pool.size() == 2);
  Counts counts(100);
  pool.parallel_for(100, count_index, &counts);
  CHECK(counts.each_once());
}
