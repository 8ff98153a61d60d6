// Small helpers over the AST.
#include "compiler/syntax/ast.h"

namespace kiln::ast {

Span decl_span(const Decl& decl) {
  return std::visit([](const auto& d) { return d.span; }, decl);
}

}  // namespace kiln::ast
