// Winograd F(2×2, 5×5) convolution (kernels/cpu/winograd.cpp): the forward pass and the
// filter gradient of a stride-1, undilated 5×5 convolution with enough channels on both
// sides, any padding. Internal to kernels/cpu: conv.cpp dispatches to it (the input
// gradient runs as a forward convolution of dy with the flipped filter). Same rules as the
// kernels: no allocation, no exceptions, no global state; scratch comes from the caller,
// 64-byte aligned, of the size the matching *_scratch function gives.
#pragma once

#include <cstddef>

#include "kernels/cpu/kernels.h"

namespace kiln::cpu {

// Whether conv.cpp runs this geometry's forward pass and filter gradient here: a 5×5
// filter, stride 1, dilation 1, and C and F both at least 8 (below that the transforms cost
// more than the multiplications save), any padding.
bool winograd_applies(const kiln_conv_geometry& g);

// y = conv2d(x, w) + bias[f] (bias may be null), then relu when act == 1 (as
// kiln_k_conv2d_bias_relu) for a geometry winograd_applies accepts.
std::size_t winograd_forward_scratch(const kiln_conv_geometry& g, int threads);
void winograd_forward(const kiln_conv_geometry& g, const float* x, const float* w, const float* bias, int act, float* y,
                      char* scratch, int threads);

// dw = conv2d_grad_filter(x, dy) (as kiln_k_conv2d_grad_filter), bit-identical between runs
// with the same `threads`.
std::size_t winograd_grad_filter_scratch(const kiln_conv_geometry& g, int threads);
void winograd_grad_filter(const kiln_conv_geometry& g, const float* x, const float* dy, float* dw, char* scratch,
                          int threads);

// For tests: the 1-D F(2, 5) through the same transforms, y[i] = Σk d[i + k]·g[k] for
// i < 2 (d has 6 elements, g 5). Also the 1-D pieces of the backward transforms: dg = the
// gradient of that y with respect to g for the output gradient dy (2 elements).
void winograd_f25_1d(const float* d, const float* g, float* y);
void winograd_f25_1d_grad_filter(const float* d, const float* dy, float* dg);

}  // namespace kiln::cpu
