// Shape rules of the general tensor ops: sources, random draws, elementwise math,
// reductions and layout changes. Each rule checks its operands completely and words its
// failure for the model author, since sema reports it at the `.kiln` call site.
#include <fmt/format.h>

#include <algorithm>

#include "compiler/ir/shape_rules.h"

namespace kiln::ir::rules {
namespace {

std::string dtype_str(DType d) {
  return std::string(dtype_name(d));
}

// Reads the shape attribute `name` (-1 = batch), failing with a message when it is absent
// (and required) or holds an invalid size.
std::optional<Shape> read_shape(std::string_view op, const Attrs& attrs, std::string_view name, bool required,
                                std::string& error) {
  const auto ints = ints_attr(attrs, name);
  if (!ints) {
    if (required) error = missing_attr(op, name, "int list");
    return required ? std::nullopt : std::optional<Shape>(Shape{});
  }
  auto shape = shape_from_ints(*ints);
  if (!shape)
    error = fmt::format("{}: invalid shape {} (sizes must be >= 0, or -1 for batch)", op, ints_to_string(*ints));
  return shape;
}

std::optional<DType> read_dtype(std::string_view op, const Attrs& attrs, std::string& error) {
  auto dtype = dtype_attr(attrs, "dtype", "f32");
  if (!dtype)
    error = fmt::format("{}: unknown dtype '{}' (expected f32, f64, i32, i64 or bool)", op, attrs.get_string("dtype"));
  return dtype;
}

ShapeResult input(Types t, const Attrs& attrs) {
  if (auto bad = check_arity("input", t, 0)) return *bad;
  if (!attrs.find("name")) return ShapeResult::fail(missing_attr("input", "name", "string"));
  std::string error;
  const auto dtype = read_dtype("input", attrs, error);
  if (!dtype) return ShapeResult::fail(error);
  const auto shape = read_shape("input", attrs, "shape", true, error);
  if (!shape) return ShapeResult::fail(error);
  return ShapeResult::ok({*dtype, *shape});
}

ShapeResult constant(Types t, const Attrs& attrs) {
  if (auto bad = check_arity("constant", t, 0)) return *bad;
  const AttrValue* value = attrs.find("value");
  if (value == nullptr || !std::holds_alternative<double>(*value)) {
    return ShapeResult::fail(missing_attr("constant", "value", "float"));
  }
  std::string error;
  const auto dtype = read_dtype("constant", attrs, error);
  if (!dtype) return ShapeResult::fail(error);
  const auto shape = read_shape("constant", attrs, "shape", false, error);
  if (!shape) return ShapeResult::fail(error);
  return ShapeResult::ok({*dtype, *shape});
}

ShapeResult assign_state(Types t, const Attrs&) {
  if (auto bad = check_arity("assign_state", t, 2)) return *bad;
  if (t[0] != t[1]) {
    return fail("assign_state",
                fmt::format("value of type {} does not match state of type {}", t[1].to_string(), t[0].to_string()));
  }
  return ShapeResult::ok(t[0]);
}

ShapeResult random_like(Types t, const Attrs& attrs) {
  if (auto bad = check_arity("random_uniform_like", t, 1)) return *bad;
  if (attrs.get_float("high", 1) < attrs.get_float("low", 0)) {
    return fail("random_uniform_like", "high must not be below low");
  }
  // Follows x's float type (so dropout works in an f64 graph); integer x gives f32.
  return ShapeResult::ok({is_float(t[0].dtype) ? t[0].dtype : DType::kF32, t[0].shape});
}

ShapeResult cast(Types t, const Attrs& attrs) {
  if (auto bad = check_arity("cast", t, 1)) return *bad;
  if (!attrs.find("dtype")) return ShapeResult::fail(missing_attr("cast", "dtype", "dtype"));
  std::string error;
  const auto dtype = read_dtype("cast", attrs, error);
  if (!dtype) return ShapeResult::fail(error);
  return ShapeResult::ok({*dtype, t[0].shape});
}

// Broadcast shape of two operands, or a failure naming both shapes.
std::optional<Shape> broadcast_pair(std::string_view op, const Shape& a, const Shape& b, std::string& error) {
  auto shape = broadcast_shapes(a, b);
  if (!shape) error = fmt::format("{}: shapes {} and {} do not broadcast", op, a.to_string(), b.to_string());
  return shape;
}

ShapeResult select(Types t, const Attrs&) {
  if (auto bad = check_arity("select", t, 3)) return *bad;
  if (t[0].dtype != DType::kBool) {
    return fail("select", fmt::format("condition must be bool, got {}", dtype_str(t[0].dtype)));
  }
  if (t[1].dtype != t[2].dtype) {
    return fail("select", fmt::format("branch dtypes differ ({} vs {})", dtype_str(t[1].dtype), dtype_str(t[2].dtype)));
  }
  std::string error;
  const auto ab = broadcast_pair("select", t[1].shape, t[2].shape, error);
  if (!ab) return ShapeResult::fail(error);
  const auto all = broadcast_pair("select", t[0].shape, *ab, error);
  if (!all) return ShapeResult::fail(error);
  return ShapeResult::ok({t[1].dtype, *all});
}

ShapeResult reshape(Types t, const Attrs& attrs) {
  if (auto bad = check_arity("reshape", t, 1)) return *bad;
  std::string error;
  const auto target = read_shape("reshape", attrs, "shape", true, error);
  if (!target) return ShapeResult::fail(error);
  const auto batches = std::count_if(target->dims.begin(), target->dims.end(), [](Dim d) { return d.is_batch(); });
  if (batches > 1) return fail("reshape", "at most one dimension may be batch (-1)");
  const Shape& from = t[0].shape;
  const auto describe = [](const Shape& s) {
    return fmt::format("{} ({}{} elements)", s.to_string(), s.has_batch() ? "batch x " : "", s.static_elements());
  };
  if (from.static_elements() != target->static_elements() || from.has_batch() != target->has_batch()) {
    return fail("reshape", fmt::format("cannot reshape {} to {}", describe(from), describe(*target)));
  }
  return ShapeResult::ok({t[0].dtype, *target});
}

ShapeResult transpose(Types t, const Attrs& attrs) {
  if (auto bad = check_arity("transpose", t, 1)) return *bad;
  const Shape& x = t[0].shape;
  const std::size_t rank = x.rank();
  std::vector<std::int64_t> perm;
  if (const auto given = ints_attr(attrs, "perm")) {
    perm = *given;
  } else {
    for (std::size_t i = 0; i < rank; ++i) perm.push_back(static_cast<std::int64_t>(rank - 1 - i));
  }
  if (perm.size() != rank) {
    return fail("transpose", fmt::format("perm {} has {} entries but the operand {} has rank {}", ints_to_string(perm),
                                         perm.size(), x.to_string(), rank));
  }
  std::vector<bool> seen(rank, false);
  Shape out;
  for (const std::int64_t p : perm) {
    const auto axis = normalize_axis(p, rank);
    if (!axis || seen[*axis]) {
      return fail("transpose", fmt::format("perm {} is not a permutation of the {} axes", ints_to_string(perm), rank));
    }
    seen[*axis] = true;
    out.dims.push_back(x.dims[*axis]);
  }
  return ShapeResult::ok({t[0].dtype, out});
}

ShapeResult broadcast_to(Types t, const Attrs& attrs) {
  if (auto bad = check_arity("broadcast_to", t, 1)) return *bad;
  std::string error;
  const auto target = read_shape("broadcast_to", attrs, "shape", true, error);
  if (!target) return ShapeResult::fail(error);
  const auto shape = broadcast_shapes(t[0].shape, *target);
  if (!shape || *shape != *target) {
    return fail("broadcast_to", fmt::format("{} cannot broadcast to {}", t[0].shape.to_string(), target->to_string()));
  }
  return ShapeResult::ok({t[0].dtype, *target});
}

ShapeResult slice(Types t, const Attrs& attrs) {
  if (auto bad = check_arity("slice", t, 1)) return *bad;
  const auto axis = int_attr(attrs, "axis");
  const auto start = int_attr(attrs, "start");
  const auto end = int_attr(attrs, "end");
  if (!axis) return ShapeResult::fail(missing_attr("slice", "axis", "int"));
  if (!start) return ShapeResult::fail(missing_attr("slice", "start", "int"));
  if (!end) return ShapeResult::fail(missing_attr("slice", "end", "int"));
  const Shape& x = t[0].shape;
  const auto a = normalize_axis(*axis, x.rank());
  if (!a) return ShapeResult::fail(axis_error("slice", *axis, x));
  if (x.dims[*a].is_batch()) return fail("slice", fmt::format("cannot slice the batch axis of {}", x.to_string()));
  const std::int64_t size = x.dims[*a].size;
  if (*start < 0 || *start > *end || *end > size) {
    return fail("slice", fmt::format("range [{}, {}) is out of bounds for axis {} of size {} (shape {})", *start, *end,
                                     *axis, size, x.to_string()));
  }
  Shape out = x;
  out.dims[*a] = Dim::of(*end - *start);
  return ShapeResult::ok({t[0].dtype, out});
}

ShapeResult concat(Types t, const Attrs& attrs) {
  if (t.empty()) return fail("concat", "expects at least one operand");
  const std::int64_t axis_attr = attrs.get_int("axis", -1);
  const Shape& first = t[0].shape;
  const auto axis = normalize_axis(axis_attr, first.rank());
  if (!axis) return ShapeResult::fail(axis_error("concat", axis_attr, first));
  Shape out = first;
  for (std::size_t i = 1; i < t.size(); ++i) {
    const Shape& s = t[i].shape;
    if (t[i].dtype != t[0].dtype) {
      return fail("concat", fmt::format("operand {} has dtype {} but operand 0 has {}", i, dtype_str(t[i].dtype),
                                        dtype_str(t[0].dtype)));
    }
    if (s.rank() != first.rank()) {
      return fail("concat", fmt::format("operand {} {} has rank {} but operand 0 {} has rank {}", i, s.to_string(),
                                        s.rank(), first.to_string(), first.rank()));
    }
    for (std::size_t d = 0; d < s.rank(); ++d) {
      if (d != *axis && s.dims[d] != first.dims[d]) {
        return fail("concat", fmt::format("operand {} {} differs from operand 0 {} in dimension {}", i, s.to_string(),
                                          first.to_string(), d));
      }
    }
    if (s.dims[*axis].is_batch() || out.dims[*axis].is_batch()) {
      return fail("concat", "cannot concatenate along the batch axis");
    }
    if (__builtin_add_overflow(out.dims[*axis].size, s.dims[*axis].size, &out.dims[*axis].size)) {
      return fail("concat", "the concatenated dimension is too large");
    }
  }
  return ShapeResult::ok({t[0].dtype, out});
}

}  // namespace

ShapeRule input_rule() {
  return input;
}

ShapeRule init_rule(std::string_view op) {
  return [op](Types t, const Attrs& attrs) -> ShapeResult {
    if (auto bad = check_arity(op, t, 1)) return *bad;
    if (!attrs.find("name")) return ShapeResult::fail(missing_attr(op, "name", "string"));
    return ShapeResult::ok(t[0]);
  };
}

ShapeRule constant_rule() {
  return constant;
}

ShapeRule assign_state_rule() {
  return assign_state;
}

ShapeRule random_rule(std::string_view op) {
  return [op](Types t, const Attrs& attrs) -> ShapeResult {
    if (auto bad = check_arity(op, t, 0)) return *bad;
    std::string error;
    const auto dtype = read_dtype(op, attrs, error);
    if (!dtype) return ShapeResult::fail(error);
    const auto shape = read_shape(op, attrs, "shape", true, error);
    if (!shape) return ShapeResult::fail(error);
    if (op != "full" && !is_float(*dtype)) {
      return fail(op, fmt::format("dtype must be f32 or f64, got {}", dtype_str(*dtype)));
    }
    if (op == "random_uniform" && attrs.get_float("high", 1) < attrs.get_float("low", 0)) {
      return fail(op, "high must not be below low");
    }
    if (op == "random_normal" && attrs.get_float("stddev", 1) < 0) return fail(op, "stddev must not be negative");
    return ShapeResult::ok({*dtype, *shape});
  };
}

ShapeRule random_like_rule() {
  return random_like;
}

ShapeRule unary_rule(std::string_view op, bool allow_int) {
  return [op, allow_int](Types t, const Attrs&) -> ShapeResult {
    if (auto bad = check_arity(op, t, 1)) return *bad;
    const DType d = t[0].dtype;
    if (!is_float(d) && !(allow_int && is_integer(d))) {
      return fail(op, fmt::format("expects a {} operand, got {}", allow_int ? "numeric" : "float", t[0].to_string()));
    }
    return ShapeResult::ok(t[0]);
  };
}

ShapeRule cast_rule() {
  return cast;
}

ShapeRule binary_rule(std::string_view op) {
  return [op](Types t, const Attrs&) -> ShapeResult {
    if (auto bad = check_arity(op, t, 2)) return *bad;
    if (t[0].dtype != t[1].dtype) {
      return fail(op, fmt::format("operand dtypes differ ({} vs {})", dtype_str(t[0].dtype), dtype_str(t[1].dtype)));
    }
    if (t[0].dtype == DType::kBool) return fail(op, "operands must be numeric, got bool");
    std::string error;
    const auto shape = broadcast_pair(op, t[0].shape, t[1].shape, error);
    if (!shape) return ShapeResult::fail(error);
    return ShapeResult::ok({t[0].dtype, *shape});
  };
}

ShapeRule compare_rule(std::string_view op) {
  return [op](Types t, const Attrs&) -> ShapeResult {
    if (auto bad = check_arity(op, t, 2)) return *bad;
    if (t[0].dtype != t[1].dtype) {
      return fail(op, fmt::format("operand dtypes differ ({} vs {})", dtype_str(t[0].dtype), dtype_str(t[1].dtype)));
    }
    std::string error;
    const auto shape = broadcast_pair(op, t[0].shape, t[1].shape, error);
    if (!shape) return ShapeResult::fail(error);
    return ShapeResult::ok({DType::kBool, *shape});
  };
}

ShapeRule select_rule() {
  return select;
}

ShapeRule reduce_rule(std::string_view op, bool float_only) {
  return [op, float_only](Types t, const Attrs& attrs) -> ShapeResult {
    if (auto bad = check_arity(op, t, 1)) return *bad;
    const Shape& x = t[0].shape;
    const DType d = t[0].dtype;
    if (d == DType::kBool || (float_only && !is_float(d))) {
      return fail(op, fmt::format("expects a {} operand, got {}", float_only ? "float" : "numeric", t[0].to_string()));
    }
    const std::vector<std::int64_t> axes = attrs.get_ints("axes");
    std::vector<bool> reduced(x.rank(), axes.empty());
    std::vector<bool> seen(x.rank(), false);
    for (const std::int64_t axis : axes) {
      const auto a = normalize_axis(axis, x.rank());
      if (!a) return ShapeResult::fail(axis_error(op, axis, x));
      if (seen[*a]) return fail(op, fmt::format("axis {} appears twice in axes {}", axis, ints_to_string(axes)));
      seen[*a] = reduced[*a] = true;
    }
    const bool keepdims = attrs.get_bool("keepdims", false);
    Shape out;
    for (std::size_t i = 0; i < x.rank(); ++i) {
      if (!reduced[i]) {
        out.dims.push_back(x.dims[i]);
      } else if (keepdims) {
        out.dims.push_back(Dim::of(1));
      }
    }
    return ShapeResult::ok({d, out});
  };
}

ShapeRule reshape_rule() {
  return reshape;
}
ShapeRule transpose_rule() {
  return transpose;
}
ShapeRule broadcast_to_rule() {
  return broadcast_to;
}
ShapeRule slice_rule() {
  return slice;
}
ShapeRule concat_rule() {
  return concat;
}

}  // namespace kiln::ir::rules
