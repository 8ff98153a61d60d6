// A quick pass over every layer body, called or not: each name must be defined before it
// is used and each callee must exist. Layers are otherwise only checked when a model
// instantiates them, so without this pass a typo in an unused layer would go unseen.
#include <map>
#include <set>

#include "compiler/ir/ops.h"
#include "compiler/sema/sema_internal.h"

namespace kiln::sema::detail {
namespace {

struct NameChecker {
  Compilation& c;
  const Module& m;
  const ast::File& file;
  std::set<std::string> defined;
  bool ok = true;

  std::vector<std::string> candidates() const {
    std::vector<std::string> out(defined.begin(), defined.end());
    for (const auto& [name, layer] : m.layers) out.push_back(name);
    return out;
  }

  bool callee_exists(const ast::Expr& callee) {
    if (callee.kind == ast::ExprKind::kName) {
      if (m.layers.count(callee.text) || ir::core_ops().find(callee.text)) return true;
      for (const Module* u : m.unqualified) {
        if (u->layers.count(callee.text)) return true;
      }
      if (m.incomplete) return false;  // a failed import may have been meant to bring it
      std::vector<std::string> names;
      for (const auto& [name, l] : m.layers) names.push_back(name);
      for (const ir::OpInfo& op : ir::core_ops().all()) {
        if (op.has(ir::kSurface)) names.push_back(std::string(op.name));
      }
      std::string near = closest_match(callee.text, names);
      std::string hint = near.empty() ? "" : "did you mean '" + near + "'?";
      for (const auto& [alias, mod] : m.namespaces) {
        if (mod->layers.count(callee.text)) hint = "did you mean '" + alias + "." + callee.text + "'?";
      }
      c.diags.error(callee.span, "unknown layer or function '" + callee.text + "'", hint);
      return false;
    }
    if (callee.kind == ast::ExprKind::kMember) {
      const ast::Expr& ns = file.expr(callee.lhs);
      if (ns.kind != ast::ExprKind::kName) {
        c.diags.error(callee.span, "only a layer or a module's layer can be called");
        return false;
      }
      auto it = m.namespaces.find(ns.text);
      if (it == m.namespaces.end()) {
        if (!m.incomplete && m.reported_unknown_modules.insert(ns.text).second) {
          c.diags.error(ns.span, "unknown module '" + ns.text + "'",
                        "add 'import " + ns.text + "' at the top of the file");
        }
        return false;
      }
      if (!it->second->layers.count(callee.text)) {
        std::vector<std::string> names;
        for (const auto& [name, l] : it->second->layers) names.push_back(name);
        std::string near = closest_match(callee.text, names);
        c.diags.error(callee.span, "module '" + ns.text + "' has no layer '" + callee.text + "'",
                      near.empty() ? "" : "did you mean '" + ns.text + "." + near + "'?");
        return false;
      }
      return true;
    }
    c.diags.error(callee.span, "this cannot be called", "only layers and builtin functions can be called");
    return false;
  }

  void check(ast::ExprId id) {
    const ast::Expr& e = file.expr(id);
    switch (e.kind) {
      case ast::ExprKind::kName:
        if (!defined.count(e.text) && e.text != "batch") {
          if (!m.incomplete) {
            std::string near = closest_match(e.text, candidates());
            c.diags.error(e.span, "unknown name '" + e.text + "'", near.empty() ? "" : "did you mean '" + near + "'?");
          }
          ok = false;
        }
        break;
      case ast::ExprKind::kCall:
        if (!callee_exists(file.expr(e.lhs))) ok = false;
        for (const ast::CallArg& a : e.args) check(a.value);
        break;
      case ast::ExprKind::kMember:
        c.diags.error(e.span, "'.' only names a module's layer in a call", "write 'module.layer(...)'");
        ok = false;
        break;
      case ast::ExprKind::kList:
        for (const ast::CallArg& a : e.args) check(a.value);
        break;
      case ast::ExprKind::kUnary: check(e.lhs); break;
      case ast::ExprKind::kBinary:
        check(e.lhs);
        check(e.rhs);
        break;
      default: break;
    }
  }

  // Declarations that must be unique within the layer: arguments, params and states.
  void check_unique(const ast::LayerDecl& layer) {
    std::map<std::string, Span> seen;
    auto declare = [&](const std::string& name, Span span, const char* what) {
      auto [it, inserted] = seen.emplace(name, span);
      if (!inserted) {
        c.diags.error(span, std::string("duplicate ") + what + " '" + name + "' in layer " + layer.name,
                      "the first is at " + c.sources.location(it->second));
        ok = false;
      }
    };
    for (const ast::LayerArg& arg : layer.args) declare(arg.name, arg.name_span, "argument");
    bool returns = false;
    for (const ast::Stmt& st : layer.body) {
      if (st.kind == ast::StmtKind::kParam) declare(st.names[0], st.name_spans[0], "param");
      if (st.kind == ast::StmtKind::kState) declare(st.names[0], st.name_spans[0], "state");
      returns = returns || st.kind == ast::StmtKind::kReturn;
    }
    if (!returns) {
      c.diags.error(layer.name_span, "layer " + layer.name + " does not return a value", "end it with 'return ...'");
      ok = false;
    }
  }

  void run(const ast::LayerDecl& layer) {
    check_unique(layer);
    for (const ast::LayerArg& arg : layer.args) {
      defined.insert(arg.name);
      for (const ast::DimPattern& d : arg.type.dims) {
        if (d.kind == ast::DimPattern::Kind::kSymbol) defined.insert(d.name);
      }
    }
    for (const ast::LayerArg& arg : layer.args) {
      if (arg.default_value != ast::kNoExpr) check(arg.default_value);
    }
    for (const ast::Stmt& st : layer.body) {
      for (ast::ExprId v : st.values) check(v);
      if (st.kind == ast::StmtKind::kParam || st.kind == ast::StmtKind::kState) {
        for (const ast::DimPattern& d : st.type.dims) {
          if (d.kind == ast::DimPattern::Kind::kSymbol && !defined.count(d.name) && d.name != "batch") {
            c.diags.error(d.span, "unknown size '" + d.name + "'",
                          "sizes in a param's type come from the layer's arguments or their shape patterns");
            ok = false;
          }
        }
      }
      if (st.kind == ast::StmtKind::kUpdate && !defined.count(st.names[0])) {
        c.diags.error(st.name_spans[0],
                      "'update' needs a state declared in this layer: '" + st.names[0] + "' is not one");
        ok = false;
      }
      for (const std::string& n : st.names) defined.insert(n);
    }
  }
};

}  // namespace

void check_layer_names(Compilation& c, const Module& module, std::set<const ast::LayerDecl*>& broken) {
  for (const auto& [name, layer] : module.layers) {
    NameChecker checker{c, module, module.ast, {}, true};
    checker.run(*layer);
    if (!checker.ok) broken.insert(layer);
  }
}

}  // namespace kiln::sema::detail
