// Elementwise kernels: unary math, binary arithmetic and comparisons with numpy
// broadcasting, select, and dtype casts. Dims are row-major; an operand's dims align with
// the output's from the right, and a size-1 (or missing) dimension repeats.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <type_traits>
#include <vector>

namespace kiln::kernels::ref {

using Dims = std::span<const std::int64_t>;

std::int64_t element_count(Dims dims);

// Walks the output in row-major order and yields, for each element, the matching flat
// offset into up to three broadcast operands. The one place broadcasting is spelled out.
class BroadcastCursor {
 public:
  BroadcastCursor(Dims out, std::initializer_list<Dims> operands);
  std::int64_t offset(std::size_t operand) const { return offsets_[operand]; }
  void next();  // advance to the next output element

 private:
  std::vector<std::int64_t> out_dims_;
  std::vector<std::int64_t> index_;
  std::vector<std::vector<std::int64_t>> strides_;  // per operand, 0 on broadcast axes
  std::vector<std::int64_t> offsets_;
};

enum class UnaryOp { kNeg, kAbs, kExp, kLog, kSqrt, kTanh, kSigmoid, kRelu };
enum class BinaryOp { kAdd, kSub, kMul, kDiv, kPow, kMaximum, kMinimum };
enum class CompareOp { kLess, kLessEqual, kGreater, kGreaterEqual, kEqual, kNotEqual };

// T: float, double, int32_t, int64_t (integers: neg and abs only are meaningful).
template <typename T>
void unary(UnaryOp op, const T* x, T* y, std::int64_t n);

// T: float, double, int32_t, int64_t. Integer division by zero yields 0 rather than
// trapping; integer pow goes through double.
template <typename T>
void binary(BinaryOp op, const T* a, Dims a_dims, const T* b, Dims b_dims, T* out, Dims out_dims);

// T: any of float, double, int32_t, int64_t, bool.
template <typename T>
void compare(CompareOp op, const T* a, Dims a_dims, const T* b, Dims b_dims, bool* out, Dims out_dims);

template <typename T>
void select(const bool* cond, Dims cond_dims, const T* a, Dims a_dims, const T* b, Dims b_dims, T* out, Dims out_dims);

// A C++ cast made total: NaN becomes 0 and out-of-range floats saturate when the target
// is an integer; anything non-zero becomes true for bool.
template <typename To, typename From>
To convert(From v) {
  if constexpr (std::is_same_v<To, bool>) {
    return v != From{};
  } else if constexpr (std::is_integral_v<To> && std::is_floating_point_v<From>) {
    if (std::isnan(v)) return To{0};
    if (v <= static_cast<From>(std::numeric_limits<To>::lowest())) return std::numeric_limits<To>::lowest();
    if (v >= static_cast<From>(std::numeric_limits<To>::max())) return std::numeric_limits<To>::max();
    return static_cast<To>(v);
  } else {
    return static_cast<To>(v);
  }
}

template <typename From, typename To>
void cast(const From* x, To* y, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) y[i] = convert<To>(x[i]);
}

}  // namespace kiln::kernels::ref
