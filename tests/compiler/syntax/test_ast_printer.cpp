// Tests of `kiln dump --ast` (print_ast) on a small file that touches every kind of node.
#if __has_include(<catch2/catch_test_macros.hpp>)
#include <catch2/catch_test_macros.hpp>
#else
#include <catch2/catch.hpp>
#endif

#include <string>

#include "compiler/syntax/ast_printer.h"
#include "compiler/syntax/parser.h"

namespace {

std::string dump(const std::string& text) {
  kiln::SourceManager sources;
  kiln::FileId id = sources.add("test.kiln", text);
  kiln::Diagnostics diags;
  kiln::ast::File file = kiln::parse_file(sources, id, diags);
  INFO(diags.render(sources));
  REQUIRE_FALSE(diags.has_errors());
  return kiln::print_ast(file, sources);
}

}  // namespace

TEST_CASE("print_ast prints one node per line with its location", "[ast_printer]") {
  std::string source =
      "import nn\n"
      "import \"lib/x.kiln\" as x\n"
      "\n"
      "layer scale(v: f32[..., n], k: float = 2.0) -> f32[..., n] {\n"
      "  param w: f32[n] = init.zeros()\n"
      "  return v * w * -k\n"
      "}\n"
      "\n"
      "features f from csv(\"d.csv\") {\n"
      "  a : number -> fill(median) -> standardize\n"
      "  label y : category[bad, \"ok\", 3]\n"
      "}\n"
      "\n"
      "model m {\n"
      "  input x : f32[batch, 4]\n"
      "  h, c = nn.lstm(x.t, [1, 2], units: 8)\n"
      "  output o = h\n"
      "}\n"
      "\n"
      "promote m {\n"
      "  gate auc >= 0.8  # floor\n"
      "  canary = 0.05\n"
      "}\n";
  std::string expected =
      "import nn @1:1\n"
      "import \"lib/x.kiln\" as x @2:1\n"
      "layer scale @4:1\n"
      "  arg v : f32[..., n] @4:13\n"
      "  arg k : float @4:29\n"
      "    number 2.0 @4:40\n"
      "  result f32[..., n] @4:48\n"
      "  param w : f32[n] @5:3\n"
      "    call @5:21\n"
      "      member .zeros @5:21\n"
      "        name init @5:21\n"
      "  return @6:3\n"
      "    binary * @6:10\n"
      "      binary * @6:10\n"
      "        name v @6:10\n"
      "        name w @6:14\n"
      "      unary - @6:18\n"
      "        name k @6:19\n"
      "features f @9:1\n"
      "  source\n"
      "    call @9:17\n"
      "      name csv @9:17\n"
      "      string \"d.csv\" @9:21\n"
      "  column a : number @10:3\n"
      "    transform fill() @10:17\n"
      "      name median @10:22\n"
      "    transform standardize @10:33\n"
      "  column label y : category[bad, \"ok\", 3] @11:3\n"
      "model m @14:1\n"
      "  input x : f32[batch, 4] @15:3\n"
      "  binding h, c @16:3\n"
      "    call @16:10\n"
      "      member .lstm @16:10\n"
      "        name nn @16:10\n"
      "      member .t @16:18\n"
      "        name x @16:18\n"
      "      list @16:23\n"
      "        number 1 @16:24\n"
      "        number 2 @16:27\n"
      "      arg units @16:31\n"
      "        number 8 @16:38\n"
      "  output o @17:3\n"
      "    name h @17:14\n"
      "promote m @20:1\n"
      "  gate @21:3\n"
      "    binary >= @21:8\n"
      "      name auc @21:8\n"
      "      number 0.8 @21:15\n"
      "  field canary @22:3\n"
      "    number 0.05 @22:12\n"
      "comment # floor @21:20\n";
  CHECK(dump(source) == expected);
}

TEST_CASE("print_ast of an empty file is empty", "[ast_printer]") {
  CHECK(dump("") == "");
  CHECK(dump("# only a comment\n") == "comment # only a comment @1:1\n");
}
