// SGEMM speed: Kiln's kiln_sgemm against OpenBLAS cblas_sgemm and (when built with oneDNN,
// KILN_BENCH_DNNL) oneDNN's dnnl_sgemm on the same shapes in the same run, with the machine's
// FMA peak measured here: independent FMA chains on one core (fma_peak), and the same chains
// on two threads of Kiln's pool at once (fma_peak/threads:2: what two vCPUs of this VM really
// deliver together, often less than twice one). Every row reports GFLOP/s and % of the
// measured peak of its thread count (two-thread rows against fma_peak/threads:2 when it ran,
// else twice the one-core peak); every row of a shape also prints vs_openblas (and
// vs_onednn), its GFLOP/s over that peer's row of the same shape. Shapes are m×k×n.
// Issue 5 goals: ≥ 90% of peak on square sizes single-threaded, ≥ 85% on two threads, and at
// least the better peer on the model shapes.
// Debian's OpenBLAS is the pthread build (no OpenMP); it is pinned to the row's thread count
// with openblas_set_num_threads. Debian's oneDNN is the OpenMP (libgomp) build, pinned with
// omp_set_num_threads. OMP_WAIT_POLICY=PASSIVE is set (re-executing the program, since libgomp
// reads it when loaded) because spinning OpenMP workers otherwise make a 2-thread run 3–4×
// slower on this 2-core machine. Kiln's rows run the GEMM copy the CPU picks (AVX-512 where it
// has it); one-thread shapes also get a gemm/kiln_avx2 row, the AVX2 copy on the same shape.
// Operands are 64-byte aligned for every library.
// `bench_gemm --paired=ROUNDS [--paired_filter=REGEX]` compares the same shapes round by round
// instead (see run_paired): the ratio to trust on this VM, whose speed changes mode.
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <immintrin.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <new>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "kernels/cpu/gemm.h"
#include "kernels/cpu/kernels.h"
#include "runtime/exec/thread_pool.h"

#ifdef KILN_BENCH_DNNL
#include <oneapi/dnnl/dnnl.h>
// libgomp's (Debian's oneDNN runs on it); declared here because clang ships no omp.h without
// libomp-dev.
extern "C" void omp_set_num_threads(int threads);
#endif

namespace {

constexpr std::int64_t kFmaSteps = 1 << 20;

// 12 independent chains of 8-lane FMAs: Zen 3 has two FMA pipes of latency 4, so 8 chains
// already saturate it; 12 leaves slack. Returns the flops done.
double run_fma_chains(std::int64_t steps) {
  __m256 c0 = _mm256_set1_ps(0.0f), c1 = _mm256_set1_ps(0.1f), c2 = _mm256_set1_ps(0.2f), c3 = _mm256_set1_ps(0.3f);
  __m256 c4 = _mm256_set1_ps(0.4f), c5 = _mm256_set1_ps(0.5f), c6 = _mm256_set1_ps(0.6f), c7 = _mm256_set1_ps(0.7f);
  __m256 c8 = _mm256_set1_ps(0.8f), c9 = _mm256_set1_ps(0.9f), c10 = _mm256_set1_ps(1.0f), c11 = _mm256_set1_ps(1.1f);
  __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-3f);
  benchmark::DoNotOptimize(x);
  benchmark::DoNotOptimize(y);
  for (std::int64_t s = 0; s < steps; ++s) {
    c0 = _mm256_fmadd_ps(c0, x, y);
    c1 = _mm256_fmadd_ps(c1, x, y);
    c2 = _mm256_fmadd_ps(c2, x, y);
    c3 = _mm256_fmadd_ps(c3, x, y);
    c4 = _mm256_fmadd_ps(c4, x, y);
    c5 = _mm256_fmadd_ps(c5, x, y);
    c6 = _mm256_fmadd_ps(c6, x, y);
    c7 = _mm256_fmadd_ps(c7, x, y);
    c8 = _mm256_fmadd_ps(c8, x, y);
    c9 = _mm256_fmadd_ps(c9, x, y);
    c10 = _mm256_fmadd_ps(c10, x, y);
    c11 = _mm256_fmadd_ps(c11, x, y);
  }
  __m256 sum = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)),
                             _mm256_add_ps(_mm256_add_ps(c4, c5), _mm256_add_ps(c6, c7)));
  sum = _mm256_add_ps(sum, _mm256_add_ps(_mm256_add_ps(c8, c9), _mm256_add_ps(c10, c11)));
  benchmark::DoNotOptimize(sum);
  return static_cast<double>(steps) * 12 * 8 * 2;
}

// Used only if the FmaPeak benchmark was filtered out: best of a few short runs.
double measure_fma_peak_gflops() {
  double best = 0;
  for (int trial = 0; trial < 10; ++trial) {
    const auto start = std::chrono::steady_clock::now();
    const double flops = run_fma_chains(kFmaSteps);
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    best = std::max(best, flops / took.count() / 1e9);
  }
  return best;
}

void bench_fma_peak(benchmark::State& state) {
  for (auto _ : state) run_fma_chains(kFmaSteps);
  state.counters["GFLOP/s"] =
      benchmark::Counter(double(kFmaSteps) * 12 * 8 * 2 / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}

// Both threads of the pool run the chains at once; timed on the wall clock (UseRealTime).
void bench_fma_peak_two_threads(benchmark::State& state) {
  kiln::runtime::set_thread_count(2);
  for (auto _ : state)
    kiln_parallel_for(
        2, [](void*, std::int64_t) { run_fma_chains(kFmaSteps); }, nullptr);
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * double(kFmaSteps) * 12 * 8 * 2 / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}

struct Shape {
  std::int64_t m, k, n;
  bool trans_a, trans_b;
  int threads;
};

// 64-byte aligned storage, as Kiln's arenas and the peers' own tensors are (a std::vector's
// floats start 16 bytes into a cache line, which costs a streaming product such as
// 1x784x256 a fifth of its speed when rows straddle lines).
template <class T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(std::size_t count) {
    void* p = std::aligned_alloc(64, (count * sizeof(T) + 63) / 64 * 64);
    if (p == nullptr) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t) { std::free(p); }
  template <class U>
  bool operator==(const CacheLineAllocator<U>&) const {
    return true;
  }
};
using AlignedFloats = std::vector<float, CacheLineAllocator<float>>;

struct Operands {
  AlignedFloats a, b, c;
  std::int64_t lda, ldb, ldc;
};

Operands make_operands(const Shape& s) {
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  auto fill = [&](std::size_t count) {
    AlignedFloats v(count);
    for (float& x : v) x = dist(rng);
    return v;
  };
  Operands o;
  o.lda = s.trans_a ? s.m : s.k;
  o.ldb = s.trans_b ? s.k : s.n;
  o.ldc = s.n;
  o.a = fill(static_cast<std::size_t>(s.m * s.k));
  o.b = fill(static_cast<std::size_t>(s.k * s.n));
  o.c = fill(static_cast<std::size_t>(s.m * s.n));
  return o;
}

void set_flop_counter(benchmark::State& state, const Shape& s) {
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(s.m) * double(s.n) * double(s.k) / 1e9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

// kiln_k_matmul: the kernel the LLVM backend calls (packed kiln_sgemm tiles, a streaming
// path for a few rows), split over the runtime's persistent thread pool when threads > 1,
// as in a JIT-compiled step.
void bench_kiln(benchmark::State& state, Shape s) {
  Operands o = make_operands(s);
  kiln::runtime::set_thread_count(s.threads);
  std::vector<unsigned char> workspace(kiln_k_matmul_scratch(s.m, s.n, s.k, s.threads));
  for (auto _ : state) {
    kiln_k_matmul(1, s.m, s.n, s.k, s.trans_a, s.trans_b, o.a.data(), 0, o.b.data(), 0, o.c.data(), nullptr, 0, nullptr,
                  workspace.data(), s.threads);
    benchmark::ClobberMemory();
  }
  set_flop_counter(state, s);
}

// The same with the native library's AVX2 GEMM copy (the 6×16 ymm micro-kernel: what a CPU
// without AVX-512, such as Zen 3, runs; KILN_CPU=x86-64-v3 gives the JIT the same kernels).
void bench_kiln_avx2(benchmark::State& state, Shape s) {
  if (!kiln_sgemm_select_kernel("avx2")) {
    state.SkipWithError("the AVX2 GEMM copy is not available on this CPU");
    return;
  }
  bench_kiln(state, s);
  if (!kiln_sgemm_select_kernel("avx512")) kiln_sgemm_select_kernel("avx2");
}

void bench_openblas(benchmark::State& state, Shape s) {
  Operands o = make_operands(s);
  openblas_set_num_threads(s.threads);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, s.trans_a ? CblasTrans : CblasNoTrans, s.trans_b ? CblasTrans : CblasNoTrans,
                static_cast<int>(s.m), static_cast<int>(s.n), static_cast<int>(s.k), 1.0f, o.a.data(),
                static_cast<int>(o.lda), o.b.data(), static_cast<int>(o.ldb), 0.0f, o.c.data(),
                static_cast<int>(o.ldc));
    benchmark::ClobberMemory();
  }
  set_flop_counter(state, s);
}

#ifdef KILN_BENCH_DNNL
void bench_onednn(benchmark::State& state, Shape s) {
  Operands o = make_operands(s);
  omp_set_num_threads(s.threads);
  auto call = [&] {
    return dnnl_sgemm(s.trans_a ? 'T' : 'N', s.trans_b ? 'T' : 'N', s.m, s.n, s.k, 1.0f, o.a.data(), o.lda, o.b.data(),
                      o.ldb, 0.0f, o.c.data(), o.ldc);
  };
  if (call() != dnnl_success) {  // also the untimed first call, where oneDNN JIT-compiles its kernel
    state.SkipWithError("dnnl_sgemm failed");
    return;
  }
  for (auto _ : state) {
    call();
    benchmark::ClobberMemory();
  }
  set_flop_counter(state, s);
}
#endif

std::string shape_name(const Shape& s) {
  return std::to_string(s.m) + "x" + std::to_string(s.k) + "x" + std::to_string(s.n) + "/" + (s.trans_a ? "T" : "N") +
         (s.trans_b ? "T" : "N") + "/threads:" + std::to_string(s.threads);
}

// --paired=ROUNDS: a second way to compare, for this noisy VM, whose speed changes mode every
// few seconds (docs/performance.md): Google Benchmark runs all repetitions of one row before
// the next, so a mode change between a peer's row and Kiln's skews their ratio. Here, for
// each shape, every round runs each library for one short slice (one untimed call, then
// calls for at least kSliceSeconds), in an order rotated each round, and takes the ratio of
// Kiln's GFLOP/s to the better peer's within the round. The table gives each library's
// median GFLOP/s over the rounds, the median of the per-round ratios and in how many rounds
// Kiln was at least the better peer. --paired_filter=REGEX picks shapes by name
// (e.g. "threads:1").
constexpr double kSliceSeconds = 0.03;
constexpr int kSettleMilliseconds = 150;

struct Library {
  std::string name;
  bool peer;
  // Prepares operands for a shape; the returned call runs one product (threads set per call).
  std::function<std::function<void()>(const Shape&)> prepare;
};

std::vector<Library> paired_libraries() {
  std::vector<Library> libs;
  libs.push_back({"kiln", false, [](const Shape& s) {
                    auto o = std::make_shared<Operands>(make_operands(s));
                    auto ws =
                        std::make_shared<std::vector<unsigned char>>(kiln_k_matmul_scratch(s.m, s.n, s.k, s.threads));
                    return std::function<void()>([s, o, ws] {
                      kiln::runtime::set_thread_count(s.threads);
                      kiln_k_matmul(1, s.m, s.n, s.k, s.trans_a, s.trans_b, o->a.data(), 0, o->b.data(), 0, o->c.data(),
                                    nullptr, 0, nullptr, ws->data(), s.threads);
                    });
                  }});
  libs.push_back({"openblas", true, [](const Shape& s) {
                    auto o = std::make_shared<Operands>(make_operands(s));
                    return std::function<void()>([s, o] {
                      openblas_set_num_threads(s.threads);
                      cblas_sgemm(CblasRowMajor, s.trans_a ? CblasTrans : CblasNoTrans,
                                  s.trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(s.m), static_cast<int>(s.n),
                                  static_cast<int>(s.k), 1.0f, o->a.data(), static_cast<int>(o->lda), o->b.data(),
                                  static_cast<int>(o->ldb), 0.0f, o->c.data(), static_cast<int>(o->ldc));
                    });
                  }});
#ifdef KILN_BENCH_DNNL
  libs.push_back({"onednn", true, [](const Shape& s) {
                    auto o = std::make_shared<Operands>(make_operands(s));
                    return std::function<void()>([s, o] {
                      omp_set_num_threads(s.threads);
                      if (dnnl_sgemm(s.trans_a ? 'T' : 'N', s.trans_b ? 'T' : 'N', s.m, s.n, s.k, 1.0f, o->a.data(),
                                     o->lda, o->b.data(), o->ldb, 0.0f, o->c.data(), o->ldc) != dnnl_success) {
                        std::fprintf(stderr, "dnnl_sgemm failed\n");
                        std::exit(1);
                      }
                    });
                  }});
#endif
  return libs;
}

// GFLOP/s of one slice: a warm-up call, then calls until kSliceSeconds have passed. With
// two threads, a pause first: a library's workers spin for a while after its last call
// (OpenBLAS's for about 2^28 cycles), and on two vCPUs such a spinning thread would take a
// core from the next library's slice.
double run_slice(const std::function<void()>& call, const Shape& s) {
  if (s.threads > 1) std::this_thread::sleep_for(std::chrono::milliseconds(kSettleMilliseconds));
  call();
  const auto start = std::chrono::steady_clock::now();
  std::int64_t calls = 0;
  std::chrono::duration<double> took{};
  do {
    call();
    ++calls;
    took = std::chrono::steady_clock::now() - start;
  } while (took.count() < kSliceSeconds);
  return 2.0 * double(s.m) * double(s.n) * double(s.k) * double(calls) / took.count() / 1e9;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : (v[h - 1] + v[h]) / 2;
}

int run_paired(const std::vector<Shape>& shapes, int rounds, const std::string& filter) {
  const std::regex pick(filter);
  const std::vector<Library> libs = paired_libraries();
  // The FMA peak, one core and two threads at once (plain std::threads, so that no pool's
  // work stealing can put both halves on one core): the best of ten runs, the two-thread one
  // measured again before each two-thread shape (keeping the best: a run that starts in the
  // VM's slow mode would otherwise divide by one core's worth).
  const double peak_one = measure_fma_peak_gflops();
  double peak_two = 0;
  const auto measure_two = [&peak_two](int trials) {
    for (int trial = 0; trial < trials; ++trial) {
      const auto start = std::chrono::steady_clock::now();
      std::thread other([] { run_fma_chains(kFmaSteps); });
      run_fma_chains(kFmaSteps);
      other.join();
      const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
      peak_two = std::max(peak_two, 2.0 * double(kFmaSteps) * 12 * 8 * 2 / took.count() / 1e9);
    }
  };
  measure_two(10);
  std::printf(
      "paired: %d rounds a shape, slices of %.0f ms, order rotated each round; FMA peak %.1f GFLOP/s on "
      "one core, %.1f on two threads (so far)\n\n",
      rounds, kSliceSeconds * 1e3, peak_one, peak_two);
  std::printf("| shape |");
  for (const Library& l : libs) std::printf(" %s GFLOP/s |", l.name.c_str());
  std::printf(" kiln %% of peak | kiln / better peer (median of rounds) | rounds kiln >= better peer |\n|---|");
  for (std::size_t i = 0; i < libs.size(); ++i) std::printf("---:|");
  std::printf("---:|---:|---:|\n");
  for (const Shape& s : shapes) {
    if (!std::regex_search(shape_name(s), pick)) continue;
    if (s.threads > 1) measure_two(3);
    std::vector<std::function<void()>> calls;
    for (const Library& l : libs) calls.push_back(l.prepare(s));
    std::vector<std::vector<double>> gflops(libs.size());
    std::vector<double> ratios;
    int wins = 0;
    for (int r = 0; r < rounds; ++r) {
      std::vector<double> got(libs.size());
      for (std::size_t j = 0; j < libs.size(); ++j) {
        const std::size_t i = (j + static_cast<std::size_t>(r)) % libs.size();
        got[i] = run_slice(calls[i], s);
        gflops[i].push_back(got[i]);
      }
      double best_peer = 0, kiln = 0;
      for (std::size_t i = 0; i < libs.size(); ++i) {
        if (libs[i].peer) {
          best_peer = std::max(best_peer, got[i]);
        } else {
          kiln = got[i];
        }
      }
      ratios.push_back(kiln / best_peer);
      wins += kiln >= best_peer ? 1 : 0;
    }
    std::printf("| %s |", shape_name(s).c_str());
    for (const auto& g : gflops) std::printf(" %.1f |", median(g));
    std::printf(" %.1f | %.3f | %d / %d |\n", 100.0 * median(gflops[0]) / (s.threads > 1 ? peak_two : peak_one),
                median(ratios), wins, rounds);
    std::fflush(stdout);
  }
  std::printf("\nFMA peak on two threads, best of the run: %.1f GFLOP/s\n", peak_two);
  return 0;
}

// The console report plus derived counters: %peak (GFLOP/s over the measured per-core peak ×
// threads), vs_openblas and, with oneDNN, vs_onednn (GFLOP/s over that peer's row of the same
// shape; 1 on the peer's own row, 0 where the peer's row was filtered out). A shape's rows
// (peers first, Kiln last) are held back until its Kiln row arrives so that every row carries
// every ratio and the table has one header.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  using ConsoleReporter::ConsoleReporter;
  void ReportRuns(const std::vector<Run>& reports) override {
    for (const Run& run : reports) {
      const std::string& name = run.run_name.function_name;
      auto flops = run.counters.find("GFLOP/s");
      if (!comparable(run) || flops == run.counters.end()) {
        pending_.push_back(run);
        continue;
      }
      if (name.rfind("fma_peak", 0) == 0) {
        const bool two = name.find("threads:2") != std::string::npos;
        if (run.run_type == Run::RT_Iteration || run.aggregate_name == "median")
          (two ? peak_two_gflops_ : peak_gflops_) = flops->second.value;
        Run annotated = run;
        annotated.counters["%peak"] = 100.0;
        pending_.push_back(annotated);
        continue;
      }
      if (peak_gflops_ == 0) peak_gflops_ = measure_fma_peak_gflops();
      for (const char* peer : kPeers)
        if (name.rfind(std::string("gemm/") + peer + "/", 0) == 0) gflops_[peer][key(run)] = flops->second.value;
      pending_.push_back(run);
    }
    // A Kiln row ends its shape's group; anything that is not a GEMM row stands alone.
    const std::string first = reports.empty() ? "" : reports.front().run_name.function_name;
    if (first.rfind("gemm/kiln/", 0) == 0 || first.rfind("gemm/", 0) != 0) Flush();
  }
  void Finalize() override {
    Flush();
    ConsoleReporter::Finalize();
  }

 private:
#ifdef KILN_BENCH_DNNL
  static constexpr const char* kPeers[] = {"openblas", "onednn"};
#else
  static constexpr const char* kPeers[] = {"openblas"};
#endif

  static bool comparable(const Run& run) {
    return !run.error_occurred &&
           (run.run_type == Run::RT_Iteration || run.aggregate_name == "mean" || run.aggregate_name == "median");
  }
  // "/256x784x256/NN/threads:1/median": the shape part of "gemm/<library>/<shape>".
  static std::string key(const Run& run) {
    const std::string& name = run.run_name.function_name;
    return name.substr(name.find('/', 5)) + "/" + run.aggregate_name;
  }

  void Flush() {
    if (pending_.empty()) return;
    std::vector<Run> annotated = pending_;
    pending_.clear();
    for (Run& run : annotated) {
      auto flops = run.counters.find("GFLOP/s");
      if (!comparable(run) || flops == run.counters.end() || run.run_name.function_name.rfind("fma_peak", 0) == 0)
        continue;
      const bool two = run.run_name.function_name.find("threads:2") != std::string::npos;
      const double peak = two ? (peak_two_gflops_ > 0 ? peak_two_gflops_ : 2 * peak_gflops_) : peak_gflops_;
      run.counters["%peak"] = 100.0 * flops->second.value / peak;
      for (const char* peer : kPeers) {
        auto found = gflops_[peer].find(key(run));
        run.counters[std::string("vs_") + peer] =
            found == gflops_[peer].end() ? 0.0 : flops->second.value / found->second;
      }
    }
    ConsoleReporter::ReportRuns(annotated);
  }

  double peak_gflops_ = 0;                                       // one core
  double peak_two_gflops_ = 0;                                   // two threads at once, when measured
  std::map<std::string, std::map<std::string, double>> gflops_;  // library → shape key → GFLOP/s
  std::vector<Run> pending_;
};

}  // namespace

int main(int argc, char** argv) {
  bool paired = false;
  for (int i = 1; i < argc; ++i) paired = paired || std::strncmp(argv[i], "--paired=", 9) == 0;
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    // Google Benchmark's rows run back to back, so oneDNN's workers must not spin into the
    // next library's row: PASSIVE. The paired mode pauses before each slice, long enough for
    // a spinning worker to give up, so oneDNN gets its faster setting there: its workers spin
    // for a while (GOMP_SPINCOUNT, about 10 ms here) before they sleep, and a call that
    // follows another soon finds them awake.
    setenv("OMP_WAIT_POLICY", paired ? "ACTIVE" : "PASSIVE", 1);
    if (paired) setenv("GOMP_SPINCOUNT", "1000000", 0);
    execv("/proc/self/exe", argv);  // returns only on failure; then go on without it
  }
  std::printf("kiln micro-kernel: %s; OpenBLAS: %s\n", kiln_sgemm_kernel_name(), openblas_get_config());
#ifdef KILN_BENCH_DNNL
  const dnnl_version_t* dnnl = dnnl_version();
  std::printf("oneDNN: %d.%d.%d (cpu runtime %u)\n", dnnl->major, dnnl->minor, dnnl->patch, dnnl->cpu_runtime);
#else
  std::printf("oneDNN: not built in (install libdnnl-dev: benchmarks/setup_peers.sh)\n");
#endif
  benchmark::RegisterBenchmark("fma_peak", bench_fma_peak)->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("fma_peak/threads:2", bench_fma_peak_two_threads)
      ->Unit(benchmark::kMicrosecond)
      ->UseRealTime();
  const std::vector<Shape> shapes = {
      {256, 256, 256, false, false, 1},
      {512, 512, 512, false, false, 1},
      {1024, 1024, 1024, false, false, 1},
      {2048, 2048, 2048, false, false, 1},
      // Fashion MLP 784-256 layer: forward at batch 256, 64, 1; weight gradient Xᵀ·dY; input
      // gradient dY·Wᵀ.
      {256, 784, 256, false, false, 1},
      {64, 784, 256, false, false, 1},
      {1, 784, 256, false, false, 1},
      {784, 256, 256, true, false, 1},
      {256, 256, 784, false, true, 1},
      // Fashion CNN convolutions as im2col GEMMs at batch 64 (NHWC, "same" padding): the
      // second conv (M = 64·14·14 output pixels, K = 5·5·32, N = 64 filters) and the first
      // (M = 64·28·28, K = 5·5·1, N = 32).
      {12544, 800, 64, false, false, 1},
      {50176, 25, 32, false, false, 1},
      // The CNN's dense layer forward (below at two threads) on one.
      {64, 3136, 1024, false, false, 1},
      // Two threads (Kiln starts its workers per call; OpenBLAS keeps a pool).
      {256, 256, 256, false, false, 2},
      {512, 512, 512, false, false, 2},
      {1024, 1024, 1024, false, false, 2},
      {2048, 2048, 2048, false, false, 2},
      {256, 784, 256, false, false, 2},
      {64, 784, 256, false, false, 2},
      {784, 256, 256, true, false, 2},
      {256, 256, 784, false, true, 2},
      // The CNN's 3136→1024 dense layer at batch 64: forward, input gradient, weight gradient.
      {64, 3136, 1024, false, false, 2},
      {64, 1024, 3136, false, true, 2},
      {3136, 64, 1024, true, false, 2},
  };
  for (const Shape& s : shapes) {
    benchmark::RegisterBenchmark(("gemm/openblas/" + shape_name(s)).c_str(), bench_openblas, s)
        ->Unit(benchmark::kMicrosecond)
        ->UseRealTime();
#ifdef KILN_BENCH_DNNL
    benchmark::RegisterBenchmark(("gemm/onednn/" + shape_name(s)).c_str(), bench_onednn, s)
        ->Unit(benchmark::kMicrosecond)
        ->UseRealTime();
#endif
    if (s.threads == 1)
      benchmark::RegisterBenchmark(("gemm/kiln_avx2/" + shape_name(s)).c_str(), bench_kiln_avx2, s)
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
    // Last of the shape: the reporter prints the shape's rows when this one arrives.
    benchmark::RegisterBenchmark(("gemm/kiln/" + shape_name(s)).c_str(), bench_kiln, s)
        ->Unit(benchmark::kMicrosecond)
        ->UseRealTime();
  }
  int paired_rounds = 0;
  std::string paired_filter = ".";
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--paired=", 9) == 0) {
      paired_rounds = std::atoi(argv[i] + 9);
    } else if (std::strncmp(argv[i], "--paired_filter=", 16) == 0) {
      paired_filter = argv[i] + 16;
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  if (paired_rounds > 0) return run_paired(shapes, paired_rounds, paired_filter);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter reporter(isatty(fileno(stdout)) ? benchmark::ConsoleReporter::OO_ColorTabular
                                                : benchmark::ConsoleReporter::OO_Tabular);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
