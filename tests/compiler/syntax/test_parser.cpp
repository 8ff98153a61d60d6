// Grammar tests: every construct parses to the expected AST with spans; syntax errors give
// file:line:col, what was expected and what was found, several per file; hostile input
// (binary garbage, deep nesting, huge files, invalid UTF-8) gives a diagnostic, never a
// crash or a hang.
#include <catch2/catch.hpp>
#include <chrono>
#include <random>
#include <string>

#include "compiler/syntax/parser.h"

namespace {

using namespace kiln;

struct Parsed {
  SourceManager sources;
  Diagnostics diags;
  ast::File file;
  std::string rendered;
};

std::unique_ptr<Parsed> parse(const std::string& text) {
  auto p = std::make_unique<Parsed>();
  FileId id = p->sources.add("t.kiln", text);
  p->file = parse_file(p->sources, id, p->diags);
  p->rendered = p->diags.render(p->sources);
  return p;
}

template <typename T>
const T& decl(const Parsed& p, std::size_t i) {
  REQUIRE(i < p.file.decls.size());
  const T* d = std::get_if<T>(&p.file.decls[i]);
  REQUIRE(d != nullptr);
  return *d;
}

std::string span_text(const Parsed& p, Span s) {
  return std::string(p.sources.text(s));
}

}  // namespace

TEST_CASE("imports: stdlib modules, dotted names, quoted paths, aliases", "[parser]") {
  auto p = parse("import nn\nimport a.b as c\nimport \"../lib/common.kiln\" as common\n");
  REQUIRE(p->rendered.empty());
  REQUIRE(p->file.decls.size() == 3);
  CHECK(decl<ast::Import>(*p, 0).target == "nn");
  CHECK_FALSE(decl<ast::Import>(*p, 0).is_path);
  CHECK(decl<ast::Import>(*p, 1).target == "a.b");
  CHECK(decl<ast::Import>(*p, 1).alias == "c");
  CHECK(decl<ast::Import>(*p, 2).is_path);
  CHECK(decl<ast::Import>(*p, 2).target == "../lib/common.kiln");
  CHECK(span_text(*p, decl<ast::Import>(*p, 2).span) == "import \"../lib/common.kiln\" as common");
}

TEST_CASE("layer: typed arguments, shape patterns, defaults, params, state, update, return", "[parser]") {
  auto p = parse(R"(layer dense(x: f32[..., n], units: int, bias: bool = true) -> f32[..., units] {
  param w: f32[n, units] = init.glorot_uniform()
  state s: f32[units] = init.zeros()
  update s = s * 0.9
  y = x @ w
  return y, s
})");
  REQUIRE(p->rendered.empty());
  const auto& l = decl<ast::LayerDecl>(*p, 0);
  CHECK(l.name == "dense");
  REQUIRE(l.args.size() == 3);
  CHECK(l.args[0].type.is_tensor);
  CHECK(l.args[0].type.dtype == "f32");
  REQUIRE(l.args[0].type.dims.size() == 2);
  CHECK(l.args[0].type.dims[0].kind == ast::DimPattern::Kind::kEllipsis);
  CHECK(l.args[0].type.dims[1].name == "n");
  CHECK(l.args[1].type.name == "int");
  CHECK(l.args[2].default_value != ast::kNoExpr);
  REQUIRE(l.result.has_value());
  CHECK(l.result->dims[1].name == "units");
  REQUIRE(l.body.size() == 5);
  CHECK(l.body[0].kind == ast::StmtKind::kParam);
  CHECK(l.body[1].kind == ast::StmtKind::kState);
  CHECK(l.body[2].kind == ast::StmtKind::kUpdate);
  CHECK(l.body[3].kind == ast::StmtKind::kBinding);
  CHECK(l.body[4].kind == ast::StmtKind::kReturn);
  CHECK(l.body[4].values.size() == 2);
  CHECK(span_text(*p, l.body[0].span) == "param w: f32[n, units] = init.glorot_uniform()");
  const ast::Expr& matmul = p->file.expr(l.body[3].values[0]);
  CHECK(matmul.kind == ast::ExprKind::kBinary);
  CHECK(matmul.text == "@");
}

TEST_CASE("expressions: precedence, unary minus, calls with named arguments, members, lists", "[parser]") {
  auto p = parse(
      "model m {\n  input x : f32[batch, 2]\n  y = -a + b * c @ d - f(x, k: [1, 2.5, \"s\"], t: true)\n"
      "  z = nn.dense(x, 3) <= 4\n  output o = (a + b) * c\n}\n");
  REQUIRE(p->rendered.empty());
  const auto& m = decl<ast::ModelDecl>(*p, 0);
  const ast::Expr& y = p->file.expr(m.body[1].values[0]);
  // ((-a) + ((b * c) @ d)) - f(...)
  REQUIRE(y.kind == ast::ExprKind::kBinary);
  CHECK(y.text == "-");
  const ast::Expr& left = p->file.expr(y.lhs);
  CHECK(left.text == "+");
  CHECK(p->file.expr(left.lhs).kind == ast::ExprKind::kUnary);
  const ast::Expr& matmul = p->file.expr(left.rhs);
  CHECK(matmul.text == "@");
  CHECK(p->file.expr(matmul.lhs).text == "*");
  const ast::Expr& call = p->file.expr(y.rhs);
  REQUIRE(call.kind == ast::ExprKind::kCall);
  REQUIRE(call.args.size() == 3);
  CHECK(call.args[1].name == "k");
  const ast::Expr& list = p->file.expr(call.args[1].value);
  REQUIRE(list.kind == ast::ExprKind::kList);
  CHECK(list.args.size() == 3);
  CHECK(p->file.expr(list.args[0].value).is_integer);
  CHECK_FALSE(p->file.expr(list.args[1].value).is_integer);
  CHECK(p->file.expr(list.args[2].value).text == "s");
  CHECK(p->file.expr(call.args[2].value).boolean);
  const ast::Expr& cmp = p->file.expr(m.body[2].values[0]);
  CHECK(cmp.text == "<=");
  const ast::Expr& callee = p->file.expr(p->file.expr(cmp.lhs).lhs);
  CHECK(callee.kind == ast::ExprKind::kMember);
  CHECK(span_text(*p, callee.span) == "nn.dense");
  const ast::Expr& out = p->file.expr(m.body[3].values[0]);
  CHECK(out.text == "*");
  CHECK(p->file.expr(out.lhs).text == "+");
}

TEST_CASE("features, train and promote blocks", "[parser]") {
  auto p = parse(R"(features credit from csv("data/credit.csv") {
  Income : number -> fill(median) -> log1p -> standardize
  Home : category -> one_hot(levels: 6)
  label Status : category[bad, good]
  label : number
}
train m {
  data = credit
  optimizer = adam(lr: 1e-3)
  epochs = 3;
}
promote m {
  gate auc >= production.auc - 0.01
  canary = 0.05
})");
  REQUIRE(p->rendered.empty());
  const auto& f = decl<ast::FeaturesDecl>(*p, 0);
  REQUIRE(f.columns.size() == 4);
  CHECK(f.columns[0].transforms.size() == 3);
  CHECK(f.columns[0].transforms[0].name == "fill");
  CHECK_FALSE(f.columns[0].transforms[1].has_parens);
  CHECK(f.columns[2].is_label);
  CHECK(f.columns[2].levels.size() == 2);
  CHECK_FALSE(f.columns[3].is_label);  // a column named `label`
  CHECK(f.columns[3].name == "label");
  const auto& t = decl<ast::TrainDecl>(*p, 1);
  CHECK(t.fields.size() == 3);
  const auto& pr = decl<ast::PromoteDecl>(*p, 2);
  REQUIRE(pr.fields.size() == 2);
  CHECK(pr.fields[0].is_gate);
  CHECK(pr.fields[1].name == "canary");
}

TEST_CASE("newlines are white space inside brackets; ';' may end statements", "[parser]") {
  auto p = parse("model m {\n  input x : f32[batch,\n    4]\n  y = f(x,\n        k: 1); z = y\n  output o = z\n}\n");
  REQUIRE(p->rendered.empty());
  CHECK(decl<ast::ModelDecl>(*p, 0).body.size() == 4);
}

TEST_CASE("syntax errors: location, expected, found, hint; several per file", "[parser][errors]") {
  auto p = parse(
      "model m {\n  input x : f32[batch, 4]\n  h = relu(x\n  output y = h\n}\n"
      "model n {\n  h1 relu(x)\n}\n"
      "train m { loss = 1 +\n}\n");
  CHECK(p->diags.error_count() == 3);
  CHECK_THAT(p->rendered, Catch::Contains("t.kiln:3:13: error: expected ')', found end of line"));
  CHECK_THAT(p->rendered, Catch::Contains("hint: is a ',' missing between arguments"));
  CHECK_THAT(p->rendered, Catch::Contains("t.kiln:7:6: error: expected '=', found 'relu'"));
  CHECK_THAT(p->rendered, Catch::Contains("t.kiln:9:21: error: expected an expression, found end of line"));
  CHECK_THAT(p->rendered, Catch::Contains(" 7 |   h1 relu(x)\n   |      ^"));
}

TEST_CASE("comparisons do not chain", "[parser][errors]") {
  auto p = parse("promote m {\n  gate 1 < auc < 2\n}\n");
  CHECK_THAT(p->rendered, Catch::Contains("t.kiln:2:16: error: comparisons do not chain"));
}

TEST_CASE("unterminated string and stray characters", "[parser][errors]") {
  auto p = parse("import \"nn\nmodel m { $ }\n");
  CHECK(p->diags.error_count() == 2);
  CHECK_THAT(p->rendered, Catch::Contains("error: expected '\"' closing the string"));
  CHECK_THAT(p->rendered, Catch::Contains("t.kiln:1:11: error: expected '\"' closing the string, found end of line"));
  CHECK_THAT(p->rendered, Catch::Contains("t.kiln:2:11: error: unexpected character '$'"));
}

TEST_CASE("a garbage top level is reported and skipped to the next declaration", "[parser][errors]") {
  auto p = parse("this is not kiln\nmodel m {\n  input x : f32[batch, 1]\n  output y = x\n}\n");
  CHECK(p->diags.error_count() == 1);
  CHECK_THAT(p->rendered, Catch::Contains("t.kiln:1:1: error: expected a declaration, found 'this'"));
  CHECK(p->file.decls.size() == 1);
}

TEST_CASE("integer literal out of range", "[parser][errors]") {
  auto p = parse("model m {\n  y = 99999999999999999999\n}\n");
  CHECK_THAT(p->rendered, Catch::Contains("integer literal '99999999999999999999' is out of range"));
}

TEST_CASE("hostile input: binary garbage gives a diagnostic", "[parser][hostile]") {
  std::mt19937 rng(42);
  for (int round = 0; round < 50; ++round) {
    std::string text(4096, '\0');
    for (char& c : text) c = static_cast<char>(rng() & 0xff);
    auto p = parse(text);
    CHECK(p->diags.has_errors());
  }
  auto nul = parse(std::string("model m {\0}", 11));
  CHECK_THAT(nul->rendered, Catch::Contains("t.kiln:1:10: error: unexpected NUL byte"));
}

TEST_CASE("hostile input: invalid UTF-8 is named with its byte", "[parser][hostile]") {
  CHECK_THAT(parse("model m {\n  x = 1 # caf\xe9\n}\n")->rendered,
             Catch::Contains("t.kiln:2:14: error: invalid UTF-8 byte 0xE9"));
  CHECK_THAT(parse("# overlong \xc0\xaf\n")->rendered, Catch::Contains("invalid UTF-8 byte 0xC0"));
  CHECK_THAT(parse("# surrogate \xed\xa0\x80\n")->rendered, Catch::Contains("invalid UTF-8 byte 0xED"));
  CHECK(parse("# valid: caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\xa5\nimport nn\n")->rendered.empty());
}

TEST_CASE("hostile input: 100k-deep nesting is refused, not recursed into", "[parser][hostile]") {
  for (const char* open : {"(", "[", "f("}) {
    std::string text = "model m {\n  y = ";
    for (int i = 0; i < 100000; ++i) text += open;
    text += "1\n}\n";
    auto p = parse(text);
    CHECK_THAT(p->rendered, Catch::Contains("brackets are nested more than 200 deep"));
  }
  // 100k unary minus signs are a loop in the grammar, not recursion.
  std::string minus = "model m {\n  y = " + std::string(100000, '-') + "1\n}\n";
  auto p = parse(minus);
  CHECK_FALSE(p->diags.has_errors());
}

TEST_CASE("hostile input: a 50 MB file parses in linear time", "[parser][hostile]") {
  std::string line = "  h = relu(nn.dense(h, 32)) * 0.5 + h  # a comment\n";
  std::string text = "model m {\n  input h : f32[batch, 32]\n";
  while (text.size() < 50u * 1000 * 1000) text += line;
  text += "}\n";
  auto start = std::chrono::steady_clock::now();
  auto p = parse(text);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK_FALSE(p->diags.has_errors());
  CHECK(seconds < 30);
  // Garbage with an error on every line (5 MB, 400k errors) stops keeping diagnostics
  // after a bound, and still finishes.
  std::string bad;
  while (bad.size() < 5u * 1000 * 1000) bad += "model 1 { }\n";
  auto q = parse(bad);
  CHECK(q->diags.error_count() > Diagnostics::kMaxKept);
  CHECK(q->diags.all().size() == Diagnostics::kMaxKept);
  CHECK_THAT(q->rendered, Catch::Contains("more diagnostic(s) not shown"));
}

TEST_CASE("hostile input: over the size limit is refused at once", "[parser][hostile]") {
  std::string text(kMaxSourceBytes + 1, ' ');
  CHECK_THAT(parse(text)->rendered, Catch::Contains("file is too large to be a model"));
}
