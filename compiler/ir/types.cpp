// Names and text forms of the Graph IR's element types, shapes and tensor types.
// The strings here ("f32[batch, 784]") appear in diagnostics, IR dumps and golden
// files, so they are part of the user-visible surface: change them deliberately.
#include "compiler/ir/types.h"

#include <array>

namespace kiln::ir {
namespace {

constexpr std::array<std::string_view, 5> kDTypeNames = {"f32", "f64", "i32", "i64", "bool"};

}  // namespace

std::string_view dtype_name(DType dtype) {
  const auto index = static_cast<std::size_t>(dtype);
  return index < kDTypeNames.size() ? kDTypeNames[index] : std::string_view("?");
}

std::optional<DType> parse_dtype(std::string_view name) {
  for (std::size_t i = 0; i < kDTypeNames.size(); ++i) {
    if (kDTypeNames[i] == name) return static_cast<DType>(i);
  }
  return std::nullopt;
}

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kF32: return 4;
    case DType::kF64: return 8;
    case DType::kI32: return 4;
    case DType::kI64: return 8;
    case DType::kBool: return 1;
  }
  return 1;
}

bool is_float(DType dtype) {
  return dtype == DType::kF32 || dtype == DType::kF64;
}

bool is_integer(DType dtype) {
  return dtype == DType::kI32 || dtype == DType::kI64;
}

bool Shape::has_batch() const {
  for (const Dim& d : dims) {
    if (d.is_batch()) return true;
  }
  return false;
}

std::int64_t Shape::static_elements() const {
  std::int64_t n = 1;
  for (const Dim& d : dims) {
    // Saturate rather than overflow: shapes can come from malformed input.
    if (!d.is_batch() && __builtin_mul_overflow(n, d.size, &n)) return INT64_MAX;
  }
  return n;
}

std::string Shape::to_string() const {
  std::string out = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (i > 0) out += ", ";
    out += dims[i].is_batch() ? std::string("batch") : std::to_string(dims[i].size);
  }
  out += "]";
  return out;
}

std::string TensorType::to_string() const {
  return std::string(dtype_name(dtype)) + shape.to_string();
}

}  // namespace kiln::ir
