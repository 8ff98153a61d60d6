// probe: the measurements behind performance.md's explanations (why a figure is where it is),
// rerunnable. Each mode prints one JSON line of medians. AVX-512 build (gemm.cpp's AVX-512
// copy is included here under its own suffix, so its internal pieces can be timed alone).
//
//   probe l2-stream      the batch-1 artifact's inner loop (x[k] broadcast, four FMAs over 64
//                        columns a row) over strips of a 784 x 256 weight matrix: bytes a cycle
//                        from L1 (k 64) and from L2 (k 784, rows 64 or 256 floats apart)
//   probe vcpu-fma       a 12-chain zmm FMA loop on cpu 0 alone, cpu 1 alone, then both at once
//   probe micro-kernel   the 8x16 micro-kernel over 16 row tiles of one packed sliver, against
//                        the same-length FMA chains; then with the first tile packing the sliver
//                        from a 256 x 512 B in place (rows 2 KB apart)
//   probe pack-a         packing 64 x 784 of A (what each thread of a few-rows split packs)
//   probe adam           the Adam update of 200,704 floats (fashion_mlp's first layer) into new
//                        buffers, as the training step writes them, one thread, data hot
//   probe read-bandwidth one core reading buffers of 256 KB to 16 MB over and over (eight zmm
//                        sums): GB/s, bytes a cycle, and what reading fashion_mlp's 0.94 MB of
//                        weights once then costs at least (its batch-1 call reads them all)
//   probe split-trace [ROUNDS]  the two-thread GEMM 64x784x256 as two column halves on the
//                        runtime's pool, as kiln_k_matmul splits it, in rounds like
//                        bench_gemm --paired's slices (150 ms pause, 30 ms of calls): each half's
//                        median duration, the call's, and the calls whose worker half the caller ran
#define KILN_GEMM_SUFFIX _probe
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include "kernels/cpu/gemm.cpp"
#include "kernels/cpu/kernels.h"
#include "runtime/exec/thread_pool.h"

namespace {

using Clock = std::chrono::steady_clock;

// Results go here, so that the optimizer cannot drop the work that makes them.
volatile float g_sink;

double seconds_of(const std::function<void()>& f) {
  const auto t0 = Clock::now();
  f();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median_seconds(int runs, const std::function<void()>& f) {
  std::vector<double> t;
  for (int r = 0; r < runs; ++r) t.push_back(seconds_of(f));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// 12 independent chains of zmm FMAs: n steps, 12 FMAs of 32 flops each a step.
[[gnu::noinline]] float fma_chains(long n) {
  asm volatile("" ::: "memory");  // not a pure function: each call runs
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  const __m512 m = _mm512_set1_ps(1.0000001f), a = _mm512_set1_ps(1e-7f);
  for (long k = 0; k < n; ++k)
    for (__m512& x : acc) x = _mm512_fmadd_ps(x, m, a);
  __m512 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);
}

// The artifact's batch-1 loop over one 64-column strip: y[0..64) = sum_k x[k] * b[k*ld ..].
[[gnu::noinline]] void strip(const float* x, const float* b, long ld, long k, float* y) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (long i = 0; i < k; ++i) {
    const __m512 xv = _mm512_set1_ps(x[i]);
    const float* r = b + i * ld;
    a0 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(r), a0);
    a1 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(r + 16), a1);
    a2 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(r + 32), a2);
    a3 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(r + 48), a3);
  }
  _mm512_storeu_ps(y, a0);
  _mm512_storeu_ps(y + 16, a1);
  _mm512_storeu_ps(y + 32, a2);
  _mm512_storeu_ps(y + 48, a3);
}

// Cycles of the FMA chains per second, the best of five runs (this VM's speed moves): the
// chains run one zmm FMA a cycle on Zen 4, so this is the clock the other figures are read
// against.
double chain_clock() {
  const long n = 20'000'000;
  double best = 1e30;
  for (int r = 0; r < 5; ++r) best = std::min(best, seconds_of([&] { g_sink = fma_chains(n); }));
  return static_cast<double>(n) * 12 / best;
}

void l2_stream() {
  const long k_full = 784, n = 256;
  std::vector<float> b(k_full * n), x(k_full);
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = 0.01f * static_cast<float>(i % 97);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = 0.001f * static_cast<float>(i);
  float y[64];
  const double hz = chain_clock();
  auto measure = [&](long k, long ld, int strips) {
    const double s = median_seconds(2001, [&] {
      for (int t = 0; t < strips; ++t) strip(x.data(), b.data() + t * 64, ld, k, y);
      g_sink = y[0];
    });
    return static_cast<double>(k) * 64 * 4 * strips / (s * hz);
  };
  std::printf(
      "{\"probe\": \"l2-stream\", \"clock_ghz\": %.2f, \"l1_bytes_per_cycle\": %.1f, "
      "\"l2_bytes_per_cycle_rows_64\": %.1f, \"l2_bytes_per_cycle_rows_256\": %.1f}\n",
      hz / 1e9, measure(64, 64, 1), measure(k_full, 64, 1), measure(k_full, n, 2));
}

void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

void vcpu_fma() {
  const long n = 30'000'000;
  const double flops = static_cast<double>(n) * 12 * 32;
  auto on = [&](int cpu) {
    double s = 0;
    std::thread t([&] {
      pin(cpu);
      s = seconds_of([&] { g_sink = fma_chains(n); });
    });
    t.join();
    return flops / s / 1e9;
  };
  const double alone0 = on(0), alone1 = on(1);
  double both0 = 0, both1 = 0;
  std::thread t0([&] { both0 = on(0); }), t1([&] { both1 = on(1); });
  t0.join();
  t1.join();
  std::printf(
      "{\"probe\": \"vcpu-fma\", \"gflops_cpu0_alone\": %.1f, \"gflops_cpu1_alone\": %.1f, "
      "\"gflops_cpu0_together\": %.1f, \"gflops_cpu1_together\": %.1f}\n",
      alone0, alone1, both0, both1);
}

void micro_kernel_probe() {
  const Index kc = 256, tiles = 16, n = 512;
  std::vector<float> a(kc * kMr * tiles, 0.001f), b_full(kc * n, 0.002f), packed(kc * kNr * 2, 0.002f),
      c(kMr * tiles * n);
  const double flops = 2.0 * kc * kMr * tiles * n;
  const double peak_before = 32 * chain_clock();
  auto run = [&](bool pack) {
    return flops / median_seconds(301, [&] {
             for (Index jr = 0; jr < n; jr += kNr) {
               Index t0 = 0;
               if (pack) {
                 micro_kernel(kc, a.data(), b_full.data() + jr, n, c.data() + jr, n, 1.0f, 0.0f, kMr, kNr,
                              packed.data(), PackAhead{b_full.data() + jr + 2 * kNr, kc, nullptr});
                 t0 = 1;
               }
               for (Index t = t0; t < tiles; ++t)
                 micro_kernel(kc, a.data() + t * kc * kMr, packed.data(), kNr, c.data() + t * kMr * n + jr, n, 1.0f,
                              0.0f, kMr, kNr);
             }
             g_sink = c[0] + c[c.size() - 1];
           });
  };
  const double packed_only = run(false), with_packing = run(true);
  const double peak = std::max(peak_before, 32 * chain_clock());
  std::printf(
      "{\"probe\": \"micro-kernel\", \"peak_gflops\": %.1f, \"packed_percent_of_peak\": %.1f, "
      "\"with_packing_tile_percent_of_peak\": %.1f}\n",
      peak / 1e9, 100 * packed_only / peak, 100 * with_packing / peak);
}

void pack_a_probe() {
  const Index m = 64, k = 784;
  std::vector<float> a(m * k, 0.5f), out(m * k + kMr * k);
  const double s = median_seconds(5001, [&] {
    pack_a(false, a.data(), k, 0, m, 0, k, out.data());
    g_sink = out[static_cast<std::size_t>(m * k) - 1];
  });
  std::printf("{\"probe\": \"pack-a\", \"shape\": \"64x784\", \"median_us\": %.2f}\n", s * 1e6);
}

[[gnu::noinline]] void adam(long n, const float* p, const float* g, const float* m, const float* v, float* np,
                            float* nm, float* nv) {
  const float b1 = 0.9f, b2 = 0.999f, step = 1e-3f, inv_sqrt_bc2 = 1.2f, eps = 1e-8f;
  for (long i = 0; i < n; ++i) {
    const float gi = g[i];
    const float mi = m[i] * b1 + gi * (1 - b1);
    const float vi = v[i] * b2 + (gi * gi) * (1 - b2);
    nm[i] = mi;
    nv[i] = vi;
    np[i] = p[i] - (mi / (std::sqrt(vi) * inv_sqrt_bc2 + eps)) * step;
  }
}

void adam_probe() {
  const long n = 200'704;
  std::vector<std::vector<float>> buf(7, std::vector<float>(n, 0.01f));
  int flip = 0;
  const double out_of_place = median_seconds(301, [&] {
    const int s = (flip ^= 1) ? 3 : 0, d = s == 0 ? 3 : 0;  // ping-pong, as a committed step swaps
    adam(n, buf[s].data(), buf[6].data(), buf[s + 1].data(), buf[s + 2].data(), buf[d].data(), buf[d + 1].data(),
         buf[d + 2].data());
    g_sink = buf[d][static_cast<std::size_t>(n) - 1];
  });
  std::printf("{\"probe\": \"adam\", \"elements\": %ld, \"new_buffers_us\": %.1f}\n", n, out_of_place * 1e6);
}

// Sums n floats (n a multiple of 128) with eight independent zmm sums.
[[gnu::noinline]] float read_all(const float* p, long n) {
  __m512 s[8];
  for (__m512& x : s) x = _mm512_setzero_ps();
  for (long i = 0; i < n; i += 128)
    for (int j = 0; j < 8; ++j) s[j] = _mm512_add_ps(s[j], _mm512_load_ps(p + i + 16 * j));
  for (int j = 1; j < 8; ++j) s[0] = _mm512_add_ps(s[0], s[j]);
  return _mm512_reduce_add_ps(s[0]);
}

void read_bandwidth() {
  // fashion_mlp's parameters: 784x256 + 256 + 256x128 + 128 + 128x10 + 10 floats.
  const double weights_bytes = 4.0 * (784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10);
  const double hz = chain_clock();
  std::printf("{\"probe\": \"read-bandwidth\", \"clock_ghz\": %.2f", hz / 1e9);
  for (const long kb : {256L, 512L, 940L, 4096L, 16384L}) {
    const long n = kb * 1024 / 4 / 128 * 128;
    float* p = static_cast<float*>(std::aligned_alloc(64, static_cast<std::size_t>(n) * 4));
    if (p == nullptr) {
      std::fprintf(stderr, "probe: out of memory for a %ld KB buffer\n", kb);
      std::exit(1);
    }
    for (long i = 0; i < n; ++i) p[i] = 0.001f * static_cast<float>(i % 101);
    const double s = median_seconds(kb <= 1024 ? 2001 : 201, [&] { g_sink = read_all(p, n); });
    const double gbs = 4.0 * static_cast<double>(n) / s / 1e9;
    std::printf(", \"kb_%ld_gb_per_s\": %.1f, \"kb_%ld_bytes_per_cycle\": %.1f", kb, gbs, kb, gbs * 1e9 / hz);
    if (kb == 940) std::printf(", \"fashion_mlp_weights_once_us\": %.2f", weights_bytes / (gbs * 1e9) * 1e6);
    std::free(p);
  }
  std::printf("}\n");
}

// One half of the product: columns [half * n / 2, (half + 1) * n / 2), its own workspace.
struct SplitTrace {
  Index m, k, n;
  const float* a;
  const float* b;
  float* c;
  char* workspace;
  std::size_t workspace_bytes;
  Clock::time_point start;
  double begin[2], end[2];
  std::thread::id caller, ran[2];
};

void split_half(void* ctx, std::int64_t half) {
  SplitTrace& t = *static_cast<SplitTrace*>(ctx);
  t.ran[half] = std::this_thread::get_id();
  t.begin[half] = std::chrono::duration<double>(Clock::now() - t.start).count();
  const Index n0 = half * t.n / 2, n1 = (half + 1) * t.n / 2;
  kiln_sgemm_slice_probe(false, false, t.m, n1 - n0, t.k, 1.0f, t.a, t.k, t.b + n0, t.n, 0.0f, t.c + n0, t.n,
                         t.workspace + half * t.workspace_bytes, 0, 1);
  t.end[half] = std::chrono::duration<double>(Clock::now() - t.start).count();
}

void split_trace(int rounds) {
  const Index m = 64, k = 784, n = 256;
  std::vector<float> a(m * k), b(k * n), c(m * n);
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = 0.001f * static_cast<float>(i % 89);
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = 0.001f * static_cast<float>(i % 97);
  const std::size_t ws = (kiln_sgemm_workspace_size_probe(m, n, k) + 4095) / 4096 * 4096;
  std::vector<char> workspace(2 * ws + 64);
  SplitTrace t{};
  t.m = m, t.k = k, t.n = n, t.a = a.data(), t.b = b.data(), t.c = c.data();
  t.workspace = workspace.data(), t.workspace_bytes = ws;
  t.caller = std::this_thread::get_id();
  kiln::runtime::set_thread_count(2);
  const double one_half = median_seconds(301, [&] {
    t.start = Clock::now();
    split_half(&t, 0);
  });
  std::printf("{\"probe\": \"split-trace\", \"shape\": \"64x784x256\", \"one_half_alone_us\": %.1f}\n", one_half * 1e6);
  auto med = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2] * 1e6;
  };
  for (int r = 0; r < rounds; ++r) {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    kiln_parallel_for(2, split_half, &t);
    std::vector<double> call, half0, half1;
    int caller_ran_both = 0;
    const auto slice = Clock::now();
    do {
      t.start = Clock::now();
      kiln_parallel_for(2, split_half, &t);
      call.push_back(std::chrono::duration<double>(Clock::now() - t.start).count());
      half0.push_back(t.end[0] - t.begin[0]);
      half1.push_back(t.end[1] - t.begin[1]);
      caller_ran_both += t.ran[1] == t.caller ? 1 : 0;
    } while (Clock::now() - slice < std::chrono::milliseconds(30));
    std::printf(
        "{\"round\": %d, \"calls\": %zu, \"call_median_us\": %.1f, \"half0_median_us\": %.1f, "
        "\"half1_median_us\": %.1f, \"calls_caller_ran_both\": %d}\n",
        r, call.size(), med(call), med(half0), med(half1), caller_ran_both);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (!__builtin_cpu_supports("avx512f")) {
    std::fprintf(stderr, "probe: this CPU has no AVX-512; the probes time the AVX-512 kernels\n");
    return 2;
  }
  const char* mode = argc > 1 ? argv[1] : "";
  if (std::strcmp(mode, "l2-stream") == 0) {
    l2_stream();
  } else if (std::strcmp(mode, "vcpu-fma") == 0) {
    vcpu_fma();
  } else if (std::strcmp(mode, "micro-kernel") == 0) {
    micro_kernel_probe();
  } else if (std::strcmp(mode, "pack-a") == 0) {
    pack_a_probe();
  } else if (std::strcmp(mode, "adam") == 0) {
    adam_probe();
  } else if (std::strcmp(mode, "read-bandwidth") == 0) {
    read_bandwidth();
  } else if (std::strcmp(mode, "split-trace") == 0) {
    split_trace(argc > 2 ? std::max(1, std::atoi(argv[2])) : 12);
  } else {
    std::fprintf(
        stderr,
        "usage: probe l2-stream | vcpu-fma | micro-kernel | pack-a | adam | read-bandwidth | split-trace [ROUNDS]\n");
    return 1;
  }
  return 0;
}
