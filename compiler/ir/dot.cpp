// Graphviz rendering of a Graph (`kiln dump --dot`), for looking at a model's dataflow:
// inputs, parameters and outputs are coloured apart so the trainable part stands out.
#include <fmt/format.h>

#include "compiler/ir/graph.h"

namespace kiln::ir {
namespace {

// Escapes text for a double-quoted DOT string; "\n" becomes a DOT line break.
std::string escape(std::string_view text) {
  std::string out;
  for (const char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace

std::string graph_to_dot(const Graph& graph, const OpRegistry& ops) {
  std::string out = fmt::format("digraph \"{}\" {{\n", escape(graph.name()));
  out += "  rankdir=TB;\n";
  out += "  node [shape=box, fontname=\"monospace\"];\n";
  for (ValueId id = 0; id < graph.size(); ++id) {
    const Node& node = graph.node(id);
    const OpInfo* op = node.op < ops.all().size() ? &ops.get(node.op) : nullptr;
    const std::string name = op ? std::string(op->name) : fmt::format("<op {}>", node.op);
    std::string label = fmt::format("%{} {}", id, name);
    if (!node.name.empty()) label += "\n" + node.name;
    label += "\n" + node.type.to_string();
    std::string style;
    if (name == "input") {
      style = ", style=filled, fillcolor=\"lightblue\"";
    } else if (name == "parameter") {
      style = ", style=filled, fillcolor=\"lightyellow\"";
    } else if (name == "state") {
      style = ", style=filled, fillcolor=\"lightgrey\"";
    } else if (op != nullptr && op->has(kSideEffect)) {
      style = ", style=bold";
    }
    out += fmt::format("  n{} [label=\"{}\"{}];\n", id, escape(label), style);
  }
  for (ValueId id = 0; id < graph.size(); ++id) {
    for (const ValueId operand : graph.node(id).operands) {
      if (operand < graph.size()) out += fmt::format("  n{} -> n{};\n", operand, id);
    }
  }
  for (std::size_t i = 0; i < graph.outputs().size(); ++i) {
    const NamedValue& output = graph.outputs()[i];
    out += fmt::format("  out{} [label=\"output {}\", shape=ellipse, style=filled, fillcolor=\"lightgreen\"];\n", i,
                       escape(output.name));
    if (output.value < graph.size()) out += fmt::format("  n{} -> out{};\n", output.value, i);
  }
  out += "}\n";
  return out;
}

}  // namespace kiln::ir
