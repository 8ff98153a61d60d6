// Helpers shared by the block checkers (see literals.h).
#include "compiler/sema/literals.h"

#include <algorithm>

#include "compiler/syntax/diagnostics.h"

namespace kiln::sema {

std::optional<Number> fold_number(const ast::File& file, ast::ExprId id) {
  bool negate = false;
  while (file.expr(id).kind == ast::ExprKind::kUnary && file.expr(id).text == "-") {
    negate = !negate;
    id = file.expr(id).lhs;
  }
  const ast::Expr& e = file.expr(id);
  if (e.kind != ast::ExprKind::kNumber) return std::nullopt;
  Number n{e.number, e.integer, e.is_integer};
  if (negate) {
    n.value = -n.value;
    n.integer = -n.integer;  // a literal is never negative, so this cannot overflow
  }
  return n;
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates,
                         const std::string& otherwise) {
  std::string best = closest_match(word, candidates);
  return best.empty() ? otherwise : "did you mean '" + best + "'?";
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) out += (i > 0 ? ", " : "") + items[i];
  return out;
}

bool contains(const std::vector<std::string>& items, const std::string& item) {
  return std::find(items.begin(), items.end(), item) != items.end();
}

}  // namespace kiln::sema
