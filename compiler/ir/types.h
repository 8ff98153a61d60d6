// Element types, dimensions, shapes and tensor types of the Graph IR.
// Every shape is static except one symbolic batch dimension (Dim::batch()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::ir {

enum class DType : std::uint8_t { kF32, kF64, kI32, kI64, kBool };

std::string_view dtype_name(DType dtype);  // "f32", ...
std::optional<DType> parse_dtype(std::string_view name);
bool is_float(DType dtype);
bool is_integer(DType dtype);
std::size_t dtype_size(DType dtype);  // bytes per element

// One dimension: a static size (>= 0) or the symbolic batch dimension.
struct Dim {
  static constexpr std::int64_t kBatch = -1;
  std::int64_t size = 0;

  static Dim batch() { return Dim{kBatch}; }
  static Dim of(std::int64_t n) { return Dim{n}; }
  bool is_batch() const { return size == kBatch; }
  bool operator==(const Dim&) const = default;
};

struct Shape {
  std::vector<Dim> dims;

  Shape() = default;
  Shape(std::initializer_list<Dim> d) : dims(d) {}
  explicit Shape(std::vector<Dim> d) : dims(std::move(d)) {}
  std::size_t rank() const { return dims.size(); }
  const Dim& operator[](std::size_t i) const { return dims[i]; }
  bool has_batch() const;
  // Product of the static dimensions (batch counts as 1).
  std::int64_t static_elements() const;
  std::string to_string() const;  // "[batch, 784]"
  bool operator==(const Shape&) const = default;
};

struct TensorType {
  DType dtype = DType::kF32;
  Shape shape;

  std::string to_string() const;  // "f32[batch, 784]"
  bool operator==(const TensorType&) const = default;
};

}  // namespace kiln::ir
