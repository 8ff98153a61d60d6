// splitmix64, xoshiro256**, shuffle, split and epoch order.
#include "runtime/data/sampling.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace kiln::data {
namespace {

std::uint64_t rotl(std::uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

}  // namespace

std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

Xoshiro256::Xoshiro256(std::uint64_t seed) {
  for (std::uint64_t& s : s_) s = splitmix64(seed);
}

std::uint64_t Xoshiro256::next() {
  const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const std::uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

std::uint64_t Xoshiro256::below(std::uint64_t n) {
  // Values below 2^64 mod n would make the low residues more likely: draw again.
  const std::uint64_t threshold = (0 - n) % n;
  for (;;) {
    std::uint64_t r = next();
    if (r >= threshold) return r % n;
  }
}

void shuffle(std::vector<std::int64_t>& items, Xoshiro256& rng) {
  for (std::size_t i = items.size(); i > 1; --i) {
    std::size_t j = static_cast<std::size_t>(rng.below(i));
    std::swap(items[i - 1], items[j]);
  }
}

std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t purpose, std::uint64_t index) {
  std::uint64_t state = seed;
  std::uint64_t a = splitmix64(state);
  state = a ^ (purpose * 0xd1b54a32d192ed03ULL);
  std::uint64_t b = splitmix64(state);
  state = b ^ (index * 0x8cb92ba72f3d8dd7ULL);
  return splitmix64(state);
}

std::vector<std::int64_t> epoch_order(std::int64_t rows, std::uint64_t seed, std::int64_t epoch) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(std::max<std::int64_t>(rows, 0)));
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<std::int64_t>(i);
  Xoshiro256 rng(derive_seed(seed, kEpochPurpose, static_cast<std::uint64_t>(epoch)));
  shuffle(order, rng);
  return order;
}

SplitIndices split_rows(std::int64_t rows, const std::vector<std::int32_t>& classes, double holdout_share,
                        std::uint64_t seed) {
  // Groups of rows drawn from independently: one per class, or one for everything.
  std::map<std::int64_t, std::vector<std::int64_t>> groups;
  for (std::int64_t r = 0; r < rows; ++r) {
    std::int64_t group = classes.empty() ? 0 : classes[static_cast<std::size_t>(r)];
    groups[group].push_back(r);
  }
  std::vector<std::uint8_t> in_holdout(static_cast<std::size_t>(std::max<std::int64_t>(rows, 0)), 0);
  for (auto& [group, members] : groups) {
    auto n = static_cast<std::int64_t>(members.size());
    auto take = static_cast<std::int64_t>(std::llround(static_cast<double>(n) * holdout_share));
    take = std::clamp<std::int64_t>(take, 0, n);
    if (n >= 2 && take == n) take = n - 1;
    Xoshiro256 rng(derive_seed(seed, kSplitPurpose, static_cast<std::uint64_t>(group)));
    shuffle(members, rng);
    for (std::int64_t i = 0; i < take; ++i)
      in_holdout[static_cast<std::size_t>(members[static_cast<std::size_t>(i)])] = 1;
  }
  SplitIndices split;
  for (std::int64_t r = 0; r < rows; ++r) {
    (in_holdout[static_cast<std::size_t>(r)] ? split.holdout : split.train).push_back(r);
  }
  return split;
}

}  // namespace kiln::data
