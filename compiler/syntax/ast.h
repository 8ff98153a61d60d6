// The abstract syntax tree of a `.kiln` file. Nodes are small structs; every node carries
// the Span of the text it came from. Expressions live in one arena per file (File::exprs)
// and refer to each other by ExprId, which keeps the parser's attributes trivially
// copyable and the tree cheap to walk.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "compiler/syntax/source.h"

namespace kiln::ast {

using ExprId = std::uint32_t;
inline constexpr ExprId kNoExpr = ~ExprId{0};

enum class ExprKind : std::uint8_t {
  kNumber,  // 12, 0.5, 1e-3
  kString,  // "text"
  kBool,    // true, false
  kList,    // [a, b]           items in args (names empty)
  kName,    // x                text = name
  kMember,  // a.b              lhs = a, text = "b"
  kCall,    // f(a, k: b)       lhs = callee, args
  kUnary,   // -a               text = "-", lhs = operand
  kBinary,  // a + b            text = operator, lhs, rhs
};

struct CallArg {
  std::string name;  // empty for a positional argument
  Span name_span;
  ExprId value = kNoExpr;
};

struct Expr {
  ExprKind kind = ExprKind::kName;
  Span span;
  std::string text;
  double number = 0;
  std::int64_t integer = 0;
  bool is_integer = false;  // kNumber: written without '.' or exponent
  bool boolean = false;
  ExprId lhs = kNoExpr;
  ExprId rhs = kNoExpr;
  std::vector<CallArg> args;
};

// One dimension of a tensor type or shape pattern: 784, n, batch, ...
struct DimPattern {
  enum class Kind : std::uint8_t { kInt, kSymbol, kEllipsis };
  Kind kind = Kind::kInt;
  std::int64_t value = 0;
  std::string name;
  Span span;
};

// `f32[batch, n]` (is_tensor), or a named type: `int`, `float`, `credit`, `ratings.s`.
struct TypeExpr {
  Span span;
  bool is_tensor = false;
  std::string dtype;
  std::vector<DimPattern> dims;
  std::string name;
  std::string member;  // "s" in ratings.s
};

enum class StmtKind : std::uint8_t { kInput, kOutput, kParam, kState, kUpdate, kReturn, kBinding };

// One statement of a layer or model body. Which fields are used depends on kind:
// input: names[0], type; output/update: names[0], values[0]; param/state: names[0], type,
// values[0] (initialiser); return: values; binding: names (one or more), values[0].
struct Stmt {
  StmtKind kind = StmtKind::kBinding;
  Span span;
  std::vector<std::string> names;
  std::vector<Span> name_spans;
  TypeExpr type;
  std::vector<ExprId> values;
};

struct Import {
  Span span;
  bool is_path = false;  // import "file.kiln"
  std::string target;    // "nn", "a.b" or the path
  Span target_span;
  std::string alias;  // `as NAME`, empty when absent
  Span alias_span;
};

struct LayerArg {
  std::string name;
  Span name_span;
  TypeExpr type;
  ExprId default_value = kNoExpr;
};

struct LayerDecl {
  Span span;
  std::string name;
  Span name_span;
  std::vector<LayerArg> args;
  std::optional<TypeExpr> result;
  std::vector<Stmt> body;
  Span body_end;  // the closing brace
};

struct ModelDecl {
  Span span;
  std::string name;
  Span name_span;
  std::vector<Stmt> body;
  Span body_end;
};

struct Level {
  enum class Kind : std::uint8_t { kName, kInt, kString };
  Kind kind = Kind::kName;
  std::string text;
  Span span;
};

struct Transform {
  Span span;
  std::string name;
  bool has_parens = false;
  std::vector<CallArg> args;
};

struct Column {
  Span span;
  bool is_label = false;
  std::string name;
  Span name_span;
  std::string type_name;  // number, category, pixels
  Span type_span;
  bool has_levels = false;
  std::vector<Level> levels;
  std::vector<Transform> transforms;
};

struct FeaturesDecl {
  Span span;
  std::string name;
  Span name_span;
  ExprId source = kNoExpr;  // csv("..."), idx(images: ..., labels: ...)
  std::vector<Column> columns;
  Span body_end;
};

// `name = value` in train and promote blocks; a promote gate has is_gate and no name.
struct Field {
  Span span;
  bool is_gate = false;
  std::string name;
  Span name_span;
  ExprId value = kNoExpr;
};

struct TrainDecl {
  Span span;
  std::string model;
  Span model_span;
  std::vector<Field> fields;
  Span body_end;
};

struct PromoteDecl {
  Span span;
  std::string model;
  Span model_span;
  std::vector<Field> fields;
  Span body_end;
};

using Decl = std::variant<Import, LayerDecl, ModelDecl, FeaturesDecl, TrainDecl, PromoteDecl>;

struct Comment {
  Span span;  // from '#' to the end of the line
};

struct File {
  FileId file = kNoFile;
  std::vector<Decl> decls;
  std::vector<Expr> exprs;
  std::vector<Comment> comments;

  const Expr& expr(ExprId id) const { return exprs.at(id); }
};

Span decl_span(const Decl& decl);

// A type as written: "f32[..., n]", "int", "ratings.s".
std::string type_text(const TypeExpr& type);

}  // namespace kiln::ast
