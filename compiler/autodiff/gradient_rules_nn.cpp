// Gradient rules of matmul, the indexing ops, and the fused NN kernels. The fused ops have
// explicit backward ops in the table (conv2d_grad_input, max_pool2d_grad, ...) because
// writing them with primitives would be slow; softmax and the losses use the closed forms
// (y * (dy - sum(dy * y)), softmax - one_hot, sigmoid - target).
#include "compiler/autodiff/gradient_rules.h"

namespace kiln::autodiff {
namespace {

using ir::ValueId;

OperandGradients none(const GradientCall& c) {
  return OperandGradients(c.node.operands.size());
}

ValueId op(const GradientCall& c, std::string_view name, std::vector<ValueId> operands, ir::Attrs attrs = {}) {
  return c.emit.emit(name, std::move(operands), std::move(attrs));
}

ValueId matmul(const GradientCall& c, ValueId a, ValueId b, bool transpose_a, bool transpose_b) {
  return op(c, "matmul", {a, b}, make_attrs({{"transpose_a", transpose_a}, {"transpose_b", transpose_b}}));
}

// C = op(A) op(B), with op = transpose when the flag is set. Each gradient is one more
// matmul whose flags absorb the transposes, so no transpose node is ever materialised:
//   C = A B      dA = dC B^T      dB = A^T dC
//   C = A B^T    dA = dC B        dB = dC^T A
//   C = A^T B    dA = B dC^T      dB = A dC
//   C = A^T B^T  dA = B^T dC^T    dB = dC^T A^T
// Vector operands act as [1, k] (left) or [k, 1] (right) matrices whose unit dimension the
// product dropped; it is restored on dy, and leading dimensions that were broadcast are
// summed away.
OperandGradients matmul_grad(const GradientCall& c) {
  OperandGradients g = none(c);
  const ir::TensorType a_type = c.type(0);
  const ir::TensorType b_type = c.type(1);
  const bool a_vector = a_type.shape.rank() == 1;
  const bool b_vector = b_type.shape.rank() == 1;
  ir::TensorType a2 = a_type;
  ir::TensorType b2 = b_type;
  if (a_vector) a2.shape.dims.insert(a2.shape.dims.begin(), ir::Dim::of(1));
  if (b_vector) b2.shape.dims.push_back(ir::Dim::of(1));
  const bool ta = !a_vector && c.node.attrs.get_bool("transpose_a");
  const bool tb = !b_vector && c.node.attrs.get_bool("transpose_b");

  ir::Shape dy_shape = c.node.type.shape;
  if (a_vector) dy_shape.dims.insert(dy_shape.dims.end() - (b_vector ? 0 : 1), ir::Dim::of(1));
  if (b_vector) dy_shape.dims.push_back(ir::Dim::of(1));
  const ValueId dy = c.emit.reshape(c.dy, dy_shape);

  if (c.wanted[0]) {
    const ValueId b = c.emit.reshape(c.x(1), b2.shape);
    ValueId da = !ta ? (!tb ? matmul(c, dy, b, false, true) : matmul(c, dy, b, false, false))
                     : (!tb ? matmul(c, b, dy, false, true) : matmul(c, b, dy, true, true));
    g[0] = c.emit.reshape(c.emit.sum_to(da, a2), a_type.shape);
  }
  if (c.wanted[1]) {
    const ValueId a = c.emit.reshape(c.x(0), a2.shape);
    ValueId db = !ta ? (!tb ? matmul(c, a, dy, true, false) : matmul(c, dy, a, true, false))
                     : (!tb ? matmul(c, a, dy, false, false) : matmul(c, dy, a, true, true));
    g[1] = c.emit.reshape(c.emit.sum_to(db, b2), b_type.shape);
  }
  return g;
}

// Rows of the table that were picked several times get the sum of their gradients.
OperandGradients gather_grad(const GradientCall& c) {
  OperandGradients g = none(c);
  if (c.wanted[0]) {
    const std::int64_t rows = c.type(0).shape.dims[0].size;  // -1 (batch) passes through as is
    g[0] = op(c, "scatter_add", {c.x(1), c.dy}, make_attrs({{"rows", rows}}));
  }
  return g;
}

OperandGradients scatter_add_grad(const GradientCall& c) {
  OperandGradients g = none(c);
  if (c.wanted[1]) g[1] = op(c, "gather", {c.dy, c.x(0)});
  return g;
}

// The forward node's window attributes plus one more (input_shape or filter_shape).
ir::Attrs window_attrs(const GradientCall& c, std::string_view extra, const ir::Shape& shape) {
  ir::Attrs attrs = c.node.attrs;
  attrs.set(std::string(extra), shape_ints(shape));
  return attrs;
}

OperandGradients conv2d_grad(const GradientCall& c) {
  OperandGradients g = none(c);
  if (c.wanted[0]) g[0] = op(c, "conv2d_grad_input", {c.dy, c.x(1)}, window_attrs(c, "input_shape", c.type(0).shape));
  if (c.wanted[1]) g[1] = op(c, "conv2d_grad_filter", {c.x(0), c.dy}, window_attrs(c, "filter_shape", c.type(1).shape));
  return g;
}

OperandGradients max_pool2d_grad(const GradientCall& c) {
  return {op(c, "max_pool2d_grad", {c.x(0), c.dy}, c.node.attrs)};
}

OperandGradients avg_pool2d_grad(const GradientCall& c) {
  return {op(c, "avg_pool2d_grad", {c.dy}, window_attrs(c, "input_shape", c.type(0).shape))};
}

ir::Attrs sum_along(std::int64_t axis) {
  return make_attrs({{"axes", std::vector<std::int64_t>{axis}}, {"keepdims", true}});
}

// dx = y * (dy - sum(dy * y)) along the softmax axis.
OperandGradients softmax_grad(const GradientCall& c) {
  const std::int64_t axis = c.node.attrs.get_int("axis", -1);
  const ValueId dot = op(c, "reduce_sum", {op(c, "mul", {c.dy, c.y})}, sum_along(axis));
  return {op(c, "mul", {c.y, op(c, "sub", {c.dy, dot})})};
}

// dx = dy - softmax(x) * sum(dy), with softmax(x) = exp(y).
OperandGradients log_softmax_grad(const GradientCall& c) {
  const std::int64_t axis = c.node.attrs.get_int("axis", -1);
  const ValueId total = op(c, "reduce_sum", {c.dy}, sum_along(axis));
  return {op(c, "sub", {c.dy, op(c, "mul", {op(c, "exp", {c.y}), total})})};
}

// d logits = (softmax(logits) - one_hot(labels)) * dy, dy broadcast over the classes.
// The integer labels get nothing.
OperandGradients softmax_cross_entropy_grad(const GradientCall& c) {
  OperandGradients g = none(c);
  if (!c.wanted[0]) return g;
  const ir::TensorType logits = c.type(0);
  const ValueId probs = op(c, "softmax", {c.x(0)}, make_attrs({{"axis", std::int64_t{-1}}}));
  const ValueId targets =
      op(c, "one_hot", {c.x(1)},
         make_attrs({{"depth", logits.shape.dims.back().size}, {"dtype", std::string(ir::dtype_name(logits.dtype))}}));
  ir::Shape dy_shape = c.node.type.shape;
  dy_shape.dims.push_back(ir::Dim::of(1));
  g[0] = op(c, "mul", {op(c, "sub", {probs, targets}), c.emit.reshape(c.dy, dy_shape)});
  return g;
}

// loss = max(x, 0) - x t + log(1 + e^-|x|):  d/dx = sigmoid(x) - t,  d/dt = -x.
OperandGradients sigmoid_cross_entropy_grad(const GradientCall& c) {
  OperandGradients g = none(c);
  if (c.wanted[0]) g[0] = op(c, "mul", {op(c, "sub", {op(c, "sigmoid", {c.x(0)}), c.x(1)}), c.dy});
  if (c.wanted[1]) g[1] = op(c, "neg", {op(c, "mul", {c.x(0), c.dy})});
  return g;
}

}  // namespace

namespace detail {

void add_nn_rules(GradientRuleTable& t) {
  t["matmul"] = matmul_grad;
  t["gather"] = gather_grad;
  t["scatter_add"] = scatter_add_grad;
  t["conv2d"] = conv2d_grad;
  t["max_pool2d"] = max_pool2d_grad;
  t["avg_pool2d"] = avg_pool2d_grad;
  t["softmax"] = softmax_grad;
  t["log_softmax"] = log_softmax_grad;
  t["softmax_cross_entropy"] = softmax_cross_entropy_grad;
  t["sigmoid_cross_entropy"] = sigmoid_cross_entropy_grad;
}

}  // namespace detail
}  // namespace kiln::autodiff
