// kiln_sgemm against a naive triple loop in double: every transpose case, alpha/beta, padded
// leading dimensions, odd shapes around the 6×16 micro-tile and the 144/256 cache blocks,
// and the threaded split, for each of the native library's GEMM copies (AVX2, AVX-512).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/gemm.h"

namespace {

using Index = std::int64_t;

struct GemmCase {
  bool trans_a = false;
  bool trans_b = false;
  Index m = 1, n = 1, k = 1;
  float alpha = 1.0f;
  float beta = 0.0f;
  Index pad = 0;  // extra columns in every leading dimension
  int threads = 1;
};

std::vector<float> random_floats(std::size_t count, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> values(count);
  for (float& v : values) v = dist(rng);
  return values;
}

// Runs one case and checks every element of C (and that the padding columns are untouched).
void check_gemm(const GemmCase& g) {
  INFO("trans_a=" << g.trans_a << " trans_b=" << g.trans_b << " m=" << g.m << " n=" << g.n << " k=" << g.k
                  << " alpha=" << g.alpha << " beta=" << g.beta << " pad=" << g.pad << " threads=" << g.threads);
  std::mt19937 rng(static_cast<std::uint32_t>(g.m * 1000003 + g.n * 1009 + g.k));
  const Index a_rows = g.trans_a ? g.k : g.m, a_cols = g.trans_a ? g.m : g.k;
  const Index b_rows = g.trans_b ? g.n : g.k, b_cols = g.trans_b ? g.k : g.n;
  const Index lda = a_cols + g.pad, ldb = b_cols + g.pad, ldc = g.n + g.pad;
  const std::vector<float> a = random_floats(static_cast<std::size_t>(a_rows * lda), rng);
  const std::vector<float> b = random_floats(static_cast<std::size_t>(b_rows * ldb), rng);
  std::vector<float> c = random_floats(static_cast<std::size_t>(g.m * ldc), rng);
  const std::vector<float> c_before = c;

  auto op_a = [&](Index i, Index p) { return double(g.trans_a ? a[p * lda + i] : a[i * lda + p]); };
  auto op_b = [&](Index p, Index j) { return double(g.trans_b ? b[j * ldb + p] : b[p * ldb + j]); };

  const int threads = g.threads;
  // The workspace the size functions ask for, then a guard band that must stay untouched.
  constexpr std::size_t kGuard = 64 << 10;
  const std::size_t workspace_bytes = kiln_sgemm_workspace_size(g.m, g.n, g.k) * threads + 1;
  std::vector<unsigned char> workspace(workspace_bytes + kGuard, 0xab);
  if (threads == 1)
    kiln_sgemm(g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha, a.data(), lda, b.data(), ldb, g.beta, c.data(), ldc,
               workspace.data());
  else
    kiln_sgemm_threaded(g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha, a.data(), lda, b.data(), ldb, g.beta, c.data(),
                        ldc, workspace.data(), threads);

  std::size_t guard_touched = 0;
  for (std::size_t i = workspace_bytes; i < workspace.size(); ++i) guard_touched += workspace[i] != 0xab;
  CHECK(guard_touched == 0);

  Index failures = 0;
  for (Index i = 0; i < g.m; ++i) {
    for (Index j = 0; j < ldc; ++j) {
      const double got = c[i * ldc + j];
      if (j >= g.n) {
        if (got != double(c_before[i * ldc + j])) ++failures;
        continue;
      }
      double dot = 0.0, magnitude = 0.0;
      for (Index p = 0; p < g.k; ++p) {
        dot += op_a(i, p) * op_b(p, j);
        magnitude += std::fabs(op_a(i, p) * op_b(p, j));
      }
      const double want = g.alpha * dot + (g.beta == 0.0f ? 0.0 : g.beta * double(c_before[i * ldc + j]));
      // Relative to the size of the terms summed: cancellation makes |want| itself a poor scale.
      const double scale = std::fabs(g.alpha) * magnitude + std::fabs(g.beta * c_before[i * ldc + j]) + 1e-6;
      if (!(std::fabs(got - want) <= 1e-4 * scale)) {
        if (failures < 5) UNSCOPED_INFO("C[" << i << "][" << j << "] = " << got << ", want " << want);
        ++failures;
      }
    }
  }
  CHECK(failures == 0);
}

// The native library holds two copies of the GEMM (gemm_dispatch.cpp): each test below runs
// once per copy; a copy this CPU cannot run is skipped with a warning. The default (the best
// copy the CPU has) is restored after each run.
struct UseKernel {
  bool ok;
  explicit UseKernel(const std::string& name) : ok(kiln_sgemm_select_kernel(name.c_str())) {
    if (!ok) WARN("skipped for the " << name << " GEMM copy: this CPU cannot run it");
  }
  ~UseKernel() {
    if (!kiln_sgemm_select_kernel("avx512")) kiln_sgemm_select_kernel("avx2");
  }
  UseKernel(const UseKernel&) = delete;
  UseKernel& operator=(const UseKernel&) = delete;
};
#define KILN_FOR_EACH_GEMM_COPY()                                              \
  const std::string gemm_copy = GENERATE(as<std::string>{}, "avx2", "avx512"); \
  INFO("GEMM copy: " << gemm_copy);                                            \
  const UseKernel use_kernel(gemm_copy);                                       \
  if (!use_kernel.ok) return

}  // namespace

TEST_CASE("gemm matches the naive product for every transpose case and odd shape", "[gemm]") {
  KILN_FOR_EACH_GEMM_COPY();
  const Index sizes[] = {1, 2, 5, 7, 13, 17, 31, 33, 65};
  for (bool trans_a : {false, true})
    for (bool trans_b : {false, true})
      for (Index m : sizes)
        for (Index n : sizes)
          for (Index k : {Index{1}, Index{7}, Index{33}}) {
            GemmCase g;
            g.trans_a = trans_a;
            g.trans_b = trans_b;
            g.m = m;
            g.n = n;
            g.k = k;
            check_gemm(g);
          }
}

TEST_CASE("gemm crosses the cache blocks on large odd shapes", "[gemm]") {
  KILN_FOR_EACH_GEMM_COPY();
  struct Shape {
    Index m, n, k;
  };
  // Past MC = 144, KC = 256 and NR/MR multiples, in each dimension in turn. {145, 17, 513}
  // reads A in place with B packed whole, {70, 40, 3000} reads A in place in KC blocks (its
  // packed B, 48 x 3000 floats, is over the 384 KB that may be packed whole); {13, 600, 520}
  // and {150, 530, 500} have a B over 1 MB. Up to 64 rows a non-transposed B is read in
  // place ({64, 256, 784}, {13, 600, 520}; {33, 70, 2100} in three KC blocks of that path)
  // unless its rows are a multiple of 4 KB apart ({40, 1024, 300}: packed).
  const Shape shapes[] = {{127, 255, 257}, {257, 127, 255}, {255, 257, 127}, {145, 17, 513},
                          {1, 784, 256},   {64, 256, 784},  {300, 33, 1},    {13, 600, 520},
                          {150, 530, 500}, {70, 40, 3000},  {33, 70, 2100},  {40, 1024, 300}};
  for (bool trans_a : {false, true})
    for (bool trans_b : {false, true})
      for (const Shape& s : shapes) {
        GemmCase g;
        g.trans_a = trans_a;
        g.trans_b = trans_b;
        g.m = s.m;
        g.n = s.n;
        g.k = s.k;
        check_gemm(g);
      }
}

TEST_CASE("gemm applies alpha and beta and respects leading dimensions", "[gemm]") {
  KILN_FOR_EACH_GEMM_COPY();
  for (bool trans_a : {false, true})
    for (bool trans_b : {false, true})
      for (float alpha : {1.0f, -0.5f, 2.0f})
        for (float beta : {0.0f, 1.0f, 0.25f})
          for (Index k : {Index{300}, Index{3000}})  // one KC block, and several
            // 37 rows: a non-transposed B read in place by every micro-tile; 70 rows and
            // 41 columns: A read in place instead.
            for (Index m : {Index{37}, Index{70}}) {
              GemmCase g;
              g.trans_a = trans_a;
              g.trans_b = trans_b;
              g.m = m;
              g.n = 41;
              g.k = k;
              g.alpha = alpha;
              g.beta = beta;
              g.pad = 3;
              check_gemm(g);
            }
}

TEST_CASE("gemm with beta = 0 overwrites NaN in C; k = 0 or alpha = 0 only scales C", "[gemm]") {
  KILN_FOR_EACH_GEMM_COPY();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> a(13 * 5, 1.0f), b(5 * 17, 2.0f), c(13 * 17, nan);
  std::vector<unsigned char> workspace(kiln_sgemm_workspace_size(13, 17, 5));
  kiln_sgemm(false, false, 13, 17, 5, 1.0f, a.data(), 5, b.data(), 17, 0.0f, c.data(), 17, workspace.data());
  for (float v : c) REQUIRE(v == 10.0f);

  kiln_sgemm(false, false, 13, 17, 0, 1.0f, a.data(), 5, b.data(), 17, 0.5f, c.data(), 17, nullptr);
  for (float v : c) REQUIRE(v == 5.0f);
  kiln_sgemm(false, false, 13, 17, 5, 0.0f, a.data(), 5, b.data(), 17, 2.0f, c.data(), 17, workspace.data());
  for (float v : c) REQUIRE(v == 10.0f);
  kiln_sgemm(false, false, 13, 17, 5, 0.0f, a.data(), 5, b.data(), 17, 0.0f, c.data(), 17, workspace.data());
  for (float v : c) REQUIRE(v == 0.0f);
}

TEST_CASE("gemm split over threads matches the naive product", "[gemm]") {
  KILN_FOR_EACH_GEMM_COPY();
  struct Shape {
    Index m, n, k;
  };
  // Wide shapes split the columns, tall ones the rows; 1×n and m×1 leave some workers idle.
  const Shape shapes[] = {{33, 257, 65}, {257, 33, 65}, {1, 784, 256}, {300, 1, 7}, {7, 13, 3}};
  for (int threads : {2, 3})
    for (bool trans_a : {false, true})
      for (bool trans_b : {false, true})
        for (const Shape& s : shapes) {
          GemmCase g;
          g.trans_a = trans_a;
          g.trans_b = trans_b;
          g.m = s.m;
          g.n = s.n;
          g.k = s.k;
          g.alpha = 1.5f;
          g.beta = 0.5f;
          g.threads = threads;
          check_gemm(g);
        }
}

TEST_CASE("gemm with a few rows and B rows 4 KB apart packs one sliver at a time", "[gemm]") {
  KILN_FOR_EACH_GEMM_COPY();
  // 9 to 64 rows of C and a non-transposed B whose rows are a multiple of 4 KB apart: each
  // sliver is packed by its first micro-tile into one reused buffer, in KC blocks of up to
  // 1024, prefetching 64 rows ahead into the next sliver or KC block. k = 40 is shorter
  // than that distance; k = 2100 takes three KC blocks; 1000 columns with ldb = 1024 end
  // in a narrower sliver packed beside the reused one; 8 and 15 columns are that narrow
  // sliver alone (A packed: transposed, or alpha != 1), the case that sizes the workspace.
  struct Shape {
    Index m, n, k, pad;
    bool trans_a;
    float alpha;
  };
  const Shape shapes[] = {{9, 1024, 40, 0, false, 1.0f},    {40, 1024, 300, 0, false, 1.0f},
                          {64, 1024, 2100, 0, false, 1.0f}, {17, 1000, 777, 24, false, 1.0f},
                          {33, 2048, 65, 0, false, 1.0f},   {24, 1024, 1500, 0, true, 1.0f},
                          {33, 8, 1024, 1016, true, 1.0f},  {17, 15, 1025, 1009, false, 1.5f}};
  auto run = [](const Shape& s, float beta, int threads) {
    GemmCase g;
    g.m = s.m;
    g.n = s.n;
    g.k = s.k;
    g.pad = s.pad;
    g.trans_a = s.trans_a;
    g.alpha = s.alpha;
    g.beta = beta;
    g.threads = threads;
    check_gemm(g);
  };
  for (const Shape& s : shapes)
    for (float beta : {0.0f, 0.5f}) run(s, beta, 1);
  // Split over threads: column blocks of the same B, each still 4 KB a row; and row blocks
  // (more tiles of rows than of columns).
  for (int threads : {2, 3})
    for (const Shape& s : {Shape{64, 1024, 700, 0, false, 1.5f}, Shape{64, 24, 700, 1000, false, 1.5f}})
      run(s, 0.5f, threads);
}

TEST_CASE("gemm reports its micro-kernel", "[gemm]") {
#if defined(__x86_64__)
  // kernels/CMakeLists.txt builds the native GEMM twice on x86-64; the AVX-512 copy is the
  // default where the CPU has AVX-512.
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
  CHECK(std::string(kiln_sgemm_kernel_name()) == (avx512 ? "avx512-8x16" : "avx2-fma-6x16"));
  CHECK(!kiln_sgemm_select_kernel("sse2"));
  {
    const UseKernel use("avx2");
    REQUIRE(use.ok);
    CHECK(std::string(kiln_sgemm_kernel_name()) == "avx2-fma-6x16");
  }
  CHECK(std::string(kiln_sgemm_kernel_name()) == (avx512 ? "avx512-8x16" : "avx2-fma-6x16"));
  if (!avx512) WARN("this CPU has no AVX-512: only the AVX2 GEMM copy runs here");
#else
  CHECK(std::string(kiln_sgemm_kernel_name()) == "portable-6x16");
#endif
}
