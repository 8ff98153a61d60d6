// `kiln dump --ast`: an indented, stable text form of the AST with each node's location,
// for debugging the front end and for golden tests.
#pragma once

#include <string>

#include "compiler/syntax/ast.h"
#include "compiler/syntax/source.h"

namespace kiln {

std::string print_ast(const ast::File& file, const SourceManager& sources);

}  // namespace kiln
