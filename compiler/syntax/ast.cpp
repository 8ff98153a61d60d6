// Small helpers over the AST.
#include "compiler/syntax/ast.h"

namespace kiln::ast {

Span decl_span(const Decl& decl) {
  return std::visit([](const auto& d) { return d.span; }, decl);
}

std::string type_text(const TypeExpr& type) {
  if (!type.is_tensor) return type.member.empty() ? type.name : type.name + "." + type.member;
  std::string out = type.dtype + "[";
  for (std::size_t i = 0; i < type.dims.size(); ++i) {
    if (i > 0) out += ", ";
    const DimPattern& d = type.dims[i];
    switch (d.kind) {
      case DimPattern::Kind::kInt: out += std::to_string(d.value); break;
      case DimPattern::Kind::kSymbol: out += d.name; break;
      case DimPattern::Kind::kEllipsis: out += "..."; break;
    }
  }
  return out + "]";
}

}  // namespace kiln::ast
