// Internal interfaces between the parts of sema (module loading, name checks, lowering).
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "compiler/sema/sema.h"
#include "compiler/sema/value.h"

namespace kiln::sema::detail {

// Loads the root file (from disk, or `root_text` when given) and, recursively, its imports.
// Reports unreadable files, unknown modules, import cycles and duplicate declarations.
void load_modules(Compilation& c, const std::filesystem::path& root_path, const std::optional<std::string>& root_text,
                  const std::vector<std::filesystem::path>& stdlib_dirs);

// Checks that every name a layer body uses is defined. Layers with errors are added to
// `broken`; lowering skips them instead of reporting the same problem at every call.
void check_layer_names(Compilation& c, const Module& module, std::set<const ast::LayerDecl*>& broken);

// The names `import NAME` can find in the stdlib dirs (for hints).
std::vector<std::string> stdlib_module_names(const std::vector<std::filesystem::path>& dirs);

// Shape patterns: `f32[..., n]` against an actual tensor type.
struct PatternBindings {
  std::map<std::string, ir::Dim> symbols;
  std::optional<std::vector<ir::Dim>> ellipsis;
};

// Matches `pattern` (a tensor TypeExpr) against `actual`. Symbols already bound (in
// `bindings` or as constants in `known`) must agree; new ones are bound. On mismatch
// returns false and sets `why` ("dimension 2 is 3, expected n = 4").
bool match_tensor_pattern(const ast::TypeExpr& pattern, const ir::TensorType& actual,
                          const std::map<std::string, Value>& known, PatternBindings& bindings, std::string& why);

// The words that are types of attribute arguments: int, float, bool, string, shape.
bool is_attribute_type(const std::string& name);

// 64-bit FNV-1a, for stable random-stream ids derived from parameter paths.
std::int64_t stable_hash(const std::string& text);

}  // namespace kiln::sema::detail
