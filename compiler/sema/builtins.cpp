// Calls of builtin ops from `.kiln`: arguments are matched to the op table's operands and
// attributes, scalar constants become constant nodes of the right element type, constant
// arguments fold where the result is a constant, and the op's shape rule types the node.
#include <algorithm>
#include <cmath>

#include "compiler/sema/lowering.h"

namespace kiln::sema::detail {
namespace {

const char* attr_kind_name(ir::AttrKind k) {
  switch (k) {
    case ir::AttrKind::kInt: return "an int";
    case ir::AttrKind::kFloat: return "a float";
    case ir::AttrKind::kBool: return "a bool";
    case ir::AttrKind::kString: return "a string";
    case ir::AttrKind::kInts: return "a list of ints";
    case ir::AttrKind::kFloats: return "a list of numbers";
    case ir::AttrKind::kDType: return "an element type name (\"f32\", \"i32\", ...)";
  }
  return "a value";
}

// Folds a unary math builtin applied to a number.
std::optional<double> fold_unary(const std::string& op, double x) {
  if (op == "neg") return -x;
  if (op == "abs") return std::fabs(x);
  if (op == "exp") return std::exp(x);
  if (op == "log" && x > 0) return std::log(x);
  if (op == "sqrt" && x >= 0) return std::sqrt(x);
  if (op == "tanh") return std::tanh(x);
  if (op == "sigmoid") return 1 / (1 + std::exp(-x));
  if (op == "relu") return std::max(0.0, x);
  return std::nullopt;
}

std::optional<double> fold_binary(const std::string& op, double a, double b) {
  if (op == "add") return a + b;
  if (op == "sub") return a - b;
  if (op == "mul") return a * b;
  if (op == "div" && b != 0) return a / b;
  if (op == "pow") return std::pow(a, b);
  if (op == "maximum") return std::max(a, b);
  if (op == "minimum") return std::min(a, b);
  return std::nullopt;
}

}  // namespace

bool Lowerer::to_attr(const ir::AttrSpec& spec, const Value& v, ir::AttrValue& out, std::string& why) {
  auto ints_of = [&](const Value& list, std::vector<std::int64_t>& dims) {
    for (const Value& item : list.items) {
      if (item.kind == Value::Kind::kInt)
        dims.push_back(item.i);
      else if (item.kind == Value::Kind::kBatch)
        dims.push_back(ir::Dim::kBatch);
      else
        return false;
    }
    return true;
  };
  switch (spec.kind) {
    case ir::AttrKind::kInt:
      if (v.kind != Value::Kind::kInt) break;
      out = v.i;
      return true;
    case ir::AttrKind::kFloat:
      if (!v.is_number()) break;
      out = v.f;
      return true;
    case ir::AttrKind::kBool:
      if (v.kind != Value::Kind::kBool) break;
      out = v.b;
      return true;
    case ir::AttrKind::kString:
      if (v.kind != Value::Kind::kString) break;
      out = v.s;
      return true;
    case ir::AttrKind::kDType:
      if (v.kind != Value::Kind::kString || !ir::parse_dtype(v.s)) break;
      out = v.s;
      return true;
    case ir::AttrKind::kInts: {
      std::vector<std::int64_t> dims;
      if (v.kind != Value::Kind::kList || !ints_of(v, dims)) break;
      out = dims;
      return true;
    }
    case ir::AttrKind::kFloats: {
      if (v.kind != Value::Kind::kList) break;
      std::vector<double> xs;
      for (const Value& item : v.items) {
        if (!item.is_number()) {
          why = "a list of numbers";
          return false;
        }
        xs.push_back(item.f);
      }
      out = xs;
      return true;
    }
  }
  why = attr_kind_name(spec.kind);
  return false;
}

Value Lowerer::constant_like(const Value& scalar, ir::DType dtype, Span span) {
  if (scalar.kind == Value::Kind::kFloat && ir::is_integer(dtype)) {
    error(span, "the float " + format_number(scalar.f) + " cannot be combined with an integer tensor",
          "cast the tensor first: cast(x, dtype: \"f32\")");
    return Value::error();
  }
  ir::Attrs attrs;
  attrs.set("value", scalar.kind == Value::Kind::kBool ? (scalar.b ? 1.0 : 0.0) : scalar.f);
  attrs.set("dtype", std::string(ir::dtype_name(scalar.kind == Value::Kind::kBool ? ir::DType::kBool : dtype)));
  attrs.set("shape", std::vector<std::int64_t>{});
  return emit("constant", {}, attrs, span);
}

Value Lowerer::emit(const std::string& op_name, std::vector<ir::ValueId> operands, ir::Attrs attrs, Span span,
                    std::string name) {
  const ir::OpRegistry& ops = ir::core_ops();
  const ir::OpInfo& op = ops.get(ops.id_of(op_name));
  ir::fill_default_attrs(op, attrs);
  std::vector<ir::TensorType> types;
  for (ir::ValueId id : operands) types.push_back(graph_.node(id).type);
  ir::ShapeResult r = op.shape_rule(types, attrs);
  if (!r.type) {
    error(span, r.error);
    return Value::error();
  }
  ir::Node node;
  node.op = op.id;
  node.operands = std::move(operands);
  node.attrs = std::move(attrs);
  node.type = *r.type;
  node.name = std::move(name);
  node.span = span;
  for (const ExpansionStep& step : expansion_) node.expansion.push_back({step.layer, step.call_site});
  return Value::of_tensor(graph_.add(std::move(node)), span);
}

Value Lowerer::call_builtin(const ir::OpInfo& op, const ast::Expr& call, std::vector<Arg> args, Scope& s) {
  const std::string name(op.name);
  // Match positional then named arguments to operands and attributes.
  std::vector<Arg> operands;
  std::map<std::string, const Arg*> attrs_given;
  std::size_t positional = 0;
  const std::size_t fixed_operands = op.variadic ? op.operands.size() - 1 : op.operands.size();
  std::vector<std::string> all_names;
  for (std::string_view o : op.operands) all_names.emplace_back(o);
  for (const ir::AttrSpec& a : op.attrs) all_names.emplace_back(a.name);
  std::vector<const Arg*> operand_slots(op.operands.size(), nullptr);
  std::vector<const Arg*> variadic;
  for (const Arg& a : args) {
    if (a.name.empty()) {
      // Tensors (and numbers standing in for them) fill operands; the rest fill attributes.
      if (positional < fixed_operands) {
        operand_slots[positional++] = &a;
        continue;
      }
      if (op.variadic && (a.value.is_tensor() || a.value.is_number()) && attrs_given.empty()) {
        variadic.push_back(&a);
        continue;
      }
      if (op.variadic && a.value.kind == Value::Kind::kList && variadic.empty() && positional == fixed_operands) {
        error(a.span, name + " takes its tensors as separate arguments, not as a list",
              "write " + name + "(a, b, axis: -1)");
        return Value::error();
      }
      std::size_t attr_index = positional - fixed_operands;
      if (attr_index < op.attrs.size()) {
        attrs_given[std::string(op.attrs[attr_index].name)] = &a;
        ++positional;
        continue;
      }
      error(a.span, name + " takes at most " + std::to_string(fixed_operands + op.attrs.size()) + " arguments");
      return Value::error();
    }
    auto o = std::find(op.operands.begin(), op.operands.end(), a.name);
    if (o != op.operands.end() && !(op.variadic && o + 1 == op.operands.end())) {
      std::size_t i = static_cast<std::size_t>(o - op.operands.begin());
      if (operand_slots[i]) {
        error(a.span, "argument '" + a.name + "' of " + name + " is given twice");
        return Value::error();
      }
      operand_slots[i] = &a;
      continue;
    }
    auto at = std::find_if(op.attrs.begin(), op.attrs.end(), [&](const ir::AttrSpec& sp) { return sp.name == a.name; });
    if (at == op.attrs.end()) {
      std::string near = closest_match(a.name, all_names);
      std::string list;
      for (const std::string& n : all_names) list += (list.empty() ? "" : ", ") + n;
      error(a.span, name + " has no argument '" + a.name + "'",
            near.empty() ? "its arguments are: " + list : "did you mean '" + near + "'?");
      return Value::error();
    }
    if (attrs_given.count(a.name)) {
      error(a.span, "argument '" + a.name + "' of " + name + " is given twice");
      return Value::error();
    }
    attrs_given[a.name] = &a;
  }
  for (std::size_t i = 0; i < fixed_operands; ++i) {
    if (!operand_slots[i]) {
      error(call.span, name + " needs the operand '" + std::string(op.operands[i]) + "'");
      return Value::error();
    }
    operands.push_back(*operand_slots[i]);
  }
  for (const Arg* a : variadic) operands.push_back(*a);
  if (op.variadic && variadic.empty()) {
    error(call.span, name + " needs at least one tensor to " + std::string(op.operands.back()));
    return Value::error();
  }

  // Constant folding where every operand is a number.
  bool all_numbers = !operands.empty() &&
                     std::all_of(operands.begin(), operands.end(), [](const Arg& a) { return a.value.is_number(); });
  if (all_numbers && attrs_given.empty()) {
    std::optional<double> folded;
    if (operands.size() == 1) folded = fold_unary(name, operands[0].value.f);
    if (operands.size() == 2) folded = fold_binary(name, operands[0].value.f, operands[1].value.f);
    if (folded) {
      bool ints =
          std::all_of(operands.begin(), operands.end(), [](const Arg& a) { return a.value.kind == Value::Kind::kInt; });
      if (ints && std::floor(*folded) == *folded && name != "div" && name != "pow" && name != "sqrt" && name != "exp" &&
          name != "log" && name != "tanh" && name != "sigmoid") {
        return Value::of_int(static_cast<std::int64_t>(*folded), call.span);
      }
      return Value::of_float(*folded, call.span);
    }
    if (operands.size() == 1 && fold_unary(name, 1.0).has_value()) {
      error(call.span, name + " of " + format_number(operands[0].value.f) + " is undefined");
      return Value::error();
    }
  }
  // select with a constant condition picks a branch (dense's `bias` flag).
  if (name == "select" && operands.size() == 3 && operands[0].value.kind == Value::Kind::kBool) {
    return operands[0].value.b ? operands[1].value : operands[2].value;
  }

  // Operands: tensors as they are, numbers as constants of the tensors' element type.
  std::optional<ir::DType> dtype;
  for (const Arg& a : operands) {
    if (a.value.is_tensor()) {
      ir::DType d = graph_.node(a.value.tensor).type.dtype;
      if (d != ir::DType::kBool) {
        dtype = d;
        break;
      }
    }
  }
  std::vector<ir::ValueId> ids;
  for (std::size_t i = 0; i < operands.size(); ++i) {
    const Arg& a = operands[i];
    if (a.value.is_tensor()) {
      ids.push_back(a.value.tensor);
      continue;
    }
    if (a.value.is_number() || a.value.kind == Value::Kind::kBool) {
      ir::DType d = dtype.value_or(a.value.kind == Value::Kind::kInt ? ir::DType::kI32 : ir::DType::kF32);
      Value k = constant_like(a.value, d, a.span);
      if (!k.is_tensor()) return Value::error();
      ids.push_back(k.tensor);
      continue;
    }
    std::string operand = i < op.operands.size() ? std::string(op.operands[i]) : std::string(op.operands.back());
    error(a.span, "operand '" + operand + "' of " + name + " must be a tensor, not " + describe_value(a.value, graph_));
    return Value::error();
  }

  ir::Attrs attrs;
  for (const ir::AttrSpec& spec : op.attrs) {
    auto it = attrs_given.find(std::string(spec.name));
    if (it != attrs_given.end()) {
      ir::AttrValue value;
      std::string why;
      if (!to_attr(spec, it->second->value, value, why)) {
        error(it->second->span, "argument '" + std::string(spec.name) + "' of " + name + " must be " + why + ", not " +
                                    describe_value(it->second->value, graph_));
        return Value::error();
      }
      attrs.set(std::string(spec.name), value);
      continue;
    }
    if (spec.name == "shape" && init_) {
      // A builtin used directly as an initialiser (full(value: 0.5)) gets the param's shape.
      ir::AttrValue value;
      std::string why;
      if (to_attr(spec, init_->shape, value, why)) attrs.set("shape", value);
      continue;
    }
    if (spec.name == "stream" && op.has(ir::kRandom)) {
      // Each random op draws from its own counter-based stream, named by where it sits.
      std::string path = path_of(s.frame);
      attrs.set("stream", stable_hash(path + "#" + std::to_string(s.frame->random_counter++)));
      continue;
    }
    if (spec.required) {
      error(call.span,
            name + " needs the argument '" + std::string(spec.name) + "' (" + attr_kind_name(spec.kind) + ")");
      return Value::error();
    }
  }
  init_.reset();
  return emit(name, std::move(ids), std::move(attrs), call.span);
}

}  // namespace kiln::sema::detail
