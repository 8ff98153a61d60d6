// Tests of the Graph IR's types, attributes and broadcasting: the text forms here show
// up in every diagnostic and IR dump, so they are pinned exactly.
#include <limits>

#include "tests/compiler/ir/helpers.h"

using namespace kiln::ir;
using namespace kiln::ir::test;

TEST_CASE("dtype names round-trip", "[ir][types]") {
  for (const DType d : {DType::kF32, DType::kF64, DType::kI32, DType::kI64, DType::kBool}) {
    CHECK(parse_dtype(dtype_name(d)) == d);
  }
  CHECK(dtype_name(DType::kF32) == "f32");
  CHECK(dtype_name(DType::kF64) == "f64");
  CHECK(dtype_name(DType::kI32) == "i32");
  CHECK(dtype_name(DType::kI64) == "i64");
  CHECK(dtype_name(DType::kBool) == "bool");
  CHECK_FALSE(parse_dtype("f16").has_value());
  CHECK_FALSE(parse_dtype("").has_value());
  CHECK(is_float(DType::kF32));
  CHECK(is_float(DType::kF64));
  CHECK_FALSE(is_float(DType::kI32));
  CHECK(is_integer(DType::kI64));
  CHECK_FALSE(is_integer(DType::kBool));
  CHECK_FALSE(is_integer(DType::kF32));
}

TEST_CASE("shapes and tensor types print with a symbolic batch", "[ir][types]") {
  CHECK(F32({-1, 784}).to_string() == "f32[batch, 784]");
  CHECK(F32({}).to_string() == "f32[]");
  CHECK(T(DType::kBool, {3}).to_string() == "bool[3]");
  CHECK(Shape{Dim::batch(), Dim::of(0)}.to_string() == "[batch, 0]");
  CHECK(Shape{}.to_string() == "[]");
}

TEST_CASE("static_elements and has_batch", "[ir][types]") {
  CHECK(F32({-1, 28, 28}).shape.static_elements() == 784);
  CHECK(F32({}).shape.static_elements() == 1);
  CHECK(F32({3, 0}).shape.static_elements() == 0);
  CHECK(F32({-1, 28}).shape.has_batch());
  CHECK_FALSE(F32({28, 1}).shape.has_batch());
  CHECK_FALSE(F32({}).shape.has_batch());
  // Saturates instead of overflowing on absurd shapes.
  const std::int64_t big = std::numeric_limits<std::int64_t>::max() / 2;
  CHECK(F32({big, big}).shape.static_elements() == std::numeric_limits<std::int64_t>::max());
}

TEST_CASE("broadcast_shapes follows numpy with a batch symbol", "[ir][types]") {
  const auto bc = [](TensorType a, TensorType b) { return broadcast_shapes(a.shape, b.shape); };
  CHECK(bc(F32({-1, 10}), F32({10})) == F32({-1, 10}).shape);
  CHECK(bc(F32({-1, 1}), F32({1, 3})) == F32({-1, 3}).shape);
  CHECK(bc(F32({1}), F32({-1})) == F32({-1}).shape);
  CHECK(bc(F32({-1}), F32({-1})) == F32({-1}).shape);
  CHECK(bc(F32({}), F32({2, 3})) == F32({2, 3}).shape);
  CHECK(bc(F32({4, 1, 3}), F32({5, 1})) == F32({4, 5, 3}).shape);
  CHECK(bc(F32({0}), F32({1})) == F32({0}).shape);
  CHECK_FALSE(bc(F32({-1, 10}), F32({3})).has_value());
  CHECK_FALSE(bc(F32({-1}), F32({5})).has_value());
  CHECK_FALSE(bc(F32({2}), F32({3})).has_value());
  CHECK_FALSE(bc(F32({0}), F32({2})).has_value());
}

TEST_CASE("Attrs stay sorted and set replaces", "[ir][attrs]") {
  Attrs attrs;
  attrs.set("stride", I(2));
  attrs.set("axis", I(-1));
  attrs.set("padding", S("same"));
  attrs.set("stride", I(3));
  REQUIRE(attrs.items().size() == 3);
  CHECK(attrs.items()[0].name == "axis");
  CHECK(attrs.items()[1].name == "padding");
  CHECK(attrs.items()[2].name == "stride");
  CHECK(attrs.get_int("stride") == 3);
  CHECK(attrs.get_int("missing", 7) == 7);
  CHECK(attrs.get_int("padding", 7) == 7);  // wrong kind falls back
  CHECK(attrs.get_string("padding") == "same");
  CHECK(attrs.find("nope") == nullptr);
  CHECK(A({{"lr", F(0.5)}}).get_float("lr") == 0.5);
  CHECK(A({{"lr", I(2)}}).get_float("lr") == 2.0);
  CHECK(A({{"k", B(true)}}).get_bool("k"));
  CHECK(A({{"s", Is({1, 2})}}).get_ints("s") == std::vector<std::int64_t>{1, 2});
  CHECK(A({{"s", I(1)}}).get_ints("s").empty());
  CHECK(A({{"a", I(1)}, {"b", I(2)}}) == A({{"b", I(2)}, {"a", I(1)}}));
  CHECK_FALSE(A({{"a", I(1)}}) == A({{"a", I(2)}}));
  CHECK_FALSE(A({{"a", I(1)}}) == A({{"a", I(1)}, {"b", I(2)}}));
}

TEST_CASE("attribute values print stably and round-trip", "[ir][attrs]") {
  CHECK(attr_value_to_string(I(-3)) == "-3");
  CHECK(attr_value_to_string(Is({1, 2})) == "[1, 2]");
  CHECK(attr_value_to_string(Is({})) == "[]");
  CHECK(attr_value_to_string(B(true)) == "true");
  CHECK(attr_value_to_string(B(false)) == "false");
  CHECK(attr_value_to_string(F(1.0)) == "1.0");
  CHECK(attr_value_to_string(F(0.1)) == "0.1");
  CHECK(attr_value_to_string(F(1e-8)) == "1e-08");
  CHECK(attr_value_to_string(F(-2.5)) == "-2.5");
  CHECK(attr_value_to_string(AttrValue(std::vector<double>{0.5, 2.0})) == "[0.5, 2.0]");
  CHECK(attr_value_to_string(S("valid")) == "\"valid\"");
  CHECK(attr_value_to_string(S("a\"b\\c\nd")) == "\"a\\\"b\\\\c\\nd\"");
  CHECK(attr_value_to_string(S(std::string("\x01", 1))) == "\"\\x01\"");
  for (const double v : {0.1, 1.0 / 3.0, 0.999, 1e-8, 123456789.123456789, 6.02214076e23}) {
    const std::string text = attr_value_to_string(F(v));
    CHECK(std::stod(text) == v);
  }
}

TEST_CASE("fill_default_attrs adds only the missing defaults", "[ir][attrs]") {
  const OpInfo* matmul = core_ops().find("matmul");
  REQUIRE(matmul != nullptr);
  Attrs attrs = A({{"transpose_a", B(true)}});
  fill_default_attrs(*matmul, attrs);
  CHECK(attrs == A({{"transpose_a", B(true)}, {"transpose_b", B(false)}}));
  const OpInfo* reshape = core_ops().find("reshape");
  Attrs none;
  fill_default_attrs(*reshape, none);
  CHECK(none.items().empty());  // `shape` is required: no default to fill
}
