// 2-D convolution of NHWC inputs with [KH, KW, C, F] filters, and its gradients with
// respect to the input and the filter. Padding "same" pads so that out = ceil(in / stride)
// with the smaller half before (TensorFlow's convention); "valid" pads nothing.
#pragma once

#include <cstdint>

namespace kiln::kernels::ref {

struct Conv2dGeometry {
  std::int64_t n = 0, h = 0, w = 0, c = 0;  // input
  std::int64_t kh = 0, kw = 0, f = 0;       // filter
  std::int64_t oh = 0, ow = 0;              // output
  std::int64_t stride = 1, dilation = 1;
  std::int64_t pad_top = 0, pad_left = 0;
};

// Output sizes and padding as the conv2d shape rule computes them.
Conv2dGeometry conv2d_geometry(std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c, std::int64_t kh,
                               std::int64_t kw, std::int64_t f, std::int64_t stride, std::int64_t dilation, bool same);

// Size of one output dimension and the padding before it (shared with pooling).
struct WindowAxis {
  std::int64_t out = 0;
  std::int64_t pad_before = 0;
};
WindowAxis window_axis(std::int64_t in, std::int64_t k, std::int64_t stride, std::int64_t dilation, bool same);

// y[n, oh, ow, f] = sum over (i, j, c) of x[n, oh*s + i*d - pt, ow*s + j*d - pl, c] * w[i, j, c, f],
// taps outside the input counting as zero. T: float, double.
template <typename T>
void conv2d(const Conv2dGeometry& g, const T* x, const T* w, T* y);

// dx = the adjoint of conv2d in x: each dy element is spread back over its taps.
template <typename T>
void conv2d_grad_input(const Conv2dGeometry& g, const T* dy, const T* w, T* dx);

// dw[i, j, c, f] = sum over (n, oh, ow) of x[tap] * dy[n, oh, ow, f].
template <typename T>
void conv2d_grad_filter(const Conv2dGeometry& g, const T* x, const T* dy, T* dw);

}  // namespace kiln::kernels::ref
