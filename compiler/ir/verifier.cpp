// Structural checks of a Graph against the op table. Every pass can run it on its
// output, so it must describe every problem of a malformed graph without crashing on it.
#include <fmt/format.h>

#include <map>
#include <set>

#include "compiler/ir/graph.h"

namespace kiln::ir {
namespace {

std::string_view kind_name(AttrKind kind) {
  switch (kind) {
    case AttrKind::kInt: return "int";
    case AttrKind::kFloat: return "float";
    case AttrKind::kBool: return "bool";
    case AttrKind::kString: return "string";
    case AttrKind::kInts: return "int list";
    case AttrKind::kFloats: return "float list";
    case AttrKind::kDType: return "dtype";
  }
  return "?";
}

bool kind_matches(AttrKind kind, const AttrValue& value) {
  switch (kind) {
    case AttrKind::kInt: return std::holds_alternative<std::int64_t>(value);
    case AttrKind::kFloat: return std::holds_alternative<double>(value);
    case AttrKind::kBool: return std::holds_alternative<bool>(value);
    case AttrKind::kString: return std::holds_alternative<std::string>(value);
    case AttrKind::kInts: return std::holds_alternative<std::vector<std::int64_t>>(value);
    case AttrKind::kFloats: return std::holds_alternative<std::vector<double>>(value);
    case AttrKind::kDType: {
      const auto* s = std::get_if<std::string>(&value);
      return s != nullptr && parse_dtype(*s).has_value();
    }
  }
  return false;
}

class Verifier {
 public:
  Verifier(const Graph& graph, const OpRegistry& ops) : graph_(graph), ops_(ops) {}

  std::vector<std::string> run() {
    for (ValueId id = 0; id < graph_.size(); ++id) check_node(id);
    check_role("input", "input", graph_.inputs());
    check_role("parameter", "parameter", graph_.parameters());
    check_role("state", "state", graph_.states());
    check_outputs();
    check_registered();
    return std::move(problems_);
  }

 private:
  void report(std::string message) { problems_.push_back(std::move(message)); }

  const OpInfo* op_of(ValueId id) const {
    if (id >= graph_.size()) return nullptr;
    const OpId op = graph_.node(id).op;
    return op < ops_.all().size() ? &ops_.get(op) : nullptr;
  }

  void check_node(ValueId id) {
    const Node& node = graph_.node(id);
    const OpInfo* op = op_of(id);
    if (op == nullptr) {
      report(fmt::format("%{}: unknown op id {}", id, node.op));
      return;
    }
    const std::string where = fmt::format("%{} {}", id, op->name);
    bool operands_ok = true;
    const std::size_t declared = op->operands.size();
    if (op->variadic ? node.operands.size() < declared : node.operands.size() != declared) {
      report(fmt::format("{}: has {} operands, expected {}{}", where, node.operands.size(),
                         op->variadic ? "at least " : "", declared));
      operands_ok = false;
    }
    for (std::size_t i = 0; i < node.operands.size(); ++i) {
      if (node.operands[i] >= id) {
        report(fmt::format("{}: operand {} is %{}, which is not defined before it", where, i, node.operands[i]));
        operands_ok = false;
      }
    }
    check_attrs(where, *op, node.attrs);
    if (op->name == "assign_state" && operands_ok && !node.operands.empty()) {
      const OpInfo* target = op_of(node.operands[0]);
      // Parameters are assigned by the optimizer update of a training step.
      if (target == nullptr || (target->name != "state" && target->name != "parameter")) {
        report(fmt::format("{}: operand 'state' is %{}, which is not a state node or a parameter node", where,
                           node.operands[0]));
      }
    }
    if (operands_ok) check_type(where, *op, node);
  }

  void check_attrs(const std::string& where, const OpInfo& op, const Attrs& attrs) {
    for (const Attr& attr : attrs.items()) {
      const AttrSpec* spec = nullptr;
      for (const AttrSpec& s : op.attrs) {
        if (s.name == attr.name) spec = &s;
      }
      if (spec == nullptr) {
        report(fmt::format("{}: unknown attribute '{}'", where, attr.name));
      } else if (!kind_matches(spec->kind, attr.value)) {
        report(fmt::format("{}: attribute '{}' should be a {}, got {}", where, attr.name, kind_name(spec->kind),
                           attr_value_to_string(attr.value)));
      }
    }
    for (const AttrSpec& spec : op.attrs) {
      if (spec.required && attrs.find(spec.name) == nullptr) {
        report(fmt::format("{}: missing required attribute '{}'", where, spec.name));
      }
    }
  }

  void check_type(const std::string& where, const OpInfo& op, const Node& node) {
    if (!op.shape_rule) {
      report(fmt::format("{}: op has no shape rule", where));
      return;
    }
    std::vector<TensorType> types;
    for (const ValueId v : node.operands) types.push_back(graph_.node(v).type);
    ShapeResult result;
    try {
      result = op.shape_rule(types, node.attrs);
    } catch (const std::exception& e) {
      report(fmt::format("{}: shape rule threw: {}", where, e.what()));
      return;
    }
    if (!result.type) {
      report(fmt::format("{}: {}", where, result.error));
    } else if (*result.type != node.type) {
      report(fmt::format("{}: type is {} but the shape rule gives {}", where, node.type.to_string(),
                         result.type->to_string()));
    }
  }

  void check_role(std::string_view role, std::string_view op_name, const std::vector<NamedValue>& values) {
    std::set<std::string> seen;
    for (const NamedValue& nv : values) {
      if (!seen.insert(nv.name).second) report(fmt::format("{} '{}' is declared twice", role, nv.name));
      const auto [it, fresh] = source_names_.emplace(nv.name, role);
      if (fresh == false && it->second != role) {
        report(fmt::format("{} '{}' has the same name as {} '{}'", role, nv.name, it->second, nv.name));
      }
      const OpInfo* op = op_of(nv.value);
      if (op == nullptr) {
        report(fmt::format("{} '{}' refers to %{}, which is not a valid node", role, nv.name, nv.value));
        continue;
      }
      if (op->name != op_name) {
        report(fmt::format("{} '{}' refers to %{}, a {} node, not {}", role, nv.name, nv.value, op->name, op_name));
        continue;
      }
      const std::string attr_name = graph_.node(nv.value).attrs.get_string("name");
      if (attr_name != nv.name) {
        report(fmt::format("{} '{}' refers to %{}, whose name attribute is '{}'", role, nv.name, nv.value, attr_name));
      }
      registered_.insert(nv.value);
    }
  }

  void check_outputs() {
    std::set<std::string> seen;
    for (const NamedValue& nv : graph_.outputs()) {
      if (!seen.insert(nv.name).second) report(fmt::format("output '{}' is declared twice", nv.name));
      if (nv.value >= graph_.size()) {
        report(fmt::format("output '{}' refers to %{}, which is not a valid node", nv.name, nv.value));
      }
    }
  }

  // Every input, parameter and state node must be reachable by name, or the runtime
  // could neither feed nor checkpoint it.
  void check_registered() {
    for (ValueId id = 0; id < graph_.size(); ++id) {
      const OpInfo* op = op_of(id);
      if (op == nullptr || registered_.count(id) != 0) continue;
      if (op->name == "input" || op->name == "parameter" || op->name == "state") {
        report(fmt::format("%{} {} is not registered as a graph {}", id, op->name, op->name));
      }
    }
  }

  const Graph& graph_;
  const OpRegistry& ops_;
  std::vector<std::string> problems_;
  std::map<std::string, std::string_view> source_names_;
  std::set<ValueId> registered_;
};

}  // namespace

std::vector<std::string> verify(const Graph& graph, const OpRegistry& ops) {
  return Verifier(graph, ops).run();
}

}  // namespace kiln::ir
