// print_ast: one node per line, children indented by two spaces, each line ending in the
// node's `@line:col`. Types, dimensions and column levels are printed inline; expressions
// are printed as trees. Comments come last, in order, so that a comparison of two dumps
// with the locations stripped also compares the comments.
#include "compiler/syntax/ast_printer.h"

#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace kiln {
namespace {

std::string quoted(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default: out.push_back(c);
    }
  }
  return out + "\"";
}

using ast::type_text;

const char* stmt_keyword(ast::StmtKind kind) {
  switch (kind) {
    case ast::StmtKind::kInput: return "input";
    case ast::StmtKind::kOutput: return "output";
    case ast::StmtKind::kParam: return "param";
    case ast::StmtKind::kState: return "state";
    case ast::StmtKind::kUpdate: return "update";
    case ast::StmtKind::kReturn: return "return";
    case ast::StmtKind::kBinding: return "binding";
  }
  return "?";
}

class AstPrinter {
 public:
  AstPrinter(const ast::File& file, const SourceManager& sources) : file_(file), sources_(sources) {}

  std::string run() {
    for (const ast::Decl& decl : file_.decls) {
      std::visit([this](const auto& d) { print(d); }, decl);
    }
    for (const ast::Comment& c : file_.comments) {
      std::string_view text = sources_.text(c.span);
      while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) {
        text.remove_suffix(1);
      }
      node(0, "comment " + std::string(text), c.span);
    }
    return out_;
  }

 private:
  void node(int depth, const std::string& text, Span span) {
    out_.append(static_cast<std::size_t>(depth) * 2, ' ');
    out_ += text;
    if (span.valid() && span.file < sources_.size()) {
      LineCol lc = sources_.file(span.file).line_col(span.begin);
      out_ += " @" + std::to_string(lc.line) + ":" + std::to_string(lc.column);
    }
    out_.push_back('\n');
  }

  void args(int depth, const std::vector<ast::CallArg>& list) {
    for (const ast::CallArg& a : list) arg(depth, a);
  }

  void arg(int depth, const ast::CallArg& a) {
    if (a.name.empty()) {
      expr(depth, a.value);
    } else {
      node(depth, "arg " + a.name, a.name_span);
      expr(depth + 1, a.value);
    }
  }

  // Iterative with an explicit stack: chains such as `a + b + ...` or `- - x` are as deep
  // as the file is long.
  void expr(int root_depth, ast::ExprId root) {
    struct Task {
      int depth = 0;
      ast::ExprId id = ast::kNoExpr;
      const ast::CallArg* named = nullptr;  // a named argument: its line, then its value
    };
    std::vector<Task> stack{{root_depth, root, nullptr}};
    std::vector<Task> children;
    auto add_args = [&](int depth, const std::vector<ast::CallArg>& list) {
      for (const ast::CallArg& a : list) {
        children.push_back(a.name.empty() ? Task{depth, a.value, nullptr} : Task{depth, ast::kNoExpr, &a});
      }
    };
    while (!stack.empty()) {
      Task task = stack.back();
      stack.pop_back();
      children.clear();
      if (task.named != nullptr) {
        node(task.depth, "arg " + task.named->name, task.named->name_span);
        stack.push_back({task.depth + 1, task.named->value, nullptr});
        continue;
      }
      int depth = task.depth;
      if (task.id == ast::kNoExpr || task.id >= file_.exprs.size()) {
        node(depth, "<missing expression>", {});
        continue;
      }
      const ast::Expr& e = file_.expr(task.id);
      switch (e.kind) {
        case ast::ExprKind::kNumber: {
          std::string_view raw = sources_.text(e.span);
          node(depth, "number " + (raw.empty() ? e.text : std::string(raw)), e.span);
          break;
        }
        case ast::ExprKind::kString: node(depth, "string " + quoted(e.text), e.span); break;
        case ast::ExprKind::kBool: node(depth, e.boolean ? "bool true" : "bool false", e.span); break;
        case ast::ExprKind::kName: node(depth, "name " + e.text, e.span); break;
        case ast::ExprKind::kList:
          node(depth, "list", e.span);
          add_args(depth + 1, e.args);
          break;
        case ast::ExprKind::kMember:
          node(depth, "member ." + e.text, e.span);
          children.push_back({depth + 1, e.lhs, nullptr});
          break;
        case ast::ExprKind::kCall:
          node(depth, "call", e.span);
          children.push_back({depth + 1, e.lhs, nullptr});
          add_args(depth + 1, e.args);
          break;
        case ast::ExprKind::kUnary:
          node(depth, "unary " + e.text, e.span);
          children.push_back({depth + 1, e.lhs, nullptr});
          break;
        case ast::ExprKind::kBinary:
          node(depth, "binary " + e.text, e.span);
          children.push_back({depth + 1, e.lhs, nullptr});
          children.push_back({depth + 1, e.rhs, nullptr});
          break;
      }
      stack.insert(stack.end(), children.rbegin(), children.rend());
    }
  }

  void stmts(int depth, const std::vector<ast::Stmt>& body) {
    for (const ast::Stmt& s : body) {
      std::string text = stmt_keyword(s.kind);
      for (std::size_t i = 0; i < s.names.size(); ++i) text += (i == 0 ? " " : ", ") + s.names[i];
      if (s.kind == ast::StmtKind::kInput || s.kind == ast::StmtKind::kParam || s.kind == ast::StmtKind::kState) {
        text += " : " + type_text(s.type);
      }
      node(depth, text, s.span);
      for (ast::ExprId v : s.values) expr(depth + 1, v);
    }
  }

  void fields(int depth, const std::vector<ast::Field>& list) {
    for (const ast::Field& f : list) {
      node(depth, f.is_gate ? std::string("gate") : "field " + f.name, f.span);
      expr(depth + 1, f.value);
    }
  }

  void print(const ast::Import& im) {
    std::string text = "import " + (im.is_path ? quoted(im.target) : im.target);
    if (!im.alias.empty()) text += " as " + im.alias;
    node(0, text, im.span);
  }

  void print(const ast::LayerDecl& l) {
    node(0, "layer " + l.name, l.span);
    for (const ast::LayerArg& a : l.args) {
      node(1, "arg " + a.name + " : " + type_text(a.type), a.name_span);
      if (a.default_value != ast::kNoExpr) expr(2, a.default_value);
    }
    if (l.result) node(1, "result " + type_text(*l.result), l.result->span);
    stmts(1, l.body);
  }

  void print(const ast::ModelDecl& m) {
    node(0, "model " + m.name, m.span);
    stmts(1, m.body);
  }

  void print(const ast::FeaturesDecl& f) {
    node(0, "features " + f.name, f.span);
    node(1, "source", {});
    expr(2, f.source);
    for (const ast::Column& c : f.columns) {
      std::string text = std::string("column ") + (c.is_label ? "label " : "") + c.name + " : " + c.type_name;
      if (c.has_levels) {
        text += "[";
        for (std::size_t i = 0; i < c.levels.size(); ++i) {
          if (i > 0) text += ", ";
          const ast::Level& level = c.levels[i];
          text += level.kind == ast::Level::Kind::kString ? quoted(level.text) : level.text;
        }
        text += "]";
      }
      node(1, text, c.span);
      for (const ast::Transform& t : c.transforms) {
        node(2, "transform " + t.name + (t.has_parens ? "()" : ""), t.span);
        args(3, t.args);
      }
    }
  }

  void print(const ast::TrainDecl& t) {
    node(0, "train " + t.model, t.span);
    fields(1, t.fields);
  }

  void print(const ast::PromoteDecl& p) {
    node(0, "promote " + p.model, p.span);
    fields(1, p.fields);
  }

  const ast::File& file_;
  const SourceManager& sources_;
  std::string out_;
};

}  // namespace

std::string print_ast(const ast::File& file, const SourceManager& sources) {
  return AstPrinter(file, sources).run();
}

}  // namespace kiln
