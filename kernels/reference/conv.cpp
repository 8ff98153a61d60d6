// Direct convolution loops. The three kernels walk the same (n, oh, ow, i, j) taps so
// their index arithmetic is visibly the same; the gradients are plain adjoints of conv2d.
#include "kernels/reference/conv.h"

#include <algorithm>
#include <vector>

namespace kiln::kernels::ref {

WindowAxis window_axis(std::int64_t in, std::int64_t k, std::int64_t stride, std::int64_t dilation, bool same) {
  const std::int64_t span = (k - 1) * dilation + 1;
  if (!same) return {(in - span) / stride + 1, 0};
  const std::int64_t out = (in - 1) / stride + 1;
  const std::int64_t pad_total = std::max<std::int64_t>((out - 1) * stride + span - in, 0);
  return {out, pad_total / 2};
}

Conv2dGeometry conv2d_geometry(std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c, std::int64_t kh,
                               std::int64_t kw, std::int64_t f, std::int64_t stride, std::int64_t dilation, bool same) {
  Conv2dGeometry g;
  g.n = n, g.h = h, g.w = w, g.c = c, g.kh = kh, g.kw = kw, g.f = f;
  g.stride = stride, g.dilation = dilation;
  const WindowAxis rows = window_axis(h, kh, stride, dilation, same);
  const WindowAxis cols = window_axis(w, kw, stride, dilation, same);
  g.oh = rows.out, g.pad_top = rows.pad_before;
  g.ow = cols.out, g.pad_left = cols.pad_before;
  return g;
}

namespace {

// Calls tap(x_offset, w_offset, y_offset) for every in-bounds tap and channel pair
// (c, f), innermost over f so filter and output rows are contiguous.
template <typename Tap>
void for_each_tap(const Conv2dGeometry& g, Tap&& tap) {
  for (std::int64_t b = 0; b < g.n; ++b) {
    for (std::int64_t oy = 0; oy < g.oh; ++oy) {
      for (std::int64_t ox = 0; ox < g.ow; ++ox) {
        const std::int64_t y_base = ((b * g.oh + oy) * g.ow + ox) * g.f;
        for (std::int64_t i = 0; i < g.kh; ++i) {
          const std::int64_t iy = oy * g.stride + i * g.dilation - g.pad_top;
          if (iy < 0 || iy >= g.h) continue;
          for (std::int64_t j = 0; j < g.kw; ++j) {
            const std::int64_t ix = ox * g.stride + j * g.dilation - g.pad_left;
            if (ix < 0 || ix >= g.w) continue;
            const std::int64_t x_base = ((b * g.h + iy) * g.w + ix) * g.c;
            const std::int64_t w_base = (i * g.kw + j) * g.c * g.f;
            for (std::int64_t ch = 0; ch < g.c; ++ch) tap(x_base + ch, w_base + ch * g.f, y_base);
          }
        }
      }
    }
  }
}

}  // namespace

template <typename T>
void conv2d(const Conv2dGeometry& g, const T* x, const T* w, T* y) {
  // Accumulate in double, then round once.
  std::vector<double> acc(static_cast<std::size_t>(g.n * g.oh * g.ow * g.f), 0.0);
  for_each_tap(g, [&](std::int64_t xo, std::int64_t wo, std::int64_t yo) {
    const double xv = static_cast<double>(x[xo]);
    for (std::int64_t k = 0; k < g.f; ++k) acc[static_cast<std::size_t>(yo + k)] += xv * static_cast<double>(w[wo + k]);
  });
  std::transform(acc.begin(), acc.end(), y, [](double v) { return static_cast<T>(v); });
}

template <typename T>
void conv2d_grad_input(const Conv2dGeometry& g, const T* dy, const T* w, T* dx) {
  std::vector<double> acc(static_cast<std::size_t>(g.n * g.h * g.w * g.c), 0.0);
  for_each_tap(g, [&](std::int64_t xo, std::int64_t wo, std::int64_t yo) {
    double sum = 0;
    for (std::int64_t k = 0; k < g.f; ++k) sum += static_cast<double>(dy[yo + k]) * static_cast<double>(w[wo + k]);
    acc[static_cast<std::size_t>(xo)] += sum;
  });
  std::transform(acc.begin(), acc.end(), dx, [](double v) { return static_cast<T>(v); });
}

template <typename T>
void conv2d_grad_filter(const Conv2dGeometry& g, const T* x, const T* dy, T* dw) {
  std::vector<double> acc(static_cast<std::size_t>(g.kh * g.kw * g.c * g.f), 0.0);
  for_each_tap(g, [&](std::int64_t xo, std::int64_t wo, std::int64_t yo) {
    const double xv = static_cast<double>(x[xo]);
    for (std::int64_t k = 0; k < g.f; ++k)
      acc[static_cast<std::size_t>(wo + k)] += xv * static_cast<double>(dy[yo + k]);
  });
  std::transform(acc.begin(), acc.end(), dw, [](double v) { return static_cast<T>(v); });
}

template void conv2d<float>(const Conv2dGeometry&, const float*, const float*, float*);
template void conv2d<double>(const Conv2dGeometry&, const double*, const double*, double*);
template void conv2d_grad_input<float>(const Conv2dGeometry&, const float*, const float*, float*);
template void conv2d_grad_input<double>(const Conv2dGeometry&, const double*, const double*, double*);
template void conv2d_grad_filter<float>(const Conv2dGeometry&, const float*, const float*, float*);
template void conv2d_grad_filter<double>(const Conv2dGeometry&, const double*, const double*, double*);

}  // namespace kiln::kernels::ref
