// The `.kiln` parser: source text -> ast::File. Grammar rules are Boost.Spirit X3
// (grammar.cpp); this interface also runs the checks that keep hostile input harmless
// (size, UTF-8, NUL bytes, nesting depth) before the grammar sees the text.
#pragma once

#include <cstddef>

#include "compiler/syntax/ast.h"
#include "compiler/syntax/diagnostics.h"
#include "compiler/syntax/source.h"

namespace kiln {

inline constexpr std::size_t kMaxSourceBytes = 64u << 20;  // 64 MiB
inline constexpr int kMaxNesting = 200;                    // brackets deep

// Parses one file. Syntax errors are reported to `diags` (several per file: after an
// error the parser skips to the next top-level declaration); the returned File holds
// every declaration that parsed.
ast::File parse_file(const SourceManager& sources, FileId file, Diagnostics& diags);

// The lexical checks alone; false when the text must not be parsed.
bool check_source_text(const SourceManager& sources, FileId file, Diagnostics& diags);

// Every `#` comment of the file, in order (for the formatter).
std::vector<ast::Comment> scan_comments(const SourceManager& sources, FileId file);

}  // namespace kiln
