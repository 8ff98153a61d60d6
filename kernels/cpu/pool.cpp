// Max and average pooling over NHWC and their gradients. Each output pixel's window is
// clipped to the input (padding takes no part); the channel loop is innermost, so every
// step is a contiguous, vectorisable row of C floats. Ties and NaNs as the reference: the
// first maximum in row-major window order wins, and a NaN counts as the maximum.
//
// Tasks own whole images. A gradient zeroes one image of dx and scatters into it at once,
// while it is in cache; when the windows tile the input exactly (2x2 at stride 2 over an even
// image), max_pool2d_grad writes each element of dx once instead. max_pool2d_grad can also apply the gradient of a relu
// that feeds the pool (the code generator folds select(x > 0, max_pool2d_grad(x, dy), 0) into it): a window's gradient
// goes to its maximum only when that maximum is > 0, which is exactly what the select would keep.
#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/cpu/common.h"
#include "kernels/cpu/kernels.h"

namespace kiln::cpu {
namespace {

struct Window {
  Index y0, y1, x0, x1;
  Index taps() const { return (y1 - y0) * (x1 - x0); }
};

Window window_of(const kiln_pool_geometry& g, Index oy, Index ox) {
  const Index top = oy * g.stride - g.pad_top;
  const Index left = ox * g.stride - g.pad_left;
  Window win{max_index(top, 0), min_index(top + g.size, g.h), max_index(left, 0), min_index(left + g.size, g.w)};
  if (win.y1 < win.y0) win.y1 = win.y0;
  if (win.x1 < win.x0) win.x1 = win.x0;
  return win;
}

// Calls visit(window, y_offset, image_offset) for every output pixel of image b (offsets in
// floats).
template <typename Visit>
void for_each_pixel(const kiln_pool_geometry& g, Index b, Visit&& visit) {
  for (Index oy = 0; oy < g.oh; ++oy)
    for (Index ox = 0; ox < g.ow; ++ox)
      visit(window_of(g, oy, ox), ((b * g.oh + oy) * g.ow + ox) * g.c, b * g.h * g.w * g.c);
}

// Element visits per task below which another thread is not worth waking.
constexpr Index kPoolGrain = Index{1} << 15;

struct PoolCall {
  const kiln_pool_geometry* g;
  const float* x;
  const float* dy;
  float* out;
  int positive_only;
  Index tasks;
};

using ImageFn = void (*)(const PoolCall&, Index image);

// Runs per_image over every image, the images split evenly over the useful tasks.
template <ImageFn per_image>
void run_images(const kiln_pool_geometry& g, const float* x, const float* dy, float* out, int positive_only,
                int threads) {
  const Index work = g.n * (g.h * g.w + g.oh * g.ow) * g.c;
  PoolCall call{&g, x, dy, out, positive_only, min_index(useful_tasks(work, kPoolGrain, threads), g.n)};
  if (call.tasks <= 1) {
    for (Index b = 0; b < g.n; ++b) per_image(call, b);
    return;
  }
  kiln_parallel_for(
      call.tasks,
      [](void* ctx, Index task) {
        const PoolCall& c = *static_cast<const PoolCall*>(ctx);
        const Range images = split_range(c.g->n, c.tasks, task);
        for (Index b = images.begin; b < images.end; ++b) per_image(c, b);
      },
      &call);
}

inline bool beats(float v, float best) {
  return v > best || (v != v && best == best);
}

constexpr Index kChannelChunk = 64;

// Image b of a gradient (call.out), zeroed for the windows' contributions to be added to.
float* zeroed_image(const PoolCall& call, Index b) {
  const Index plane = call.g->h * call.g->w * call.g->c;
  float* image = call.out + b * plane;
  for (Index e = 0; e < plane; ++e) image[e] = 0.0f;
  return image;
}

// Windows of size x size at stride `size`, no padding, covering the input exactly (the usual
// 2x2 pool over an even image): every input element is in exactly one window, so the
// gradient is written once, element by element, with no zeroing pass and no scatter.
bool tiles_exactly(const kiln_pool_geometry& g) {
  return g.stride == g.size && g.pad_top == 0 && g.pad_left == 0 && g.oh * g.size == g.h && g.ow * g.size == g.w &&
         g.size <= 4;
}

void max_pool_grad_tiled(const PoolCall& call, Index b) {
  const kiln_pool_geometry& g = *call.g;
  const Index c = g.c, size = g.size;
  const Index image = b * g.h * g.w * c;
  for (Index oy = 0; oy < g.oh; ++oy)
    for (Index ox = 0; ox < g.ow; ++ox) {
      const float* grad = call.dy + ((b * g.oh + oy) * g.ow + ox) * c;
      const Index first_pixel = oy * size * g.w + ox * size;
      for (Index c0 = 0; c0 < c; c0 += kChannelChunk) {
        const Index width = min_index(kChannelChunk, c - c0);
        float best[kChannelChunk];
        // The tap (row-major in the window) of the maximum, as a 32-bit lane beside each float
        // lane so that the compare-and-select loops vectorise 16 wide (64-bit indices halved
        // that: fashion_cnn's pool gradients, KILN_PROFILE, docs/performance.md).
        std::int32_t where[kChannelChunk];
        const float* first = call.x + image + first_pixel * c + c0;
        for (Index ch = 0; ch < width; ++ch) {
          best[ch] = first[ch];
          where[ch] = 0;
        }
        for (std::int32_t tap = 1; tap < size * size; ++tap) {
          const float* src = call.x + image + (first_pixel + (tap / size) * g.w + tap % size) * c + c0;
          for (Index ch = 0; ch < width; ++ch) {
            const bool better = beats(src[ch], best[ch]);
            best[ch] = better ? src[ch] : best[ch];
            where[ch] = better ? tap : where[ch];
          }
        }
        float kept[kChannelChunk];
        for (Index ch = 0; ch < width; ++ch)
          kept[ch] = call.positive_only != 0 && !(best[ch] > 0.0f) ? 0.0f : grad[c0 + ch];
        for (std::int32_t tap = 0; tap < size * size; ++tap) {
          float* out = call.out + image + (first_pixel + (tap / size) * g.w + tap % size) * c + c0;
          for (Index ch = 0; ch < width; ++ch) out[ch] = where[ch] == tap ? kept[ch] : 0.0f;
        }
      }
    }
}

}  // namespace
}  // namespace kiln::cpu

extern "C" {

void kiln_k_max_pool2d(const kiln_pool_geometry* gp, const float* x, float* y, int threads) {
  using namespace kiln::cpu;
  run_images<[](const PoolCall& call, Index b) {
    const kiln_pool_geometry& g = *call.g;
    const Index c = g.c;
    for_each_pixel(g, b, [&](const Window& win, Index yo, Index image) {
      float* out = call.out + yo;
      if (win.taps() == 0) {
        for (Index ch = 0; ch < c; ++ch) out[ch] = std::numeric_limits<float>::lowest();
        return;
      }
      const float* first = call.x + image + (win.y0 * g.w + win.x0) * c;
      for (Index ch = 0; ch < c; ++ch) out[ch] = first[ch];
      for (Index iy = win.y0; iy < win.y1; ++iy)
        for (Index ix = win.x0; ix < win.x1; ++ix) {
          if (iy == win.y0 && ix == win.x0) continue;
          const float* src = call.x + image + (iy * g.w + ix) * c;
          for (Index ch = 0; ch < c; ++ch) {
            const float v = src[ch], best = out[ch];
            out[ch] = beats(v, best) ? v : best;
          }
        }
    });
  }>(*gp, x, nullptr, y, 0, threads);
}

void kiln_k_avg_pool2d(const kiln_pool_geometry* gp, const float* x, float* y, int threads) {
  using namespace kiln::cpu;
  run_images<[](const PoolCall& call, Index b) {
    const kiln_pool_geometry& g = *call.g;
    const Index c = g.c;
    for_each_pixel(g, b, [&](const Window& win, Index yo, Index image) {
      float* out = call.out + yo;
      for (Index ch = 0; ch < c; ++ch) out[ch] = 0.0f;
      for (Index iy = win.y0; iy < win.y1; ++iy)
        for (Index ix = win.x0; ix < win.x1; ++ix) {
          const float* src = call.x + image + (iy * g.w + ix) * c;
          for (Index ch = 0; ch < c; ++ch) out[ch] += src[ch];
        }
      const float scale = 1.0f / static_cast<float>(max_index(win.taps(), 1));
      for (Index ch = 0; ch < c; ++ch) out[ch] *= scale;
    });
  }>(*gp, x, nullptr, y, 0, threads);
}

void kiln_k_max_pool2d_grad(const kiln_pool_geometry* gp, const float* x, const float* dy, float* dx, int positive_only,
                            int threads) {
  using namespace kiln::cpu;
  if (tiles_exactly(*gp)) {
    run_images<max_pool_grad_tiled>(*gp, x, dy, dx, positive_only, threads);
    return;
  }
  run_images<[](const PoolCall& call, Index b) {
    const kiln_pool_geometry& g = *call.g;
    const Index c = g.c;
    float* image_dx = zeroed_image(call, b);
    for_each_pixel(g, b, [&](const Window& win, Index yo, Index image) {
      if (win.taps() == 0) return;
      for (Index c0 = 0; c0 < c; c0 += kChannelChunk) {
        const Index width = min_index(kChannelChunk, c - c0);
        float best[kChannelChunk];
        Index where[kChannelChunk];  // pixel offset (iy * w + ix) of the maximum
        const Index first_pixel = win.y0 * g.w + win.x0;
        const float* first = call.x + image + first_pixel * c + c0;
        for (Index ch = 0; ch < width; ++ch) {
          best[ch] = first[ch];
          where[ch] = first_pixel;
        }
        for (Index iy = win.y0; iy < win.y1; ++iy)
          for (Index ix = win.x0; ix < win.x1; ++ix) {
            const Index pixel = iy * g.w + ix;
            if (pixel == first_pixel) continue;
            const float* src = call.x + image + pixel * c + c0;
            for (Index ch = 0; ch < width; ++ch) {
              const bool better = beats(src[ch], best[ch]);
              best[ch] = better ? src[ch] : best[ch];
              where[ch] = better ? pixel : where[ch];
            }
          }
        const float* grad = call.dy + yo + c0;
        float* out = image_dx + c0;
        if (call.positive_only != 0) {
          for (Index ch = 0; ch < width; ++ch)
            if (best[ch] > 0.0f) out[where[ch] * c + ch] += grad[ch];
        } else {
          for (Index ch = 0; ch < width; ++ch) out[where[ch] * c + ch] += grad[ch];
        }
      }
    });
  }>(*gp, x, dy, dx, positive_only, threads);
}

void kiln_k_avg_pool2d_grad(const kiln_pool_geometry* gp, const float* dy, float* dx, int threads) {
  using namespace kiln::cpu;
  run_images<[](const PoolCall& call, Index b) {
    const kiln_pool_geometry& g = *call.g;
    const Index c = g.c;
    float* image_dx = zeroed_image(call, b);
    for_each_pixel(g, b, [&](const Window& win, Index yo, Index /*image*/) {
      const float scale = 1.0f / static_cast<float>(max_index(win.taps(), 1));
      const float* grad = call.dy + yo;
      for (Index iy = win.y0; iy < win.y1; ++iy)
        for (Index ix = win.x0; ix < win.x1; ++ix) {
          float* out = image_dx + (iy * g.w + ix) * c;
          for (Index ch = 0; ch < c; ++ch) out[ch] += grad[ch] * scale;
        }
    });
  }>(*gp, nullptr, dy, dx, 0, threads);
}

}  // extern "C"
