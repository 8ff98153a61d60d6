// `kiln fmt`: the canonical layout of a `.kiln` file, printed from the AST with every
// comment kept. Formatting is idempotent (fmt(fmt(x)) == fmt(x)) and never changes
// meaning: the formatted text parses to the same AST.
#pragma once

#include <string>

#include "compiler/syntax/ast.h"
#include "compiler/syntax/source.h"

namespace kiln {

// Formats a file that parsed without errors. `file.comments` must be filled
// (parse_file does it).
std::string format_file(const ast::File& file, const SourceManager& sources);

}  // namespace kiln
