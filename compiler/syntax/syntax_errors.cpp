// Syntax errors for people, and recovery: each top-level declaration is parsed on its
// own (grammar.cpp); when one fails, its error becomes a diagnostic phrased from what was
// expected and what was found (a keyword used as a name, a look-alike character, a block
// left open, a token missing at a line's end), and parsing resumes at the next line that
// starts a declaration, so one run reports the syntax errors of every declaration.
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
  auto span_at = [&](Iter p) {
    auto off = static_cast<std::uint32_t>(p - st.base);
    Iter q = p;
    if (q < st.end && *q != '\n') ++q;
    return Span{file, off, static_cast<std::uint32_t>(q - st.base)};
  };

  Iter p = st.base;
  while (true) {
    p = skip_blank(p, st.end);
    if (p >= st.end) break;
    Iter start = p;
    try {
      ast::Decl decl;
      if (parse_one_declaration(st, p, decl)) {
        out.decls.push_back(std::move(decl));
        continue;
      }
      diags.error(span_at(start), "expected a declaration, found " + describe_at(start, st.end),
                  "a file holds import, layer, model, features, train and promote declarations");
      p = resync(start, st.end, start, st.base);
    } catch (const ExpectationError& e) {
      Iter next = skip_blank(e.where, st.end);
      const std::string& what = e.which;
      if (is_foreign_character(next, st.end)) {
        diags.error(span_at(next), "unexpected character " + describe_at(next, st.end), lookalike_hint(next, st.end));
        p = resync(next, st.end, start, st.base);
        continue;
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
          diags.error(
              Span{file, static_cast<std::uint32_t>(w - st.base), static_cast<std::uint32_t>(word_end - st.base)},
              "'" + word + "' is a keyword and cannot be used as a name", "choose another name, e.g. '" + word + "_'");
          p = resync(next, st.end, start, st.base);
          continue;
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
        diags.error(span_at(at),
                    "expected '}' to close the block of the declaration at line " + std::to_string(opened.line) +
                        ", found " + (next >= st.end ? std::string("end of file") : describe_at(next, st.end)),
                    "every '{' needs a matching '}'");
        p = resync(next, st.end, start, st.base);
        continue;
      }
      diags.error(span_at(at), "expected " + what + ", found " + found, hint_for_expected(what, found));
      p = resync(next, st.end, start, st.base);
    } catch (const SyntaxError& e) {
      diags.error(e.end > e.where ? Span{file, static_cast<std::uint32_t>(e.where - st.base),
                                         static_cast<std::uint32_t>(e.end - st.base)}
                                  : span_at(e.where),
                  e.message, e.hint);
      p = resync(e.where, st.end, start, st.base);
    }
  }
  return out;
}

}  // namespace kiln
