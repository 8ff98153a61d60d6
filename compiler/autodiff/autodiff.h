// Reverse-mode automatic differentiation on the Graph IR. Given a scalar loss, appends to
// the same graph the nodes that compute d loss / d value for the values asked for (every
// parameter, for training; inputs, for saliency maps and gradient checks). Forward nodes
// are visited once, in reverse topological order, each through its op's gradient rule
// (gradient_rules.h); a value used several times gets the sum of its gradients. Only nodes
// that lie on a path from a wanted value to the loss are differentiated, so nothing is
// built for, say, the inference branch of if_training or the integer labels.
#pragma once

#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "compiler/ir/graph.h"
#include "compiler/syntax/diagnostics.h"

namespace kiln::autodiff {

struct ParameterGradients {
  // Parameter name -> its gradient, a value of the parameter's own type.
  std::map<std::string, ir::ValueId> gradients;
  // One warning (at the parameter's declaration) per parameter the loss does not depend
  // on; such a parameter gets a zero gradient.
  std::vector<Diagnostic> warnings;
};

// Gradients of `loss` with respect to every registered parameter of `graph`.
// Throws std::logic_error when `loss` is not a float value of the graph or a rule builds
// an ill-typed node (bugs in Kiln, not in the model).
ParameterGradients build_gradients(ir::Graph& graph, ir::ValueId loss);

// Gradients of `loss` with respect to arbitrary float values, in the order given; nullopt
// for a value the loss does not depend on. A non-scalar loss is treated as the sum of its
// elements (its seed gradient is all ones).
std::vector<std::optional<ir::ValueId>> differentiate(ir::Graph& graph, ir::ValueId loss,
                                                      std::span<const ir::ValueId> wrt);

}  // namespace kiln::autodiff
