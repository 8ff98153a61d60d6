// Seeded randomness for data: the train/holdout split and each epoch's row order. Built
// on splitmix64 (seeding) and xoshiro256** (draws) with our own unbiased bounded draw and
// Fisher-Yates shuffle, so an order depends on (seed, epoch) alone and is the same on
// every platform and standard library (std::uniform_int_distribution and std::shuffle
// are not specified bit-for-bit).
#pragma once

#include <cstdint>
#include <vector>

namespace kiln::data {

// splitmix64 (Steele, Lea, Flood 2014): one 64-bit state, one output per step.
std::uint64_t splitmix64(std::uint64_t& state);

// xoshiro256** 1.0 (Blackman, Vigna 2018), its state filled by splitmix64 from one seed.
class Xoshiro256 {
 public:
  explicit Xoshiro256(std::uint64_t seed);
  std::uint64_t next();
  // Uniform in [0, n) for n > 0, without modulo bias (rejection below 2^64 mod n).
  std::uint64_t below(std::uint64_t n);

 private:
  std::uint64_t s_[4];
};

// Fisher-Yates from the back: for i = n-1 .. 1, swap items[i] with items[below(i + 1)].
void shuffle(std::vector<std::int64_t>& items, Xoshiro256& rng);

// Independent streams for the uses of one user seed: seed, purpose, index -> a seed.
std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t purpose, std::uint64_t index);
inline constexpr std::uint64_t kSplitPurpose = 1;
inline constexpr std::uint64_t kEpochPurpose = 2;

// The order rows 0..rows-1 are visited in epoch `epoch`: a shuffle seeded by
// derive_seed(seed, kEpochPurpose, epoch). Reproducible from (seed, epoch) alone.
std::vector<std::int64_t> epoch_order(std::int64_t rows, std::uint64_t seed, std::int64_t epoch);

struct SplitIndices {
  std::vector<std::int64_t> train;    // row positions, ascending
  std::vector<std::int64_t> holdout;  // row positions, ascending
};

// Splits rows 0..n-1 into train and holdout with `holdout_share` in the holdout.
// With `classes` (one class id per row, classification): stratified, each class
// contributes round(count * share) of its rows, chosen by a shuffle of that class's rows
// (seeded by derive_seed(seed, kSplitPurpose, class)); a class with two or more rows keeps
// at least one in train. Without classes (empty): one shuffle of all rows.
SplitIndices split_rows(std::int64_t rows, const std::vector<std::int32_t>& classes, double holdout_share,
                        std::uint64_t seed);

}  // namespace kiln::data
