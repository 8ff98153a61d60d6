// Small helpers shared by the checkers of features, train and promote blocks: folding a
// number literal (with its leading minus signs) and phrasing "did you mean" hints.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "compiler/syntax/ast.h"

namespace kiln::sema {

// A number literal, with leading unary minus signs folded.
struct Number {
  double value = 0;
  std::int64_t integer = 0;
  bool is_integer = false;
};

// The literal at `id` (possibly under '-' signs), or nullopt when it is not a number.
// A loop, not recursion: the parser allows arbitrarily long chains of '-'.
std::optional<Number> fold_number(const ast::File& file, ast::ExprId id);

// "did you mean 'x'?" for the closest candidate, else `otherwise`.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates,
                         const std::string& otherwise);

std::string join(const std::vector<std::string>& items);  // "a, b, c"
bool contains(const std::vector<std::string>& items, const std::string& item);

}  // namespace kiln::sema
