// Small builders shared by the Graph IR tests: tensor types with a symbolic batch
// (-1), attribute lists, and the Catch2 include that works with Catch2 v2 and v3.
#pragma once

#if __has_include(<catch2/catch_test_macros.hpp>)
#include <catch2/catch_test_macros.hpp>
#else
#include <catch2/catch.hpp>
#endif

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "compiler/ir/ops.h"
#include "compiler/ir/types.h"

namespace kiln::ir::test {

// T(DType::kF32, {-1, 784}) is f32[batch, 784].
inline TensorType T(DType dtype, std::initializer_list<std::int64_t> dims) {
  TensorType t{dtype, {}};
  for (const std::int64_t d : dims) t.shape.dims.push_back(Dim::of(d));
  return t;
}
inline TensorType F32(std::initializer_list<std::int64_t> dims) { return T(DType::kF32, dims); }
inline TensorType I32(std::initializer_list<std::int64_t> dims) { return T(DType::kI32, dims); }

inline AttrValue I(std::int64_t v) { return v; }
inline AttrValue F(double v) { return v; }
inline AttrValue B(bool v) { return v; }
inline AttrValue S(std::string v) { return v; }
inline AttrValue Is(std::vector<std::int64_t> v) { return v; }

inline Attrs A(std::initializer_list<std::pair<const char*, AttrValue>> items) {
  Attrs attrs;
  for (const auto& [name, value] : items) attrs.set(name, value);
  return attrs;
}

inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace kiln::ir::test
