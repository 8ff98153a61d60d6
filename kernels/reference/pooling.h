// Max and average pooling over size x size windows of NHWC inputs, and their gradients.
// With "same" padding the padded taps take no part: max ignores them and the average
// divides by the number of in-bounds taps (TensorFlow's convention).
#pragma once

#include <cstdint>

namespace kiln::kernels::ref {

struct PoolGeometry {
  std::int64_t n = 0, h = 0, w = 0, c = 0;
  std::int64_t size = 2, stride = 2;  // stride already resolved (never 0)
  std::int64_t oh = 0, ow = 0;
  std::int64_t pad_top = 0, pad_left = 0;
};

PoolGeometry pool_geometry(std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c, std::int64_t size,
                           std::int64_t stride, bool same);

// T: float, double.
template <typename T>
void max_pool2d(const PoolGeometry& g, const T* x, T* y);
template <typename T>
void avg_pool2d(const PoolGeometry& g, const T* x, T* y);

// dx gets each dy at the position of its window's maximum in x (the first one, in
// row-major window order, when several tie); overlapping windows add up.
template <typename T>
void max_pool2d_grad(const PoolGeometry& g, const T* x, const T* dy, T* dx);

// dx gets each dy divided by its window's in-bounds tap count, at every such tap.
template <typename T>
void avg_pool2d_grad(const PoolGeometry& g, const T* dy, T* dx);

}  // namespace kiln::kernels::ref
