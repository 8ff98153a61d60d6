// Gradient rules of the general tensor ops: elementwise math (with broadcasting),
// select, cast, if_training, reductions and layout changes. Broadcasting binary ops sum
// their gradient back over the broadcast axes (Emitter::sum_to). Where an op has no
// derivative at a point (relu and abs at 0, ties of maximum and reduce_max) the rule picks
// a subgradient, documented at the rule.
#include "compiler/autodiff/gradient_rules.h"

#include <fmt/format.h>

#include <numeric>
#include <stdexcept>

namespace kiln::autodiff {
namespace {

using ir::ValueId;

OperandGradients none(const GradientCall& c) {
  return OperandGradients(c.node.operands.size());
}

ValueId op(const GradientCall& c, std::string_view name, std::vector<ValueId> operands, ir::Attrs attrs = {}) {
  return c.emit.emit(name, std::move(operands), std::move(attrs));
}

ValueId zero(const GradientCall& c) {
  return c.emit.scalar(0, c.dtype());
}

// --- unary elementwise: y and x share a shape, so no reduction is needed ---

OperandGradients neg_grad(const GradientCall& c) {
  return {op(c, "neg", {c.dy})};
}

// Subgradient +1 at x = 0.
OperandGradients abs_grad(const GradientCall& c) {
  const ValueId negative = op(c, "less", {c.x(0), zero(c)});
  return {op(c, "select", {negative, op(c, "neg", {c.dy}), c.dy})};
}

OperandGradients exp_grad(const GradientCall& c) {
  return {op(c, "mul", {c.dy, c.y})};
}

OperandGradients log_grad(const GradientCall& c) {
  return {op(c, "div", {c.dy, c.x(0)})};
}

// d sqrt(x) = 1 / (2 sqrt(x)): reuses y instead of taking another root.
OperandGradients sqrt_grad(const GradientCall& c) {
  return {op(c, "div", {op(c, "mul", {c.dy, c.emit.scalar(0.5, c.dtype())}), c.y})};
}

OperandGradients tanh_grad(const GradientCall& c) {
  const ValueId one_minus_y2 = op(c, "sub", {c.emit.scalar(1, c.dtype()), op(c, "mul", {c.y, c.y})});
  return {op(c, "mul", {c.dy, one_minus_y2})};
}

OperandGradients sigmoid_grad(const GradientCall& c) {
  const ValueId one_minus_y = op(c, "sub", {c.emit.scalar(1, c.dtype()), c.y});
  return {op(c, "mul", {c.dy, op(c, "mul", {c.y, one_minus_y})})};
}

// Subgradient 0 at x = 0 (as PyTorch and TensorFlow do). Tested on the output: y > 0 exactly
// when x > 0 (a NaN x gives y = 0), and reading y rather than x leaves the pre-activation
// with one reader, so a backend can fold bias and relu into the producing matmul.
OperandGradients relu_grad(const GradientCall& c) {
  const ValueId positive = op(c, "greater", {c.y, zero(c)});
  return {op(c, "select", {positive, c.dy, zero(c)})};
}

// Only float-to-float casts carry a gradient; a cast from bool or to an integer is a
// step function (dropout masks, labels).
OperandGradients cast_grad(const GradientCall& c) {
  OperandGradients g = none(c);
  const ir::DType from = c.type(0).dtype;
  if (ir::is_float(from) && ir::is_float(c.dtype())) {
    g[0] = op(c, "cast", {c.dy}, make_attrs({{"dtype", std::string(ir::dtype_name(from))}}));
  }
  return g;
}

// --- binary elementwise with broadcasting ---

// Sets g[i] to `grad` summed to operand i's shape, when operand i wants a gradient. The
// builder is only called when wanted, so no node is built for, say, log(a) in pow's
// exponent gradient when the exponent is a constant (log of a negative base is NaN).
template <typename Build>
void set_if_wanted(const GradientCall& c, OperandGradients& g, std::size_t i, Build build) {
  if (c.wanted[i]) g[i] = c.emit.sum_to(build(), c.type(i));
}

OperandGradients add_grad(const GradientCall& c) {
  OperandGradients g = none(c);
  set_if_wanted(c, g, 0, [&] { return c.dy; });
  set_if_wanted(c, g, 1, [&] { return c.dy; });
  return g;
}

OperandGradients sub_grad(const GradientCall& c) {
  OperandGradients g = none(c);
  set_if_wanted(c, g, 0, [&] { return c.dy; });
  // Negate after summing: the summed tensor is never larger than dy.
  if (c.wanted[1]) g[1] = op(c, "neg", {c.emit.sum_to(c.dy, c.type(1))});
  return g;
}

OperandGradients mul_grad(const GradientCall& c) {
  OperandGradients g = none(c);
  set_if_wanted(c, g, 0, [&] { return op(c, "mul", {c.dy, c.x(1)}); });
  set_if_wanted(c, g, 1, [&] { return op(c, "mul", {c.dy, c.x(0)}); });
  return g;
}

// d(a/b)/db = -a/b^2 = -y/b.
OperandGradients div_grad(const GradientCall& c) {
  OperandGradients g = none(c);
  set_if_wanted(c, g, 0, [&] { return op(c, "div", {c.dy, c.x(1)}); });
  set_if_wanted(c, g, 1, [&] { return op(c, "neg", {op(c, "div", {op(c, "mul", {c.dy, c.y}), c.x(1)})}); });
  return g;
}

// d(a^b)/da = b a^(b-1); d(a^b)/db = a^b log(a).
OperandGradients pow_grad(const GradientCall& c) {
  OperandGradients g = none(c);
  set_if_wanted(c, g, 0, [&] {
    const ValueId b_minus_1 = op(c, "sub", {c.x(1), c.emit.scalar(1, c.dtype())});
    return op(c, "mul", {c.dy, op(c, "mul", {c.x(1), op(c, "pow", {c.x(0), b_minus_1})})});
  });
  set_if_wanted(c, g, 1, [&] { return op(c, "mul", {c.dy, op(c, "mul", {c.y, op(c, "log", {c.x(0)})})}); });
  return g;
}

// Ties go to `a` alone, so the two gradients always sum to dy.
OperandGradients minmax_grad(const GradientCall& c, std::string_view a_wins, std::string_view b_wins) {
  OperandGradients g = none(c);
  set_if_wanted(c, g, 0, [&] { return op(c, "select", {op(c, a_wins, {c.x(0), c.x(1)}), c.dy, zero(c)}); });
  set_if_wanted(c, g, 1, [&] { return op(c, "select", {op(c, b_wins, {c.x(0), c.x(1)}), c.dy, zero(c)}); });
  return g;
}

OperandGradients maximum_grad(const GradientCall& c) {
  return minmax_grad(c, "greater_equal", "less");
}
OperandGradients minimum_grad(const GradientCall& c) {
  return minmax_grad(c, "less_equal", "greater");
}

// The condition gets nothing; each branch gets dy where it was picked.
OperandGradients select_grad(const GradientCall& c) {
  OperandGradients g = none(c);
  set_if_wanted(c, g, 1, [&] { return op(c, "select", {c.x(0), c.dy, zero(c)}); });
  set_if_wanted(c, g, 2, [&] { return op(c, "select", {c.x(0), zero(c), c.dy}); });
  return g;
}

// Training graphs take branch a; b (the inference branch) gets nothing.
OperandGradients if_training_grad(const GradientCall& c) {
  OperandGradients g = none(c);
  if (c.wanted[0]) g[0] = c.dy;
  return g;
}

// --- reductions ---

// Which axes of x a reduction removed (all of them when `axes` is empty).
std::vector<bool> reduced_axes(const GradientCall& c) {
  const std::size_t rank = c.type(0).shape.rank();
  const std::vector<std::int64_t> axes = c.node.attrs.get_ints("axes");
  std::vector<bool> reduced(rank, axes.empty());
  for (const std::int64_t a : axes)
    reduced[static_cast<std::size_t>(a < 0 ? a + static_cast<std::int64_t>(rank) : a)] = true;
  return reduced;
}

std::vector<std::int64_t> axes_list(const std::vector<bool>& reduced) {
  std::vector<std::int64_t> axes;
  for (std::size_t i = 0; i < reduced.size(); ++i) {
    if (reduced[i]) axes.push_back(static_cast<std::int64_t>(i));
  }
  return axes;
}

// A reduction's output (or its gradient) spread back over x: reshape to x's shape with
// the reduced axes kept as 1, then broadcast.
ValueId spread(const GradientCall& c, ValueId v) {
  const ir::Shape x_shape = c.type(0).shape;
  const std::vector<bool> reduced = reduced_axes(c);
  ir::Shape kept = x_shape;
  for (std::size_t i = 0; i < reduced.size(); ++i) {
    if (reduced[i]) kept.dims[i] = ir::Dim::of(1);
  }
  const ValueId reshaped = c.emit.reshape(v, kept);
  if (kept == x_shape) return reshaped;
  return op(c, "broadcast_to", {reshaped}, make_attrs({{"shape", shape_ints(x_shape)}}));
}

OperandGradients reduce_sum_grad(const GradientCall& c) {
  return {spread(c, c.dy)};
}

// dy / count, where count includes the batch size when the batch axis was reduced.
OperandGradients reduce_mean_grad(const GradientCall& c) {
  const ir::Shape x_shape = c.type(0).shape;
  const std::vector<bool> reduced = reduced_axes(c);
  double count = 1;
  bool over_batch = false;
  for (std::size_t i = 0; i < reduced.size(); ++i) {
    if (!reduced[i]) continue;
    if (x_shape.dims[i].is_batch()) {
      over_batch = true;
    } else {
      count *= static_cast<double>(x_shape.dims[i].size);
    }
  }
  ValueId scale = c.emit.scalar(1.0 / count, c.dtype());
  if (over_batch) scale = op(c, "div", {scale, c.emit.batch_size(c.dtype())});
  return {op(c, "mul", {spread(c, c.dy), scale})};
}

// The maximum's gradient is shared evenly among the elements that tie for it, so the
// result stays a valid subgradient whatever the ties.
OperandGradients reduce_max_grad(const GradientCall& c) {
  const std::string dtype(ir::dtype_name(c.dtype()));
  const ValueId is_max = op(c, "cast", {op(c, "equal", {c.x(0), spread(c, c.y)})}, make_attrs({{"dtype", dtype}}));
  const ValueId ties =
      op(c, "reduce_sum", {is_max}, make_attrs({{"axes", axes_list(reduced_axes(c))}, {"keepdims", true}}));
  return {op(c, "div", {op(c, "mul", {is_max, spread(c, c.dy)}), ties})};
}

// --- layout ---

OperandGradients reshape_grad(const GradientCall& c) {
  return {c.emit.reshape(c.dy, c.type(0).shape)};
}

OperandGradients transpose_grad(const GradientCall& c) {
  const std::size_t rank = c.type(0).shape.rank();
  std::vector<std::int64_t> perm = c.node.attrs.get_ints("perm");
  if (c.node.attrs.find("perm") == nullptr) {
    for (std::size_t i = 0; i < rank; ++i) perm.push_back(static_cast<std::int64_t>(rank - 1 - i));
  }
  std::vector<std::int64_t> inverse(rank);
  for (std::size_t i = 0; i < rank; ++i) {
    const std::int64_t p = perm[i] < 0 ? perm[i] + static_cast<std::int64_t>(rank) : perm[i];
    inverse[static_cast<std::size_t>(p)] = static_cast<std::int64_t>(i);
  }
  return {op(c, "transpose", {c.dy}, make_attrs({{"perm", inverse}}))};
}

OperandGradients broadcast_to_grad(const GradientCall& c) {
  return {c.emit.sum_to(c.dy, c.type(0))};
}

std::size_t normalized_axis(std::int64_t axis, std::size_t rank) {
  return static_cast<std::size_t>(axis < 0 ? axis + static_cast<std::int64_t>(rank) : axis);
}

// The slice's gradient is dy placed back at [start, end) with zeros on either side, built
// as a concat (there is no pad op; concat's kernels already exist on every backend).
OperandGradients slice_grad(const GradientCall& c) {
  const ir::TensorType x = c.type(0);
  const std::size_t axis = normalized_axis(c.node.attrs.get_int("axis"), x.shape.rank());
  const std::int64_t start = c.node.attrs.get_int("start");
  const std::int64_t end = c.node.attrs.get_int("end");
  const auto zeros = [&](std::int64_t width) {
    ir::TensorType t = c.node.type;
    t.shape.dims[axis] = ir::Dim::of(width);
    return c.emit.filled(0, t);
  };
  std::vector<ValueId> pieces;
  if (start > 0) pieces.push_back(zeros(start));
  pieces.push_back(c.dy);
  if (end < x.shape.dims[axis].size) pieces.push_back(zeros(x.shape.dims[axis].size - end));
  if (pieces.size() == 1) return {c.dy};
  return {op(c, "concat", std::move(pieces), make_attrs({{"axis", static_cast<std::int64_t>(axis)}}))};
}

// Each operand gets its own slice of dy.
OperandGradients concat_grad(const GradientCall& c) {
  OperandGradients g = none(c);
  const std::size_t axis = normalized_axis(c.node.attrs.get_int("axis", -1), c.node.type.shape.rank());
  std::int64_t offset = 0;
  for (std::size_t i = 0; i < c.node.operands.size(); ++i) {
    const std::int64_t width = c.type(i).shape.dims[axis].size;
    if (c.wanted[i]) {
      g[i] = op(c, "slice", {c.dy},
                make_attrs({{"axis", static_cast<std::int64_t>(axis)}, {"start", offset}, {"end", offset + width}}));
    }
    offset += width;
  }
  return g;
}

}  // namespace

namespace detail {

void add_tensor_rules(GradientRuleTable& t) {
  t["neg"] = neg_grad;
  t["abs"] = abs_grad;
  t["exp"] = exp_grad;
  t["log"] = log_grad;
  t["sqrt"] = sqrt_grad;
  t["tanh"] = tanh_grad;
  t["sigmoid"] = sigmoid_grad;
  t["relu"] = relu_grad;
  t["cast"] = cast_grad;
  t["add"] = add_grad;
  t["sub"] = sub_grad;
  t["mul"] = mul_grad;
  t["div"] = div_grad;
  t["pow"] = pow_grad;
  t["maximum"] = maximum_grad;
  t["minimum"] = minimum_grad;
  t["select"] = select_grad;
  t["if_training"] = if_training_grad;
  t["reduce_sum"] = reduce_sum_grad;
  t["reduce_mean"] = reduce_mean_grad;
  t["reduce_max"] = reduce_max_grad;
  t["reshape"] = reshape_grad;
  t["transpose"] = transpose_grad;
  t["broadcast_to"] = broadcast_to_grad;
  t["slice"] = slice_grad;
  t["concat"] = concat_grad;
}

}  // namespace detail

const GradientRuleTable& gradient_rules() {
  static const GradientRuleTable table = [] {
    GradientRuleTable t;
    detail::add_tensor_rules(t);
    detail::add_nn_rules(t);
    return t;
  }();
  return table;
}

GradientRule find_gradient_rule(std::string_view op) {
  const auto it = gradient_rules().find(op);
  return it == gradient_rules().end() ? nullptr : it->second;
}

}  // namespace kiln::autodiff
