// What the X3 grammar (grammar.cpp) and the error recovery around it (syntax_errors.cpp)
// share: the parse state the grammar's actions write to, and the two kinds of syntax error
// a declaration can end in. No X3 here, so the recovery code compiles without it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compiler/syntax/ast.h"
#include "compiler/syntax/diagnostics.h"

namespace kiln::syntax_detail {

using Iter = const char*;

// The grammar expected something else at `where` ("')'", "an expression", ...).
struct ExpectationError {
  Iter where;
  std::string which;
};

// A syntax error raised by a semantic action (for messages X3 cannot phrase well).
struct SyntaxError {
  Iter where;
  std::string message;
  std::string hint;
  Iter end = nullptr;  // when set, the span is [where, end)
};

std::size_t utf8_decode(Iter p, Iter end, std::uint32_t& cp);
std::string describe_at(Iter p, Iter end);
std::string lookalike_hint(Iter p, Iter end);

struct ParseState {
  Iter base = nullptr;
  Iter end = nullptr;
  FileId file = kNoFile;
  ast::File* out = nullptr;
  Diagnostics* diags = nullptr;
  std::vector<Iter> starts;  // match starts of the enclosing located[] parsers
  std::vector<std::uint32_t> line_starts;
  std::vector<std::uint32_t> comment_starts;  // per line: offset of its '#' comment, or ~0

  void index_lines() {
    bool in_string = false;
    std::uint32_t comment = ~0u;
    line_starts.push_back(0);
    for (Iter q = base; q < end; ++q) {
      char c = *q;
      if (c == '\n') {
        comment_starts.push_back(comment);
        line_starts.push_back(static_cast<std::uint32_t>(q - base + 1));
        comment = ~0u;
        in_string = false;
      } else if (comment != ~0u) {
        continue;
      } else if (in_string) {
        if (c == '\\' && q + 1 < end && q[1] != '\n')
          ++q;
        else if (c == '"')
          in_string = false;
      } else if (c == '"') {
        in_string = true;
      } else if (c == '#') {
        comment = static_cast<std::uint32_t>(q - base);
      }
    }
    comment_starts.push_back(comment);
  }

  // The '#' that starts a comment on the line holding the byte before `t`, if any.
  Iter comment_on_line_of(Iter t) const {
    if (t == base) return nullptr;
    auto offset = static_cast<std::uint32_t>(t - base - 1);
    auto it = std::upper_bound(line_starts.begin(), line_starts.end(), offset);
    std::size_t line = static_cast<std::size_t>(it - line_starts.begin()) - 1;
    std::uint32_t c = comment_starts[line];
    return c == ~0u ? nullptr : base + c;
  }

  // The span of [b, e), with leading white space and comments left out.
  Span span(Iter b, Iter e) const {
    while (b < e) {
      if (*b == ' ' || *b == '\t' || *b == '\r' || *b == '\n') {
        ++b;
      } else if (*b == '#') {
        while (b < e && *b != '\n') ++b;
      } else {
        break;
      }
    }
    // X3 skips white space before trying an optional token (`-lit(';')`) and does not undo
    // it, so a match may end in white space and comments: trim them back off.
    while (e > b) {
      Iter t = e;
      while (t > b && (t[-1] == ' ' || t[-1] == '\t' || t[-1] == '\r' || t[-1] == '\n')) --t;
      Iter comment = comment_on_line_of(t);
      if (comment == nullptr || comment < b || comment >= t) {
        e = t;
        break;
      }
      e = comment;
    }
    return Span{file, static_cast<std::uint32_t>(b - base), static_cast<std::uint32_t>(e - base)};
  }
  Span join(Span a, Span b) const { return Span{file, a.begin, std::max(a.end, b.end)}; }
  ast::ExprId add(ast::Expr e) {
    out->exprs.push_back(std::move(e));
    return static_cast<ast::ExprId>(out->exprs.size() - 1);
  }
  const ast::Expr& expr(ast::ExprId id) const { return out->exprs[id]; }
};

// Parses one top-level declaration at p (advancing p). False when nothing there starts
// a declaration; throws SyntaxError or ExpectationError on a malformed one.
bool parse_one_declaration(ParseState& st, Iter& p, ast::Decl& decl);

}  // namespace kiln::syntax_detail
