// Layer instantiation: binding a call's arguments to a layer's signature (attributes
// first, then tensor shape patterns), running its body in a fresh scope under the call
// site's name, and checking what it returns against its declared result type.
#include <algorithm>

#include "compiler/sema/lowering.h"

namespace kiln::sema::detail {
namespace {

std::string pattern_text(const ast::TypeExpr& t) {
  return ast::type_text(t);
}

// "nn.dense(x: f32[..., n], units: int, bias: bool = true)", for hints.
std::string signature_text(const std::string& display, const ast::LayerDecl& layer) {
  std::string s = display + "(";
  for (std::size_t i = 0; i < layer.args.size(); ++i) {
    const ast::LayerArg& a = layer.args[i];
    s += (i ? ", " : "") + a.name + ": " + pattern_text(a.type) + (a.default_value != ast::kNoExpr ? " = ..." : "");
  }
  return s + ")";
}

}  // namespace

Value Lowerer::call_layer(const Module& module, const ast::LayerDecl& layer, const ast::Expr& call,
                          std::vector<Arg> args, Scope& caller) {
  const std::string display = layer_display_name(module, layer);
  if (broken_.count(&layer)) return Value::error();
  if (std::find(layer_stack_.begin(), layer_stack_.end(), &layer) != layer_stack_.end()) {
    error(call.span, "layer " + display + " calls itself", "layers cannot be recursive");
    return Value::error();
  }
  // The initialiser context applies to the outermost call of a param's initialiser only.
  std::optional<InitContext> init = init_;
  init_.reset();

  // Match arguments to the signature.
  std::vector<const Arg*> bound(layer.args.size(), nullptr);
  std::size_t positional = 0;
  bool ok = true;
  for (const Arg& a : args) {
    if (a.name.empty()) {
      if (positional >= layer.args.size()) {
        std::size_t given = static_cast<std::size_t>(
            std::count_if(args.begin(), args.end(), [](const Arg& x) { return x.name.empty(); }));
        error(a.span,
              display + " takes " + std::to_string(layer.args.size()) + " argument" +
                  (layer.args.size() == 1 ? "" : "s") + ", but " + std::to_string(given) + " were given",
              "its signature is " + signature_text(display, layer));
        ok = false;
        break;
      }
      bound[positional++] = &a;
      continue;
    }
    auto it =
        std::find_if(layer.args.begin(), layer.args.end(), [&](const ast::LayerArg& la) { return la.name == a.name; });
    if (it == layer.args.end()) {
      std::vector<std::string> names;
      for (const ast::LayerArg& la : layer.args) names.push_back(la.name);
      std::string near = closest_match(a.name, names);
      error(a.span, display + " has no argument '" + a.name + "'",
            near.empty() ? "its signature is at " + c_.sources.location(layer.name_span)
                         : "did you mean '" + near + "'?");
      ok = false;
      continue;
    }
    std::size_t index = static_cast<std::size_t>(it - layer.args.begin());
    if (bound[index] != nullptr) {
      error(a.span, "argument '" + a.name + "' of " + display + " is given twice");
      ok = false;
      continue;
    }
    bound[index] = &a;
  }
  if (!ok) return Value::error();

  Scope callee;
  callee.module = &module;
  callee.layer = &layer;
  frames_.push_back(std::make_unique<NameFrame>());
  NameFrame* frame = frames_.back().get();
  frame->parent = caller.frame;
  frame->base = caller.stmt_base.empty() ? layer.name : caller.stmt_base;
  callee.frame = frame;

  // Attributes first (their values may size the tensor patterns), then tensors.
  PatternBindings bindings;
  for (int pass = 0; pass < 2 && ok; ++pass) {
    for (std::size_t i = 0; i < layer.args.size() && ok; ++i) {
      const ast::LayerArg& la = layer.args[i];
      bool is_tensor = la.type.is_tensor;
      if ((pass == 0) == is_tensor) continue;
      Value v;
      Span where = bound[i] ? bound[i]->span : call.span;
      if (bound[i]) {
        v = bound[i]->value;
      } else if (init && (la.name == "shape" || la.name == "fan_in" || la.name == "fan_out")) {
        v = la.name == "shape" ? init->shape : Value::of_int(la.name == "fan_in" ? init->fan_in : init->fan_out);
      } else if (la.default_value != ast::kNoExpr) {
        expansion_.push_back({display, call.span});
        v = eval(la.default_value, callee);
        expansion_.pop_back();
      } else {
        error(call.span, display + " needs the argument '" + la.name + "' (" + pattern_text(la.type) + ")",
              "its signature is " + signature_text(display, layer));
        ok = false;
        continue;
      }
      if (v.is_error()) {
        ok = false;
        continue;
      }
      if (is_tensor) {
        if (!v.is_tensor()) {
          error(where,
                "argument '" + la.name + "' of " + display + " must be a tensor " + pattern_text(la.type) + ", not " +
                    describe_value(v, graph_),
                "arguments are matched by position, then by name: " + signature_text(display, layer));
          ok = false;
          continue;
        }
        std::string why;
        const ir::TensorType& actual = graph_.node(v.tensor).type;
        // Symbols bound by earlier tensor arguments live in callee.env as ints/batch.
        if (!match_tensor_pattern(la.type, actual, callee.env, bindings, why)) {
          error(where,
                "argument '" + la.name + "' of " + display + " expects " + pattern_text(la.type) + ", but got " +
                    actual.to_string() + ": " + why,
                "'" + la.name + "' is declared at " + c_.sources.location(la.name_span));
          ok = false;
          continue;
        }
        for (const auto& [sym, dim] : bindings.symbols) {
          if (!callee.env.count(sym)) {
            callee.env[sym] = dim.is_batch() ? Value::of_batch() : Value::of_int(dim.size);
          }
        }
        callee.env[la.name] = v;
        continue;
      }
      // Attribute arguments.
      const std::string& t = la.type.name;
      bool good = (t == "int" && v.kind == Value::Kind::kInt) || (t == "float" && v.is_number()) ||
                  (t == "bool" && v.kind == Value::Kind::kBool) || (t == "string" && v.kind == Value::Kind::kString) ||
                  (t == "shape" && v.kind == Value::Kind::kList &&
                   std::all_of(v.items.begin(), v.items.end(), [](const Value& d) {
                     return d.kind == Value::Kind::kInt || d.kind == Value::Kind::kBatch;
                   }));
      if (!is_attribute_type(t)) {
        error(la.type.span, "argument '" + la.name + "' has type '" + t + "', which a layer cannot take",
              "layer arguments are tensors (f32[...]) or int, float, bool, string, shape");
        ok = false;
        continue;
      }
      if (!good) {
        error(where,
              "argument '" + la.name + "' of " + display + " must be " + (t == "int" ? "an " : "a ") + t + ", not " +
                  describe_value(v, graph_),
              v.is_tensor() ? "arguments are matched by position, then by name: " + signature_text(display, layer)
                            : std::string());
        ok = false;
        continue;
      }
      if (t == "float" && v.kind == Value::Kind::kInt) v = Value::of_float(v.f, v.span);
      callee.env[la.name] = v;
    }
  }
  if (!ok) return Value::error();

  expansion_.push_back({display, call.span});
  layer_stack_.push_back(&layer);
  callee.body = &layer.body;
  // The first error inside a layer's body stops it: what follows would mostly repeat it.
  std::size_t errors_before = c_.diags.error_count();
  for (const ast::Stmt& st : layer.body) {
    run_statement(st, callee);
    if (c_.diags.error_count() != errors_before) break;
  }
  layer_stack_.pop_back();

  Value result = Value::error();
  if (c_.diags.error_count() != errors_before || !callee.returned) {
    // reported (a layer without return is found by the name check)
  } else if (callee.results.size() == 1) {
    result = callee.results[0];
    if (layer.result && result.is_tensor()) {
      std::string why;
      const ir::TensorType& actual = graph_.node(result.tensor).type;
      if (!match_tensor_pattern(*layer.result, actual, callee.env, bindings, why)) {
        error(layer.result->span, "layer " + display + " returns " + actual.to_string() + ", but declares " +
                                      pattern_text(*layer.result) + ": " + why);
        result = Value::error();
      }
    }
  } else {
    result.kind = Value::Kind::kTuple;
    result.items = callee.results;
    result.span = call.span;
    if (std::any_of(result.items.begin(), result.items.end(), [](const Value& v) { return v.is_error(); })) {
      result = Value::error();
    }
  }
  expansion_.pop_back();
  if (!result.is_error()) result.span = call.span;
  return result;
}

}  // namespace kiln::sema::detail
