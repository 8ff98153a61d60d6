// Seeded draws over Philox (kernels/reference/philox.h), element for element the numbers of
// kernels/reference/random.cpp: uniform bit-identical, normal to libm accuracy. Element i
// depends only on (seed, stream, step, i). Floating-point contraction is off in this file:
// an FMA in `low + width * u` would round differently from the reference.
#include <cmath>
#include <numbers>

#include "kernels/cpu/kernels.h"
#include "kernels/reference/philox.h"

#pragma clang fp contract(off)

namespace kiln::cpu {
namespace {

using kernels::ref::philox_block;
using kernels::ref::philox_unit;
using kernels::ref::philox_unit_open_low;
using kernels::ref::PhiloxCounter;

}  // namespace
}  // namespace kiln::cpu

extern "C" {

void kiln_k_random_uniform(std::uint64_t seed, std::uint64_t stream, std::uint64_t step, double low, double high,
                           float* out, std::int64_t n) {
  using namespace kiln::cpu;
  const auto lo = static_cast<float>(low);
  const auto hi = static_cast<float>(high);
  const float width = hi - lo;
  for (std::int64_t block = 0; block * 4 < n; ++block) {
    const PhiloxCounter words = philox_block(seed, stream, step, static_cast<std::uint64_t>(block));
    const std::int64_t count = n - block * 4 < 4 ? n - block * 4 : 4;
    for (std::int64_t j = 0; j < count; ++j) {
      const auto u = static_cast<float>(philox_unit(words[static_cast<std::size_t>(j)]));
      float v = lo + width * u;
      if (v >= hi && hi > lo) v = std::nextafter(hi, lo);
      out[block * 4 + j] = v;
    }
  }
}

void kiln_k_random_normal(std::uint64_t seed, std::uint64_t stream, std::uint64_t step, double mean, double stddev,
                          float* out, std::int64_t n) {
  using namespace kiln::cpu;
  for (std::int64_t block = 0; block * 2 < n; ++block) {
    const PhiloxCounter words = philox_block(seed, stream, step, static_cast<std::uint64_t>(block));
    const std::int64_t count = n - block * 2 < 2 ? n - block * 2 : 2;
    for (std::int64_t j = 0; j < count; ++j) {
      const double u1 = philox_unit_open_low(words[static_cast<std::size_t>(j * 2)]);
      const double u2 = philox_unit(words[static_cast<std::size_t>(j * 2 + 1)]);
      const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
      out[block * 2 + j] = static_cast<float>(mean + stddev * z);
    }
  }
}

}  // extern "C"
