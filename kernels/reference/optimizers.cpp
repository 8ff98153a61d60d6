// Optimizer steps in double per element; see optimizers.h for the exact formulas.
#include "kernels/reference/optimizers.h"

#include <cmath>

namespace kiln::kernels::ref {

template <typename T>
void sgd_update(const SgdHyper& h, const T* param, const T* grad, const T* velocity, T* new_param, T* new_velocity,
                std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) {
    const double p = static_cast<double>(param[i]);
    const double g = static_cast<double>(grad[i]) + h.weight_decay * p;
    const double v = h.momentum * static_cast<double>(velocity[i]) + g;
    const double step = h.nesterov ? g + h.momentum * v : v;
    new_param[i] = static_cast<T>(p - h.lr * step);
    if (new_velocity != nullptr) new_velocity[i] = static_cast<T>(v);
  }
}

template <typename T>
void adam_update(const AdamHyper& h, const T* param, const T* grad, const T* m, const T* v, T* new_param, T* new_m,
                 T* new_v, std::int64_t n) {
  const double t = static_cast<double>(h.t == 0 ? 1 : h.t);
  const double correction1 = 1.0 - std::pow(h.beta1, t);
  const double correction2 = 1.0 - std::pow(h.beta2, t);
  for (std::int64_t i = 0; i < n; ++i) {
    const double p = static_cast<double>(param[i]);
    const double g = static_cast<double>(grad[i]) + (h.decoupled ? 0.0 : h.weight_decay * p);
    const double m1 = h.beta1 * static_cast<double>(m[i]) + (1.0 - h.beta1) * g;
    const double v1 = h.beta2 * static_cast<double>(v[i]) + (1.0 - h.beta2) * g * g;
    const double update = (m1 / correction1) / (std::sqrt(v1 / correction2) + h.eps);
    const double decay = h.decoupled ? h.lr * h.weight_decay * p : 0.0;
    new_param[i] = static_cast<T>(p - h.lr * update - decay);
    if (new_m != nullptr) new_m[i] = static_cast<T>(m1);
    if (new_v != nullptr) new_v[i] = static_cast<T>(v1);
  }
}

template void sgd_update<float>(const SgdHyper&, const float*, const float*, const float*, float*, float*,
                                std::int64_t);
template void sgd_update<double>(const SgdHyper&, const double*, const double*, const double*, double*, double*,
                                 std::int64_t);
template void adam_update<float>(const AdamHyper&, const float*, const float*, const float*, const float*, float*,
                                 float*, float*, std::int64_t);
template void adam_update<double>(const AdamHyper&, const double*, const double*, const double*, const double*, double*,
                                  double*, double*, std::int64_t);

}  // namespace kiln::kernels::ref
