// Helpers shared by the shape rules: operand counts, axes, attribute reads and the
// wording of their failures, so every rule words the same problem the same way.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "compiler/ir/shape_rules.h"

namespace kiln::ir::rules {

ShapeResult fail(std::string_view op, std::string_view message) {
  return ShapeResult::fail(fmt::format("{}: {}", op, message));
}

std::optional<ShapeResult> check_arity(std::string_view op, Types types, std::size_t count) {
  if (types.size() == count) return std::nullopt;
  return fail(op, fmt::format("expects {} operand{}, got {}", count, count == 1 ? "" : "s", types.size()));
}

std::optional<std::size_t> normalize_axis(std::int64_t axis, std::size_t rank) {
  const auto r = static_cast<std::int64_t>(rank);
  if (axis < -r || axis >= r) return std::nullopt;
  return static_cast<std::size_t>(axis < 0 ? axis + r : axis);
}

std::string axis_error(std::string_view op, std::int64_t axis, const Shape& shape) {
  return fmt::format("{}: axis {} is out of range for rank {} (shape {})", op, axis, shape.rank(), shape.to_string());
}

std::string dim_to_string(Dim dim) {
  return dim.is_batch() ? "batch" : std::to_string(dim.size);
}

std::optional<std::int64_t> int_attr(const Attrs& attrs, std::string_view name) {
  const AttrValue* v = attrs.find(name);
  const auto* i = v ? std::get_if<std::int64_t>(v) : nullptr;
  return i ? std::optional<std::int64_t>(*i) : std::nullopt;
}

std::optional<std::vector<std::int64_t>> ints_attr(const Attrs& attrs, std::string_view name) {
  const AttrValue* v = attrs.find(name);
  const auto* i = v ? std::get_if<std::vector<std::int64_t>>(v) : nullptr;
  return i ? std::optional<std::vector<std::int64_t>>(*i) : std::nullopt;
}

std::string missing_attr(std::string_view op, std::string_view name, std::string_view kind) {
  return fmt::format("{}: missing {} attribute '{}'", op, kind, name);
}

std::optional<Shape> shape_from_ints(std::span<const std::int64_t> ints) {
  Shape shape;
  for (const std::int64_t n : ints) {
    if (n < Dim::kBatch) return std::nullopt;
    shape.dims.push_back(Dim::of(n));
  }
  return shape;
}

std::optional<DType> dtype_attr(const Attrs& attrs, std::string_view name, std::string_view fallback) {
  const AttrValue* v = attrs.find(name);
  if (v == nullptr) return parse_dtype(fallback);
  const auto* s = std::get_if<std::string>(v);
  return s ? parse_dtype(*s) : std::nullopt;
}

std::string ints_to_string(std::span<const std::int64_t> ints) {
  return fmt::format("[{}]", fmt::join(ints, ", "));
}

}  // namespace kiln::ir::rules
