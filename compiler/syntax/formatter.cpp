// format_file: prints the canonical layout of a `.kiln` file from its AST. The AST has no
// parentheses, blank lines or comments, so the printer inserts parentheses where precedence
// needs them, reads blank lines from the source text between items, and threads the file's
// comments through the output with one cursor, so every comment is printed once, in order.
//
// Comment placement: a comment on a line of its own goes before the next item (declaration,
// statement, column, field, or argument of a wrapped call) at that item's indentation; a
// comment after code on the same line stays at the end of that item's line; a comment
// inside an item that is printed on one line moves before the item. A call or list that
// holds comments is printed one argument per line so that the comments can stay inside it.
#include "compiler/syntax/formatter.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace kiln {
namespace {

constexpr std::size_t kMaxWidth = 100;
constexpr int kIndentStep = 2;

// Binding strength, loosest first; see the `expr` rules in docs/language.md.
enum Precedence : int {
  kComparison = 1,
  kAdditive = 2,
  kMultiplicative = 3,
  kUnary = 4,
  kPostfix = 5,
  kPrimary = 6,
};

std::string quote(std::string_view text) {
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
  out.push_back('"');
  return out;
}

// Display width in code points (every UTF-8 byte that does not continue a sequence).
std::size_t width(std::string_view text) {
  std::size_t n = 0;
  for (char c : text) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  }
  return n;
}

using ast::type_text;

// A bracketed, comma-separated run of parts (call arguments, list items, layer arguments,
// column levels) that may be printed one part per line:
//   open_line            e.g. `h = relu(`
//     part,
//     part
//   close_line           e.g. `)`
struct Wrappable {
  struct Part {
    std::uint32_t begin = 0;
    std::uint32_t end = 0;
    std::string text;
  };
  std::string open_line;
  std::string close_line;
  std::vector<Part> parts;
  // The source range whose comments can be placed between the parts.
  std::uint32_t begin = 0;
  std::uint32_t end = 0;

  std::string flat() const {
    std::string out = open_line;
    for (std::size_t i = 0; i < parts.size(); ++i) {
      if (i > 0) out += ", ";
      out += parts[i].text;
    }
    return out + close_line;
  }
};

// One line of output in the usual case: a statement, column, field, import or block header.
struct Item {
  std::uint32_t begin = 0;
  std::uint32_t end = 0;
  std::string flat;
  std::optional<Wrappable> wrap;
};

class Formatter {
 public:
  Formatter(const ast::File& file, const SourceManager& sources)
      : file_(file), sources_(sources), comments_(file.comments) {
    if (file.file != kNoFile && file.file < sources.size()) text_ = sources.file(file.file).text();
  }

  std::string run() {
    emit_top_level();
    std::string out;
    for (const std::string& line : lines_) {
      out += line;
      out.push_back('\n');
    }
    return out;
  }

 private:
  // ---------------------------------------------------------------------------------------
  // Expressions

  static int precedence(const ast::Expr& e) {
    switch (e.kind) {
      case ast::ExprKind::kBinary:
        if (e.text == "+" || e.text == "-") return kAdditive;
        if (e.text == "*" || e.text == "/" || e.text == "@") return kMultiplicative;
        return kComparison;
      case ast::ExprKind::kUnary: return kUnary;
      case ast::ExprKind::kCall:
      case ast::ExprKind::kMember: return kPostfix;
      default: return kPrimary;
    }
  }

  // `1.x` would lex as the number `1.` followed by `x`, so a number before `.` or `(` gets
  // parentheses too.
  static bool postfix_needs_parens(const ast::Expr& e) {
    return precedence(e) < kPostfix || e.kind == ast::ExprKind::kNumber;
  }

  // The callee of a call or the object of a member access.
  std::string postfix_operand(ast::ExprId id) const {
    std::string out;
    append_expr(out, id, postfix_needs_parens(file_.expr(id)));
    return out;
  }

  std::string number_text(const ast::Expr& e) const {
    if (e.span.valid() && e.span.file == file_.file) {
      std::string_view raw = sources_.text(e.span);
      if (!raw.empty()) return std::string(raw);
    }
    return e.text;
  }

  std::string call_arg(const ast::CallArg& arg) const {
    std::string out = arg.name.empty() ? std::string() : arg.name + ": ";
    append_expr(out, arg.value, false);
    return out;
  }

  std::string call_args(const std::vector<ast::CallArg>& args) const {
    std::string out;
    for (std::size_t i = 0; i < args.size(); ++i) {
      if (i > 0) out += ", ";
      out += call_arg(args[i]);
    }
    return out;
  }

  std::string expr(ast::ExprId id) const {
    std::string out;
    append_expr(out, id, false);
    return out;
  }

  // Appends expression `root`, in parentheses when `root_paren`. Iterative with an explicit
  // stack: chains such as `a + b + ...`, `- - x` or `x.a.b...` are as deep as the file is
  // long, and recursion over them would overflow the stack on hostile input.
  void append_expr(std::string& out, ast::ExprId root, bool root_paren) const {
    struct Task {
      ast::ExprId id = ast::kNoExpr;  // kNoExpr: append `text`
      bool paren = false;
      std::string_view text;
    };
    auto text = [](std::string_view t) { return Task{ast::kNoExpr, false, t}; };
    auto sub = [](ast::ExprId id, bool paren) { return Task{id, paren, {}}; };
    std::vector<Task> stack{sub(root, root_paren)};
    std::vector<Task> seq;  // one node's pieces in order; pushed reversed
    auto add_args = [&](const std::vector<ast::CallArg>& args) {
      for (std::size_t i = 0; i < args.size(); ++i) {
        if (i > 0) seq.push_back(text(", "));
        if (!args[i].name.empty()) {
          seq.push_back(text(args[i].name));
          seq.push_back(text(": "));
        }
        seq.push_back(sub(args[i].value, false));
      }
    };
    while (!stack.empty()) {
      Task task = stack.back();
      stack.pop_back();
      if (task.id == ast::kNoExpr) {
        out += task.text;
        continue;
      }
      if (task.paren) {
        out.push_back('(');
        stack.push_back(text(")"));
      }
      const ast::Expr& e = file_.expr(task.id);
      seq.clear();
      switch (e.kind) {
        case ast::ExprKind::kNumber: out += number_text(e); break;
        case ast::ExprKind::kString: out += quote(e.text); break;
        case ast::ExprKind::kBool: out += e.boolean ? "true" : "false"; break;
        case ast::ExprKind::kName: out += e.text; break;
        case ast::ExprKind::kList:
          out.push_back('[');
          add_args(e.args);
          seq.push_back(text("]"));
          break;
        case ast::ExprKind::kMember:
          seq.push_back(sub(e.lhs, postfix_needs_parens(file_.expr(e.lhs))));
          seq.push_back(text("."));
          seq.push_back(text(e.text));
          break;
        case ast::ExprKind::kCall:
          seq.push_back(sub(e.lhs, postfix_needs_parens(file_.expr(e.lhs))));
          seq.push_back(text("("));
          add_args(e.args);
          seq.push_back(text(")"));
          break;
        case ast::ExprKind::kUnary: {
          // `- -x` for a double negation: `--x` reads like a decrement, and `-(-x)` would
          // nest one bracket per minus, past the parser's nesting limit for long chains.
          const ast::Expr& operand = file_.expr(e.lhs);
          out.push_back('-');
          if (operand.kind == ast::ExprKind::kUnary) seq.push_back(text(" "));
          seq.push_back(sub(e.lhs, precedence(operand) < kUnary));
          break;
        }
        case ast::ExprKind::kBinary: {
          int p = precedence(e);
          int lp = precedence(file_.expr(e.lhs));
          int rp = precedence(file_.expr(e.rhs));
          // Left-associative: equal precedence on the right needs parentheses; comparisons
          // do not chain, so they need them on both sides.
          seq.push_back(sub(e.lhs, lp < p || (p == kComparison && lp == p)));
          seq.push_back(text(" "));
          seq.push_back(text(e.text));
          seq.push_back(text(" "));
          seq.push_back(sub(e.rhs, rp <= p));
          break;
        }
      }
      stack.insert(stack.end(), seq.rbegin(), seq.rend());
    }
  }

  Wrappable::Part arg_part(const ast::CallArg& arg) const {
    const ast::Expr& value = file_.expr(arg.value);
    std::uint32_t begin = arg.name.empty() || !arg.name_span.valid() ? value.span.begin : arg.name_span.begin;
    return {begin, value.span.end, call_arg(arg)};
  }

  // `prefix` followed by expression `id`, breakable when `id` is a call or a list.
  Item expr_item(std::uint32_t begin, std::uint32_t end, const std::string& prefix, ast::ExprId id) const {
    Item item{begin, end, prefix + expr(id), std::nullopt};
    const ast::Expr& e = file_.expr(id);
    if (e.kind == ast::ExprKind::kCall) {
      Wrappable w;
      w.open_line = prefix + postfix_operand(e.lhs) + "(";
      w.close_line = ")";
      w.begin = file_.expr(e.lhs).span.end;
      w.end = e.span.end;
      for (const ast::CallArg& arg : e.args) w.parts.push_back(arg_part(arg));
      item.wrap = std::move(w);
    } else if (e.kind == ast::ExprKind::kList) {
      Wrappable w;
      w.open_line = prefix + "[";
      w.close_line = "]";
      w.begin = e.span.begin;
      w.end = e.span.end;
      for (const ast::CallArg& arg : e.args) w.parts.push_back(arg_part(arg));
      item.wrap = std::move(w);
    }
    return item;
  }

  // ---------------------------------------------------------------------------------------
  // Source text

  // The offset just past the bracket that closes the first `open` at or after `from`,
  // skipping comments and strings; `from` when there is none.
  std::uint32_t find_matching(std::uint32_t from, char open, char close) const {
    int depth = 0;
    for (std::size_t i = from; i < text_.size(); ++i) {
      char c = text_[i];
      if (c == '#') {
        while (i + 1 < text_.size() && text_[i + 1] != '\n') ++i;
      } else if (c == '"') {
        for (++i; i < text_.size() && text_[i] != '"' && text_[i] != '\n'; ++i) {
          if (text_[i] == '\\') ++i;
        }
      } else if (c == open) {
        ++depth;
      } else if (c == close && depth > 0 && --depth == 0) {
        return static_cast<std::uint32_t>(i + 1);
      }
    }
    return from;
  }

  // Where the code of `span` ends: the parser's spans of statements, columns, fields,
  // imports and named types run on over the white space and comments that follow them.
  std::uint32_t end_of(Span span) const {
    std::uint32_t last = span.begin;
    std::size_t end = std::min<std::size_t>(span.end, text_.size());
    for (std::size_t i = span.begin; i < end; ++i) {
      char c = text_[i];
      if (c == '#') {
        while (i + 1 < end && text_[i + 1] != '\n') ++i;
      } else if (c == '"') {
        for (++i; i < end && text_[i] != '"' && text_[i] != '\n'; ++i) {
          if (text_[i] == '\\') ++i;
        }
        last = static_cast<std::uint32_t>(std::min(i + 1, end));
      } else if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
        last = static_cast<std::uint32_t>(i + 1);
      }
    }
    return last;
  }

  bool newline_between(std::uint32_t a, std::uint32_t b) const {
    if (a >= b || b > text_.size()) return false;
    return text_.substr(a, b - a).find('\n') != std::string_view::npos;
  }

  // Whether the source has an empty line between offsets a and b.
  bool blank_between(std::uint32_t a, std::uint32_t b) const {
    if (a >= b || b > text_.size()) return false;
    bool after_newline = false;
    for (std::uint32_t i = a; i < b; ++i) {
      char c = text_[i];
      if (c == '\n') {
        if (after_newline) return true;
        after_newline = true;
      } else if (c != ' ' && c != '\t' && c != '\r') {
        after_newline = false;
      }
    }
    return false;
  }

  // ---------------------------------------------------------------------------------------
  // Output and comments

  void line(int indent, const std::string& text) {
    std::string out(static_cast<std::size_t>(indent), ' ');
    out += text;
    while (!out.empty() && (out.back() == ' ' || out.back() == '\t')) out.pop_back();
    lines_.push_back(std::move(out));
  }

  void blank_line() {
    if (!lines_.empty() && !lines_.back().empty()) lines_.emplace_back();
  }

  bool comment_before(std::uint32_t offset) const {
    return next_ < comments_.size() && comments_[next_].span.begin < offset;
  }

  std::string comment_text(const ast::Comment& c) const {
    std::string t(sources_.text(c.span));
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t' || t.back() == '\r')) t.pop_back();
    return t;
  }

  // Prints the next comment on a line of its own; returns its end offset.
  std::uint32_t own_line_comment(int indent) {
    const ast::Comment& c = comments_[next_++];
    line(indent, comment_text(c));
    return c.span.end;
  }

  // Takes a comment that follows offset `end` on the same source line (and starts before
  // `limit`, where the next item begins) onto the last output line.
  void trailing_comment(std::uint32_t end, std::uint32_t limit) {
    if (next_ >= comments_.size()) return;
    const ast::Comment& c = comments_[next_];
    if (c.span.begin < end || c.span.begin >= limit || newline_between(end, c.span.begin)) return;
    ++next_;
    if (lines_.empty()) lines_.emplace_back();
    lines_.back() += "  " + comment_text(c);
  }

  // Prints an item: on one line, or broken one part per line when it is too wide or
  // holds comments that can stay between its parts.
  void emit_item(const Item& item, int indent) {
    std::size_t first = next_;
    std::size_t last = first;
    while (last < comments_.size() && comments_[last].span.begin < item.end) ++last;
    bool has_inner = last > first;
    bool placeable = item.wrap.has_value() && has_inner;
    for (std::size_t i = first; placeable && i < last; ++i) {
      const Span& s = comments_[i].span;
      placeable = s.begin >= item.wrap->begin && s.end <= item.wrap->end;
    }
    bool too_wide = static_cast<std::size_t>(indent) + width(item.flat) > kMaxWidth;
    bool wrap = item.wrap.has_value() && (placeable || (too_wide && !item.wrap->parts.empty()));
    if (!placeable) {
      while (comment_before(item.end)) own_line_comment(indent);
    }
    if (!wrap) {
      line(indent, item.flat);
      return;
    }
    const Wrappable& w = *item.wrap;
    int inner = indent + kIndentStep;
    line(indent, w.open_line);
    for (std::size_t k = 0; k < w.parts.size(); ++k) {
      const Wrappable::Part& part = w.parts[k];
      while (comment_before(part.end)) own_line_comment(inner);
      line(inner, part.text + (k + 1 < w.parts.size() ? "," : ""));
      trailing_comment(part.end, k + 1 < w.parts.size() ? w.parts[k + 1].begin : w.end);
    }
    while (comment_before(w.end)) own_line_comment(inner);
    line(indent, w.close_line);
  }

  // The items of a block, then the comments before its closing brace. `start` is where
  // the block's header ends.
  void emit_block(const std::vector<Item>& items, int indent, std::uint32_t start, std::uint32_t close) {
    std::uint32_t last = start;
    bool first = true;
    auto separate = [&](std::uint32_t begin) {
      if (!first && blank_between(last, begin)) blank_line();
      first = false;
    };
    for (std::size_t i = 0; i < items.size(); ++i) {
      const Item& item = items[i];
      while (comment_before(item.begin)) {
        separate(comments_[next_].span.begin);
        last = own_line_comment(indent);
      }
      separate(item.begin);
      emit_item(item, indent);
      trailing_comment(item.end, i + 1 < items.size() ? items[i + 1].begin : close);
      last = item.end;
    }
    while (comment_before(close)) {
      separate(comments_[next_].span.begin);
      last = own_line_comment(indent);
    }
  }

  // A header line ending in `{`, its block, and the closing brace.
  void emit_braced(const Item& header, const std::vector<Item>& items, std::uint32_t close) {
    emit_item(header, 0);
    trailing_comment(header.end, items.empty() ? close : items.front().begin);
    emit_block(items, kIndentStep, header.end, close);
    line(0, "}");
  }

  // ---------------------------------------------------------------------------------------
  // Declarations

  Item stmt_item(const ast::Stmt& s) const {
    std::uint32_t b = s.span.begin;
    std::uint32_t e = end_of(s.span);
    auto name = [&] { return s.names.empty() ? std::string() : s.names[0]; };
    switch (s.kind) {
      case ast::StmtKind::kInput: return Item{b, e, "input " + name() + " : " + type_text(s.type), {}};
      case ast::StmtKind::kOutput: return expr_item(b, e, "output " + name() + " = ", s.values.at(0));
      case ast::StmtKind::kParam:
        return expr_item(b, e, "param " + name() + ": " + type_text(s.type) + " = ", s.values.at(0));
      case ast::StmtKind::kState:
        return expr_item(b, e, "state " + name() + ": " + type_text(s.type) + " = ", s.values.at(0));
      case ast::StmtKind::kUpdate: return expr_item(b, e, "update " + name() + " = ", s.values.at(0));
      case ast::StmtKind::kReturn: {
        if (s.values.size() == 1) return expr_item(b, e, "return ", s.values[0]);
        std::string text = "return ";
        for (std::size_t i = 0; i < s.values.size(); ++i) {
          if (i > 0) text += ", ";
          text += expr(s.values[i]);
        }
        return Item{b, e, text, {}};
      }
      case ast::StmtKind::kBinding: {
        std::string names;
        for (std::size_t i = 0; i < s.names.size(); ++i) {
          if (i > 0) names += ", ";
          names += s.names[i];
        }
        return expr_item(b, e, names + " = ", s.values.at(0));
      }
    }
    return Item{b, e, {}, {}};
  }

  std::vector<Item> stmt_items(const std::vector<ast::Stmt>& body) const {
    std::vector<Item> items;
    for (const ast::Stmt& s : body) items.push_back(stmt_item(s));
    return items;
  }

  static std::string level_text(const ast::Level& level) {
    return level.kind == ast::Level::Kind::kString ? quote(level.text) : level.text;
  }

  Item column_item(const ast::Column& c) const {
    std::string head = (c.is_label ? "label " : "") + c.name + " : " + c.type_name;
    std::string tail;
    for (const ast::Transform& t : c.transforms) {
      tail += " -> " + t.name;
      if (t.has_parens) tail += "(" + call_args(t.args) + ")";
    }
    if (!c.has_levels) return Item{c.span.begin, end_of(c.span), head + tail, {}};
    Wrappable w;
    w.open_line = head + "[";
    w.close_line = "]" + tail;
    w.begin = c.type_span.end;
    w.end = find_matching(c.type_span.end, '[', ']');
    for (const ast::Level& level : c.levels) {
      w.parts.push_back({level.span.begin, level.span.end, level_text(level)});
    }
    return Item{c.span.begin, end_of(c.span), w.flat(), std::move(w)};
  }

  std::vector<Item> field_items(const std::vector<ast::Field>& fields) const {
    std::vector<Item> items;
    for (const ast::Field& f : fields) {
      items.push_back(expr_item(f.span.begin, end_of(f.span), f.is_gate ? "gate " : f.name + " = ", f.value));
    }
    return items;
  }

  void emit_decl(const ast::Import& im) {
    std::string text = "import " + (im.is_path ? quote(im.target) : im.target);
    if (!im.alias.empty()) text += " as " + im.alias;
    emit_item(Item{im.span.begin, end_of(im.span), text, {}}, 0);
  }

  void emit_decl(const ast::LayerDecl& l) {
    Wrappable w;
    w.open_line = "layer " + l.name + "(";
    w.close_line = ")";
    if (l.result) w.close_line += " -> " + type_text(*l.result);
    w.close_line += " {";
    w.begin = l.name_span.end;
    for (const ast::LayerArg& arg : l.args) {
      std::string text = arg.name + ": " + type_text(arg.type);
      std::uint32_t end = end_of(arg.type.span);
      if (arg.default_value != ast::kNoExpr) {
        text += " = " + expr(arg.default_value);
        end = file_.expr(arg.default_value).span.end;
      }
      w.parts.push_back({arg.name_span.begin, end, text});
    }
    w.end = find_matching(l.name_span.end, '(', ')');
    std::uint32_t header_end = l.result ? end_of(l.result->span) : w.end;
    Item header{l.span.begin, header_end, w.flat(), std::move(w)};
    emit_braced(header, stmt_items(l.body), l.body_end.begin);
  }

  void emit_decl(const ast::ModelDecl& m) {
    Item header{m.span.begin, m.name_span.end, "model " + m.name + " {", {}};
    emit_braced(header, stmt_items(m.body), m.body_end.begin);
  }

  void emit_decl(const ast::FeaturesDecl& f) {
    const ast::Expr& source = file_.expr(f.source);
    Item header = expr_item(f.span.begin, source.span.end, "features " + f.name + " from ", f.source);
    header.flat += " {";
    if (header.wrap) header.wrap->close_line += " {";
    std::vector<Item> items;
    for (const ast::Column& c : f.columns) items.push_back(column_item(c));
    emit_braced(header, items, f.body_end.begin);
  }

  void emit_decl(const ast::TrainDecl& t) {
    Item header{t.span.begin, t.model_span.end, "train " + t.model + " {", {}};
    emit_braced(header, field_items(t.fields), t.body_end.begin);
  }

  void emit_decl(const ast::PromoteDecl& p) {
    Item header{p.span.begin, p.model_span.end, "promote " + p.model + " {", {}};
    emit_braced(header, field_items(p.fields), p.body_end.begin);
  }

  // Declarations are separated by one blank line, except that consecutive imports stay
  // together; around comments the source's blank lines (at most one) are kept.
  void emit_top_level() {
    enum class Prev { kNothing, kImport, kDecl, kComment };
    Prev prev = Prev::kNothing;
    std::uint32_t last = 0;
    const std::vector<ast::Decl>& decls = file_.decls;
    for (std::size_t i = 0; i < decls.size(); ++i) {
      const ast::Decl& decl = decls[i];
      Span span = ast::decl_span(decl);
      span.end = end_of(span);
      bool is_import = std::holds_alternative<ast::Import>(decl);
      while (comment_before(span.begin)) {
        std::uint32_t begin = comments_[next_].span.begin;
        bool keep_source = prev == Prev::kComment || (prev == Prev::kImport && is_import);
        if (prev != Prev::kNothing && (keep_source ? blank_between(last, begin) : true)) blank_line();
        last = own_line_comment(0);
        prev = Prev::kComment;
      }
      bool blank = (prev == Prev::kComment && blank_between(last, span.begin)) || prev == Prev::kDecl ||
                   (prev == Prev::kImport && !is_import);
      if (blank) blank_line();
      std::visit([this](const auto& d) { emit_decl(d); }, decl);
      std::uint32_t limit = i + 1 < decls.size() ? ast::decl_span(decls[i + 1]).begin : ~std::uint32_t{0};
      trailing_comment(span.end, limit);
      last = span.end;
      prev = is_import ? Prev::kImport : Prev::kDecl;
    }
    while (next_ < comments_.size()) {
      if (prev != Prev::kNothing && blank_between(last, comments_[next_].span.begin)) blank_line();
      last = own_line_comment(0);
      prev = Prev::kComment;
    }
  }

  const ast::File& file_;
  const SourceManager& sources_;
  std::string_view text_;
  std::vector<ast::Comment> comments_;
  std::size_t next_ = 0;  // the first comment not yet printed
  std::vector<std::string> lines_;
};

}  // namespace

std::string format_file(const ast::File& file, const SourceManager& sources) {
  return Formatter(file, sources).run();
}

}  // namespace kiln
