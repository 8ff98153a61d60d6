// Lowering of model bodies and layer instantiation (see lowering.h).
#include "compiler/sema/lowering.h"

#include <cmath>

namespace kiln::sema::detail {

Lowerer::Lowerer(Compilation& c, ir::Graph& graph, const std::set<const ast::LayerDecl*>& broken,
                 const std::set<std::string>& broken_features)
    : c_(c), graph_(graph), broken_(broken), broken_features_(broken_features) {}

Diagnostic& Lowerer::error(Span span, std::string message, std::string hint) {
  Diagnostic& d = c_.diags.error(span, std::move(message), std::move(hint));
  d.chain.assign(expansion_.rbegin(), expansion_.rend());
  return d;
}

std::string Lowerer::path_of(NameFrame* frame) {
  if (frame == nullptr || frame->parent == nullptr) return {};
  if (frame->resolved.empty()) {
    int& n = frame->parent->used[frame->base];
    frame->resolved = n == 0 ? frame->base : frame->base + "_" + std::to_string(n + 1);
    ++n;
  }
  std::string parent = path_of(frame->parent);
  return parent.empty() ? frame->resolved : parent + "." + frame->resolved;
}

std::string Lowerer::layer_display_name(const Module& module, const ast::LayerDecl& layer) const {
  if (&module == c_.root) return layer.name;
  if (!module.name.empty() && module.name.find('/') == std::string::npos &&
      module.name.find(".kiln") == std::string::npos) {
    return module.name + "." + layer.name;
  }
  return layer.name + " (" + module.path.filename().string() + ")";
}

// ---------------------------------------------------------------------------------------
// Models

Lowerer::ModelResult Lowerer::lower_model(const Module& module, const ast::ModelDecl& model) {
  ModelResult result;
  std::size_t errors_before = c_.diags.error_count();
  frames_.push_back(std::make_unique<NameFrame>());
  Scope s;
  s.module = &module;
  s.frame = frames_.back().get();
  s.body = &model.body;
  std::map<std::string, Span> declared;  // inputs and outputs, for "the first is at"
  for (const ast::Stmt& st : model.body) {
    switch (st.kind) {
      case ast::StmtKind::kInput: {
        if (s.env.count(st.names[0])) {
          auto first = declared.find(st.names[0]);
          error(st.name_spans[0], "'" + st.names[0] + "' is already defined in model " + model.name,
                first == declared.end() ? "" : "the first is at " + c_.sources.location(first->second));
          break;
        }
        declared[st.names[0]] = st.name_spans[0];
        std::string features;
        std::optional<ir::TensorType> type = input_type(st, s, features);
        Value v = Value::error();
        if (type) {
          ir::Attrs attrs;
          attrs.set("name", st.names[0]);
          attrs.set("dtype", std::string(ir::dtype_name(type->dtype)));
          std::vector<std::int64_t> dims;
          for (const ir::Dim& d : type->shape.dims) dims.push_back(d.size);
          attrs.set("shape", dims);
          v = emit("input", {}, attrs, st.span, st.names[0]);
          if (v.is_tensor()) graph_.add_input(st.names[0], v.tensor);
        }
        if (!features.empty()) result.input_features[st.names[0]] = features;
        s.env[st.names[0]] = v;
        result.inputs[st.names[0]] = v;
        break;
      }
      case ast::StmtKind::kOutput: {
        s.stmt_base = st.names[0];
        Value v = eval(st.values[0], s);
        if (result.outputs.count(st.names[0])) {
          error(st.name_spans[0], "duplicate output '" + st.names[0] + "'",
                "the first is at " + c_.sources.location(declared[st.names[0]]));
        } else if (v.kind == Value::Kind::kTuple) {
          error(st.span,
                "an output is one tensor, but this expression gives " + std::to_string(v.items.size()) + " values",
                "bind them first: a, b = ..., then output each");
        } else if (!v.is_error() && !v.is_tensor()) {
          error(c_.root->ast.expr(st.values[0]).span, "an output must be a tensor, not " + describe_value(v, graph_));
        } else if (v.is_tensor()) {
          graph_.add_output(st.names[0], v.tensor);
          if (graph_.node(v.tensor).name.empty()) graph_.node(v.tensor).name = st.names[0];
        }
        if (!declared.count(st.names[0])) declared[st.names[0]] = st.name_spans[0];
        result.outputs[st.names[0]] = v;
        s.env[st.names[0]] = v;
        break;
      }
      case ast::StmtKind::kReturn:
        error(st.span, "'return' is only allowed in a layer", "a model names its results with 'output NAME = ...'");
        break;
      default: run_statement(st, s); break;
    }
  }
  bool clean = c_.diags.error_count() == errors_before;  // "no output" after an error is noise
  if (result.inputs.empty() && clean) {
    error(model.name_span, "model '" + model.name + "' has no input", "declare one: input x : f32[batch, 4]");
  }
  if (result.outputs.empty() && clean) {
    error(model.name_span, "model '" + model.name + "' has no output", "declare one: output y = ...");
  }
  result.ok = c_.diags.error_count() == errors_before;
  return result;
}

std::optional<ir::TensorType> Lowerer::input_type(const ast::Stmt& st, Scope& s, std::string& features) {
  const ast::TypeExpr& t = st.type;
  if (t.is_tensor) {
    std::optional<ir::TensorType> type = static_type(t, s, /*allow_batch=*/true);
    if (!type) return std::nullopt;
    for (std::size_t i = 1; i < type->shape.rank(); ++i) {
      if (type->shape[i].is_batch()) {
        error(t.dims[i].span, "'batch' may only be the first dimension of an input");
        return std::nullopt;
      }
    }
    return type;
  }
  if (is_attribute_type(t.name)) {
    error(t.span, "a model input must be a tensor or a feature set, not " + t.name,
          "for example: input x : f32[batch, 784]");
    return std::nullopt;
  }
  features = t.name;
  if (broken_features_.count(t.name)) return std::nullopt;
  const FeatureSet* set = c_.find_features(t.name);
  if (set == nullptr) {
    std::vector<std::string> names;
    for (const FeatureSet& f : c_.features) names.push_back(f.name);
    std::string near = closest_match(t.name, names);
    error(t.span, "unknown type or features block '" + t.name + "'",
          near.empty() ? "an input is a tensor type such as f32[batch, 4] or the name of a features block"
                       : "did you mean '" + near + "'?");
    return std::nullopt;
  }
  if (t.member.empty()) return set->input_type();
  const FeatureColumn* col = set->find(t.member);
  if (col == nullptr) {
    std::vector<std::string> names;
    for (const FeatureColumn& f : set->columns) names.push_back(f.name);
    std::string near = closest_match(t.member, names);
    error(t.span, "features block '" + t.name + "' has no column '" + t.member + "'",
          near.empty() ? "" : "did you mean '" + near + "'?");
    return std::nullopt;
  }
  if (col->is_label) {
    error(t.span, "'" + t.member + "' is the label of '" + t.name + "'; a model cannot take its label as input",
          "the train block's loss reads labels by name");
    return std::nullopt;
  }
  return set->column_type(t.member);
}

bool Lowerer::lower_loss(const Module& module, const ModelResult& model, const FeatureSet& data, ast::ExprId loss,
                         Span loss_span) {
  frames_.push_back(std::make_unique<NameFrame>());
  Scope s;
  s.module = &module;
  s.frame = frames_.back().get();
  s.env = model.inputs;
  for (const auto& [name, v] : model.outputs) s.env[name] = v;
  for (const FeatureColumn& col : data.columns) {
    if (!col.is_label) continue;
    if (s.env.count(col.name)) {
      error(col.span, "label '" + col.name + "' has the same name as an input or output of the model",
            "rename the output or the label column");
      return false;
    }
    std::optional<ir::TensorType> type = data.label_type(col.name);
    if (!type) continue;
    ir::Attrs attrs;
    attrs.set("name", col.name);
    attrs.set("dtype", std::string(ir::dtype_name(type->dtype)));
    std::vector<std::int64_t> dims;
    for (const ir::Dim& d : type->shape.dims) dims.push_back(d.size);
    attrs.set("shape", dims);
    attrs.set("label", true);
    Value v = emit("input", {}, attrs, col.span, col.name);
    if (!v.is_tensor()) return false;
    graph_.add_input(col.name, v.tensor);
    s.env[col.name] = v;
  }
  s.stmt_base = "loss";
  auto list = [](const std::map<std::string, Value>& m) {
    std::string out;
    for (const auto& [n, v] : m) out += (out.empty() ? "" : ", ") + n;
    return out.empty() ? std::string("none") : out;
  };
  std::string labels;
  for (const FeatureColumn& col : data.columns) {
    if (col.is_label) labels += (labels.empty() ? "" : ", ") + col.name;
  }
  s.unknown_name_hint = "the loss can use the model's outputs (" + list(model.outputs) + "), its inputs (" +
                        list(model.inputs) + ") and the labels of '" + data.name + "' (" +
                        (labels.empty() ? std::string("none") : labels) + ")";
  std::size_t errors_before = c_.diags.error_count();
  Value v = eval(loss, s);
  if (c_.diags.error_count() != errors_before || v.is_error()) return false;
  if (!v.is_tensor()) {
    error(loss_span, "the loss must be a tensor, not " + describe_value(v, graph_));
    return false;
  }
  const ir::TensorType& type = graph_.node(v.tensor).type;
  if (type.shape.rank() != 0 || !ir::is_float(type.dtype)) {
    error(loss_span, "the loss must be a float scalar (f32[]), but it is " + type.to_string(),
          "average it over the batch: reduce_mean(...)");
    return false;
  }
  graph_.add_output("loss", v.tensor);
  return true;
}

// ---------------------------------------------------------------------------------------
// Statements

void Lowerer::run_statement(const ast::Stmt& st, Scope& s) {
  if (s.returned) {
    error(st.span, "statement after 'return'", "'return' must be the last statement of a layer");
    return;
  }
  switch (st.kind) {
    case ast::StmtKind::kInput:
    case ast::StmtKind::kOutput:
      error(st.span,
            std::string("'") + (st.kind == ast::StmtKind::kInput ? "input" : "output") + "' is only allowed in a model",
            "a layer takes arguments and returns values");
      return;
    case ast::StmtKind::kParam:
    case ast::StmtKind::kState: declare_param(st, s, st.kind == ast::StmtKind::kState); return;
    case ast::StmtKind::kUpdate: {
      const std::string& name = st.names[0];
      if (!s.states.count(name)) {
        error(st.name_spans[0], "'" + name + "' is not a state of this layer",
              "declare it first: state " + name + ": f32[...] = init.zeros()");
        return;
      }
      s.stmt_base = name;
      Value v = eval(st.values[0], s);
      const Value& state = s.env[name];
      if (v.is_error() || state.is_error()) return;
      if (!v.is_tensor()) {
        error(st.span, "update needs a tensor, not " + describe_value(v, graph_));
        return;
      }
      emit("assign_state", {state.tensor, v.tensor}, {}, st.span);
      return;
    }
    case ast::StmtKind::kReturn:
      if (s.layer == nullptr) {
        error(st.span, "'return' is only allowed in a layer");
        return;
      }
      s.stmt_base = s.layer->name;
      for (ast::ExprId id : st.values) {
        Value v = eval(id, s);
        if (v.kind == Value::Kind::kTuple) {
          error(s.module->ast.expr(id).span, "cannot return a call that gives several values",
                "bind them first: a, b = ..., then return a, b");
          v = Value::error();
        }
        s.results.push_back(v);
      }
      s.returned = true;
      return;
    case ast::StmtKind::kBinding: {
      s.stmt_base = st.names[0];
      Value v = eval(st.values[0], s);
      if (st.names.size() == 1) {
        if (v.kind == Value::Kind::kTuple) {
          error(s.module->ast.expr(st.values[0]).span,
                "this gives " + std::to_string(v.items.size()) + " values, but 1 name is bound",
                "bind each: " + st.names[0] + ", " + st.names[0] + "_2 = ...");
          v = Value::error();
        }
        s.env[st.names[0]] = v;
        if (v.is_tensor() && graph_.node(v.tensor).name.empty()) graph_.node(v.tensor).name = st.names[0];
        return;
      }
      if (v.is_error()) {
        for (const std::string& n : st.names) s.env[n] = Value::error();
        return;
      }
      if (v.kind != Value::Kind::kTuple || v.items.size() != st.names.size()) {
        std::size_t got = v.kind == Value::Kind::kTuple ? v.items.size() : 1;
        error(s.module->ast.expr(st.values[0]).span,
              "this gives " + std::to_string(got) + (got == 1 ? " value" : " values") + ", but " +
                  std::to_string(st.names.size()) + " names are bound",
              "bind exactly as many names as it returns");
        for (const std::string& n : st.names) s.env[n] = Value::error();
        return;
      }
      for (std::size_t i = 0; i < st.names.size(); ++i) {
        s.env[st.names[i]] = v.items[i];
        const Value& item = v.items[i];
        if (item.is_tensor() && graph_.node(item.tensor).name.empty()) graph_.node(item.tensor).name = st.names[i];
      }
      return;
    }
  }
}

std::optional<ir::TensorType> Lowerer::static_type(const ast::TypeExpr& type, Scope& s, bool allow_batch) {
  if (!type.is_tensor) {
    error(type.span, "expected a tensor type such as f32[" + std::string(allow_batch ? "batch, " : "") + "4], not '" +
                         type.name + "'");
    return std::nullopt;
  }
  ir::TensorType out;
  out.dtype = *ir::parse_dtype(type.dtype);
  for (const ast::DimPattern& d : type.dims) {
    switch (d.kind) {
      case ast::DimPattern::Kind::kInt: out.shape.dims.push_back(ir::Dim::of(d.value)); break;
      case ast::DimPattern::Kind::kEllipsis:
        error(d.span, "'...' is only allowed in the argument patterns of a layer",
              "write every dimension of this type");
        return std::nullopt;
      case ast::DimPattern::Kind::kSymbol: {
        auto it = s.env.find(d.name);
        if (it != s.env.end() && it->second.kind == Value::Kind::kInt) {
          if (it->second.i <= 0) {
            // Point at the user's argument that gave the size, when there is one.
            Span where = it->second.span.valid() ? it->second.span : d.span;
            error(where, "'" + d.name + "' is " + std::to_string(it->second.i) + ", but a size must be positive",
                  "it sizes " + std::string(c_.sources.text(type.span)) + " at " + c_.sources.location(d.span));
            return std::nullopt;
          }
          out.shape.dims.push_back(ir::Dim::of(it->second.i));
        } else if ((it != s.env.end() && it->second.kind == Value::Kind::kBatch) ||
                   (it == s.env.end() && d.name == "batch")) {
          if (!allow_batch) {
            error(d.span,
                  "this shape would depend on the batch dimension" +
                      (d.name == "batch" ? std::string() : " ('" + d.name + "' is bound to batch)"),
                  "parameters and states have static shapes; take sizes from non-batch dimensions");
            return std::nullopt;
          }
          out.shape.dims.push_back(ir::Dim::batch());
        } else if (it != s.env.end() && !it->second.is_error()) {
          error(d.span, "size '" + d.name + "' is " + describe_value(it->second, graph_) + ", not an int");
          return std::nullopt;
        } else if (it == s.env.end()) {
          error(d.span, "unknown size '" + d.name + "'",
                "sizes come from int arguments or from names bound by argument shape patterns");
          return std::nullopt;
        } else {
          return std::nullopt;
        }
        break;
      }
    }
  }
  return out;
}

bool Lowerer::declare_param(const ast::Stmt& st, Scope& s, bool is_state) {
  const std::string& name = st.names[0];
  const char* what = is_state ? "state" : "param";
  if (s.env.count(name)) {
    error(st.name_spans[0], "'" + name + "' is already defined in this " + (s.layer ? "layer" : "model"));
    return false;
  }
  s.env[name] = Value::error();
  std::optional<ir::TensorType> type = static_type(st.type, s, /*allow_batch=*/false);
  if (!type) return false;

  const ast::Expr& init_expr = s.module->ast.expr(st.values[0]);
  if (init_expr.kind != ast::ExprKind::kCall) {
    error(init_expr.span, std::string("a ") + what + " is initialised by a call, such as init.zeros()");
    return false;
  }
  // Implicit arguments of initialisers: the shape being initialised and its fans.
  InitContext ctx;
  std::vector<Value> dims;
  for (const ir::Dim& d : type->shape.dims) dims.push_back(Value::of_int(d.size));
  ctx.shape.kind = Value::Kind::kList;
  ctx.shape.items = dims;
  const auto& sd = type->shape.dims;
  if (sd.size() == 1) {
    ctx.fan_in = ctx.fan_out = sd[0].size;
  } else if (sd.size() >= 2) {
    std::int64_t receptive = 1;
    for (std::size_t i = 0; i + 2 < sd.size(); ++i) receptive *= sd[i].size;
    ctx.fan_in = receptive * sd[sd.size() - 2].size;
    ctx.fan_out = receptive * sd[sd.size() - 1].size;
  }
  init_ = ctx;
  s.stmt_base = name;
  Value v = eval(st.values[0], s);
  init_.reset();
  if (v.is_error()) return false;
  if (!v.is_tensor()) {
    error(init_expr.span, std::string("the initialiser of ") + what + " '" + name + "' gives " +
                              describe_value(v, graph_) + ", not a tensor");
    return false;
  }
  const ir::TensorType& got = graph_.node(v.tensor).type;
  if (!(got == *type)) {
    error(init_expr.span, std::string("the initialiser of ") + what + " '" + name + "' gives " + got.to_string() +
                              ", but it is declared " + type->to_string());
    return false;
  }
  std::string parent = path_of(s.frame);
  std::string path = parent.empty() ? name : parent + "." + name;
  if (!param_paths_.insert(path).second) {
    error(st.name_spans[0], "two parameters would be named '" + path + "'",
          "give the bindings that call these layers different names");
    return false;
  }
  ir::Attrs attrs;
  attrs.set("name", path);
  Value p = emit(is_state ? "state" : "parameter", {v.tensor}, attrs, st.span, path);
  if (!p.is_tensor()) return false;
  if (is_state) {
    graph_.add_state(path, p.tensor);
    s.states.insert(name);
  } else {
    graph_.add_parameter(path, p.tensor);
  }
  s.env[name] = p;
  return true;
}

// ---------------------------------------------------------------------------------------
// Expressions

Value Lowerer::eval(ast::ExprId id, Scope& s) {
  const ast::Expr& e = s.module->ast.expr(id);
  switch (e.kind) {
    case ast::ExprKind::kNumber:
      return e.is_integer ? Value::of_int(e.integer, e.span) : Value::of_float(e.number, e.span);
    case ast::ExprKind::kString: return Value::of_string(e.text, e.span);
    case ast::ExprKind::kBool: return Value::of_bool(e.boolean, e.span);
    case ast::ExprKind::kList: {
      Value v;
      v.kind = Value::Kind::kList;
      v.span = e.span;
      for (const ast::CallArg& a : e.args) {
        Value item = eval(a.value, s);
        if (item.is_error()) return Value::error();
        v.items.push_back(item);
      }
      return v;
    }
    case ast::ExprKind::kName: {
      auto it = s.env.find(e.text);
      if (it != s.env.end()) {
        Value v = it->second;
        v.span = e.span;
        return v;
      }
      if (e.text == "batch") return Value::of_batch(e.span);
      if (s.module->incomplete) return Value::error();
      if (s.body != nullptr) {
        for (const ast::Stmt& later : *s.body) {
          for (std::size_t i = 0; i < later.names.size(); ++i) {
            if (later.names[i] == e.text && later.span.begin > e.span.begin) {
              error(e.span, "'" + e.text + "' is used before it is defined",
                    "it is defined at " + c_.sources.location(later.name_spans[i]) + "; move that line up");
              return Value::error();
            }
          }
        }
      }
      std::vector<std::string> names;
      for (const auto& [n, v] : s.env) names.push_back(n);
      std::string near = closest_match(e.text, names);
      error(e.span, "unknown name '" + e.text + "'",
            !near.empty() ? "did you mean '" + near + "'?" : s.unknown_name_hint);
      return Value::error();
    }
    case ast::ExprKind::kMember:
      error(e.span, "'.' only names a module's layer in a call", "write 'module.layer(...)'");
      return Value::error();
    case ast::ExprKind::kCall: return eval_call(e, s);
    case ast::ExprKind::kUnary: return eval_unary(e, s);
    case ast::ExprKind::kBinary: return eval_binary(e, s);
  }
  return Value::error();
}

Value Lowerer::eval_unary(const ast::Expr& e, Scope& s) {
  Value v = eval(e.lhs, s);
  if (v.is_error()) return v;
  if (v.kind == Value::Kind::kInt) return Value::of_int(-v.i, e.span);
  if (v.kind == Value::Kind::kFloat) return Value::of_float(-v.f, e.span);
  if (v.is_tensor()) return emit("neg", {v.tensor}, {}, e.span);
  error(e.span, "cannot negate " + describe_value(v, graph_));
  return Value::error();
}

namespace {

const char* op_for_operator(const std::string& op) {
  if (op == "+") return "add";
  if (op == "-") return "sub";
  if (op == "*") return "mul";
  if (op == "/") return "div";
  if (op == "@") return "matmul";
  if (op == "<") return "less";
  if (op == "<=") return "less_equal";
  if (op == ">") return "greater";
  if (op == ">=") return "greater_equal";
  if (op == "==") return "equal";
  if (op == "!=") return "not_equal";
  return "";
}

}  // namespace

Value Lowerer::eval_binary(const ast::Expr& e, Scope& s) {
  Value a = eval(e.lhs, s);
  Value b = eval(e.rhs, s);
  if (a.is_error() || b.is_error()) return Value::error();
  const std::string& op = e.text;
  if (a.is_number() && b.is_number()) {
    bool ints = a.kind == Value::Kind::kInt && b.kind == Value::Kind::kInt;
    if (op == "+") return ints ? Value::of_int(a.i + b.i, e.span) : Value::of_float(a.f + b.f, e.span);
    if (op == "-") return ints ? Value::of_int(a.i - b.i, e.span) : Value::of_float(a.f - b.f, e.span);
    if (op == "*") return ints ? Value::of_int(a.i * b.i, e.span) : Value::of_float(a.f * b.f, e.span);
    if (op == "/") {
      if (b.f == 0) {
        error(e.span, "division by zero in a constant expression");
        return Value::error();
      }
      if (ints && a.i % b.i == 0) return Value::of_int(a.i / b.i, e.span);
      return Value::of_float(a.f / b.f, e.span);
    }
    if (op == "<") return Value::of_bool(a.f < b.f, e.span);
    if (op == "<=") return Value::of_bool(a.f <= b.f, e.span);
    if (op == ">") return Value::of_bool(a.f > b.f, e.span);
    if (op == ">=") return Value::of_bool(a.f >= b.f, e.span);
    if (op == "==") return Value::of_bool(a.f == b.f, e.span);
    if (op == "!=") return Value::of_bool(a.f != b.f, e.span);
  }
  if (!a.is_tensor() && !b.is_tensor()) {
    error(e.span,
          "operator '" + op + "' cannot combine " + describe_value(a, graph_) + " and " + describe_value(b, graph_));
    return Value::error();
  }
  const ir::OpInfo* info = ir::core_ops().find(op_for_operator(op));
  if (info == nullptr) {
    error(e.span, "unknown operator '" + op + "'");
    return Value::error();
  }
  return call_builtin(*info, e, {{"", a.span, a}, {"", b.span, b}}, s);
}

Value Lowerer::eval_call(const ast::Expr& call, Scope& s) {
  const ast::File& file = s.module->ast;
  const ast::Expr& callee = file.expr(call.lhs);
  std::vector<Arg> args;
  bool poisoned = false;
  for (const ast::CallArg& a : call.args) {
    Value v = eval(a.value, s);
    if (v.is_error()) poisoned = true;
    if (v.kind == Value::Kind::kTuple) {
      error(file.expr(a.value).span,
            "this call gives " + std::to_string(v.items.size()) + " values; an argument is one",
            "bind them first: a, b = ...");
      poisoned = true;
    }
    args.push_back({a.name, a.name.empty() ? file.expr(a.value).span : a.name_span, v});
  }

  if (callee.kind == ast::ExprKind::kMember) {
    const ast::Expr& ns = file.expr(callee.lhs);
    if (ns.kind != ast::ExprKind::kName) {
      error(callee.span, "only a layer or a module's layer can be called");
      return Value::error();
    }
    auto it = s.module->namespaces.find(ns.text);
    if (it == s.module->namespaces.end()) {
      if (!s.module->incomplete && s.module->reported_unknown_modules.insert(ns.text).second) {
        error(ns.span, "unknown module '" + ns.text + "'", "add 'import " + ns.text + "' at the top of the file");
      }
      return Value::error();
    }
    auto layer = it->second->layers.find(callee.text);
    if (layer == it->second->layers.end()) {
      std::vector<std::string> names;
      for (const auto& [n, l] : it->second->layers) names.push_back(n);
      std::string near = closest_match(callee.text, names);
      error(callee.span, "module '" + ns.text + "' has no layer '" + callee.text + "'",
            near.empty() ? "" : "did you mean '" + ns.text + "." + near + "'?");
      return Value::error();
    }
    if (poisoned) return Value::error();
    return call_layer(*it->second, *layer->second, call, std::move(args), s);
  }
  if (callee.kind != ast::ExprKind::kName) {
    error(callee.span, "this cannot be called", "only layers and builtin functions can be called");
    return Value::error();
  }
  const std::string& name = callee.text;
  // A layer's own name inside its body means the builtin of that name (layers cannot
  // recurse: there are no conditionals), so nn.conv2d can wrap the conv2d op.
  auto visible_layer = [&](const Module& m) -> const ast::LayerDecl* {
    auto it = m.layers.find(name);
    if (it == m.layers.end()) return nullptr;
    if (it->second == s.layer && ir::core_ops().find(name)) return nullptr;
    return it->second;
  };
  if (const ast::LayerDecl* l = visible_layer(*s.module)) {
    if (poisoned) return Value::error();
    return call_layer(*s.module, *l, call, std::move(args), s);
  }
  for (const Module* u : s.module->unqualified) {
    if (const ast::LayerDecl* l = visible_layer(*u)) {
      if (poisoned) return Value::error();
      return call_layer(*u, *l, call, std::move(args), s);
    }
  }
  if (const ir::OpInfo* op = ir::core_ops().find(name); op && op->has(ir::kSurface)) {
    if (poisoned) return Value::error();
    return call_builtin(*op, call, std::move(args), s);
  }
  if (s.module->incomplete) return Value::error();
  std::vector<std::string> names;
  for (const auto& [n, l] : s.module->layers) names.push_back(n);
  for (const ir::OpInfo& op : ir::core_ops().all()) {
    if (op.has(ir::kSurface)) names.push_back(std::string(op.name));
  }
  std::string near = closest_match(name, names);
  std::string hint = near.empty() ? "layers of a module are called with its name, e.g. nn.dense(x, 64); "
                                    "`kiln ops` lists the builtin functions"
                                  : "did you mean '" + near + "'?";
  for (const auto& [alias, mod] : s.module->namespaces) {
    if (mod->layers.count(name)) hint = "did you mean '" + alias + "." + name + "'?";
  }
  error(callee.span, "unknown layer or function '" + name + "'", hint);
  return Value::error();
}

}  // namespace kiln::sema::detail
