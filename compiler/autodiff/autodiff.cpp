// The reverse-mode pass. Two sweeps decide which forward nodes matter: a forward sweep marks
// values that depend on a wanted value, a backward sweep marks values the loss depends on;
// only their intersection is differentiated. Gradients flow only through float values and
// ops flagged kDifferentiable: compares, argmax, one_hot, random draws and state updates
// stop them.
#include "compiler/autodiff/autodiff.h"

#include <fmt/format.h>

#include <stdexcept>

#include "compiler/autodiff/emitter.h"
#include "compiler/autodiff/gradient_rules.h"

namespace kiln::autodiff {
namespace {

// True when gradients pass from `node`'s output to its operands.
bool passes_gradient(const ir::OpInfo& op, const ir::Node& node) {
  return op.has(ir::kDifferentiable) && ir::is_float(node.type.dtype);
}

std::vector<ExpansionStep> chain_of(const ir::Node& node) {
  std::vector<ExpansionStep> chain;
  for (auto it = node.expansion.rbegin(); it != node.expansion.rend(); ++it)
    chain.push_back({it->layer, it->call_site});
  return chain;
}

}  // namespace

std::vector<std::optional<ir::ValueId>> differentiate(ir::Graph& graph, ir::ValueId loss,
                                                      std::span<const ir::ValueId> wrt) {
  const ir::OpRegistry& ops = ir::core_ops();
  if (loss >= graph.size() || !ir::is_float(graph.node(loss).type.dtype)) {
    throw std::logic_error(
        fmt::format("autodiff: the loss %{} is not a float value of graph '{}'", loss, graph.name()));
  }
  // Only the forward graph as it is now: nodes appended below are never revisited.
  const std::size_t forward_size = loss + 1;

  std::vector<bool> depends(forward_size, false);
  for (const ir::ValueId v : wrt) {
    if (v < forward_size && ir::is_float(graph.node(v).type.dtype)) depends[v] = true;
  }
  for (ir::ValueId v = 0; v < forward_size; ++v) {
    const ir::Node& node = graph.node(v);
    if (depends[v] || !passes_gradient(ops.get(node.op), node)) continue;
    for (const ir::ValueId operand : node.operands) depends[v] = depends[v] || depends[operand];
  }
  std::vector<bool> reaches(forward_size, false);
  reaches[loss] = true;
  for (ir::ValueId v = forward_size; v-- > 0;) {
    const ir::Node& node = graph.node(v);
    if (!reaches[v] || !passes_gradient(ops.get(node.op), node)) continue;
    for (const ir::ValueId operand : node.operands) reaches[operand] = true;
  }
  const auto active = [&](ir::ValueId v) {
    return v < forward_size && depends[v] && reaches[v] && ir::is_float(graph.node(v).type.dtype);
  };

  std::vector<std::optional<ir::ValueId>> grads(forward_size);
  if (active(loss)) {
    const ir::TensorType loss_type = graph.node(loss).type;
    grads[loss] = Emitter(graph, loss).filled(1, loss_type);
  }
  for (ir::ValueId v = forward_size; v-- > 0;) {
    if (!grads[v] || !active(v)) continue;
    const ir::Node node = graph.node(v);  // a copy: emitting appends to the node vector
    const ir::OpInfo& op = ops.get(node.op);
    if (!op.has(ir::kDifferentiable)) continue;  // parameters, inputs: gradients end here
    std::vector<bool> wanted(node.operands.size(), false);
    bool any = false;
    for (std::size_t i = 0; i < node.operands.size(); ++i) {
      wanted[i] = active(node.operands[i]);
      any = any || wanted[i];
    }
    if (!any) continue;
    const GradientRule rule = find_gradient_rule(op.name);
    if (rule == nullptr) throw std::logic_error(fmt::format("autodiff: op '{}' has no gradient rule", op.name));

    Emitter emit(graph, node.span, node.expansion);
    const OperandGradients result = rule(GradientCall{emit, v, node, *grads[v], wanted});
    for (std::size_t i = 0; i < node.operands.size(); ++i) {
      if (i >= result.size() || !result[i] || !wanted[i]) continue;
      const ir::ValueId operand = node.operands[i];
      if (graph.node(*result[i]).type != graph.node(operand).type) {
        throw std::logic_error(fmt::format("autodiff: {}'s rule gave operand {} a gradient of type {}, expected {}",
                                           op.name, i, graph.node(*result[i]).type.to_string(),
                                           graph.node(operand).type.to_string()));
      }
      // The sum of several uses is located at the value being differentiated.
      grads[operand] = grads[operand] ? Emitter(graph, operand).emit("add", {*grads[operand], *result[i]}) : *result[i];
    }
  }

  std::vector<std::optional<ir::ValueId>> out;
  out.reserve(wrt.size());
  for (const ir::ValueId v : wrt) out.push_back(active(v) ? grads[v] : std::nullopt);
  return out;
}

ParameterGradients build_gradients(ir::Graph& graph, ir::ValueId loss) {
  std::vector<ir::ValueId> params;
  for (const ir::NamedValue& p : graph.parameters()) params.push_back(p.value);
  const std::vector<std::optional<ir::ValueId>> grads = differentiate(graph, loss, params);

  ParameterGradients result;
  for (std::size_t i = 0; i < params.size(); ++i) {
    const std::string& name = graph.parameters()[i].name;
    if (grads[i]) {
      result.gradients[name] = *grads[i];
      continue;
    }
    const ir::Node param = graph.node(params[i]);
    result.gradients[name] = Emitter(graph, params[i]).filled(0, param.type);
    Diagnostic warning;
    warning.severity = Severity::kWarning;
    warning.span = param.span;
    warning.message = fmt::format("parameter '{}' does not affect the loss; its gradient is zero", name);
    warning.hint =
        "it is never used on the way to the loss (or only through a comparison, an index or an "
        "inference-only branch); remove it or use it";
    warning.chain = chain_of(param);
    result.warnings.push_back(std::move(warning));
  }
  return result;
}

}  // namespace kiln::autodiff
