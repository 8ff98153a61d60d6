// parse_file: the checks that keep hostile input harmless (size, UTF-8, NUL bytes,
// nesting depth), then the X3 grammar (grammar.cpp).
#include "compiler/syntax/parser.h"

#include <cstdint>
#include <string>

namespace kiln {

ast::File parse_declarations(const SourceManager& sources, FileId file, Diagnostics& diags);

namespace {

// Length of the UTF-8 sequence starting at s[i], or 0 when it is invalid
// (overlong forms, surrogates and code points past U+10FFFF are invalid).
std::size_t utf8_sequence_length(const std::string& s, std::size_t i) {
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  if (c < 0x80) return 1;
  std::size_t n = 0;
  std::uint32_t cp = 0;
  if ((c & 0xE0) == 0xC0) {
    n = 2;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4;
    cp = c & 0x07;
  } else
    return 0;
  if (i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000)) return 0;
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

Span one_byte(FileId file, std::size_t offset) {
  return Span{file, static_cast<std::uint32_t>(offset), static_cast<std::uint32_t>(offset + 1)};
}

}  // namespace

bool check_source_text(const SourceManager& sources, FileId file, Diagnostics& diags) {
  const std::string& text = sources.file(file).text();
  if (text.size() > kMaxSourceBytes) {
    diags.error(Span{file, 0, 0},
                "file is too large to be a model (" + std::to_string(text.size() >> 20) + " MiB; the limit is " +
                    std::to_string(kMaxSourceBytes >> 20) + " MiB)",
                "is this the right file? data belongs in a features block's source, not in the model");
    return false;
  }
  int depth = 0;
  bool in_comment = false;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size();) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == 0) {
      diags.error(one_byte(file, i), "unexpected NUL byte", "this looks like a binary file, not a .kiln model");
      return false;
    }
    if (c >= 0x80) {
      std::size_t n = utf8_sequence_length(text, i);
      if (n == 0) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02X", c);
        diags.error(one_byte(file, i), std::string("invalid UTF-8 byte ") + hex, "save the file as UTF-8");
        return false;
      }
      i += n;
      continue;
    }
    if (c == '\n') {
      in_comment = false;
      in_string = false;  // the grammar reports the unterminated string
    } else if (!in_comment && !in_string) {
      if (c == '#')
        in_comment = true;
      else if (c == '"')
        in_string = true;
      else if (c == '(' || c == '[' || c == '{') {
        if (++depth > kMaxNesting) {
          diags.error(one_byte(file, i), "brackets are nested more than " + std::to_string(kMaxNesting) + " deep",
                      "split the expression into named bindings");
          return false;
        }
      } else if (c == ')' || c == ']' || c == '}') {
        if (depth > 0) --depth;
      }
    } else if (in_string && c == '\\' && i + 1 < text.size() && text[i + 1] != '\n') {
      ++i;
    } else if (in_string && c == '"') {
      in_string = false;
    }
    ++i;
  }
  return true;
}

std::vector<ast::Comment> scan_comments(const SourceManager& sources, FileId file) {
  const std::string& text = sources.file(file).text();
  std::vector<ast::Comment> out;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\' && i + 1 < text.size() && text[i + 1] != '\n')
        ++i;
      else if (c == '"' || c == '\n')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '#') {
      std::size_t end = text.find('\n', i);
      if (end == std::string::npos) end = text.size();
      std::size_t trimmed = end;
      while (trimmed > i && (text[trimmed - 1] == '\r' || text[trimmed - 1] == ' ' || text[trimmed - 1] == '\t')) {
        --trimmed;
      }
      out.push_back({Span{file, static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(trimmed)}});
      i = end;
    }
  }
  return out;
}

ast::File parse_file(const SourceManager& sources, FileId file, Diagnostics& diags) {
  if (!check_source_text(sources, file, diags)) {
    ast::File empty;
    empty.file = file;
    return empty;
  }
  ast::File out = parse_declarations(sources, file, diags);
  out.comments = scan_comments(sources, file);
  return out;
}

}  // namespace kiln
