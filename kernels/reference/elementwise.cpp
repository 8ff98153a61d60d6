// Elementwise kernels over broadcast operands; see elementwise.h.
#include "kernels/reference/elementwise.h"

#include <algorithm>

namespace kiln::kernels::ref {

std::int64_t element_count(Dims dims) {
  std::int64_t n = 1;
  for (const std::int64_t d : dims) n *= d;
  return n;
}

BroadcastCursor::BroadcastCursor(Dims out, std::initializer_list<Dims> operands)
    : out_dims_(out.begin(), out.end()), index_(out.size(), 0), offsets_(operands.size(), 0) {
  const std::size_t rank = out.size();
  for (const Dims dims : operands) {
    // Row-major strides of the operand, placed at the output axes it aligns with.
    std::vector<std::int64_t> strides(rank, 0);
    std::int64_t stride = 1;
    for (std::size_t k = 0; k < dims.size(); ++k) {
      const std::size_t from_end = k + 1;
      const std::int64_t size = dims[dims.size() - from_end];
      if (size != 1) strides[rank - from_end] = stride;
      stride *= size;
    }
    strides_.push_back(std::move(strides));
  }
}

void BroadcastCursor::next() {
  for (std::size_t axis = out_dims_.size(); axis-- > 0;) {
    for (std::size_t k = 0; k < offsets_.size(); ++k) offsets_[k] += strides_[k][axis];
    if (++index_[axis] < out_dims_[axis]) return;
    for (std::size_t k = 0; k < offsets_.size(); ++k) offsets_[k] -= strides_[k][axis] * out_dims_[axis];
    index_[axis] = 0;
  }
}

namespace {

template <typename T>
T apply_unary(UnaryOp op, T v) {
  if constexpr (std::is_floating_point_v<T>) {
    switch (op) {
      case UnaryOp::kNeg: return -v;
      case UnaryOp::kAbs: return std::abs(v);
      case UnaryOp::kExp: return std::exp(v);
      case UnaryOp::kLog: return std::log(v);
      case UnaryOp::kSqrt: return std::sqrt(v);
      case UnaryOp::kTanh: return std::tanh(v);
      // Split by sign so exp never overflows.
      case UnaryOp::kSigmoid: return v >= 0 ? T(1) / (T(1) + std::exp(-v)) : std::exp(v) / (T(1) + std::exp(v));
      case UnaryOp::kRelu: return v > T(0) ? v : T(0);
    }
  } else {
    switch (op) {
      case UnaryOp::kNeg: return static_cast<T>(-v);
      case UnaryOp::kAbs: return v < 0 ? static_cast<T>(-v) : v;
      case UnaryOp::kRelu: return v > 0 ? v : T(0);
      default: return static_cast<T>(apply_unary<double>(op, static_cast<double>(v)));
    }
  }
  return v;
}

template <typename T>
T apply_binary(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::kAdd: return a + b;
    case BinaryOp::kSub: return a - b;
    case BinaryOp::kMul: return a * b;
    case BinaryOp::kDiv:
      if constexpr (std::is_integral_v<T>) {
        if (b == 0 || (b == -1 && a == std::numeric_limits<T>::lowest())) return b == 0 ? T(0) : a;
      }
      return a / b;
    case BinaryOp::kPow:
      if constexpr (std::is_integral_v<T>) {
        return convert<T>(std::pow(static_cast<double>(a), static_cast<double>(b)));
      } else {
        return std::pow(a, b);
      }
    // NaN wins, as in numpy's maximum/minimum.
    case BinaryOp::kMaximum:
      if constexpr (std::is_floating_point_v<T>) {
        if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<T>::quiet_NaN();
      }
      return std::max(a, b);
    case BinaryOp::kMinimum:
      if constexpr (std::is_floating_point_v<T>) {
        if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<T>::quiet_NaN();
      }
      return std::min(a, b);
  }
  return a;
}

template <typename T>
bool apply_compare(CompareOp op, T a, T b) {
  switch (op) {
    case CompareOp::kLess: return a < b;
    case CompareOp::kLessEqual: return a <= b;
    case CompareOp::kGreater: return a > b;
    case CompareOp::kGreaterEqual: return a >= b;
    case CompareOp::kEqual: return a == b;
    case CompareOp::kNotEqual: return a != b;
  }
  return false;
}

}  // namespace

template <typename T>
void unary(UnaryOp op, const T* x, T* y, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) y[i] = apply_unary(op, x[i]);
}

template <typename T>
void binary(BinaryOp op, const T* a, Dims a_dims, const T* b, Dims b_dims, T* out, Dims out_dims) {
  const std::int64_t n = element_count(out_dims);
  BroadcastCursor cursor(out_dims, {a_dims, b_dims});
  for (std::int64_t i = 0; i < n; ++i, cursor.next())
    out[i] = apply_binary(op, a[cursor.offset(0)], b[cursor.offset(1)]);
}

template <typename T>
void compare(CompareOp op, const T* a, Dims a_dims, const T* b, Dims b_dims, bool* out, Dims out_dims) {
  const std::int64_t n = element_count(out_dims);
  BroadcastCursor cursor(out_dims, {a_dims, b_dims});
  for (std::int64_t i = 0; i < n; ++i, cursor.next())
    out[i] = apply_compare(op, a[cursor.offset(0)], b[cursor.offset(1)]);
}

template <typename T>
void select(const bool* cond, Dims cond_dims, const T* a, Dims a_dims, const T* b, Dims b_dims, T* out, Dims out_dims) {
  const std::int64_t n = element_count(out_dims);
  BroadcastCursor cursor(out_dims, {cond_dims, a_dims, b_dims});
  for (std::int64_t i = 0; i < n; ++i, cursor.next()) {
    out[i] = cond[cursor.offset(0)] ? a[cursor.offset(1)] : b[cursor.offset(2)];
  }
}

#define KILN_NUMERIC_INSTANCES(T)                                                   \
  template void unary<T>(UnaryOp, const T*, T*, std::int64_t);                      \
  template void binary<T>(BinaryOp, const T*, Dims, const T*, Dims, T*, Dims);      \
  template void compare<T>(CompareOp, const T*, Dims, const T*, Dims, bool*, Dims); \
  template void select<T>(const bool*, Dims, const T*, Dims, const T*, Dims, T*, Dims);
KILN_NUMERIC_INSTANCES(float)
KILN_NUMERIC_INSTANCES(double)
KILN_NUMERIC_INSTANCES(std::int32_t)
KILN_NUMERIC_INSTANCES(std::int64_t)
#undef KILN_NUMERIC_INSTANCES
template void compare<bool>(CompareOp, const bool*, Dims, const bool*, Dims, bool*, Dims);
template void select<bool>(const bool*, Dims, const bool*, Dims, const bool*, Dims, bool*, Dims);

}  // namespace kiln::kernels::ref
