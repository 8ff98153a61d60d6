// Uniform and normal draws over Philox blocks; see random.h for the exact mapping.
#include "kernels/reference/random.h"

#include <cmath>
#include <numbers>

#include "kernels/reference/philox.h"

namespace kiln::kernels::ref {

template <typename T>
void random_uniform(RandomKey key, double low, double high, T* out, std::int64_t n) {
  const T lo = static_cast<T>(low);
  const T width = static_cast<T>(high) - lo;
  const T hi = static_cast<T>(high);
  PhiloxCounter words{};
  for (std::int64_t i = 0; i < n; ++i) {
    if (i % 4 == 0) words = philox_block(key.seed, key.stream, key.step, static_cast<std::uint64_t>(i / 4));
    const T u = static_cast<T>(philox_unit(words[static_cast<std::size_t>(i % 4)]));
    T v = lo + width * u;
    if (v >= hi && hi > lo) v = std::nextafter(hi, lo);
    out[i] = v;
  }
}

template <typename T>
void random_normal(RandomKey key, double mean, double stddev, T* out, std::int64_t n) {
  PhiloxCounter words{};
  for (std::int64_t i = 0; i < n; ++i) {
    if (i % 2 == 0) words = philox_block(key.seed, key.stream, key.step, static_cast<std::uint64_t>(i / 2));
    const std::size_t j = static_cast<std::size_t>(i % 2) * 2;
    const double u1 = philox_unit_open_low(words[j]);
    const double u2 = philox_unit(words[j + 1]);
    const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
    out[i] = static_cast<T>(mean + stddev * z);
  }
}

template void random_uniform<float>(RandomKey, double, double, float*, std::int64_t);
template void random_uniform<double>(RandomKey, double, double, double*, std::int64_t);
template void random_normal<float>(RandomKey, double, double, float*, std::int64_t);
template void random_normal<double>(RandomKey, double, double, double*, std::int64_t);

}  // namespace kiln::kernels::ref
