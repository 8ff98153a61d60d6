// Syntax errors for people, and recovery: each top-level declaration is parsed on its
// own (grammar.cpp); when one fails, its error becomes a diagnostic phrased from what was
// expected and what was found (a keyword used as a name, a look-alike character, a block
// left open, a token missing at a line's end), and parsing resumes at the next line that
// starts a declaration, so one run reports the syntax errors of every declaration; within
// a failed declaration, the later statements are checked too (Recovery, below).
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <iterator>

#include "compiler/syntax/grammar_internal.h"
#include "compiler/syntax/parser.h"

namespace kiln {
namespace syntax_detail {

const char* const kTopKeywords[] = {"import", "layer", "model", "features", "train", "promote"};

bool starts_top_keyword(Iter p, Iter end) {
  for (const char* k : kTopKeywords) {
    std::size_t n = std::strlen(k);
    if (static_cast<std::size_t>(end - p) >= n && std::memcmp(p, k, n) == 0 &&
        (p + n == end || !(std::isalnum(static_cast<unsigned char>(p[n])) || p[n] == '_'))) {
      return true;
    }
  }
  return false;
}

// After an error: the next line that starts (in column 1) with a top-level keyword. The
// error position itself counts when it is such a line start past the failed declaration.
Iter resync(Iter from, Iter end, Iter decl_start, Iter base) {
  if (from > decl_start && (from == base || from[-1] == '\n') && starts_top_keyword(from, end)) return from;
  Iter p = from;
  while (p < end) {
    while (p < end && *p != '\n') ++p;
    if (p < end) ++p;
    if (p < end && starts_top_keyword(p, end)) return p;
  }
  return end;
}

// A short description of what is at `p`, for "found ..." in messages.
// Decodes the UTF-8 sequence at p (the text was validated before parsing).
std::size_t utf8_decode(Iter p, Iter end, std::uint32_t& cp) {
  auto c = static_cast<unsigned char>(*p);
  std::size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
  if (static_cast<std::size_t>(end - p) < n) n = 1;
  cp = n == 1 ? c : c & (0xFF >> (n + 1));
  for (std::size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(p[k]) & 0x3F);
  return n;
}

std::string describe_at(Iter p, Iter end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\r')) ++p;
  if (p >= end) return "end of file";
  if (*p == '\n') return "end of line";
  if (std::isalnum(static_cast<unsigned char>(*p)) || *p == '_') {
    Iter q = p;
    while (q < end && (std::isalnum(static_cast<unsigned char>(*q)) || *q == '_') && q - p < 32) ++q;
    return "'" + std::string(p, q) + "'";
  }
  if (static_cast<unsigned char>(*p) >= 0x80) {
    std::uint32_t cp = 0;
    std::size_t n = utf8_decode(p, end, cp);
    char code[16];
    std::snprintf(code, sizeof code, "U+%04X", cp);
    return "'" + std::string(p, n) + "' (" + code + ")";
  }
  if (static_cast<unsigned char>(*p) < 0x20 || *p == 0x7f) return "a control character";
  return "'" + std::string(1, *p) + "'";
}

// Characters that can never start a token of the language: "unexpected character".
bool is_foreign_character(Iter p, Iter end) {
  if (p >= end) return false;
  unsigned char c = static_cast<unsigned char>(*p);
  if (c >= 0x80 || c < 0x20 || c == 0x7f) return c != '\n' && c != '\t' && c != '\r';
  return std::strchr("$%&'?\\^`|~!", c) != nullptr && !(c == '!' && p + 1 < end && p[1] == '=');
}

// Look-alikes that editors and word processors put in place of ASCII operators.
std::string lookalike_hint(Iter p, Iter end) {
  std::uint32_t cp = 0;
  if (p >= end || static_cast<unsigned char>(*p) < 0x80) return {};
  utf8_decode(p, end, cp);
  switch (cp) {
    case 0x2212:
    case 0x2013:
    case 0x2014: return "this is not an ASCII minus: use '-'";
    case 0x00D7:
    case 0x2217: return "use '*' for multiplication";
    case 0x201C:
    case 0x201D: return "use straight double quotes '\"'";
    case 0x00A0: return "a no-break space: use an ordinary space";
    default: return "names and operators are ASCII; other characters may appear only in strings and comments";
  }
}

Iter skip_blank(Iter p, Iter end) {
  while (p < end) {
    if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
      ++p;
    } else if (*p == '#') {
      while (p < end && *p != '\n') ++p;
    } else {
      break;
    }
  }
  return p;
}

std::string hint_for_expected(const std::string& what, const std::string& found) {
  if (what == "')'" || what == "']'") return "is a ',' missing between arguments, or a bracket left open?";
  if (what == "a statement or '}'") {
    return "statements are 'name = expr', 'param', 'state', 'update', 'input', 'output' or 'return'";
  }
  if (what == "'='" && found == "':'")
    return "types go on 'input' and 'param' declarations; a binding is 'name = expr'";
  if (what.rfind("a type", 0) == 0) return "for example f32[batch, 784], i32[batch], int, or a features block name";
  return {};
}

}  // namespace syntax_detail

namespace syntax_detail {
namespace {

// One declaration's parse: it parsed (decl filled), or its first syntax error, phrased.
struct Outcome {
  bool parsed = false;
  Span span;  // the error's
  std::string message, hint;
  Iter error = nullptr;   // where the error is (the span's start)
  Iter next = nullptr;    // where parsing goes on: the declaration's end, or the resync point
  bool unclosed = false;  // the error is a block left open (nothing after it is a statement)
};

Outcome parse_or_explain(const SourceManager& sources, ParseState& st, Iter start, ast::Decl& decl) {
  const FileId file = st.file;
  auto span_at = [&](Iter p) {
    auto off = static_cast<std::uint32_t>(p - st.base);
    Iter q = p;
    if (q < st.end && *q != '\n') ++q;
    return Span{file, off, static_cast<std::uint32_t>(q - st.base)};
  };
  Outcome o;
  auto fail = [&](Span span, std::string message, std::string hint, Iter next) {
    o.span = span;
    o.error = st.base + span.begin;
    o.message = std::move(message);
    o.hint = std::move(hint);
    o.next = next;
    return o;
  };
  Iter p = start;
  try {
    if (parse_one_declaration(st, p, decl)) {
      o.parsed = true;
      o.next = p;
      return o;
    }
    return fail(span_at(start), "expected a declaration, found " + describe_at(start, st.end),
                "a file holds import, layer, model, features, train and promote declarations",
                resync(start, st.end, start, st.base));
  } catch (const ExpectationError& e) {
    Iter next = skip_blank(e.where, st.end);
    const std::string& what = e.which;
    if (is_foreign_character(next, st.end)) {
      return fail(span_at(next), "unexpected character " + describe_at(next, st.end), lookalike_hint(next, st.end),
                  resync(next, st.end, start, st.base));
    }
    if (what == "a name") {
      // `input = 3`: a keyword where a name was meant.
      Iter w = e.where;
      while (w > start && (w[-1] == ' ' || w[-1] == '\t')) --w;
      Iter word_end = w;
      while (w > start && (std::isalnum(static_cast<unsigned char>(w[-1])) || w[-1] == '_')) --w;
      std::string word(w, word_end);
      static const char* const kReserved[] = {"import", "layer",  "model", "features", "train",  "promote",
                                              "input",  "output", "param", "state",    "update", "return"};
      bool keyword = std::find(std::begin(kReserved), std::end(kReserved), word) != std::end(kReserved);
      if (keyword && next < st.end && (*next == '=' || *next == ',' || *next == ':')) {
        return fail(Span{file, static_cast<std::uint32_t>(w - st.base), static_cast<std::uint32_t>(word_end - st.base)},
                    "'" + word + "' is a keyword and cannot be used as a name",
                    "choose another name, e.g. '" + word + "_'", resync(next, st.end, start, st.base));
      }
    }
    // A token missing at the end of a line is reported there ("found end of line"), not
    // at the first token of the next line; so is an unterminated string.
    // (X3 may have skipped the white space already: look back from the next token.)
    Iter prev_end = next;
    while (true) {
      while (prev_end > start &&
             (prev_end[-1] == ' ' || prev_end[-1] == '\t' || prev_end[-1] == '\r' || prev_end[-1] == '\n')) {
        --prev_end;
      }
      Iter comment = st.comment_on_line_of(prev_end);
      if (comment == nullptr || comment < start || comment >= prev_end) break;
      prev_end = comment;
    }
    bool string_open = what == "'\"' closing the string";
    bool at_line_end = string_open || std::find(prev_end, next, '\n') != next || next >= st.end;
    Iter at = string_open ? e.where : at_line_end ? prev_end : next;
    std::string found = at_line_end ? (next >= st.end ? "end of file" : "end of line") : describe_at(next, st.end);
    if ((what == "a statement or '}'" || what == "a column or '}'" || what == "a field ('name = value') or '}'" ||
         what == "a gate, a field or '}'") &&
        (next >= st.end || ((next == st.base || next[-1] == '\n') && starts_top_keyword(next, st.end)))) {
      LineCol opened = sources.file(file).line_col(static_cast<std::uint32_t>(start - st.base));
      fail(span_at(at),
           "expected '}' to close the block of the declaration at line " + std::to_string(opened.line) + ", found " +
               (next >= st.end ? std::string("end of file") : describe_at(next, st.end)),
           "every '{' needs a matching '}'", resync(next, st.end, start, st.base));
      o.unclosed = true;
      return o;
    }
    if (what == "a statement or '}'" && found == "'='" && next < st.end) {
      // `g = h +` then `k = ...` on the next line: the operator at the line's end carried
      // the expression over, and the next statement's '=' is what failed.
      Iter line_start = next;
      while (line_start > start && line_start[-1] != '\n') --line_start;
      Iter op = line_start;
      while (true) {
        while (op > start && (op[-1] == ' ' || op[-1] == '\t' || op[-1] == '\r' || op[-1] == '\n')) --op;
        Iter comment = st.comment_on_line_of(op);
        if (comment == nullptr || comment < start || comment >= op) break;
        op = comment;
      }
      if (op > start && std::strchr("+-*/<>,(", op[-1]) != nullptr && op < line_start) {
        return fail(span_at(op - 1),
                    std::string("the expression goes on after '") + op[-1] + "' at the end of this line",
                    "an operator or '(' at a line's end continues the expression on the next line; complete it, "
                    "or remove the '" +
                        std::string(1, op[-1]) + "'",
                    resync(next, st.end, start, st.base));
      }
    }
    std::string hint = hint_for_expected(what, found);
    // A statement keyword inside an expression: most often a value named like one, whose
    // definition was reported as such (`input = ...`).
    for (const char* keyword : {"input", "output", "param", "state", "update", "return"}) {
      if (found == "'" + std::string(keyword) + "'" && what != "a statement or '}'") {
        hint =
            "'" + std::string(keyword) + "' is a keyword and cannot name a value; rename it, e.g. '" + keyword + "_'";
      }
    }
    return fail(span_at(at), "expected " + what + ", found " + found, hint, resync(next, st.end, start, st.base));
  } catch (const SyntaxError& e) {
    return fail(e.end > e.where ? Span{file, static_cast<std::uint32_t>(e.where - st.base),
                                       static_cast<std::uint32_t>(e.end - st.base)}
                                : span_at(e.where),
                e.message, e.hint, resync(e.where, st.end, start, st.base));
  }
}

// Lines of a text: [begin, end) offsets without the '\n', indentation, blank (white space or
// a comment only), and whether a brace outside strings and comments is on it.
struct LineInfo {
  std::uint32_t begin, end;
  int indent;
  bool blank, brace;
  bool continues;  // ends (before any comment) with an operator, ',' or '('
};

std::vector<LineInfo> line_infos(const ParseState& st) {
  std::vector<LineInfo> lines;
  for (std::size_t l = 0; l < st.line_starts.size(); ++l) {
    const std::uint32_t begin = st.line_starts[l];
    const auto end = static_cast<std::uint32_t>(
        l + 1 < st.line_starts.size() ? st.line_starts[l + 1] - 1 : static_cast<std::uint32_t>(st.end - st.base));
    LineInfo info{begin, end, 0, true, false, false};
    char last = 0;
    std::uint32_t i = begin;
    while (i < end && (st.base[i] == ' ' || st.base[i] == '\t')) ++i;
    info.indent = static_cast<int>(i - begin);
    bool in_string = false;
    for (; i < end; ++i) {
      const char c = st.base[i];
      if (in_string) {
        if (c == '\\' && i + 1 < end) {
          ++i;
        } else if (c == '"') {
          in_string = false;
        }
        continue;
      }
      if (c == '#') break;
      if (c == '"') in_string = true;
      if (c == '{' || c == '}') info.brace = true;
      if (c != ' ' && c != '\t' && c != '\r') {
        info.blank = false;
        last = c;
      }
    }
    info.continues = last != 0 && std::strchr("+-*/<>,(", last) != nullptr;
    lines.push_back(info);
  }
  return lines;
}

std::size_t line_of(const ParseState& st, Iter p) {
  auto it = std::upper_bound(st.line_starts.begin(), st.line_starts.end(), static_cast<std::uint32_t>(p - st.base));
  return static_cast<std::size_t>(it - st.line_starts.begin()) - 1;
}

// Statement-level recovery. A declaration that failed is dropped, but the statements after
// its bad one may hold more mistakes, and one run should show them all. So the bad
// statement's lines (the error's line, with the lines before and after it indented deeper
// than the block's statements: a statement that runs over several lines) are blanked in a
// copy of the text and the declaration is parsed again, as long as each new error lies
// after the lines blanked so far and inside the declaration. Positions do not move (every
// character but '\n' becomes a space). Nothing is tried on a block left open, on a line
// with a brace (nested blocks), or on the declaration's first line. The copy, its line
// index and the line table are made once per file, and blanked lines are restored after
// each declaration, so a file of many bad declarations costs no more than one parse each
// (plus at most kMaxMore re-parses of the declaration itself).
class Recovery {
 public:
  Recovery(const SourceManager& sources, const ParseState& st) : sources_(sources), st_(st) {}

  void report_later_statements(Iter start, const Outcome& first, Diagnostics& diags) {
    constexpr int kMaxMore = 50;
    if (first.unclosed || first.error == nullptr) return;
    prepare();
    const std::size_t header = line_of(st_, start);
    const std::size_t limit = first.next >= st_.end ? lines_.size() : line_of(st_, first.next);
    std::size_t body = header + 1;
    while (body < limit && lines_[body].blank) ++body;
    if (body >= limit) return;
    const int statement_indent = lines_[body].indent;
    if (statement_indent <= lines_[header].indent) return;

    std::size_t error_line = line_of(st_, first.error);
    std::size_t blanked_to = header;
    for (int more = 0; more < kMaxMore; ++more) {
      if (error_line <= header || error_line >= limit || lines_[error_line].blank ||
          lines_[error_line].indent < statement_indent)
        break;
      std::size_t from = error_line, to = error_line;
      while (from > body && lines_[from].indent > statement_indent && !lines_[from].blank) --from;
      // A line ending in an operator, ',' or '(' carries its statement on to the next line.
      while (from > body && !lines_[from - 1].blank && lines_[from - 1].continues) {
        --from;
        while (from > body && lines_[from].indent > statement_indent && !lines_[from].blank) --from;
      }
      while (to + 1 < limit && !lines_[to + 1].blank && lines_[to + 1].indent > statement_indent) ++to;
      if (from <= blanked_to) from = blanked_to + 1;
      bool brace = false;
      for (std::size_t l = from; l <= to; ++l) brace = brace || lines_[l].brace;
      if (brace) break;
      for (std::size_t l = from; l <= to; ++l) blank_line(l);
      blanked_to = to;
      scratch_ = ast::File{};
      scratch_.file = st_.file;
      ms_.starts.clear();
      ast::Decl decl;
      const Outcome again = parse_or_explain(sources_, ms_, ms_.base + (start - st_.base), decl);
      if (again.parsed || again.unclosed || again.error == nullptr) break;
      const Iter at = st_.base + (again.error - ms_.base);
      if (at >= first.next) break;  // past the declaration: not one of its statements
      const std::size_t next_line = line_of(st_, at);
      if (next_line <= blanked_to) break;  // no progress
      diags.error(again.span, again.message, again.hint);
      error_line = next_line;
    }
    restore();
  }

 private:
  void prepare() {
    if (!masked_.empty() || st_.base == st_.end) return;
    lines_ = line_infos(st_);
    masked_.assign(st_.base, st_.end);
    ms_.base = masked_.data();
    ms_.end = masked_.data() + masked_.size();
    ms_.file = st_.file;
    ms_.out = &scratch_;
    ms_.diags = &ignored_;
    ms_.line_starts = st_.line_starts;
    ms_.comment_starts = st_.comment_starts;
  }
  void blank_line(std::size_t l) {
    for (std::uint32_t i = lines_[l].begin; i < lines_[l].end; ++i) masked_[i] = ' ';
    if (l < ms_.comment_starts.size()) ms_.comment_starts[l] = ~0u;
    blanked_.push_back(l);
  }
  void restore() {
    for (std::size_t l : blanked_) {
      std::copy(st_.base + lines_[l].begin, st_.base + lines_[l].end, masked_.begin() + lines_[l].begin);
      if (l < ms_.comment_starts.size()) ms_.comment_starts[l] = st_.comment_starts[l];
    }
    blanked_.clear();
  }

  const SourceManager& sources_;
  const ParseState& st_;
  std::vector<LineInfo> lines_;
  std::string masked_;
  ParseState ms_;
  ast::File scratch_;
  Diagnostics ignored_;
  std::vector<std::size_t> blanked_;
};

}  // namespace
}  // namespace syntax_detail

ast::File parse_declarations(const SourceManager& sources, FileId file, Diagnostics& diags) {
  using namespace syntax_detail;
  ast::File out;
  out.file = file;
  const std::string& text = sources.file(file).text();
  ParseState st;
  st.base = text.data();
  st.end = text.data() + text.size();
  st.file = file;
  st.out = &out;
  st.diags = &diags;
  st.index_lines();

  Recovery recovery(sources, st);
  Iter p = st.base;
  while (true) {
    p = skip_blank(p, st.end);
    if (p >= st.end) break;
    const Iter start = p;
    ast::Decl decl;
    const Outcome o = parse_or_explain(sources, st, start, decl);
    p = o.next;
    if (o.parsed) {
      out.decls.push_back(std::move(decl));
      continue;
    }
    diags.error(o.span, o.message, o.hint);
    recovery.report_later_statements(start, o, diags);
  }
  return out;
}

}  // namespace kiln
