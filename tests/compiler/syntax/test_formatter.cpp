// Tests of `kiln fmt` (format_file): every `.kiln` file in models/ and stdlib/ survives a
// round trip (the formatted text parses to the same AST, formatting it again changes
// nothing, no comment is lost), and targeted cases pin the layout: parentheses from
// precedence, comment placement, blank lines, string escapes and long-call wrapping.
#if __has_include(<catch2/catch_test_macros.hpp>)
#include <catch2/catch_test_macros.hpp>
#else
#include <catch2/catch.hpp>
#endif

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "compiler/syntax/ast_printer.h"
#include "compiler/syntax/formatter.h"
#include "compiler/syntax/parser.h"

#ifndef KILN_SOURCE_DIR
#define KILN_SOURCE_DIR "/work/main"
#endif

namespace {

struct Parsed {
  kiln::SourceManager sources;
  kiln::ast::File file;
  std::string errors;
};

void parse_into(Parsed& p, const std::string& path, const std::string& text) {
  kiln::FileId id = p.sources.add(path, text);
  kiln::Diagnostics diags;
  p.file = kiln::parse_file(p.sources, id, diags);
  if (diags.has_errors()) p.errors = diags.render(p.sources);
}

// print_ast with every ` @line:col` removed: the structure, without the layout.
std::string structure(const Parsed& p) {
  static const std::regex location(" @[0-9]+:[0-9]+");
  return std::regex_replace(kiln::print_ast(p.file, p.sources), location, "");
}

// Formats `text` and checks the round-trip properties; returns the formatted text.
std::string check_round_trip(const std::string& text, const std::string& path = "test.kiln") {
  Parsed original;
  parse_into(original, path, text);
  INFO(path);
  REQUIRE(original.errors.empty());
  std::string formatted = kiln::format_file(original.file, original.sources);
  INFO("formatted:\n" << formatted);

  Parsed again;
  parse_into(again, path, formatted);
  REQUIRE(again.errors.empty());
  CHECK(structure(again) == structure(original));
  CHECK(again.file.comments.size() == original.file.comments.size());
  CHECK(kiln::format_file(again.file, again.sources) == formatted);

  // Layout rules that hold for every output.
  if (!formatted.empty()) {
    CHECK(formatted.back() == '\n');
    CHECK(formatted.find("\n\n\n") == std::string::npos);
    CHECK(formatted.substr(formatted.size() - std::min<std::size_t>(2, formatted.size())) != "\n\n");
    CHECK(formatted.find(" \n") == std::string::npos);
    CHECK(formatted.front() != '\n');
  }
  return formatted;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

TEST_CASE("every model and stdlib file survives formatting", "[formatter]") {
  std::vector<std::filesystem::path> files;
  for (const char* dir : {"models", "stdlib"}) {
    std::filesystem::path root = std::filesystem::path(KILN_SOURCE_DIR) / dir;
    REQUIRE(std::filesystem::is_directory(root));
    for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
      if (entry.is_regular_file() && entry.path().extension() == ".kiln") files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() >= 9);
  for (const auto& path : files) {
    std::string text = read_file(path);
    std::string formatted = check_round_trip(text, path.string());
    // The checked-in examples are kept in canonical layout.
    CHECK(formatted == text);
  }
}

// `text` with a comment `# cN` (N counting up) inserted at every `stride`-th white-space
// position outside strings and comments: newlines are white space everywhere in the
// grammar, so the file still parses, and every comment must come out, in order.
std::string sprinkle_comments(const std::string& text, std::size_t stride) {
  std::string out;
  std::size_t position = 0;
  int count = 0;
  bool in_string = false;
  bool in_comment = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_comment) {
      in_comment = c != '\n';
    } else if (in_string) {
      if (c == '\\') {
        out.push_back(c);
        c = text[++i];
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '#') {
      in_comment = true;
    } else if (c == '"') {
      in_string = true;
    } else if ((c == ' ' || c == '\n') && position++ % stride == 0) {
      out += " # c" + std::to_string(count++) + "\n";
    }
    out.push_back(c);
  }
  return out;
}

TEST_CASE("a comment runs to the newline, past a lone carriage return", "[formatter]") {
  // Found by the fuzzer: the grammar ended this comment at the '\r', so the text after it
  // was a declaration, which the formatter printed again after the comment it took whole.
  const std::string text =
      "# casts first.\rlayer twice(x: f32[n]) -> f32[n] {\n"
      "layer once(x: f32[n]) -> f32[n] {\n  return x\n}\n"
      "layer crlf(x: f32[n]) -> f32[n] {  # CRLF line\r\n  return x\r\n}\r\n";
  Parsed parsed;
  parse_into(parsed, "cr.kiln", text);
  REQUIRE(parsed.errors.empty());
  CHECK(parsed.file.comments.size() == 2);
  CHECK(parsed.file.decls.size() == 2);  // `twice` is comment text
  const std::string formatted = check_round_trip(text, "cr.kiln");
  CHECK(formatted.find("# casts first.\rlayer twice") == 0);
  CHECK(formatted.find("# CRLF line\r") == std::string::npos);  // the CRLF's '\r' is not kept
}

TEST_CASE("comments anywhere in the examples survive formatting", "[formatter]") {
  for (const char* dir : {"models", "stdlib"}) {
    std::filesystem::path root = std::filesystem::path(KILN_SOURCE_DIR) / dir;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
      if (!entry.is_regular_file() || entry.path().extension() != ".kiln") continue;
      std::string text = read_file(entry.path());
      for (std::size_t stride : {1, 2, 3, 7, 13}) {
        check_round_trip(sprinkle_comments(text, stride), entry.path().string() + " stride " + std::to_string(stride));
      }
    }
  }
}

TEST_CASE("parentheses appear exactly where precedence needs them", "[formatter]") {
  std::string source =
      "model m {\n"
      "  a1 = (a + b) * c\n"
      "  a2 = a - (b - c)\n"
      "  a3 = (a - b) - c\n"
      "  a4 = -(a + b)\n"
      "  a5 = - - x\n"
      "  a6 = (a * b) @ (c / d)\n"
      "  a7 = (a < b) + 1\n"
      "  a8 = (-x).y\n"
      "  a9 = (f)(x).z\n"
      "  b1 = ((a))\n"
      "  b2 = a * -b\n"
      "  b3 = (a + b)(c)\n"
      "  b4 = (1).x\n"
      "  b5 = a + b < (c - d)\n"
      "  b6 = -(x.y)\n"
      "}\n";
  std::string expected =
      "model m {\n"
      "  a1 = (a + b) * c\n"
      "  a2 = a - (b - c)\n"
      "  a3 = a - b - c\n"
      "  a4 = -(a + b)\n"
      "  a5 = - -x\n"
      "  a6 = a * b @ (c / d)\n"
      "  a7 = (a < b) + 1\n"
      "  a8 = (-x).y\n"
      "  a9 = f(x).z\n"
      "  b1 = a\n"
      "  b2 = a * -b\n"
      "  b3 = (a + b)(c)\n"
      "  b4 = (1).x\n"
      "  b5 = a + b < c - d\n"
      "  b6 = -x.y\n"
      "}\n";
  CHECK(check_round_trip(source) == expected);
}

TEST_CASE("randomly nested expressions keep their meaning", "[formatter]") {
  // Fully parenthesised random trees: the formatter must drop only the redundant
  // parentheses, which the AST comparison in check_round_trip verifies.
  std::mt19937 rng(1234);
  const char* ops[] = {"+", "-", "*", "/", "@", "<", ">=", "=="};
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  std::function<std::string(int, bool)> gen = [&](int depth, bool allow_compare) -> std::string {
    int choice = depth == 0 ? pick(3) : pick(8);
    switch (choice) {
      case 0: return "x";
      case 1: return "2.5e-3";
      case 2: return "f(y, k: 1)";
      case 3: return "(-" + gen(depth - 1, allow_compare) + ")";
      case 4: return "(" + gen(depth - 1, allow_compare) + ").m";
      case 5: return "g(" + gen(depth - 1, true) + ")";
      default: {
        const char* op = ops[pick(allow_compare ? 8 : 5)];
        bool compare = op[0] == '<' || op[0] == '>' || op[0] == '=';
        return "(" + gen(depth - 1, !compare && allow_compare) + " " + op + " " +
               gen(depth - 1, !compare && allow_compare) + ")";
      }
    }
  };
  std::string source = "model m {\n";
  for (int i = 0; i < 200; ++i) source += "  v" + std::to_string(i) + " = " + gen(5, true) + "\n";
  source += "}\n";
  check_round_trip(source);
}

TEST_CASE("long operator chains do not exhaust the stack", "[formatter]") {
  // The parser builds these with loops, so they can be as deep as the file is long. (No
  // print_ast comparison here: its indentation makes a dump quadratic in the depth.)
  const int n = 20000;
  std::string sum = "a";
  std::string minuses;
  std::string members = "x";
  for (int i = 0; i < n; ++i) {
    sum += " + a";
    minuses += "- ";
    members += ".m";
  }
  std::string source = "model m {\n  s = " + sum + "\n  u = " + minuses + "x\n  v = " + members + "\n}\n";
  std::string expected =
      "model m {\n  s = " + sum + "\n  u = " + minuses.substr(0, minuses.size() - 1) + "x\n  v = " + members + "\n}\n";
  Parsed original;
  parse_into(original, "deep.kiln", source);
  REQUIRE(original.errors.empty());
  std::string formatted = kiln::format_file(original.file, original.sources);
  CHECK(formatted == expected);
  Parsed again;
  parse_into(again, "deep.kiln", formatted);
  REQUIRE(again.errors.empty());
  CHECK(kiln::format_file(again.file, again.sources) == formatted);

  // A shorter chain goes through the full round trip.
  check_round_trip("model m {\n  u = " + minuses.substr(0, 400) + "x\n}\n");
}

TEST_CASE("comments are kept in place", "[formatter]") {
  std::string source =
      "# file header\n"
      "\n"
      "import nn   # the standard layers\n"
      "# losses next\n"
      "import losses\n"
      "# about the model\n"
      "model m {   # on the header line\n"
      "\n"
      "  # before x\n"
      "  input x : f32[batch, 4]\n"
      "  h = nn.dense(x, 2)    # trailing\n"
      "  # before the brace\n"
      "}  # after the brace\n"
      "train m {\n"
      "  data = d\n"
      "  # only a comment at the end\n"
      "}\n"
      "\n"
      "\n"
      "# end of file\n"
      "# really the end   \n";
  std::string expected =
      "# file header\n"
      "\n"
      "import nn  # the standard layers\n"
      "# losses next\n"
      "import losses\n"
      "\n"
      "# about the model\n"
      "model m {  # on the header line\n"
      "  # before x\n"
      "  input x : f32[batch, 4]\n"
      "  h = nn.dense(x, 2)  # trailing\n"
      "  # before the brace\n"
      "}  # after the brace\n"
      "\n"
      "train m {\n"
      "  data = d\n"
      "  # only a comment at the end\n"
      "}\n"
      "\n"
      "# end of file\n"
      "# really the end\n";
  CHECK(check_round_trip(source) == expected);
}

TEST_CASE("comments inside expressions are not lost", "[formatter]") {
  std::string source =
      "model m {\n"
      "  h = f(a,  # first\n"
      "        # about b\n"
      "        b)\n"
      "  k = a +  # inside a sum\n"
      "      b\n"
      "  j = g(h(a,  # nested\n"
      "          b), c)\n"
      "}\n";
  std::string expected =
      "model m {\n"
      "  h = f(\n"
      "    a,  # first\n"
      "    # about b\n"
      "    b\n"
      "  )\n"
      "  # inside a sum\n"
      "  k = a + b\n"
      "  j = g(\n"
      "    # nested\n"
      "    h(a, b),\n"
      "    c\n"
      "  )\n"
      "}\n";
  CHECK(check_round_trip(source) == expected);
}

TEST_CASE("blank lines collapse to at most one, none at block edges", "[formatter]") {
  std::string source =
      "import a\n\n\nimport b\n"
      "model m {\n\n\n"
      "  x = 1\n\n\n\n"
      "  y = 2\n"
      "  z = 3; w = 4\n\n"
      "}\n\n\n\n"
      "train m { data = d; batch = 2 }\n";
  std::string expected =
      "import a\n"
      "import b\n"
      "\n"
      "model m {\n"
      "  x = 1\n"
      "\n"
      "  y = 2\n"
      "  z = 3\n"
      "  w = 4\n"
      "}\n"
      "\n"
      "train m {\n"
      "  data = d\n"
      "  batch = 2\n"
      "}\n";
  CHECK(check_round_trip(source) == expected);
}

TEST_CASE("strings are re-escaped and numbers keep their spelling", "[formatter]") {
  std::string source =
      "import \"lib/my \\\"x\\\".kiln\" as x\n"
      "features f from csv(\"a\\\\b\\tc\\n\") {\n"
      "  label y : category[\"a.b\", \"q\\\"\", 3, plain]\n"
      "  v : number->fill(constant: 1E+4)->standardize()\n"
      "}\n"
      "train m {\n"
      "  optimizer = adam(lr: 1e-3, beta1: 0.90, eps: 1.)\n"
      "}\n";
  std::string expected =
      "import \"lib/my \\\"x\\\".kiln\" as x\n"
      "\n"
      "features f from csv(\"a\\\\b\\tc\\n\") {\n"
      "  label y : category[\"a.b\", \"q\\\"\", 3, plain]\n"
      "  v : number -> fill(constant: 1E+4) -> standardize()\n"
      "}\n"
      "\n"
      "train m {\n"
      "  optimizer = adam(lr: 1e-3, beta1: 0.90, eps: 1.)\n"
      "}\n";
  CHECK(check_round_trip(source) == expected);
}

TEST_CASE("declarations use the canonical spacing", "[formatter]") {
  std::string source =
      "layer l(x:f32[...,n],k:int=3)->f32[...,n]{param w:f32[n,n]=init.zeros() state s:f32[n]=init.ones()\n"
      "update s=s*0.5 return x@w}\n"
      "model m{input x:f32[batch,784] input u:ratings.s h1,h2=l(x,k:2) output o=h1}\n"
      "promote m{gate auc>=production.auc-0.005 shadow=10 rollback=auc<0.5}\n";
  std::string expected =
      "layer l(x: f32[..., n], k: int = 3) -> f32[..., n] {\n"
      "  param w: f32[n, n] = init.zeros()\n"
      "  state s: f32[n] = init.ones()\n"
      "  update s = s * 0.5\n"
      "  return x @ w\n"
      "}\n"
      "\n"
      "model m {\n"
      "  input x : f32[batch, 784]\n"
      "  input u : ratings.s\n"
      "  h1, h2 = l(x, k: 2)\n"
      "  output o = h1\n"
      "}\n"
      "\n"
      "promote m {\n"
      "  gate auc >= production.auc - 0.005\n"
      "  shadow = 10\n"
      "  rollback = auc < 0.5\n"
      "}\n";
  CHECK(check_round_trip(source) == expected);
}

TEST_CASE("long calls and signatures break one argument per line", "[formatter]") {
  std::string source =
      "features fashion from idx(images: \"/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz\", "
      "labels: \"/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz\") {  # source\n"
      "  label c : category[\"a long level name\", \"another long level name\", \"yet another level\", "
      "\"and one more\"] -> passthrough\n"
      "}\n"
      "layer conv(x: f32[batch, height, width, c], filters: int, kernel: int, stride: int = 1, padding: string = "
      "\"same\") {\n"
      "  y = some_function_with_a_long_name(x, another_argument_name, keyword_argument: 12345678, other: [1, 2, 3])\n"
      "  return y\n"
      "}\n";
  std::string expected =
      "features fashion from idx(\n"
      "  images: \"/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz\",\n"
      "  labels: \"/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz\"\n"
      ") {  # source\n"
      "  label c : category[\n"
      "    \"a long level name\",\n"
      "    \"another long level name\",\n"
      "    \"yet another level\",\n"
      "    \"and one more\"\n"
      "  ] -> passthrough\n"
      "}\n"
      "\n"
      "layer conv(\n"
      "  x: f32[batch, height, width, c],\n"
      "  filters: int,\n"
      "  kernel: int,\n"
      "  stride: int = 1,\n"
      "  padding: string = \"same\"\n"
      ") {\n"
      "  y = some_function_with_a_long_name(\n"
      "    x,\n"
      "    another_argument_name,\n"
      "    keyword_argument: 12345678,\n"
      "    other: [1, 2, 3]\n"
      "  )\n"
      "  return y\n"
      "}\n";
  CHECK(check_round_trip(source) == expected);

  // A short call that was wrapped by hand is joined again.
  CHECK(check_round_trip("model m {\n  h = f(\n    a,\n    b\n  )\n}\n") == "model m {\n  h = f(a, b)\n}\n");
}

TEST_CASE("files of comments only, and empty files", "[formatter]") {
  CHECK(check_round_trip("") == "");
  CHECK(check_round_trip("\n\n") == "");
  CHECK(check_round_trip("# one\n\n\n# two") == "# one\n\n# two\n");
  CHECK(check_round_trip("model m {}\n") == "model m {\n}\n");
}
