// kernels/cpu/kernels.h against the reference kernels (kernels/reference), the oracle that
// accumulates in double. Shapes include 1, primes, odd sizes and non-multiples of 8 and 16;
// threaded kernels run with threads 1, 2 and 3 on the global pool (3 threads here).
//
// Tolerances. Products and convolutions: |got - want| <= 1e-5 · sqrt(k) · M, where M is the
// same product over |inputs| (the size of the terms summed, so cancellation cannot make the
// bound vanish) and k the length of each sum; a float sum's rounding error grows like
// sqrt(k) · 2^-24 · M for random data, so this leaves a margin of about 100 while any wrong
// index or missed term is off by O(M). Convolutions on the Winograd path (5×5, stride 1, C
// and F >= 8): 2e-5 · M (kWinogradBound), M for the filter gradient being the largest over
// the 25 taps of each (c, f). Reductions: 1e-5 · sqrt(count) · Σ|x|. Softmax family:
// relative 1e-5 plus 1e-6 absolute. Uniform draws, layout, gather/one_hot/argmax and max
// pooling values: exact. Elementwise double-computed kernels (optimizers, sigmoid loss,
// normal draws): relative 1e-6 (one float rounding).
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/winograd.h"
#include "kernels/reference/conv.h"
#include "kernels/reference/indexing.h"
#include "kernels/reference/layout.h"
#include "kernels/reference/matmul.h"
#include "kernels/reference/optimizers.h"
#include "kernels/reference/pooling.h"
#include "kernels/reference/random.h"
#include "kernels/reference/reduce.h"
#include "kernels/reference/softmax.h"
#include "runtime/exec/thread_pool.h"

namespace ref = kiln::kernels::ref;
using Index = std::int64_t;
using Floats = std::vector<float>;

namespace {

void use_three_threads() {
  if (kiln::runtime::thread_count() != 3) kiln::runtime::set_thread_count(3);
}

Floats random_floats(std::size_t count, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  Floats v(count);
  for (float& x : v) x = dist(rng);
  return v;
}

Floats abs_of(const Floats& v) {
  Floats out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = std::fabs(v[i]);
  return out;
}

// Scratch with a guard zone: the kernel must stay inside the size it asked for.
struct Scratch {
  explicit Scratch(std::size_t bytes) : data(bytes + 256, 0xA5), size(bytes) {}
  void* get() { return data.data(); }
  bool guard_intact() const {
    for (std::size_t i = size; i < data.size(); ++i)
      if (data[i] != 0xA5) return false;
    return true;
  }
  std::vector<unsigned char> data;
  std::size_t size;
};

// |got - want| <= rel · magnitude elementwise (NaN must match NaN).
void check_bounded(const Floats& got, const Floats& want, const Floats& magnitude, double rel) {
  REQUIRE(got.size() == want.size());
  Index failures = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double g = got[i], w = want[i];
    bool ok = std::isnan(w) ? std::isnan(g) : std::fabs(g - w) <= rel * double(magnitude[i]) + 1e-30;
    if (!ok) {
      if (failures < 5)
        UNSCOPED_INFO("element " << i << ": got " << g << ", want " << w << " (bound " << rel * magnitude[i] << ")");
      ++failures;
    }
  }
  CHECK(failures == 0);
}

void check_relative(const Floats& got, const Floats& want, double rel, double abs) {
  REQUIRE(got.size() == want.size());
  Index failures = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double g = got[i], w = want[i];
    bool ok;
    if (std::isnan(w))
      ok = std::isnan(g);
    else if (std::isinf(w))
      ok = g == w;
    else
      ok = std::fabs(g - w) <= rel * std::fabs(w) + abs;
    if (!ok) {
      if (failures < 5) UNSCOPED_INFO("element " << i << ": got " << g << ", want " << w);
      ++failures;
    }
  }
  CHECK(failures == 0);
}

void check_exact(const Floats& got, const Floats& want) {
  REQUIRE(got.size() == want.size());
  Index failures = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const bool ok = std::isnan(want[i]) ? std::isnan(got[i]) : got[i] == want[i];
    if (!ok) {
      if (failures < 5) UNSCOPED_INFO("element " << i << ": got " << got[i] << ", want " << want[i]);
      ++failures;
    }
  }
  CHECK(failures == 0);
}

// ---- matmul --------------------------------------------------------------------------------

struct MatmulCase {
  Index batch, m, n, k;
  bool ta, tb;
  bool bias;
  int act;
  bool broadcast_a, broadcast_b;  // stride 0
  int threads;
  bool chained = false;  // kiln_k_matmul_chained, C collected by the chain
};

// What kiln_k_matmul_chained's chain sees: it copies each block into C (rows through the
// batch) and counts how often every element arrives and how large blocks are.
struct ChainLog {
  float* c;
  Index n;
  std::atomic<int>* seen;
  bool whole = false;  // at most 4 rows: all of C is one block
  std::atomic<Index> oversized{0}, bad_ld{0};
};

void chain_into(void* ctx, const float* block, Index ld, Index r0, Index rows, Index c0, Index cols) {
  ChainLog& log = *static_cast<ChainLog*>(ctx);
  if (ld < cols) ++log.bad_ld;
  // matmul.cpp's blocks, which stay in L2: 432 × 256, or 144 rows of up to 1024 columns.
  if (!log.whole && (cols > 1024 || rows > (cols > 256 ? 144 : 432))) ++log.oversized;
  for (Index i = 0; i < rows; ++i)
    for (Index j = 0; j < cols; ++j) {
      log.c[(r0 + i) * log.n + c0 + j] = block[i * ld + j];
      ++log.seen[(r0 + i) * log.n + c0 + j];
    }
}

void check_matmul(const MatmulCase& t) {
  INFO("batch=" << t.batch << " m=" << t.m << " n=" << t.n << " k=" << t.k << " ta=" << t.ta << " tb=" << t.tb
                << " bias=" << t.bias << " act=" << t.act << " a_stride0=" << t.broadcast_a
                << " b_stride0=" << t.broadcast_b << " threads=" << t.threads << " chained=" << t.chained);
  std::mt19937 rng(static_cast<std::uint32_t>(t.m * 7919 + t.n * 131 + t.k * 17 + t.batch));
  const Index a_items = t.broadcast_a ? 1 : t.batch, b_items = t.broadcast_b ? 1 : t.batch;
  const Floats a = random_floats(static_cast<std::size_t>(a_items * t.m * t.k), rng);
  const Floats b = random_floats(static_cast<std::size_t>(b_items * t.k * t.n), rng);
  const Floats bias = random_floats(static_cast<std::size_t>(t.n), rng);
  // act 2's gate (a relu's output, C's shape): positives, zeros, negatives and NaNs.
  Floats gate = random_floats(static_cast<std::size_t>(t.batch * t.m * t.n), rng);
  for (std::size_t e = 0; e < gate.size(); e += 7)
    gate[e] = e % 3 == 0 ? 0.0f : std::numeric_limits<float>::quiet_NaN();
  Floats c(static_cast<std::size_t>(t.batch * t.m * t.n), std::numeric_limits<float>::quiet_NaN());
  if (!t.chained) {
    Scratch scratch(kiln_k_matmul_scratch(t.m, t.n, t.k, t.threads));
    kiln_k_matmul(t.batch, t.m, t.n, t.k, t.ta, t.tb, a.data(), t.broadcast_a ? 0 : t.m * t.k, b.data(),
                  t.broadcast_b ? 0 : t.k * t.n, c.data(), t.bias ? bias.data() : nullptr, t.act,
                  t.act == 2 ? gate.data() : nullptr, scratch.get(), t.threads);
    CHECK(scratch.guard_intact());
  } else {
    const auto seen = std::make_unique<std::atomic<int>[]>(c.size());
    ChainLog log{c.data(), t.n, seen.get(), t.m <= 4};
    Scratch scratch(kiln_k_matmul_chained_scratch(t.m, t.n, t.k, t.threads));
    kiln_k_matmul_chained(t.batch, t.m, t.n, t.k, t.ta, t.tb, a.data(), t.broadcast_a ? 0 : t.m * t.k, b.data(),
                          t.broadcast_b ? 0 : t.k * t.n, nullptr, t.bias ? bias.data() : nullptr, t.act,
                          t.act == 2 ? gate.data() : nullptr, chain_into, &log, scratch.get(), t.threads);
    CHECK(scratch.guard_intact());
    Index not_once = 0;
    for (std::size_t e = 0; e < c.size(); ++e) not_once += seen[e].load() == 1 ? 0 : 1;
    CHECK(not_once == 0);  // every element reaches the chain exactly once
    CHECK(log.bad_ld.load() == 0);
    CHECK(log.oversized.load() == 0);
  }

  Floats want(c.size()), magnitude(c.size());
  const Floats abs_a = abs_of(a), abs_b = abs_of(b);
  const std::vector<Index> a_dims = {t.ta ? t.k : t.m, t.ta ? t.m : t.k};
  const std::vector<Index> b_dims = {t.tb ? t.n : t.k, t.tb ? t.k : t.n};
  const std::vector<Index> out_dims = {t.m, t.n};
  for (Index i = 0; i < t.batch; ++i) {
    const Index ai = t.broadcast_a ? 0 : i, bi = t.broadcast_b ? 0 : i;
    ref::matmul(a.data() + ai * t.m * t.k, a_dims, b.data() + bi * t.k * t.n, b_dims, t.ta, t.tb,
                want.data() + i * t.m * t.n, out_dims);
    ref::matmul(abs_a.data() + ai * t.m * t.k, a_dims, abs_b.data() + bi * t.k * t.n, b_dims, t.ta, t.tb,
                magnitude.data() + i * t.m * t.n, out_dims);
  }
  for (std::size_t e = 0; e < want.size(); ++e) {
    const std::size_t j = e % static_cast<std::size_t>(t.n);
    if (t.bias) {
      want[e] = static_cast<float>(double(want[e]) + double(bias[j]));
      magnitude[e] += std::fabs(bias[j]);
    }
    if (t.act == 1) want[e] = want[e] > 0.0f ? want[e] : 0.0f;
    if (t.act == 2) want[e] = gate[e] > 0.0f ? want[e] : 0.0f;  // select(greater(x, 0), C, 0)
    magnitude[e] += 1e-6f;
  }
  check_bounded(c, want, magnitude, 1e-5 * std::sqrt(double(t.k) + 1.0));
}

// ---- convolution -----------------------------------------------------------------------------

kiln_conv_geometry to_c(const ref::Conv2dGeometry& g) {
  return {g.n, g.h, g.w, g.c, g.kh, g.kw, g.f, g.oh, g.ow, g.stride, g.dilation, g.pad_top, g.pad_left};
}

struct ConvCase {
  Index n, h, w, c, kh, kw, f, stride, dilation;
  bool same;
};

// Whether kernels/cpu/conv.cpp runs this geometry as Winograd F(2×2, 5×5) (winograd.cpp):
// forward and grad filter directly, grad input as the flipped convolution, whose geometry
// (C and F swapped) qualifies exactly when this one does.
bool takes_winograd(const ref::Conv2dGeometry& g) {
  return g.kh == 5 && g.kw == 5 && g.stride == 1 && g.dilation == 1 && g.c >= 8 && g.f >= 8;
}

// The Winograd bound, relative to M (see the file comment): the largest error measured over
// the Winograd cases below (and the CNN's full batch of 64) is 1.7e-6 forward, 1.9e-6 grad
// input and 2.7e-6 grad filter (2e-7 to 2.6e-7 on the direct path), so this leaves a margin
// of about 7.
constexpr double kWinogradBound = 2e-5;

void check_conv(const ConvCase& cc, int threads) {
  const ref::Conv2dGeometry g =
      ref::conv2d_geometry(cc.n, cc.h, cc.w, cc.c, cc.kh, cc.kw, cc.f, cc.stride, cc.dilation, cc.same);
  INFO("n=" << g.n << " h=" << g.h << " w=" << g.w << " c=" << g.c << " k=" << g.kh << "x" << g.kw << " f=" << g.f
            << " stride=" << g.stride << " dilation=" << g.dilation << " pad=" << g.pad_top << "," << g.pad_left
            << " out=" << g.oh << "x" << g.ow << " threads=" << threads);
  REQUIRE(g.oh > 0);
  REQUIRE(g.ow > 0);
  const kiln_conv_geometry cg = to_c(g);
  const bool winograd = takes_winograd(g);
  std::mt19937 rng(static_cast<std::uint32_t>(g.h * 31 + g.c * 7 + g.f + g.stride * 1000 + g.dilation * 10000));
  const auto xs = static_cast<std::size_t>(g.n * g.h * g.w * g.c);
  const auto ws = static_cast<std::size_t>(g.kh * g.kw * g.c * g.f);
  const auto ys = static_cast<std::size_t>(g.n * g.oh * g.ow * g.f);
  const Floats x = random_floats(xs, rng), w = random_floats(ws, rng), dy = random_floats(ys, rng);
  const Floats ax = abs_of(x), aw = abs_of(w), ady = abs_of(dy);

  {  // forward
    Floats y(ys, std::numeric_limits<float>::quiet_NaN()), want(ys), magnitude(ys);
    Scratch scratch(kiln_k_conv2d_scratch(&cg, threads));
    kiln_k_conv2d(&cg, x.data(), w.data(), y.data(), scratch.get(), threads);
    CHECK(scratch.guard_intact());
    ref::conv2d(g, x.data(), w.data(), want.data());
    ref::conv2d(g, ax.data(), aw.data(), magnitude.data());
    for (float& v : magnitude) v += 1e-6f;
    const double bound = winograd ? kWinogradBound : 1e-5 * std::sqrt(double(g.kh * g.kw * g.c) + 1.0);
    check_bounded(y, want, magnitude, bound);
    // The epilogue: + bias per filter, then relu (or the bias alone). A NaN in the input
    // makes NaN outputs, which the relu turns into 0 (as the reference's relu does).
    const Floats bias = random_floats(static_cast<std::size_t>(g.f), rng);
    Floats x_nan = x;
    x_nan[xs / 2] = std::numeric_limits<float>::quiet_NaN();
    Floats nan_want(ys);
    ref::conv2d(g, x_nan.data(), w.data(), nan_want.data());
    for (const bool with_nan : {false, true})
      for (int act : {0, 1}) {
        INFO("bias, act " << act << (with_nan ? ", a NaN in x" : ""));
        const Floats& input = with_nan ? x_nan : x;
        const Floats& plain = with_nan ? nan_want : want;
        Floats fused(ys, -7.0f), fused_want(ys), fused_magnitude(magnitude);
        kiln_k_conv2d_bias_relu(&cg, input.data(), w.data(), bias.data(), act, fused.data(), scratch.get(), threads);
        CHECK(scratch.guard_intact());
        for (std::size_t e = 0; e < ys; ++e) {
          const float b = bias[e % static_cast<std::size_t>(g.f)];
          fused_want[e] = static_cast<float>(double(plain[e]) + double(b));
          if (act == 1) fused_want[e] = fused_want[e] > 0.0f ? fused_want[e] : 0.0f;
          fused_magnitude[e] += std::fabs(b);
        }
        check_bounded(fused, fused_want, fused_magnitude, bound);
      }
  }
  {  // grad input
    Floats dx(xs, std::numeric_limits<float>::quiet_NaN()), want(xs), magnitude(xs);
    Scratch scratch(kiln_k_conv2d_grad_input_scratch(&cg, threads));
    kiln_k_conv2d_grad_input(&cg, dy.data(), w.data(), dx.data(), scratch.get(), threads);
    CHECK(scratch.guard_intact());
    ref::conv2d_grad_input(g, dy.data(), w.data(), want.data());
    ref::conv2d_grad_input(g, ady.data(), aw.data(), magnitude.data());
    for (float& v : magnitude) v += 1e-6f;
    check_bounded(dx, want, magnitude, winograd ? kWinogradBound : 1e-5 * std::sqrt(double(g.kh * g.kw * g.f) + 1.0));
  }
  {  // grad filter
    Floats dw(ws, std::numeric_limits<float>::quiet_NaN()), want(ws), magnitude(ws);
    Scratch scratch(kiln_k_conv2d_grad_filter_scratch(&cg, threads));
    kiln_k_conv2d_grad_filter(&cg, x.data(), dy.data(), dw.data(), scratch.get(), threads);
    CHECK(scratch.guard_intact());
    ref::conv2d_grad_filter(g, x.data(), dy.data(), want.data());
    ref::conv2d_grad_filter(g, ax.data(), ady.data(), magnitude.data());
    for (float& v : magnitude) v += 1e-6f;
    // Winograd's dw = Gᵀ dU G mixes the 25 taps of each (c, f), so a tap that never meets the
    // input (exactly 0, as the outer taps of a 2×2 image padded by 2) carries its neighbours'
    // rounding: every tap is bounded by the largest M among the 25.
    if (winograd) {
      const Index taps = g.kh * g.kw, cf = g.c * g.f;
      for (Index e = 0; e < cf; ++e) {
        float largest = 0.0f;
        for (Index t = 0; t < taps; ++t) largest = std::max(largest, magnitude[static_cast<std::size_t>(t * cf + e)]);
        for (Index t = 0; t < taps; ++t) magnitude[static_cast<std::size_t>(t * cf + e)] = largest;
      }
    }
    check_bounded(dw, want, magnitude, winograd ? kWinogradBound : 1e-5 * std::sqrt(double(g.n * g.oh * g.ow) + 1.0));
  }
}

// ---- reductions --------------------------------------------------------------------------------

void check_reduce(const std::vector<Index>& dims, const std::vector<bool>& reduced_axes, std::mt19937& rng,
                  bool with_nan) {
  std::string text;
  for (std::size_t a = 0; a < dims.size(); ++a) text += std::to_string(dims[a]) + (reduced_axes[a] ? "r " : "k ");
  INFO("dims " << text << " nan=" << with_nan);
  const Index total = std::accumulate(dims.begin(), dims.end(), Index{1}, std::multiplies<>());
  Floats x = random_floats(static_cast<std::size_t>(total), rng, -2.0f, 3.0f);
  if (with_nan && total > 0) x[static_cast<std::size_t>(total / 3)] = std::numeric_limits<float>::quiet_NaN();
  Index out_n = 1, count = 1;
  for (std::size_t a = 0; a < dims.size(); ++a) (reduced_axes[a] ? count : out_n) *= dims[a];
  std::unique_ptr<bool[]> flags(new bool[dims.size() + 1]);
  std::vector<std::uint8_t> bytes(dims.size() + 1);
  for (std::size_t a = 0; a < dims.size(); ++a) flags[a] = reduced_axes[a], bytes[a] = reduced_axes[a] ? 1 : 0;
  const std::span<const bool> flag_span(flags.get(), dims.size());
  const Floats ax = abs_of(x);
  for (int op = 0; op < 3; ++op) {
    INFO("op " << op);
    if (with_nan && op != 2) continue;
    Floats got(static_cast<std::size_t>(out_n), 12345.0f), want(got.size()), magnitude(got.size());
    const auto rop = static_cast<ref::ReduceOp>(op);
    kiln_k_reduce(op, x.data(), static_cast<int>(dims.size()), dims.data(), bytes.data(), got.data());
    ref::reduce(rop, x.data(), dims, flag_span, want.data());
    if (op == 2) {
      check_exact(got, want);
    } else {
      ref::reduce(rop, ax.data(), dims, flag_span, magnitude.data());
      for (float& v : magnitude) v += 1e-30f;
      check_bounded(got, want, magnitude, 1e-5 * std::sqrt(double(count) + 1.0));
    }
  }
}

}  // namespace

TEST_CASE("kiln_k_matmul matches the reference: shapes, transposes, epilogue, batch strides, threads",
          "[cpu_kernels]") {
  use_three_threads();
  struct Shape {
    Index m, n, k;
  };
  const Shape small[] = {{1, 1, 1}, {1, 17, 5}, {7, 1, 13}, {6, 16, 8}, {13, 31, 97}, {5, 9, 2}, {16, 8, 1}};
  // Above the parallel grain (2^16 multiply-adds per task), so threads really split them.
  // Also: whole-panel packing of A and 8×8 transposes of B with KC blocks a multiple of 8
  // (640: 216, 216, 208) or not (203), tall and short products against wide B.
  const Shape large[] = {{97, 131, 67},
                         {200, 37, 300},
                         {6, 1000, 50},
                         {1, 4099, 71},
                         {331, 3, 257},
                         {64, 10, 784},
                         {130, 64, 640},
                         {1003, 64, 203},
                         {64, 512, 216},
                         {12, 48, 64},
                         // At most 4 rows: the streaming path (64- and 16-wide blocks, single columns).
                         {1, 256, 784},
                         {2, 145, 33},
                         {3, 64, 30},
                         {4, 2, 32},
                         {4, 83, 9}};
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      for (const Shape& s : small)
        check_matmul({1, s.m, s.n, s.k, ta, tb, s.m % 2 == 1, int(s.n % 3), false, false, 1});
      for (const Shape& s : large)
        for (int threads : {1, 2, 3}) {
          for (bool chained : {false, true}) {
            check_matmul({1, s.m, s.n, s.k, ta, tb, false, 0, false, false, threads, chained});
            check_matmul({1, s.m, s.n, s.k, ta, tb, true, 1, false, false, threads, chained});
            check_matmul({1, s.m, s.n, s.k, ta, tb, false, 2, false, false, threads, chained});
          }
        }
    }
  // Chained blocks: more rows and columns than one block holds (432 × 256, 144 × 1024), on
  // every path.
  for (int threads : {1, 2, 3})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        check_matmul({1, 901, 600, 40, ta, tb, true, 1, false, false, threads, true});
        check_matmul({1, 3, 700, 20, ta, tb, false, 2, false, false, threads, true});
        check_matmul({1, 150, 2100, 64, ta, tb, false, 0, false, false, threads, true});
        check_matmul({1, 901, 200, 30, ta, tb, true, 0, false, false, threads, true});
      }
  // The streaming path's last columns: every width below 16 (blocks of 8, 4, 2 and 1 in one
  // pass), alone and after 64- and 16-wide blocks.
  for (Index width = 1; width < 16; ++width)
    for (Index before : {Index{0}, Index{80}})
      for (bool ta : {false, true})
        check_matmul({1, 1 + width % 3, before + width, 37, ta, false, true, 1 + int(width % 2), false, false, 1});
  // Batches: strides, including 0 (one operand shared by every product).
  for (int threads : {1, 2, 3})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        check_matmul({3, 45, 37, 29, ta, tb, true, 1, false, false, threads});
        check_matmul({5, 61, 23, 47, ta, tb, false, 0, true, false, threads});
        check_matmul({2, 150, 70, 40, ta, tb, true, 0, false, true, threads});
        check_matmul({4, 1, 300, 200, ta, tb, false, 1, false, false, threads});
        check_matmul({7, 3, 5, 7, ta, tb, true, 1, true, true, threads});
        check_matmul({3, 45, 37, 29, ta, tb, false, 2, false, false, threads});  // each product its gate
        check_matmul({4, 2, 70, 20, ta, tb, false, 2, true, false, threads});
        check_matmul({3, 45, 37, 29, ta, tb, true, 1, false, false, threads, true});  // rows through the batch
        check_matmul({4, 2, 70, 20, ta, tb, false, 2, true, false, threads, true});
      }
  // k = 0: C is the epilogue of zeros.
  Floats c(6, 1.0f);
  const Floats bias = {-1, 2, -3};
  Scratch scratch(kiln_k_matmul_scratch(2, 3, 0, 2));
  kiln_k_matmul(1, 2, 3, 0, false, false, nullptr, 0, nullptr, 0, c.data(), bias.data(), 1, nullptr, scratch.get(), 2);
  CHECK(c == Floats{0, 2, 0, 0, 2, 0});
  const Floats gate = {1, -1, 0, 2, std::numeric_limits<float>::quiet_NaN(), 3};
  kiln_k_matmul(1, 2, 3, 0, false, false, nullptr, 0, nullptr, 0, c.data(), bias.data(), 2, gate.data(), scratch.get(),
                2);
  CHECK(c == Floats{-1, 0, 0, -1, 0, -3});
  // k = 0 chained, with blocks of both sizes: zeros through the epilogue, every element once.
  for (const auto& [m, n] : {std::pair<Index, Index>{2, 300}, {450, 300}, {450, 200}}) {
    Floats got(static_cast<std::size_t>(m * n), 7.0f);
    const auto seen = std::make_unique<std::atomic<int>[]>(got.size());
    ChainLog log{got.data(), n, seen.get(), m <= 4};
    Floats row_bias(static_cast<std::size_t>(n));
    for (Index j = 0; j < n; ++j) row_bias[static_cast<std::size_t>(j)] = static_cast<float>(j % 5) - 2.0f;
    Scratch chained(kiln_k_matmul_chained_scratch(m, n, 0, 2));
    kiln_k_matmul_chained(1, m, n, 0, false, false, nullptr, 0, nullptr, 0, nullptr, row_bias.data(), 1, nullptr,
                          chain_into, &log, chained.get(), 2);
    CHECK(chained.guard_intact());
    Index wrong = 0;
    for (std::size_t e = 0; e < got.size(); ++e)
      wrong += seen[e].load() == 1 && got[e] == std::max(0.0f, row_bias[e % static_cast<std::size_t>(n)]) ? 0 : 1;
    CHECK(wrong == 0);
  }
}

// A row of C over rows of B from the same row of A, one fused multiply-add per k in k's
// order, as the few-rows path sums (its inner loop is one `acc += a * b` statement, which
// clang contracts into an FMA on CPUs with FMA: these native kernels are built with -mfma).
float fma_chain(const Floats& a, const Floats& b, Index i, Index j, Index n, Index k) {
  float acc = 0.0f;
  for (Index kk = 0; kk < k; ++kk)
    acc = std::fma(a[static_cast<std::size_t>(i * k + kk)], b[static_cast<std::size_t>(kk * n + j)], acc);
  return acc;
}

bool same_bits(float x, float y) {
  return (std::isnan(x) && std::isnan(y)) || std::memcmp(&x, &y, sizeof x) == 0;
}

TEST_CASE("kiln_k_matmul's few-rows path skips A's zeros and still gives the dense sum bit for bit", "[cpu_kernels]") {
  // A batch-1 layer's input often has many zeros (an image's background, a relu's output):
  // the few-rows path (at most 4 rows of A, B not transposed) lists A's nonzero elements and
  // reads only their rows of B. A zero adds exactly +0 to a sum that starts at +0, so C
  // must equal the dense FMA chain in every bit: for every share of zeros (none, below the
  // listing threshold of one in 8, at it, half, nearly all, all), -0.0 among them, a NaN
  // and an infinity in A (not zeros: they must reach C), k below and above the list's
  // 2048 and not a multiple of 8 or 16, the 64-wide, 16-wide and tail blocks of columns, the
  // prefetching serial case (784 × 256: 0.8 MB of B in one task) and threads.
  use_three_threads();
  struct Shape {
    Index m, n, k;
  };
  const Shape shapes[] = {{1, 256, 784}, {1, 10, 7}, {2, 100, 31}, {4, 83, 2048}, {1, 40, 2049}, {3, 128, 256}};
  const double zero_shares[] = {0.0, 1.0 / 16, 1.0 / 8, 0.5, 15.0 / 16, 1.0};
  std::mt19937 rng(29);
  for (const Shape& s : shapes)
    for (double share : zero_shares)
      for (int threads : {1, 2}) {
        INFO("m=" << s.m << " n=" << s.n << " k=" << s.k << " zero share " << share << " threads " << threads);
        Floats a = random_floats(static_cast<std::size_t>(s.m * s.k), rng);
        std::vector<Index> order(static_cast<std::size_t>(s.k));
        for (Index i = 0; i < s.m; ++i) {
          std::iota(order.begin(), order.end(), Index{0});
          std::shuffle(order.begin(), order.end(), rng);
          const auto zeros = static_cast<Index>(share * static_cast<double>(s.k));
          for (Index z = 0; z < zeros; ++z)
            a[static_cast<std::size_t>(i * s.k + order[static_cast<std::size_t>(z)])] = z % 3 == 0 ? -0.0f : 0.0f;
        }
        if (s.m >= 2 && share < 1.0) {
          a[static_cast<std::size_t>(0 * s.k + s.k / 2)] = std::numeric_limits<float>::quiet_NaN();
          a[static_cast<std::size_t>(1 * s.k + s.k / 3)] = std::numeric_limits<float>::infinity();
        }
        const Floats b = random_floats(static_cast<std::size_t>(s.k * s.n), rng);
        Floats c(static_cast<std::size_t>(s.m * s.n), 7.0f);
        Scratch scratch(kiln_k_matmul_scratch(s.m, s.n, s.k, threads));
        kiln_k_matmul(1, s.m, s.n, s.k, false, false, a.data(), 0, b.data(), 0, c.data(), nullptr, 0, nullptr,
                      scratch.get(), threads);
        CHECK(scratch.guard_intact());
        Index wrong = 0;
        for (Index i = 0; i < s.m; ++i)
          for (Index j = 0; j < s.n; ++j)
            wrong += same_bits(c[static_cast<std::size_t>(i * s.n + j)], fma_chain(a, b, i, j, s.n, s.k)) ? 0 : 1;
        CHECK(wrong == 0);
      }
  // The one difference from the dense sum, documented in matmul.cpp: a skipped row of B that
  // holds an infinity or a NaN (0 × inf is NaN) does not reach C. Kiln's weights are finite.
  const Index k = 64, n = 16;
  Floats a(static_cast<std::size_t>(k), 1.0f), b(static_cast<std::size_t>(k * n), 0.5f), c(static_cast<std::size_t>(n));
  for (Index kk = 0; kk < k; kk += 2) a[static_cast<std::size_t>(kk)] = 0.0f;
  b[static_cast<std::size_t>(4 * n + 3)] = std::numeric_limits<float>::infinity();  // row 4: a[4] is 0
  Scratch scratch(kiln_k_matmul_scratch(1, n, k, 1));
  kiln_k_matmul(1, 1, n, k, false, false, a.data(), 0, b.data(), 0, c.data(), nullptr, 0, nullptr, scratch.get(), 1);
  CHECK(std::isnan(fma_chain(a, b, 0, 3, n, k)));
  CHECK(c[3] == 16.0f);
}

TEST_CASE("kiln_k_conv2d and its gradients match the reference", "[cpu_kernels]") {
  use_three_threads();
  const ConvCase cases[] = {
      {1, 1, 1, 1, 1, 1, 1, 1, 1, false},     // everything 1
      {2, 7, 5, 3, 3, 3, 4, 1, 1, false},     // valid
      {2, 7, 5, 3, 3, 3, 4, 1, 1, true},      // same
      {3, 11, 13, 5, 3, 2, 17, 2, 1, true},   // stride 2 same, non-square filter
      {2, 12, 9, 4, 3, 3, 6, 2, 1, false},    // stride 2 valid
      {2, 13, 11, 3, 3, 3, 5, 1, 2, true},    // dilation 2 same
      {2, 13, 11, 3, 3, 3, 5, 1, 2, false},   // dilation 2 valid
      {2, 17, 19, 2, 3, 3, 7, 3, 2, true},    // stride 3, dilation 2
      {1, 3, 3, 2, 5, 5, 3, 1, 1, true},      // filter larger than the input
      {2, 6, 7, 8, 1, 1, 16, 1, 1, false},    // pointwise: x is the column matrix
      {2, 6, 7, 9, 1, 1, 5, 2, 1, true},      // 1x1 stride 2
      {4, 28, 28, 1, 5, 5, 32, 1, 1, true},   // the Fashion CNN's first layer (batch 4)
      {4, 14, 14, 32, 5, 5, 64, 1, 1, true},  // and its second
      {5, 23, 29, 3, 4, 4, 19, 2, 1, true},   // even filter, odd sizes
      // C >= 16 at stride 1: grad input as the flipped convolution (fewer channels scatter).
      {2, 9, 10, 16, 3, 3, 5, 1, 2, false},  // dilation 2 valid
      {2, 8, 8, 17, 4, 3, 6, 1, 1, true},    // even filter height, same
      {1, 6, 7, 20, 1, 1, 3, 1, 1, false},   // pointwise
      // The offset micro-tile path: filters past one 16-wide sliver with a partial last one,
      // pixel counts past a forward block (96) and a grad-filter block (512) and not a
      // multiple of 6, valid convolutions read in place (no padded copy, unused rows).
      {3, 9, 11, 18, 3, 3, 33, 1, 1, true},   // flipped grad input, F = 33
      {2, 10, 10, 20, 3, 3, 7, 2, 2, true},   // stride 2, dilation 2, C >= 16 (scatter)
      {1, 30, 30, 3, 3, 3, 40, 1, 1, false},  // valid: x read in place, 784 pixels
      {2, 13, 12, 5, 3, 3, 16, 2, 1, false},  // valid stride 2: the last input column unused
      {7, 5, 5, 16, 5, 5, 100, 1, 1, true},   // filter as large as the image, F = 100
      {3, 23, 17, 2, 2, 5, 9, 1, 3, true},    // dilation 3, wide filter, odd sizes
      {1, 41, 37, 7, 3, 3, 24, 1, 1, false},  // 1365 pixels: several grad-filter blocks
  };
  for (const ConvCase& cc : cases)
    for (int threads : {1, 2, 3}) check_conv(cc, threads);
}

// Winograd F(2×2, 5×5) (kernels/cpu/winograd.cpp): 5×5, stride 1, dilation 1, C >= 8 and
// F >= 8, any padding. Its error is larger than the direct product's (the transforms add
// and subtract terms up to 5× larger than the result), so these are held to kWinogradBound.
TEST_CASE("kiln_k_conv2d's Winograd path matches the reference", "[cpu_kernels]") {
  use_three_threads();
  const ConvCase cases[] = {
      {3, 14, 14, 32, 5, 5, 64, 1, 1, true},  // the Fashion CNN's second layer (batch 3): 4 tile blocks
      {1, 14, 14, 32, 5, 5, 64, 1, 1, true},  // n = 1: one block, fewer tasks than threads
      {4, 14, 14, 64, 5, 5, 32, 1, 1, true},  // its input gradient's shape
      {2, 7, 9, 9, 5, 5, 13, 1, 1, true},     // odd sizes, C and F not multiples of 8
      {2, 7, 9, 9, 5, 5, 13, 1, 1, false},    // valid: 3×5 (flipped grad input pads 4)
      {1, 13, 13, 13, 5, 5, 9, 1, 1, true},   // 7×7 tiles, the last row and column half used
      {1, 13, 13, 13, 5, 5, 9, 1, 1, false},  // valid: 9×9
      {2, 1, 1, 8, 5, 5, 8, 1, 1, true},      // 1×1 image: one tile, mostly padding
      {1, 2, 2, 9, 5, 5, 10, 1, 1, true},     // 2×2: taps that never meet the input
      {3, 1, 7, 11, 5, 5, 12, 1, 1, true},    // a single row
      {2, 5, 5, 8, 5, 5, 8, 1, 1, false},     // valid 1×1 output, the smallest channels
      {2, 13, 11, 17, 5, 5, 33, 1, 1, true},  // F past two slivers of 16, C past a lane group
      {1, 9, 7, 40, 5, 5, 20, 1, 1, false},   // C > F, valid
  };
  for (const ConvCase& cc : cases) {
    REQUIRE(takes_winograd(
        ref::conv2d_geometry(cc.n, cc.h, cc.w, cc.c, cc.kh, cc.kw, cc.f, cc.stride, cc.dilation, cc.same)));
    for (int threads : {1, 2, 3}) check_conv(cc, threads);
  }
}

// The 1-D F(2, 5) pieces against a direct correlation in double: y[i] = Σk d[i + k]·g[k] and
// its gradient dg[k] = Σi d[i + k]·dy[i], relative to the sum of |terms| (for dg the largest
// over the 5 taps, which the transforms mix). The worst of 2000 draws is 1.4e-6 for both
// (one float rounding is 6e-8; the transforms' coefficients reach 5 and 16).
TEST_CASE("Winograd 1-D F(2 5) transforms reproduce a direct correlation", "[cpu_kernels]") {
  std::mt19937 rng(5);
  double worst = 0.0, worst_grad = 0.0;
  for (int trial = 0; trial < 2000; ++trial) {
    const Floats d = random_floats(6, rng), g = random_floats(5, rng), dy = random_floats(2, rng);
    float y[2], dg[5];
    kiln::cpu::winograd_f25_1d(d.data(), g.data(), y);
    kiln::cpu::winograd_f25_1d_grad_filter(d.data(), dy.data(), dg);
    for (int i = 0; i < 2; ++i) {
      double want = 0.0, magnitude = 0.0;
      for (int k = 0; k < 5; ++k) {
        want += double(d[i + k]) * g[k];
        magnitude += std::fabs(double(d[i + k]) * g[k]);
      }
      worst = std::max(worst, std::fabs(y[i] - want) / magnitude);
    }
    double want[5] = {}, magnitude = 0.0;  // the largest over the 5 taps, which dg mixes
    for (int k = 0; k < 5; ++k) {
      double m = 0.0;
      for (int i = 0; i < 2; ++i) {
        want[k] += double(d[i + k]) * dy[i];
        m += std::fabs(double(d[i + k]) * dy[i]);
      }
      magnitude = std::max(magnitude, m);
    }
    for (int k = 0; k < 5; ++k) worst_grad = std::max(worst_grad, std::fabs(dg[k] - want[k]) / magnitude);
  }
  CHECK(worst < 4e-6);
  CHECK(worst_grad < 4e-6);
}

// The training step must repeat bit for bit: the same call twice gives the same bits (the
// grad filter's per-task partials are summed in task order, not as tasks finish).
TEST_CASE("kiln_k_conv2d and its gradients repeat bit for bit", "[cpu_kernels]") {
  use_three_threads();
  const ConvCase cases[] = {{6, 14, 14, 32, 5, 5, 64, 1, 1, true},
                            {3, 14, 14, 64, 5, 5, 32, 1, 1, true},
                            {4, 12, 12, 16, 3, 3, 24, 1, 1, true}};
  for (const ConvCase& cc : cases)
    for (int threads : {2, 3}) {
      const kiln_conv_geometry g =
          to_c(ref::conv2d_geometry(cc.n, cc.h, cc.w, cc.c, cc.kh, cc.kw, cc.f, cc.stride, cc.dilation, cc.same));
      INFO("c=" << g.c << " f=" << g.f << " k=" << g.kh << " threads=" << threads);
      std::mt19937 rng(11);
      const Floats x = random_floats(static_cast<std::size_t>(g.n * g.h * g.w * g.c), rng);
      const Floats w = random_floats(static_cast<std::size_t>(g.kh * g.kw * g.c * g.f), rng);
      const Floats dy = random_floats(static_cast<std::size_t>(g.n * g.oh * g.ow * g.f), rng);
      Scratch s1(kiln_k_conv2d_scratch(&g, threads)), s2(kiln_k_conv2d_grad_input_scratch(&g, threads)),
          s3(kiln_k_conv2d_grad_filter_scratch(&g, threads));
      Floats y[2], dx[2], dw[2];
      for (int run = 0; run < 2; ++run) {
        y[run].assign(dy.size(), 0.0f), dx[run].assign(x.size(), 0.0f), dw[run].assign(w.size(), 0.0f);
        kiln_k_conv2d(&g, x.data(), w.data(), y[run].data(), s1.get(), threads);
        kiln_k_conv2d_grad_input(&g, dy.data(), w.data(), dx[run].data(), s2.get(), threads);
        kiln_k_conv2d_grad_filter(&g, x.data(), dy.data(), dw[run].data(), s3.get(), threads);
      }
      CHECK(std::memcmp(y[0].data(), y[1].data(), y[0].size() * sizeof(float)) == 0);
      CHECK(std::memcmp(dx[0].data(), dx[1].data(), dx[0].size() * sizeof(float)) == 0);
      CHECK(std::memcmp(dw[0].data(), dw[1].data(), dw[0].size() * sizeof(float)) == 0);
    }
}

TEST_CASE("kiln_k pooling matches the reference, ties and NaN included", "[cpu_kernels]") {
  struct PoolCase {
    Index n, h, w, c, size, stride;
    bool same;
  };
  const PoolCase cases[] = {{1, 1, 1, 1, 1, 1, false},    {2, 6, 6, 3, 2, 2, false}, {1, 7, 5, 17, 3, 2, true},
                            {3, 28, 28, 32, 2, 2, false}, {2, 9, 8, 70, 3, 1, true}, {1, 5, 7, 2, 2, 3, true},
                            {2, 11, 10, 5, 4, 3, false}};
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> small(-2, 2);
  for (const PoolCase& pc : cases) {
    const ref::PoolGeometry g = ref::pool_geometry(pc.n, pc.h, pc.w, pc.c, pc.size, pc.stride, pc.same);
    INFO("n=" << g.n << " h=" << g.h << " w=" << g.w << " c=" << g.c << " size=" << g.size << " stride=" << g.stride
              << " same=" << pc.same);
    const kiln_pool_geometry cg{g.n, g.h, g.w, g.c, g.size, g.stride, g.oh, g.ow, g.pad_top, g.pad_left};
    const auto xs = static_cast<std::size_t>(g.n * g.h * g.w * g.c),
               ys = static_cast<std::size_t>(g.n * g.oh * g.ow * g.c);
    Floats x(xs);
    for (float& v : x) v = static_cast<float>(small(rng));  // many ties
    if (xs > 10)
      x[xs / 2] = std::numeric_limits<float>::quiet_NaN(), x[xs / 5] = -std::numeric_limits<float>::infinity();
    const Floats dy = random_floats(ys, rng);
    for (int threads : {1, 2, 3}) {
      INFO("threads=" << threads);
      Floats got(ys), want(ys);
      kiln_k_max_pool2d(&cg, x.data(), got.data(), threads);
      ref::max_pool2d(g, x.data(), want.data());
      check_exact(got, want);
      kiln_k_avg_pool2d(&cg, x.data(), got.data(), threads);
      ref::avg_pool2d(g, x.data(), want.data());
      check_relative(got, want, 1e-6, 1e-6);
      Floats dx(xs, 7.0f), dx_want(xs);  // stale values in dx must not survive
      kiln_k_max_pool2d_grad(&cg, x.data(), dy.data(), dx.data(), 0, threads);
      ref::max_pool2d_grad(g, x.data(), dy.data(), dx_want.data());
      check_relative(dx, dx_want, 1e-5, 1e-6);
      // With a relu's gradient folded in: the select the code generator replaces.
      kiln_k_max_pool2d_grad(&cg, x.data(), dy.data(), dx.data(), 1, threads);
      for (std::size_t e = 0; e < xs; ++e) dx_want[e] = x[e] > 0.0f ? dx_want[e] : 0.0f;
      check_relative(dx, dx_want, 1e-5, 1e-6);
      std::fill(dx.begin(), dx.end(), 7.0f);
      kiln_k_avg_pool2d_grad(&cg, dy.data(), dx.data(), threads);
      ref::avg_pool2d_grad(g, dy.data(), dx_want.data());
      check_relative(dx, dx_want, 1e-5, 1e-6);
    }
  }
}

TEST_CASE("kiln_k softmax, log_softmax and the cross-entropy losses match the reference", "[cpu_kernels]") {
  std::mt19937 rng(11);
  struct Split {
    Index outer, axis, inner;
  };
  for (const Split s : {Split{1, 1, 1}, Split{3, 10, 1}, Split{5, 1000, 1}, Split{2, 7, 3}, Split{4, 5, 130},
                        Split{1, 33, 64}, Split{7, 1, 9}}) {
    INFO("outer=" << s.outer << " axis=" << s.axis << " inner=" << s.inner);
    const auto size = static_cast<std::size_t>(s.outer * s.axis * s.inner);
    Floats x = random_floats(size, rng, -30.0f, 30.0f);
    if (size > 20) {
      x[3] = -std::numeric_limits<float>::infinity();
      x[size - 2] = 80.0f;  // exp would overflow without the shift
    }
    Floats got(size), want(size);
    kiln_k_softmax(x.data(), s.outer, s.axis, s.inner, got.data());
    ref::softmax(x.data(), s.outer, s.axis, s.inner, want.data());
    check_relative(got, want, 1e-5, 1e-7);
    kiln_k_log_softmax(x.data(), s.outer, s.axis, s.inner, got.data());
    ref::log_softmax(x.data(), s.outer, s.axis, s.inner, want.data());
    check_relative(got, want, 1e-5, 1e-6);
  }
  SECTION("a NaN poisons its row only") {
    Floats x = {1, 2, 3, std::numeric_limits<float>::quiet_NaN(), 5, 6};
    Floats got(6), want(6);
    kiln_k_softmax(x.data(), 2, 3, 1, got.data());
    ref::softmax(x.data(), 2, 3, 1, want.data());
    check_relative(got, want, 1e-6, 1e-7);
    CHECK(std::isnan(got[4]));
    CHECK_FALSE(std::isnan(got[0]));
  }
  SECTION("softmax cross-entropy, int32 and int64 labels, bad labels give NaN") {
    for (const Index classes : {Index{1}, Index{10}, Index{37}, Index{1001}}) {
      const Index rows = 13;
      const Floats logits = random_floats(static_cast<std::size_t>(rows * classes), rng, -20.0f, 20.0f);
      std::vector<std::int32_t> l32(rows);
      std::vector<std::int64_t> l64(rows);
      for (Index r = 0; r < rows; ++r) l32[r] = static_cast<std::int32_t>((r * 7) % classes), l64[r] = l32[r];
      l32[3] = -1, l64[3] = -1, l32[5] = static_cast<std::int32_t>(classes), l64[5] = classes;
      Floats got(rows), want(rows);
      kiln_k_softmax_xent_i32(logits.data(), l32.data(), rows, classes, got.data());
      ref::softmax_cross_entropy(logits.data(), l32.data(), rows, classes, want.data());
      check_relative(got, want, 1e-5, 1e-5);
      CHECK(std::isnan(got[3]));
      CHECK(std::isnan(got[5]));
      kiln_k_softmax_xent_i64(logits.data(), l64.data(), rows, classes, got.data());
      ref::softmax_cross_entropy(logits.data(), l64.data(), rows, classes, want.data());
      check_relative(got, want, 1e-5, 1e-5);
    }
  }
  SECTION("sigmoid cross-entropy") {
    const Floats x = random_floats(1001, rng, -40.0f, 40.0f), z = random_floats(1001, rng, 0.0f, 1.0f);
    Floats got(x.size()), want(x.size());
    kiln_k_sigmoid_xent(x.data(), z.data(), got.data(), static_cast<Index>(x.size()));
    ref::sigmoid_cross_entropy(x.data(), z.data(), want.data(), static_cast<Index>(x.size()));
    check_relative(got, want, 1e-6, 1e-30);
  }
}

TEST_CASE("kiln_k_reduce matches the reference on every axis pattern", "[cpu_kernels]") {
  std::mt19937 rng(5);
  // The patterns the code special-cases, large enough to cross its blocks.
  check_reduce({64, 1000}, {true, false}, rng, false);  // bias gradient
  check_reduce({3001, 37}, {true, false}, rng, false);  // many row blocks
  check_reduce({1, 517}, {true, false}, rng, false);    // the reduced axis has size 1
  check_reduce({37, 4099}, {false, true}, rng, false);  // row sums
  check_reduce({1000003}, {true}, rng, false);          // everything, several row blocks
  check_reduce({64, 28, 28}, {true, true, true}, rng, false);
  check_reduce({64, 10}, {true, true}, rng, true);  // max with a NaN
  check_reduce({19, 300}, {true, false}, rng, true);
  check_reduce({19, 300}, {false, true}, rng, true);
  check_reduce({0, 5}, {true, false}, rng, false);  // empty: sum 0, mean NaN, max lowest
  check_reduce({5, 0}, {true, false}, rng, false);  // nothing to write
  check_reduce({1, 1}, {true, false}, rng, false);
  check_reduce({7}, {false}, rng, false);
  // Random ranks, sizes (1, primes, odd) and masks.
  const Index sizes[] = {1, 2, 3, 5, 7, 8, 13, 16, 17, 31};
  std::uniform_int_distribution<int> pick(0, 9), rank_of(1, 5), bit(0, 1);
  for (int trial = 0; trial < 150; ++trial) {
    const int rank = rank_of(rng);
    std::vector<Index> dims(static_cast<std::size_t>(rank));
    std::vector<bool> mask(dims.size());
    for (std::size_t a = 0; a < dims.size(); ++a) dims[a] = sizes[pick(rng)], mask[a] = bit(rng) == 1;
    check_reduce(dims, mask, rng, trial % 5 == 0);
  }
}

TEST_CASE("kiln_k_transpose and kiln_k_copy2d move bytes exactly as the reference", "[cpu_kernels]") {
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> byte(0, 255), rank_of(1, 5), size_of(1, 9);
  auto check = [&](std::size_t elem, const std::vector<Index>& dims, const std::vector<Index>& perm) {
    const Index total = std::accumulate(dims.begin(), dims.end(), Index{1}, std::multiplies<>());
    std::vector<unsigned char> x(static_cast<std::size_t>(total) * elem);
    for (auto& v : x) v = static_cast<unsigned char>(byte(rng));
    std::vector<unsigned char> got(x.size(), 0), want(x.size(), 1);
    kiln_k_transpose(elem, x.data(), static_cast<int>(dims.size()), dims.data(), perm.data(), got.data());
    ref::transpose(elem, x.data(), dims, perm, want.data());
    CHECK(got == want);
  };
  check(4, {67, 45}, {1, 0});
  check(4, {3, 130, 17}, {0, 2, 1});
  check(8, {2, 3, 4, 5}, {0, 1, 3, 2});
  check(4, {5, 1, 7}, {2, 1, 0});
  check(2, {64, 28, 28, 3}, {0, 3, 1, 2});
  for (int trial = 0; trial < 200; ++trial) {
    const int rank = rank_of(rng);
    std::vector<Index> dims(static_cast<std::size_t>(rank)), perm(dims.size());
    for (Index& d : dims) d = size_of(rng) == 9 ? 17 : size_of(rng);
    std::iota(perm.begin(), perm.end(), Index{0});
    std::shuffle(perm.begin(), perm.end(), rng);
    const std::size_t elems[] = {1, 2, 3, 4, 8, 12};
    const std::size_t elem = elems[static_cast<std::size_t>(trial) % 6];
    INFO("trial " << trial << " elem " << elem);
    check(elem, dims, perm);
  }
  // copy2d: a slice out of wider rows into a concat's wider rows.
  for (const std::size_t elem : {std::size_t{1}, std::size_t{4}, std::size_t{8}}) {
    const Index rows = 7, src_stride = 13, dst_stride = 11, row_elems = 5;
    std::vector<unsigned char> src(static_cast<std::size_t>(rows * src_stride) * elem);
    for (auto& v : src) v = static_cast<unsigned char>(byte(rng));
    std::vector<unsigned char> dst(static_cast<std::size_t>(rows * dst_stride) * elem, 0), want = dst;
    kiln_k_copy2d(elem, src.data() + 2 * elem, src_stride, dst.data() + 3 * elem, dst_stride, rows, row_elems);
    for (Index r = 0; r < rows; ++r)
      std::memcpy(want.data() + static_cast<std::size_t>(r * dst_stride + 3) * elem,
                  src.data() + static_cast<std::size_t>(r * src_stride + 2) * elem,
                  static_cast<std::size_t>(row_elems) * elem);
    CHECK(dst == want);
    std::vector<unsigned char> whole(src.size());
    kiln_k_copy2d(elem, src.data(), src_stride, whole.data(), src_stride, rows, src_stride);
    CHECK(whole == src);
  }
}

TEST_CASE("kiln_k gather, scatter_add, one_hot and argmax match the reference", "[cpu_kernels]") {
  std::mt19937 rng(9);
  const Index rows = 11, row = 7, count = 29;
  const Floats table = random_floats(static_cast<std::size_t>(rows * row), rng);
  std::uniform_int_distribution<int> index(-2, 12);
  std::vector<std::int32_t> i32(count);
  std::vector<std::int64_t> i64(count);
  for (Index i = 0; i < count; ++i) i32[i] = index(rng), i64[i] = i32[i];
  const std::size_t row_bytes = row * sizeof(float);
  Floats got(static_cast<std::size_t>(count * row), 9.0f), want(got.size());
  kiln_k_gather_i32(table.data(), rows, row_bytes, i32.data(), count, got.data());
  ref::gather(table.data(), rows, row_bytes, i32.data(), count, want.data());
  check_exact(got, want);
  kiln_k_gather_i64(table.data(), rows, row_bytes, i64.data(), count, got.data());
  ref::gather(table.data(), rows, row_bytes, i64.data(), count, want.data());
  check_exact(got, want);

  const Floats updates = random_floats(static_cast<std::size_t>(count * row), rng);
  Floats out(static_cast<std::size_t>(rows * row), 9.0f), out_want(out.size());
  kiln_k_scatter_add_i32(i32.data(), count, updates.data(), row, rows, out.data());
  ref::scatter_add(i32.data(), count, updates.data(), row, rows, out_want.data());
  check_exact(out, out_want);  // same order of additions
  kiln_k_scatter_add_i64(i64.data(), count, updates.data(), row, rows, out.data());
  check_exact(out, out_want);

  const Index depth = 10;
  Floats hot(static_cast<std::size_t>(count * depth), 9.0f), hot_want(hot.size());
  kiln_k_one_hot_i32(i32.data(), count, depth, hot.data());
  ref::one_hot(i32.data(), count, depth, hot_want.data());
  check_exact(hot, hot_want);
  kiln_k_one_hot_i64(i64.data(), count, depth, hot.data());
  check_exact(hot, hot_want);

  std::uniform_int_distribution<int> small(-2, 2);
  struct Split {
    Index outer, axis, inner;
  };
  for (const Split s : {Split{1, 1, 1}, Split{5, 10, 1}, Split{3, 7, 130}, Split{2, 1, 5}, Split{4, 33, 3}}) {
    INFO("outer=" << s.outer << " axis=" << s.axis << " inner=" << s.inner);
    Floats x(static_cast<std::size_t>(s.outer * s.axis * s.inner));
    for (float& v : x) v = static_cast<float>(small(rng));  // ties: the first maximum wins
    if (x.size() > 8) x[x.size() / 2] = std::numeric_limits<float>::quiet_NaN(), x[x.size() - 1] = x[x.size() / 2];
    std::vector<std::int32_t> arg(static_cast<std::size_t>(s.outer * s.inner), -7), arg_want(arg.size());
    kiln_k_argmax(x.data(), s.outer, s.axis, s.inner, arg.data());
    ref::argmax(x.data(), s.outer, s.axis, s.inner, arg_want.data());
    CHECK(arg == arg_want);
  }
}

TEST_CASE("kiln_k random draws reproduce the reference (uniform bit for bit)", "[cpu_kernels]") {
  struct Draw {
    std::uint64_t seed, stream, step;
    double a, b;
    Index n;
  };
  const float just_above_one = std::nextafter(1.0f, 2.0f);
  for (const Draw d : {Draw{0, 0, 0, 0.0, 1.0, 1}, Draw{42, 7, 3, -3.0, 7.0, 5},
                       Draw{1ull << 40, 99, 1, 0.1, 0.2, 1001}, Draw{5, 0xFFFFFFFFFFull, 77, 1.0, just_above_one, 4099},
                       Draw{9, 1, 2, 2.0, 2.0, 3}, Draw{123456789, 3, 0, -1e-3, 1e-3, 10000}}) {
    INFO("seed=" << d.seed << " stream=" << d.stream << " step=" << d.step << " n=" << d.n);
    Floats got(static_cast<std::size_t>(d.n), 9.0f), want(got.size());
    kiln_k_random_uniform(d.seed, d.stream, d.step, d.a, d.b, got.data(), d.n);
    ref::random_uniform<float>({d.seed, d.stream, d.step}, d.a, d.b, want.data(), d.n);
    CHECK(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0);
    kiln_k_random_normal(d.seed, d.stream, d.step, d.a, d.b, got.data(), d.n);
    ref::random_normal<float>({d.seed, d.stream, d.step}, d.a, d.b, want.data(), d.n);
    check_relative(got, want, 1e-6, 1e-12);
  }
}

TEST_CASE("kiln_k optimizer steps match the reference", "[cpu_kernels]") {
  std::mt19937 rng(13);
  const Index n = 1031;
  const Floats p = random_floats(n, rng), g = random_floats(n, rng), v = random_floats(n, rng),
               m2 = random_floats(n, rng, 0.0f, 0.1f);
  for (const bool nesterov : {false, true})
    for (const double momentum : {0.0, 0.9})
      for (const double wd : {0.0, 1e-2}) {
        INFO("nesterov=" << nesterov << " momentum=" << momentum << " wd=" << wd);
        Floats got(n), want(n);
        kiln_k_sgd_update(0.05, momentum, nesterov, wd, p.data(), g.data(), v.data(), got.data(), n);
        ref::sgd_update<float>({0.05, momentum, nesterov, wd}, p.data(), g.data(), v.data(), want.data(), nullptr, n);
        check_relative(got, want, 1e-6, 1e-12);
      }
  for (const bool decoupled : {false, true})
    for (const std::uint64_t t : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{5}, std::uint64_t{1000}}) {
      INFO("decoupled=" << decoupled << " t=" << t);
      ref::AdamHyper h;
      h.lr = 1e-3, h.weight_decay = 0.01, h.decoupled = decoupled, h.t = t;
      Floats got(n), want(n);
      kiln_k_adam_update(h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, decoupled, t, p.data(), g.data(), v.data(),
                         m2.data(), got.data(), n);
      ref::adam_update<float>(h, p.data(), g.data(), v.data(), m2.data(), want.data(), nullptr, nullptr, n);
      check_relative(got, want, 1e-6, 1e-12);
    }
}

// Timings for the Fashion CNN's convolutions at batch 64 (hidden: run with "[.cpu_bench]").
TEST_CASE("kiln_k conv and matmul timings (Fashion CNN shapes, batch 64)", "[.cpu_bench]") {
  using Clock = std::chrono::steady_clock;
  std::mt19937 rng(1);
  const ConvCase layers[] = {{64, 28, 28, 1, 5, 5, 32, 1, 1, true}, {64, 14, 14, 32, 5, 5, 64, 1, 1, true}};
  for (int threads : {1, 2}) {
    kiln::runtime::set_thread_count(threads);
    for (const ConvCase& cc : layers) {
      const kiln_conv_geometry g =
          to_c(ref::conv2d_geometry(cc.n, cc.h, cc.w, cc.c, cc.kh, cc.kw, cc.f, cc.stride, cc.dilation, cc.same));
      const Floats x = random_floats(static_cast<std::size_t>(g.n * g.h * g.w * g.c), rng);
      const Floats w = random_floats(static_cast<std::size_t>(g.kh * g.kw * g.c * g.f), rng);
      Floats y(static_cast<std::size_t>(g.n * g.oh * g.ow * g.f)), dx(x.size()), dw(w.size());
      Scratch s1(kiln_k_conv2d_scratch(&g, threads)), s2(kiln_k_conv2d_grad_input_scratch(&g, threads)),
          s3(kiln_k_conv2d_grad_filter_scratch(&g, threads));
      auto time = [&](auto&& f) {
        f();
        double best = 1e30;
        for (int rep = 0; rep < 5; ++rep) {
          const auto t0 = Clock::now();
          f();
          best = std::min(best, std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        }
        return best;
      };
      const double fwd = time([&] { kiln_k_conv2d(&g, x.data(), w.data(), y.data(), s1.get(), threads); });
      const double gin = time([&] { kiln_k_conv2d_grad_input(&g, y.data(), w.data(), dx.data(), s2.get(), threads); });
      const double gfl = time([&] { kiln_k_conv2d_grad_filter(&g, x.data(), y.data(), dw.data(), s3.get(), threads); });
      const double gflop = 2.0 * double(g.n * g.oh * g.ow) * double(g.kh * g.kw * g.c * g.f) * 1e-9;
      WARN("conv " << g.h << "x" << g.w << "x" << g.c << " -> " << g.f << " threads " << threads << ": forward " << fwd
                   << " ms (" << gflop / fwd * 1e3 << " GFLOP/s), grad input " << gin << " ms, grad filter " << gfl
                   << " ms");
    }
    const Floats a = random_floats(64 * 784, rng), b = random_floats(784 * 128, rng), bias = random_floats(128, rng);
    Floats c(64 * 128);
    Scratch s(kiln_k_matmul_scratch(64, 128, 784, threads));
    auto t0 = Clock::now();
    for (int rep = 0; rep < 20; ++rep)
      kiln_k_matmul(1, 64, 128, 784, false, false, a.data(), 0, b.data(), 0, c.data(), bias.data(), 1, nullptr, s.get(),
                    threads);
    const double matmul_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count() / 20;
    WARN("matmul 64x128x784 +bias+relu threads " << threads << ": " << matmul_ms << " ms");
    Floats big(64 * 1000);
    Floats sums(1000);
    const std::int64_t dims[] = {64, 1000};
    const std::uint8_t mask[] = {1, 0};
    t0 = Clock::now();
    for (int rep = 0; rep < 100; ++rep) kiln_k_reduce(0, big.data(), 2, dims, mask, sums.data());
    const double reduce_us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / 100;
    WARN("reduce_sum axis 0 of [64, 1000]: " << reduce_us << " us");
  }
  kiln::runtime::set_thread_count(kiln::runtime::thread_count_from_environment());
}
