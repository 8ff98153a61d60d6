// The Graph IR's text form, printed after every pass (`kiln dump --after=PASS`) and kept
// as golden files in tests: deterministic, one node per line, no pointers or hash order.
#include <fmt/format.h>

#include "compiler/ir/graph.h"

namespace kiln::ir {
namespace {

std::string op_name(const OpRegistry& ops, OpId id) {
  return id < ops.all().size() ? std::string(ops.get(id).name) : fmt::format("<op {}>", id);
}

std::string node_line(const Graph& graph, ValueId id, const SourceManager* sources, const OpRegistry& ops) {
  const Node& node = graph.node(id);
  std::string line = fmt::format("  %{} = {}(", id, op_name(ops, node.op));
  for (std::size_t i = 0; i < node.operands.size(); ++i) {
    if (i > 0) line += ", ";
    line += fmt::format("%{}", node.operands[i]);
  }
  line += ")";
  if (!node.attrs.items().empty()) {
    line += " {";
    for (std::size_t i = 0; i < node.attrs.items().size(); ++i) {
      const Attr& attr = node.attrs.items()[i];
      if (i > 0) line += ", ";
      line += attr.name + "=" + attr_value_to_string(attr.value);
    }
    line += "}";
  }
  line += " : " + node.type.to_string();
  const bool has_location = sources != nullptr && node.span.valid() && node.span.file < sources->size();
  if (!node.name.empty() || has_location) {
    line += "  #";
    if (!node.name.empty()) line += " " + node.name;
    if (has_location) line += " @ " + sources->location(node.span);
  }
  return line + "\n";
}

void print_roles(std::string& out, std::string_view role, const std::vector<NamedValue>& values) {
  for (const NamedValue& nv : values) out += fmt::format("  {} {} = %{}\n", role, nv.name, nv.value);
}

}  // namespace

std::string print_graph(const Graph& graph, const SourceManager* sources, const OpRegistry& ops) {
  std::string out = fmt::format("graph {} {{\n", graph.name());
  print_roles(out, "input", graph.inputs());
  print_roles(out, "parameter", graph.parameters());
  print_roles(out, "state", graph.states());
  for (ValueId id = 0; id < graph.size(); ++id) out += node_line(graph, id, sources, ops);
  print_roles(out, "output", graph.outputs());
  out += "}\n";
  return out;
}

}  // namespace kiln::ir
