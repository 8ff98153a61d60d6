// Shape rules of the core ops, as factories that the op table (op_table.cpp) binds to
// its entries, plus the small helpers they share. Internal to compiler/ir: everyone
// else reaches a rule through OpInfo::shape_rule.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "compiler/ir/ops.h"
#include "compiler/ir/types.h"

namespace kiln::ir::rules {

using Types = std::span<const TensorType>;

// --- helpers (shape_rule_helpers.cpp) ---

// "op: message".
ShapeResult fail(std::string_view op, std::string_view message);
// A failure when `types` does not hold exactly `count` operands.
std::optional<ShapeResult> check_arity(std::string_view op, Types types, std::size_t count);
// Negative axes count from the end; nullopt when out of range.
std::optional<std::size_t> normalize_axis(std::int64_t axis, std::size_t rank);
std::string axis_error(std::string_view op, std::int64_t axis, const Shape& shape);
std::string dim_to_string(Dim dim);
// A required attribute of the given kind, or nullopt when absent or of another kind.
std::optional<std::int64_t> int_attr(const Attrs& attrs, std::string_view name);
std::optional<std::vector<std::int64_t>> ints_attr(const Attrs& attrs, std::string_view name);
std::string missing_attr(std::string_view op, std::string_view name, std::string_view kind);
// An int-list attribute as a shape (-1 = batch); other negative sizes fail.
std::optional<Shape> shape_from_ints(std::span<const std::int64_t> ints);
// Reads a dtype attribute ("f32", ...), or `fallback` when absent.
std::optional<DType> dtype_attr(const Attrs& attrs, std::string_view name, std::string_view fallback);
std::string ints_to_string(std::span<const std::int64_t> ints);

// --- sources, random, elementwise, reductions, layout (shape_rules_tensor.cpp) ---

ShapeRule input_rule();
ShapeRule init_rule(std::string_view op);  // parameter, state: the type of `init`
ShapeRule constant_rule();
ShapeRule assign_state_rule();
ShapeRule random_rule(std::string_view op);  // random_uniform, random_normal, full
ShapeRule random_like_rule();
ShapeRule unary_rule(std::string_view op, bool allow_int);
ShapeRule cast_rule();
ShapeRule binary_rule(std::string_view op);
ShapeRule compare_rule(std::string_view op);
ShapeRule select_rule();
ShapeRule reduce_rule(std::string_view op, bool float_only);
ShapeRule reshape_rule();
ShapeRule transpose_rule();
ShapeRule broadcast_to_rule();
ShapeRule slice_rule();
ShapeRule concat_rule();

// --- indexing, matmul, fused NN, optimizers (shape_rules_nn.cpp) ---

ShapeRule gather_rule();
ShapeRule scatter_add_rule();
ShapeRule one_hot_rule();
ShapeRule argmax_rule();
ShapeRule matmul_rule();
ShapeRule conv2d_rule();
ShapeRule conv2d_grad_input_rule();
ShapeRule conv2d_grad_filter_rule();
ShapeRule pool_rule(std::string_view op);
ShapeRule max_pool_grad_rule();
ShapeRule avg_pool_grad_rule();
ShapeRule softmax_rule(std::string_view op);
ShapeRule softmax_cross_entropy_rule();
ShapeRule sigmoid_cross_entropy_rule();
ShapeRule optimizer_rule(std::string_view op, std::vector<std::string_view> operand_names);
ShapeRule if_training_rule();

}  // namespace kiln::ir::rules
