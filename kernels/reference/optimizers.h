// Optimizer update steps, elementwise over a parameter. Each returns the new parameter
// and, when the caller passes somewhere to put them, the new moments, so one kernel serves
// both the graph op (which yields only the parameter) and a fused optimizer later.
#pragma once

#include <cstdint>

namespace kiln::kernels::ref {

struct SgdHyper {
  double lr = 0.01;
  double momentum = 0;
  bool nesterov = false;
  double weight_decay = 0;  // L2, added to the gradient
};

// PyTorch's SGD: g = grad + wd*p; v' = momentum*v + g; step = nesterov ? g + momentum*v' : v';
// p' = p - lr*step. With momentum 0, v' = g. new_velocity may be null. T: float, double.
template <typename T>
void sgd_update(const SgdHyper& h, const T* param, const T* grad, const T* velocity, T* new_param, T* new_velocity,
                std::int64_t n);

struct AdamHyper {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0;
  bool decoupled = false;  // AdamW: decay the weight directly instead of the gradient
  std::uint64_t t = 1;     // 1-based step count for the bias correction
};

// Adam (Kingma & Ba) with bias correction; eps is added to sqrt(v_hat). Decoupled decay
// subtracts lr*wd*p (AdamW, as PyTorch). new_m / new_v may be null. T: float, double.
template <typename T>
void adam_update(const AdamHyper& h, const T* param, const T* grad, const T* m, const T* v, T* new_param, T* new_m,
                 T* new_v, std::int64_t n);

}  // namespace kiln::kernels::ref
