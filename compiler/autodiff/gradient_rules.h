// Gradient rules: for every op the table flags kDifferentiable, how the gradients of its
// operands follow from the gradient of its output, written with other ops of the table
// (matmul's gradients are matmuls with transpose flags, conv2d's are conv2d_grad_input and
// conv2d_grad_filter, ...). Reverse-mode autodiff (autodiff.h) calls one rule per forward
// node. The table is keyed by op name and built by an explicit call; a test walks
// ir::core_ops() and fails when a differentiable op has no rule here.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "compiler/autodiff/emitter.h"
#include "compiler/ir/graph.h"

namespace kiln::autodiff {

// What a rule sees of the one forward node it differentiates.
struct GradientCall {
  Emitter& emit;                    // new nodes get the forward node's span and expansion
  ir::ValueId y;                    // the forward node itself (exp, tanh, softmax reuse it)
  const ir::Node& node;             // a copy of it: stays valid while nodes are appended
  ir::ValueId dy;                   // d loss / d y, of y's type
  const std::vector<bool>& wanted;  // wanted[i]: operand i needs a gradient

  ir::ValueId x(std::size_t i) const { return node.operands[i]; }
  ir::TensorType type(std::size_t i) const { return emit.type_of(node.operands[i]); }
  ir::DType dtype() const { return node.type.dtype; }
};

// One entry per operand, in order; nullopt where the operand gets no gradient (not wanted,
// or not differentiable: integer labels and indices, bool conditions). A present gradient
// has exactly its operand's type.
using OperandGradients = std::vector<std::optional<ir::ValueId>>;
using GradientRule = OperandGradients (*)(const GradientCall&);
using GradientRuleTable = std::map<std::string, GradientRule, std::less<>>;

// Every rule, keyed by op name; built once on first use.
const GradientRuleTable& gradient_rules();
// nullptr when `op` has no rule.
GradientRule find_gradient_rule(std::string_view op);

namespace detail {
// The two halves of the table (gradient_rules.cpp: elementwise, reductions, layout;
// gradient_rules_nn.cpp: matmul, indexing, convolution, pooling, softmax and losses).
void add_tensor_rules(GradientRuleTable& table);
void add_nn_rules(GradientRuleTable& table);
}  // namespace detail

}  // namespace kiln::autodiff
