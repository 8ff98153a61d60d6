// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11):
// a counter-based generator, so value i of a stream is a pure function of
// (seed, stream, step, i) and every backend (reference, LLVM, CUDA) draws the same numbers.
#pragma once

#include <array>
#include <cstdint>

namespace kiln::kernels::ref {

using PhiloxCounter = std::array<std::uint32_t, 4>;
using PhiloxKey = std::array<std::uint32_t, 2>;

// Ten rounds of Philox4x32 on one 128-bit counter block under a 64-bit key, exactly as
// Random123 defines it (checked against its known-answer vectors in the tests).
inline PhiloxCounter philox4x32_10(PhiloxCounter c, PhiloxKey k) {
  constexpr std::uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr std::uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k[0] += kW0;
      k[1] += kW1;
    }
    const std::uint64_t p0 = static_cast<std::uint64_t>(kM0) * c[0];
    const std::uint64_t p1 = static_cast<std::uint64_t>(kM1) * c[2];
    const auto hi0 = static_cast<std::uint32_t>(p0 >> 32), lo0 = static_cast<std::uint32_t>(p0);
    const auto hi1 = static_cast<std::uint32_t>(p1 >> 32), lo1 = static_cast<std::uint32_t>(p1);
    c = {hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0};
  }
  return c;
}

// Kiln's mapping of (seed, stream, step, block) onto Philox: the key is the run's seed;
// the counter is (block, step, stream low, stream high). A block holds four 32-bit words;
// the step wraps at 2^32 and the block index must stay below 2^32 (2^34 words per draw).
inline PhiloxCounter philox_block(std::uint64_t seed, std::uint64_t stream, std::uint64_t step, std::uint64_t block) {
  const PhiloxKey key{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)};
  return philox4x32_10({static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(step),
                        static_cast<std::uint32_t>(stream), static_cast<std::uint32_t>(stream >> 32)},
                       key);
}

// [0, 1) from the top 24 bits of a word: exactly representable in float and double alike.
inline double philox_unit(std::uint32_t word) {
  return static_cast<double>(word >> 8) * (1.0 / 16777216.0);
}

// (0, 1] from the top 24 bits: Box-Muller takes its logarithm.
inline double philox_unit_open_low(std::uint32_t word) {
  return static_cast<double>((word >> 8) + 1) * (1.0 / 16777216.0);
}

}  // namespace kiln::kernels::ref
