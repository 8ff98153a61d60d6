// Pooling loops: one (n, oh, ow, c) output at a time, its window clipped to the input.
#include "kernels/reference/pooling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/reference/conv.h"

namespace kiln::kernels::ref {

PoolGeometry pool_geometry(std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c, std::int64_t size,
                           std::int64_t stride, bool same) {
  PoolGeometry g;
  g.n = n, g.h = h, g.w = w, g.c = c, g.size = size;
  g.stride = stride == 0 ? size : stride;
  const WindowAxis rows = window_axis(h, size, g.stride, 1, same);
  const WindowAxis cols = window_axis(w, size, g.stride, 1, same);
  g.oh = rows.out, g.pad_top = rows.pad_before;
  g.ow = cols.out, g.pad_left = cols.pad_before;
  return g;
}

namespace {

// The in-bounds window [y0, y1) x [x0, x1) of output (oy, ox).
struct Window {
  std::int64_t y0, y1, x0, x1;
  std::int64_t taps() const { return (y1 - y0) * (x1 - x0); }
};

Window window_of(const PoolGeometry& g, std::int64_t oy, std::int64_t ox) {
  const std::int64_t top = oy * g.stride - g.pad_top;
  const std::int64_t left = ox * g.stride - g.pad_left;
  return {std::max<std::int64_t>(top, 0), std::min(top + g.size, g.h), std::max<std::int64_t>(left, 0),
          std::min(left + g.size, g.w)};
}

// Calls visit(window, y_offset, x_channel_base) for every output element.
template <typename Visit>
void for_each_output(const PoolGeometry& g, Visit&& visit) {
  for (std::int64_t b = 0; b < g.n; ++b) {
    for (std::int64_t oy = 0; oy < g.oh; ++oy) {
      for (std::int64_t ox = 0; ox < g.ow; ++ox) {
        const Window win = window_of(g, oy, ox);
        for (std::int64_t ch = 0; ch < g.c; ++ch) {
          visit(win, ((b * g.oh + oy) * g.ow + ox) * g.c + ch, b * g.h * g.w * g.c + ch);
        }
      }
    }
  }
}

// Offset of the window's maximum (the first on ties; a NaN counts as the maximum).
template <typename T>
std::int64_t argmax_in_window(const PoolGeometry& g, const T* x, const Window& win, std::int64_t base) {
  std::int64_t best = -1;
  for (std::int64_t iy = win.y0; iy < win.y1; ++iy) {
    for (std::int64_t ix = win.x0; ix < win.x1; ++ix) {
      const std::int64_t o = base + (iy * g.w + ix) * g.c;
      if (best < 0 || x[o] > x[best] || (std::isnan(x[o]) && !std::isnan(x[best]))) best = o;
    }
  }
  return best;
}

}  // namespace

template <typename T>
void max_pool2d(const PoolGeometry& g, const T* x, T* y) {
  for_each_output(g, [&](const Window& win, std::int64_t yo, std::int64_t base) {
    const std::int64_t best = argmax_in_window(g, x, win, base);
    y[yo] = best < 0 ? std::numeric_limits<T>::lowest() : x[best];
  });
}

template <typename T>
void avg_pool2d(const PoolGeometry& g, const T* x, T* y) {
  for_each_output(g, [&](const Window& win, std::int64_t yo, std::int64_t base) {
    double sum = 0;
    for (std::int64_t iy = win.y0; iy < win.y1; ++iy) {
      for (std::int64_t ix = win.x0; ix < win.x1; ++ix) sum += static_cast<double>(x[base + (iy * g.w + ix) * g.c]);
    }
    y[yo] = static_cast<T>(sum / static_cast<double>(std::max<std::int64_t>(win.taps(), 1)));
  });
}

template <typename T>
void max_pool2d_grad(const PoolGeometry& g, const T* x, const T* dy, T* dx) {
  std::vector<double> acc(static_cast<std::size_t>(g.n * g.h * g.w * g.c), 0.0);
  for_each_output(g, [&](const Window& win, std::int64_t yo, std::int64_t base) {
    const std::int64_t best = argmax_in_window(g, x, win, base);
    if (best >= 0) acc[static_cast<std::size_t>(best)] += static_cast<double>(dy[yo]);
  });
  std::transform(acc.begin(), acc.end(), dx, [](double v) { return static_cast<T>(v); });
}

template <typename T>
void avg_pool2d_grad(const PoolGeometry& g, const T* dy, T* dx) {
  std::vector<double> acc(static_cast<std::size_t>(g.n * g.h * g.w * g.c), 0.0);
  for_each_output(g, [&](const Window& win, std::int64_t yo, std::int64_t base) {
    const double share = static_cast<double>(dy[yo]) / static_cast<double>(std::max<std::int64_t>(win.taps(), 1));
    for (std::int64_t iy = win.y0; iy < win.y1; ++iy) {
      for (std::int64_t ix = win.x0; ix < win.x1; ++ix)
        acc[static_cast<std::size_t>(base + (iy * g.w + ix) * g.c)] += share;
    }
  });
  std::transform(acc.begin(), acc.end(), dx, [](double v) { return static_cast<T>(v); });
}

template void max_pool2d<float>(const PoolGeometry&, const float*, float*);
template void max_pool2d<double>(const PoolGeometry&, const double*, double*);
template void avg_pool2d<float>(const PoolGeometry&, const float*, float*);
template void avg_pool2d<double>(const PoolGeometry&, const double*, double*);
template void max_pool2d_grad<float>(const PoolGeometry&, const float*, const float*, float*);
template void max_pool2d_grad<double>(const PoolGeometry&, const double*, const double*, double*);
template void avg_pool2d_grad<float>(const PoolGeometry&, const float*, float*);
template void avg_pool2d_grad<double>(const PoolGeometry&, const double*, double*);

}  // namespace kiln::kernels::ref
