// Optimizer steps (kernels/reference/optimizers.h), computed per element in double as the
// reference does, so the float results agree with it to the last bit or one rounding.
#include <cmath>

#include "kernels/cpu/kernels.h"

extern "C" {

void kiln_k_sgd_update(double lr, double momentum, bool nesterov, double weight_decay, const float* param,
                       const float* grad, const float* velocity, float* new_param, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) {
    const double p = static_cast<double>(param[i]);
    const double g = static_cast<double>(grad[i]) + weight_decay * p;
    const double v = momentum * static_cast<double>(velocity[i]) + g;
    const double step = nesterov ? g + momentum * v : v;
    new_param[i] = static_cast<float>(p - lr * step);
  }
}

void kiln_k_adam_update(double lr, double beta1, double beta2, double eps, double weight_decay, bool decoupled,
                        std::uint64_t t, const float* param, const float* grad, const float* m, const float* v,
                        float* new_param, std::int64_t n) {
  const double steps = static_cast<double>(t == 0 ? 1 : t);
  const double correction1 = 1.0 - std::pow(beta1, steps);
  const double correction2 = 1.0 - std::pow(beta2, steps);
  const double l2 = decoupled ? 0.0 : weight_decay;
  const double decay = decoupled ? lr * weight_decay : 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    const double p = static_cast<double>(param[i]);
    const double g = static_cast<double>(grad[i]) + l2 * p;
    const double m1 = beta1 * static_cast<double>(m[i]) + (1.0 - beta1) * g;
    const double v1 = beta2 * static_cast<double>(v[i]) + (1.0 - beta2) * g * g;
    const double update = (m1 / correction1) / (std::sqrt(v1 / correction2) + eps);
    new_param[i] = static_cast<float>(p - lr * update - (decoupled ? decay * p : 0.0));
  }
}

}  // extern "C"
