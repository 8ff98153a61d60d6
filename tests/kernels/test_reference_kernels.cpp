// Hand-computed cases for every family of reference kernels, plus independent naive
// formulas (written differently from the kernels) for convolution, and Philox pinned to
// Random123's known-answer vectors so a change to the generator cannot pass unseen.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <set>
#include <vector>

#include "kernels/reference/conv.h"
#include "kernels/reference/elementwise.h"
#include "kernels/reference/indexing.h"
#include "kernels/reference/layout.h"
#include "kernels/reference/matmul.h"
#include "kernels/reference/optimizers.h"
#include "kernels/reference/philox.h"
#include "kernels/reference/pooling.h"
#include "kernels/reference/random.h"
#include "kernels/reference/reduce.h"
#include "kernels/reference/softmax.h"

using namespace kiln::kernels::ref;
using D = std::vector<std::int64_t>;
using V = std::vector<double>;

namespace {

V iota(std::size_t n, double start = 0) {
  V v(n);
  std::iota(v.begin(), v.end(), start);
  return v;
}

void check_close(const V& got, const V& want, double eps = 1e-9) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i);
    CHECK(got[i] == Approx(want[i]).margin(eps));
  }
}

}  // namespace

TEST_CASE("matmul: the four transpose cases give A @ B", "[kernels]") {
  const V a{1, 2, 3, 4, 5, 6};       // [2, 3]
  const V a_t{1, 4, 2, 5, 3, 6};     // [3, 2], A^T stored
  const V b{7, 8, 9, 10, 11, 12};    // [3, 2]
  const V b_t{7, 9, 11, 8, 10, 12};  // [2, 3], B^T stored
  const V want{58, 64, 139, 154};
  V out(4);
  const D o{2, 2};
  matmul(a.data(), D{2, 3}, b.data(), D{3, 2}, false, false, out.data(), o);
  check_close(out, want);
  matmul(a_t.data(), D{3, 2}, b.data(), D{3, 2}, true, false, out.data(), o);
  check_close(out, want);
  matmul(a.data(), D{2, 3}, b_t.data(), D{2, 3}, false, true, out.data(), o);
  check_close(out, want);
  matmul(a_t.data(), D{3, 2}, b_t.data(), D{2, 3}, true, true, out.data(), o);
  check_close(out, want);
}

TEST_CASE("matmul: batched with broadcast leading dims, and vectors", "[kernels]") {
  // [2, 2, 3] @ [3, 2]: the right operand repeats over the batch.
  V a = iota(12, 1);
  const V b{7, 8, 9, 10, 11, 12};
  V out(8);
  matmul(a.data(), D{2, 2, 3}, b.data(), D{3, 2}, false, false, out.data(), D{2, 2, 2});
  // Second batch: [[7,8,9],[10,11,12]] @ b.
  check_close(V(out.begin() + 4, out.end()), {220, 244, 301, 334});
  // [3] @ [3, 2] -> [2]; [2, 3] @ [3] -> [2].
  const V v{1, 1, 1};
  V r(2);
  matmul(v.data(), D{3}, b.data(), D{3, 2}, false, false, r.data(), D{2});
  check_close(r, {27, 30});
  matmul(b.data(), D{2, 3}, v.data(), D{3}, false, false, r.data(), D{2});
  check_close(r, {24, 33});
  // Integers too.
  const std::vector<std::int32_t> ia{1, 2, 3, 4}, ib{5, 6, 7, 8};
  std::vector<std::int32_t> io(4);
  matmul(ia.data(), D{2, 2}, ib.data(), D{2, 2}, false, false, io.data(), D{2, 2});
  CHECK(io == std::vector<std::int32_t>{19, 22, 43, 50});
}

namespace {

// Independent naive convolution: pads x explicitly, then slides the window.
V naive_conv(const V& x, const D& xd, const V& w, const D& wd, std::int64_t stride, std::int64_t pad_top,
             std::int64_t pad_left, std::int64_t oh, std::int64_t ow) {
  const std::int64_t n = xd[0], h = xd[1], wi = xd[2], c = xd[3], kh = wd[0], kw = wd[1], f = wd[3];
  const std::int64_t ph = h + 2 * kh, pw = wi + 2 * kw;  // generous padding
  V padded(static_cast<std::size_t>(n * ph * pw * c), 0.0);
  for (std::int64_t b = 0; b < n; ++b)
    for (std::int64_t y = 0; y < h; ++y)
      for (std::int64_t xx = 0; xx < wi; ++xx)
        for (std::int64_t ch = 0; ch < c; ++ch)
          padded[static_cast<std::size_t>(((b * ph + y + pad_top) * pw + xx + pad_left) * c + ch)] =
              x[static_cast<std::size_t>(((b * h + y) * wi + xx) * c + ch)];
  V out(static_cast<std::size_t>(n * oh * ow * f), 0.0);
  for (std::int64_t b = 0; b < n; ++b)
    for (std::int64_t oy = 0; oy < oh; ++oy)
      for (std::int64_t ox = 0; ox < ow; ++ox)
        for (std::int64_t k = 0; k < f; ++k) {
          double s = 0;
          for (std::int64_t i = 0; i < kh; ++i)
            for (std::int64_t j = 0; j < kw; ++j)
              for (std::int64_t ch = 0; ch < c; ++ch)
                s += padded[static_cast<std::size_t>(((b * ph + oy * stride + i) * pw + ox * stride + j) * c + ch)] *
                     w[static_cast<std::size_t>(((i * kw + j) * c + ch) * f + k)];
          out[static_cast<std::size_t>(((b * oh + oy) * ow + ox) * f + k)] = s;
        }
  return out;
}

double dot(const V& a, const V& b) {
  return std::inner_product(a.begin(), a.end(), b.begin(), 0.0);
}

}  // namespace

TEST_CASE("conv2d: 3x3, padding same, stride 2, by hand and against a naive formula", "[kernels]") {
  const Conv2dGeometry g = conv2d_geometry(1, 5, 5, 1, 3, 3, 1, 2, 1, true);
  CHECK(g.oh == 3);  // ceil(5 / 2)
  CHECK(g.ow == 3);
  CHECK(g.pad_top == 1);  // (3 - 1) * 2 + 3 - 5 = 2 in all, 1 before
  const V x = iota(25, 1);
  const V ones(9, 1.0);
  V y(9);
  conv2d(g, x.data(), ones.data(), y.data());
  CHECK(y[0] == 16);   // 1 + 2 + 6 + 7: the top-left window half off the image
  CHECK(y[4] == 117);  // 7+8+9 + 12+13+14 + 17+18+19
  CHECK(y[8] == 88);   // 19 + 20 + 24 + 25
  check_close(y, naive_conv(x, {1, 5, 5, 1}, ones, {3, 3, 1, 1}, 2, 1, 1, 3, 3));

  // Several channels and filters, a batch of 2, odd values.
  const Conv2dGeometry g2 = conv2d_geometry(2, 6, 5, 2, 3, 3, 3, 2, 1, true);
  V x2(2 * 6 * 5 * 2), w2(3 * 3 * 2 * 3);
  for (std::size_t i = 0; i < x2.size(); ++i) x2[i] = std::sin(static_cast<double>(i));
  for (std::size_t i = 0; i < w2.size(); ++i) w2[i] = std::cos(static_cast<double>(i) * 0.7);
  V y2(static_cast<std::size_t>(2 * g2.oh * g2.ow * 3));
  conv2d(g2, x2.data(), w2.data(), y2.data());
  check_close(y2, naive_conv(x2, {2, 6, 5, 2}, w2, {3, 3, 2, 3}, 2, g2.pad_top, g2.pad_left, g2.oh, g2.ow));
}

TEST_CASE("conv2d gradients are the adjoints of conv2d", "[kernels]") {
  // <conv(x, w), dy> = <x, grad_input(dy, w)> = <w, grad_filter(x, dy)> for every x, w, dy.
  for (const bool same : {false, true}) {
    for (const std::int64_t dilation : {1, 2}) {
      const Conv2dGeometry g = conv2d_geometry(2, 7, 6, 2, 3, 2, 3, 2, dilation, same);
      V x(static_cast<std::size_t>(g.n * g.h * g.w * g.c)), w(static_cast<std::size_t>(g.kh * g.kw * g.c * g.f));
      V dy(static_cast<std::size_t>(g.n * g.oh * g.ow * g.f));
      for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(1.3 * static_cast<double>(i));
      for (std::size_t i = 0; i < w.size(); ++i) w[i] = std::cos(0.9 * static_cast<double>(i));
      for (std::size_t i = 0; i < dy.size(); ++i) dy[i] = std::sin(0.4 * static_cast<double>(i) + 1);
      V y(dy.size()), dx(x.size()), dw(w.size());
      conv2d(g, x.data(), w.data(), y.data());
      conv2d_grad_input(g, dy.data(), w.data(), dx.data());
      conv2d_grad_filter(g, x.data(), dy.data(), dw.data());
      INFO("same=" << same << " dilation=" << dilation);
      CHECK(dot(y, dy) == Approx(dot(x, dx)).epsilon(1e-12));
      CHECK(dot(y, dy) == Approx(dot(w, dw)).epsilon(1e-12));
    }
  }
}

TEST_CASE("pooling: max and average with their gradients", "[kernels]") {
  const PoolGeometry g = pool_geometry(1, 4, 4, 1, 2, 0, false);
  CHECK(g.stride == 2);
  const V x = iota(16, 1);
  V y(4), dx(16);
  max_pool2d(g, x.data(), y.data());
  check_close(y, {6, 8, 14, 16});
  avg_pool2d(g, x.data(), y.data());
  check_close(y, {3.5, 5.5, 11.5, 13.5});
  const V dy{1, 2, 3, 4};
  max_pool2d_grad(g, x.data(), dy.data(), dx.data());
  V want(16, 0.0);
  want[5] = 1, want[7] = 2, want[13] = 3, want[15] = 4;
  check_close(dx, want);
  avg_pool2d_grad(g, dy.data(), dx.data());
  CHECK(dx[0] == 0.25);
  CHECK(dx[5] == 0.25);
  CHECK(dx[15] == 1.0);

  // "same" padding: padded taps take no part; the average counts in-bounds taps only.
  const PoolGeometry s = pool_geometry(1, 3, 3, 1, 2, 2, true);
  CHECK(s.oh == 2);
  const V x3 = iota(9, 1);
  V y3(4);
  avg_pool2d(s, x3.data(), y3.data());
  check_close(y3, {3, 4.5, 7.5, 9});
  max_pool2d(s, x3.data(), y3.data());
  check_close(y3, {5, 6, 8, 9});
}

TEST_CASE("softmax and log_softmax: rows sum to 1, stable for large logits", "[kernels]") {
  const V x{1, 2, 3, 1000, 1001, 1002};
  V y(6), ly(6);
  softmax(x.data(), 2, 3, 1, y.data());
  log_softmax(x.data(), 2, 3, 1, ly.data());
  check_close(y,
              {0.09003057317038046, 0.24472847105479767, 0.6652409557748219, 0.09003057317038046, 0.24472847105479767,
               0.6652409557748219},
              1e-12);
  CHECK(y[0] + y[1] + y[2] == Approx(1.0));
  for (std::size_t i = 0; i < 6; ++i) CHECK(ly[i] == Approx(std::log(y[i])));
  // Along the first axis of [2, 3]: each column sums to 1.
  const V m{0, 1, 2, 2, 1, 0};
  V ym(6);
  softmax(m.data(), 1, 2, 3, ym.data());
  for (std::size_t c = 0; c < 3; ++c) CHECK(ym[c] + ym[c + 3] == Approx(1.0));
  CHECK(ym[1] == Approx(0.5));
  // Floats as well.
  const std::vector<float> xf{1, 2, 3};
  std::vector<float> yf(3);
  softmax(xf.data(), 1, 3, 1, yf.data());
  CHECK(yf[2] == Approx(0.66524096f));
}

TEST_CASE("cross-entropy of known values", "[kernels]") {
  const V logits{1, 2, 3, 1, 2, 3, 0, 0, 0};
  const std::vector<std::int32_t> labels{2, 0, 7};
  V loss(3);
  softmax_cross_entropy(logits.data(), labels.data(), 3, 3, loss.data());
  CHECK(loss[0] == Approx(0.40760596444438));
  CHECK(loss[1] == Approx(2.40760596444438));
  CHECK(std::isnan(loss[2]));  // label 7 of 3 classes

  const V x{0, 100, -100, 2, -800};
  const V z{1, 1, 1, 0.25, 0};
  V s(5);
  sigmoid_cross_entropy(x.data(), z.data(), s.data(), 5);
  CHECK(s[0] == Approx(std::log(2.0)));
  CHECK(s[1] == Approx(0.0).margin(1e-40));
  CHECK(s[2] == Approx(100.0));
  CHECK(s[3] == Approx(1.626928));  // -z log(sigmoid 2) - (1 - z) log(1 - sigmoid 2)
  CHECK(s[4] == 0.0);               // no overflow for very negative logits
}

TEST_CASE("elementwise: broadcasting, unary edge cases, compare, select, cast", "[kernels]") {
  const V a = iota(6);  // [2, 3]
  const V b{10, 20, 30};
  V out(6);
  binary(BinaryOp::kAdd, a.data(), D{2, 3}, b.data(), D{3}, out.data(), D{2, 3});
  check_close(out, {10, 21, 32, 13, 24, 35});
  // [2, 1] * [1, 3] -> [2, 3].
  const V col{1, 2}, row{1, 10, 100};
  binary(BinaryOp::kMul, col.data(), D{2, 1}, row.data(), D{1, 3}, out.data(), D{2, 3});
  check_close(out, {1, 10, 100, 2, 20, 200});
  // Scalar against a tensor, both ways round.
  const V two{2};
  binary(BinaryOp::kSub, two.data(), D{}, a.data(), D{2, 3}, out.data(), D{2, 3});
  check_close(out, {2, 1, 0, -1, -2, -3});

  const V ext{-1000, 1000, -2, 0};
  V u(4);
  unary(UnaryOp::kSigmoid, ext.data(), u.data(), 4);
  check_close(u, {0, 1, 1 / (1 + std::exp(2.0)), 0.5}, 1e-15);
  unary(UnaryOp::kRelu, ext.data(), u.data(), 4);
  check_close(u, {0, 1000, 0, 0});

  const std::vector<std::int32_t> ia{7, -7, 5}, ib{2, 2, 0};
  std::vector<std::int32_t> io(3);
  binary(BinaryOp::kDiv, ia.data(), D{3}, ib.data(), D{3}, io.data(), D{3});
  CHECK(io == std::vector<std::int32_t>{3, -3, 0});  // C++ truncation; x / 0 = 0

  bool mask[6];
  compare(CompareOp::kGreater, a.data(), D{2, 3}, two.data(), D{}, mask, D{2, 3});
  CHECK((!mask[0] && !mask[2] && mask[3] && mask[5]));
  select(mask, D{2, 3}, a.data(), D{2, 3}, two.data(), D{}, out.data(), D{2, 3});
  check_close(out, {2, 2, 2, 3, 4, 5});

  const std::vector<float> f{1.9f, -1.9f, 1e20f, NAN};
  std::vector<std::int32_t> fi(4);
  cast(f.data(), fi.data(), 4);
  CHECK(fi == std::vector<std::int32_t>{1, -1, INT32_MAX, 0});
}

TEST_CASE("reductions over axes", "[kernels]") {
  const V x = iota(12);  // [2, 3, 2]
  const D dims{2, 3, 2};
  V out(6);
  const bool axis1[] = {false, true, false};
  reduce(ReduceOp::kSum, x.data(), dims, axis1, out.data());
  check_close(V(out.begin(), out.begin() + 4), {6, 9, 24, 27});
  const bool axes02[] = {true, false, true};
  reduce(ReduceOp::kSum, x.data(), dims, axes02, out.data());
  check_close(V(out.begin(), out.begin() + 3), {14, 22, 30});
  const bool all[] = {true, true, true};
  reduce(ReduceOp::kMean, x.data(), dims, all, out.data());
  CHECK(out[0] == 5.5);
  const bool last[] = {false, false, true};
  reduce(ReduceOp::kMax, x.data(), dims, last, out.data());
  check_close(out, {1, 3, 5, 7, 9, 11});
  const std::vector<std::int32_t> ix{3, -4, 5, 1};
  std::int32_t imax = 0;
  const bool both[] = {true, true};
  reduce(ReduceOp::kMax, ix.data(), D{2, 2}, both, &imax);
  CHECK(imax == 5);
}

TEST_CASE("gather, scatter_add, one_hot, argmax", "[kernels]") {
  const V table{0, 1, 10, 11, 20, 21};  // [3, 2]
  const std::vector<std::int64_t> idx{2, 0, 2, 5};
  V g(8);
  gather(table.data(), 3, 2 * sizeof(double), idx.data(), 4, g.data());
  check_close(g, {20, 21, 0, 1, 20, 21, 0, 0});  // index 5 is out of range: a zero row

  const V updates{1, 2, 3, 4, 5, 6, 7, 8};  // [4, 2]
  V s(6);
  scatter_add(idx.data(), 4, updates.data(), 2, 3, s.data());
  check_close(s, {3, 4, 0, 0, 6, 8});  // rows 0 and 2 (twice); 5 skipped

  const std::vector<std::int32_t> labels{1, 0, 3};
  std::vector<float> oh(9);
  one_hot(labels.data(), 3, 3, oh.data());
  CHECK(oh == std::vector<float>{0, 1, 0, 1, 0, 0, 0, 0, 0});

  const V m{1, 5, 5, 7, 2, 0};  // [2, 3]
  std::int32_t am[3];
  argmax(m.data(), 2, 3, 1, am);  // along the last axis: the first maximum wins
  CHECK(am[0] == 1);
  CHECK(am[1] == 0);
  argmax(m.data(), 1, 2, 3, am);  // along the first axis
  CHECK((am[0] == 1 && am[1] == 0 && am[2] == 0));
}

TEST_CASE("layout: transpose, broadcast_to, slice, concat", "[kernels]") {
  const V x = iota(6);  // [2, 3]
  V t(6);
  const D perm{1, 0};
  transpose(sizeof(double), x.data(), D{2, 3}, perm, t.data());
  check_close(t, {0, 3, 1, 4, 2, 5});
  const V y = iota(24);  // [2, 3, 4] -> perm [2, 0, 1] gives [4, 2, 3]
  V yt(24);
  transpose(sizeof(double), y.data(), D{2, 3, 4}, D{2, 0, 1}, yt.data());
  CHECK(yt[1] == 4);   // out[0, 0, 1] = y[0, 1, 0]
  CHECK(yt[3] == 12);  // out[0, 1, 0] = y[1, 0, 0]
  CHECK(yt[23] == 23);

  V bt(6);
  const V r{7, 8, 9};
  broadcast_to(sizeof(double), r.data(), D{3}, bt.data(), D{2, 3});
  check_close(bt, {7, 8, 9, 7, 8, 9});

  V sl(4);
  slice(sizeof(double), x.data(), D{2, 3}, 1, 1, 3, sl.data());
  check_close(sl, {1, 2, 4, 5});

  const V p{100, 200};  // [2, 1]
  const void* parts[] = {x.data(), p.data()};
  const D lengths{3, 1};
  V cat(8);
  concat(sizeof(double), parts, lengths, 2, 1, cat.data());
  check_close(cat, {0, 1, 2, 100, 3, 4, 5, 200});
}

TEST_CASE("Philox4x32-10 matches Random123's known-answer vectors", "[kernels][philox]") {
  CHECK(philox4x32_10({0, 0, 0, 0}, {0, 0}) == PhiloxCounter{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8});
  CHECK(philox4x32_10({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}) ==
        PhiloxCounter{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd});
  CHECK(philox4x32_10({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}) ==
        PhiloxCounter{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1});
}

TEST_CASE("random draws: pinned values, determinism, streams and steps differ", "[kernels][philox]") {
  // Seed 0, stream 0, step 0, block 0 is the all-zero Philox block: the first uniform is
  // (0x6627e8d5 >> 8) / 2^24 and the first normal comes from its first two words.
  float u[8];
  random_uniform<float>({0, 0, 0}, 0.0, 1.0, u, 8);
  CHECK(u[0] == 0.3990464210510254f);
  double n[2];
  random_normal<double>({0, 0, 0}, 0.0, 1.0, n, 2);
  CHECK(n[0] == Approx(0.9911374751458971).epsilon(1e-14));

  float again[8], other_stream[8], other_step[8], other_seed[8];
  random_uniform<float>({0, 0, 0}, 0.0, 1.0, again, 8);
  random_uniform<float>({0, 1, 0}, 0.0, 1.0, other_stream, 8);
  random_uniform<float>({0, 0, 1}, 0.0, 1.0, other_step, 8);
  random_uniform<float>({1, 0, 0}, 0.0, 1.0, other_seed, 8);
  CHECK(std::equal(u, u + 8, again));
  CHECK(!std::equal(u, u + 8, other_stream));
  CHECK(!std::equal(u, u + 8, other_step));
  CHECK(!std::equal(u, u + 8, other_seed));

  // Element i does not depend on how many are drawn.
  float longer[13];
  random_uniform<float>({0, 0, 0}, 0.0, 1.0, longer, 13);
  CHECK(std::equal(u, u + 8, longer));

  // Range and rough moments.
  std::vector<double> big(20000);
  random_uniform<double>({42, 7, 3}, -2.0, 3.0, big.data(), 20000);
  double lo = 1e9, hi = -1e9, sum = 0;
  for (const double v : big) lo = std::min(lo, v), hi = std::max(hi, v), sum += v;
  CHECK(lo >= -2.0);
  CHECK(hi < 3.0);
  CHECK(sum / 20000 == Approx(0.5).margin(0.05));
  random_normal<double>({42, 7, 3}, 1.0, 2.0, big.data(), 20000);
  double mean = 0, sq = 0;
  for (const double v : big) mean += v / 20000;
  for (const double v : big) sq += (v - mean) * (v - mean) / 20000;
  CHECK(mean == Approx(1.0).margin(0.05));
  CHECK(std::sqrt(sq) == Approx(2.0).margin(0.05));
}

TEST_CASE("optimizer updates", "[kernels]") {
  const V p{1, 2}, g{0.5, -1}, v{0.1, 0.2};
  V np(2), nv(2);
  sgd_update(SgdHyper{0.1, 0.9, false, 0.0}, p.data(), g.data(), v.data(), np.data(), nv.data(), 2);
  check_close(nv, {0.59, -0.82});  // 0.9 * v + g
  check_close(np, {1 - 0.059, 2 + 0.082});
  sgd_update(SgdHyper{0.1, 0.9, true, 0.0}, p.data(), g.data(), v.data(), np.data(), nv.data(), 2);
  check_close(np, {1 - 0.1 * (0.5 + 0.9 * 0.59), 2 - 0.1 * (-1 + 0.9 * -0.82)});
  sgd_update(SgdHyper{0.1, 0.0, false, 0.5}, p.data(), g.data(), v.data(), np.data(), static_cast<double*>(nullptr), 2);
  check_close(np, {1 - 0.1 * (0.5 + 0.5), 2 - 0.1 * (-1 + 1)});

  // Adam's first step moves each weight by about lr against the gradient's sign.
  const V zero{0, 0};
  V nm(2), nvv(2);
  AdamHyper h;
  h.lr = 0.01;
  adam_update(h, p.data(), g.data(), zero.data(), zero.data(), np.data(), nm.data(), nvv.data(), 2);
  check_close(np, {1 - 0.01, 2 + 0.01}, 1e-7);
  check_close(nm, {0.05, -0.1});
  check_close(nvv, {0.001 * 0.25, 0.001 * 1});
  // AdamW: the decay acts on the weight, not through the moments.
  h.weight_decay = 0.1;
  h.decoupled = true;
  adam_update(h, p.data(), g.data(), zero.data(), zero.data(), np.data(), nm.data(), nvv.data(), 2);
  check_close(np, {1 - 0.01 - 0.001, 2 + 0.01 - 0.002}, 1e-7);
  check_close(nm, {0.05, -0.1});
}
