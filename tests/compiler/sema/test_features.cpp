// Tests of check_features: the example models' feature sets (widths and input types), csv
// header checks against files in a temporary folder, and one case per user error with
// its message and the line:col it points at.
#if __has_include(<catch2/catch_test_macros.hpp>)
#include <catch2/catch_test_macros.hpp>
#else
#include <catch2/catch.hpp>
#endif

#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include "compiler/sema/features.h"
#include "compiler/syntax/parser.h"
#include "tests/support/files.h"

using namespace kiln;
using namespace kiln::sema;
namespace fs = std::filesystem;

namespace {

using kiln::testing::TempDir;

struct Checked {
  std::optional<FeatureSet> set;
  std::string rendered;
  std::size_t errors = 0;
  std::size_t warnings = 0;
};

// Parses `text` as t.kiln and checks its first (or the named) features block.
Checked check(const std::string& text, const fs::path& base_dir, const std::string& name = {}) {
  SourceManager sources;
  const FileId id = sources.add("t.kiln", text);
  Diagnostics diags;
  const ast::File file = parse_file(sources, id, diags);
  INFO(diags.render(sources));
  REQUIRE_FALSE(diags.has_errors());
  const ast::FeaturesDecl* decl = nullptr;
  for (const ast::Decl& d : file.decls) {
    const auto* f = std::get_if<ast::FeaturesDecl>(&d);
    if (f != nullptr && (name.empty() || f->name == name)) {
      decl = f;
      break;
    }
  }
  REQUIRE(decl != nullptr);
  Checked out;
  out.set = check_features(file, *decl, base_dir, sources, diags);
  out.rendered = diags.render(sources);
  out.errors = diags.error_count();
  for (const Diagnostic& d : diags.all()) out.warnings += d.severity == Severity::kWarning ? 1 : 0;
  return out;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// True when `rendered` has a diagnostic line "t.kiln:WHERE: SEVERITY: ..." containing `message`.
bool has_diagnostic(const std::string& rendered, const std::string& where, const std::string& message,
                    const std::string& severity = "error") {
  std::istringstream lines(rendered);
  const std::string prefix = "t.kiln:" + where + ": " + severity + ": ";
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(prefix, 0) == 0 && line.find(message) != std::string::npos) return true;
  }
  return false;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// True when some "  hint: ..." line of `rendered` contains `part`.
bool has_hint(const std::string& rendered, const std::string& part) {
  std::istringstream lines(rendered);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("  hint: ", 0) == 0 && line.find(part) != std::string::npos) return true;
  }
  return false;
}

const char* kHead = "features f from csv(\"d.csv\") {\n  a : number\n";

}  // namespace

TEST_CASE("the example models' feature sets check cleanly with the right widths", "[sema][features]") {
  const fs::path models = kiln::testing::source_dir() / "models";
  struct Expect {
    const char* file;
    const char* features;
    std::int64_t width;
    const char* input;
  };
  const Expect expects[] = {
      {"credit_risk.kiln", "credit", 30, "f32[batch, 30]"},
      {"concrete_regression.kiln", "concrete", 8, "f32[batch, 8]"},
      {"shuttle_autoencoder.kiln", "shuttle", 9, "f32[batch, 9]"},
      {"recommender.kiln", "ratings", 30, "f32[batch, 30]"},
      {"fashion_mlp.kiln", "fashion", 784, "f32[batch, 784]"},
      {"fashion_cnn.kiln", "fashion", 784, "f32[batch, 28, 28, 1]"},
  };
  for (const Expect& e : expects) {
    INFO(e.file);
    const Checked c = check(read_file(models / e.file), models, e.features);
    INFO(c.rendered);
    REQUIRE(c.set.has_value());
    CHECK(c.errors == 0);
    CHECK(c.set->width() == e.width);
    CHECK(c.set->input_type().to_string() == e.input);
  }
}

TEST_CASE("credit: columns, transforms and the csv path", "[sema][features]") {
  const fs::path models = kiln::testing::source_dir() / "models";
  const Checked c = check(read_file(models / "credit_risk.kiln"), models);
  INFO(c.rendered);
  REQUIRE(c.set.has_value());
  CHECK(c.warnings == 0);  // the header was read and every column found
  CHECK(c.set->source == SourceKind::kCsv);
  CHECK(c.set->csv_path == (models / "data/credit_data.csv").lexically_normal());
  const FeatureColumn* income = c.set->find("Income");
  REQUIRE(income != nullptr);
  REQUIRE(income->transforms.size() == 3);
  CHECK(income->transforms[0].name == "fill");
  CHECK(income->transforms[0].fill_mode == "median");
  CHECK(income->transforms[1].name == "log1p");
  CHECK(income->width == 1);
  const FeatureColumn* home = c.set->find("Home");
  REQUIRE(home != nullptr);
  CHECK(home->kind == ColumnKind::kCategory);
  CHECK(home->transforms.back().levels == 6);
  CHECK(home->width == 7);
  const FeatureColumn* status = c.set->find("Status");
  REQUIRE(status != nullptr);
  CHECK(status->is_label);
  CHECK(status->width == 0);
  CHECK(status->levels == std::vector<std::string>{"bad", "good"});
  CHECK(status->class_count == 2);
  CHECK(c.set->label_type("Status")->to_string() == "i32[batch]");
  CHECK_FALSE(c.set->label_type("Home").has_value());
  CHECK(c.set->column_type("Age")->to_string() == "f32[batch, 1]");
  CHECK(c.set->column_type("Home")->to_string() == "f32[batch, 7]");
  CHECK_FALSE(c.set->column_type("Nope").has_value());
}

TEST_CASE("recommender: index columns are their own i32 inputs", "[sema][features]") {
  const fs::path models = kiln::testing::source_dir() / "models";
  const Checked c = check(read_file(models / "recommender.kiln"), models);
  REQUIRE(c.set.has_value());
  const FeatureColumn* s = c.set->find("s");
  REQUIRE(s != nullptr);
  CHECK(s->is_index);
  CHECK(s->width == 0);
  CHECK(s->transforms.back().levels == 2972);
  CHECK(c.set->column_type("s")->to_string() == "i32[batch]");
  CHECK(c.set->label_type("y")->to_string() == "f32[batch]");
}

TEST_CASE("fashion: pixels and an idx source", "[sema][features]") {
  const fs::path models = kiln::testing::source_dir() / "models";
  const Checked cnn = check(read_file(models / "fashion_cnn.kiln"), models);
  REQUIRE(cnn.set.has_value());
  CHECK(cnn.set->source == SourceKind::kIdx);
  CHECK(cnn.set->idx_images == fs::path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"));
  CHECK(cnn.set->idx_labels == fs::path("/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz"));
  const FeatureColumn* pixels = cnn.set->find("pixels");
  REQUIRE(pixels != nullptr);
  CHECK(pixels->kind == ColumnKind::kPixels);
  CHECK(pixels->pixel_shape == std::vector<std::int64_t>{28, 28, 1});
  CHECK(pixels->width == 784);
  CHECK(pixels->transforms.at(0).constant == 0.00392156862745098);
  CHECK(cnn.set->find("class")->class_count == 10);
  CHECK(cnn.set->label_type("class")->to_string() == "i32[batch]");

  const Checked mlp = check(read_file(models / "fashion_mlp.kiln"), models);
  REQUIRE(mlp.set.has_value());
  CHECK(mlp.set->find("pixels")->pixel_shape == std::vector<std::int64_t>{28, 28});
  CHECK(mlp.set->input_type().to_string() == "f32[batch, 784]");
}

TEST_CASE("transform arguments are resolved", "[sema][features]") {
  TempDir dir;
  const Checked c = check(
      "features f from csv(\"d.csv\") {\n"
      "  a : number -> fill(constant: -1) -> clip(-5, hi: 5) -> scale(2)\n"
      "  b : number -> fill(mean) -> bucketize([18, 30.5, 50])\n"
      "  c : category -> fill(constant: \"none\") -> one_hot(levels: 3)\n"
      "  d : category[x, \"y z\", 3] -> one_hot\n"
      "  e : category[4] -> index(4)\n"
      "  f : number -> min_max -> log1p -> passthrough -> standardize()\n"
      "  label t : number -> log1p\n"
      "}\n",
      dir.path);
  INFO(c.rendered);
  REQUIRE(c.set.has_value());
  CHECK(c.warnings == 1);  // d.csv is not there
  CHECK(
      has_diagnostic(c.rendered, "1:17", "data file 'd.csv' not found; columns are not checked against it", "warning"));
  const FeatureColumn& a = *c.set->find("a");
  CHECK(a.transforms[0].fill_mode == "constant");
  CHECK(a.transforms[0].constant == -1);
  CHECK(a.transforms[1].low == -5);
  CHECK(a.transforms[1].high == 5);
  CHECK(a.transforms[2].constant == 2);
  CHECK(a.width == 1);
  const FeatureColumn& b = *c.set->find("b");
  CHECK(b.transforms[1].edges == std::vector<double>{18, 30.5, 50});
  CHECK(b.width == 4);
  const FeatureColumn& cc = *c.set->find("c");
  CHECK(cc.transforms[0].constant_text == "none");
  CHECK(cc.width == 4);
  const FeatureColumn& d = *c.set->find("d");
  CHECK(d.levels == std::vector<std::string>{"x", "y z", "3"});
  CHECK(d.transforms[0].levels == 3);  // one_hot without levels: the declared ones
  CHECK(d.width == 4);
  const FeatureColumn& e = *c.set->find("e");
  CHECK(e.class_count == 4);
  CHECK(e.levels.empty());
  CHECK(e.is_index);
  CHECK(e.width == 0);
  CHECK(c.set->find("f")->transforms.size() == 4);
  CHECK(c.set->width() == 1 + 4 + 4 + 4 + 1);
  CHECK(c.set->input_type().to_string() == "f32[batch, 14]");
}

TEST_CASE("csv headers: quoted names and CRLF line ends", "[sema][features]") {
  TempDir dir;
  dir.write("d.csv", "\"Home\",Age, \"Income\" ,x\r\n1,2,3,4\r\n");
  const std::string text =
      "features f from csv(\"d.csv\") {\n"
      "  Home : category -> one_hot(levels: 2)\n"
      "  Age : number\n"
      "  Income : number\n"
      "  label x : number\n"
      "}\n";
  const Checked c = check(text, dir.path);
  INFO(c.rendered);
  REQUIRE(c.set.has_value());
  CHECK(c.rendered.empty());

  // An absolute path is used as it is, wherever the .kiln file lives.
  const std::string absolute = "features f from csv(\"" + (dir.path / "d.csv").string() + "\") {\n  Age : number\n}\n";
  const Checked abs = check(absolute, "/nonexistent");
  REQUIRE(abs.set.has_value());
  CHECK(abs.rendered.empty());
  CHECK(abs.set->csv_path == dir.path / "d.csv");

  // Relative paths resolve against the declaring file's folder.
  fs::create_directories(dir.path / "sub");
  dir.write("sub/e.csv", "q\n");
  const Checked rel = check("features f from csv(\"sub/e.csv\") {\n  q : number\n}\n", dir.path);
  REQUIRE(rel.set.has_value());
  CHECK(rel.rendered.empty());
  CHECK(rel.set->csv_path == dir.path / "sub" / "e.csv");
}

TEST_CASE("csv headers: every missing column is reported with a suggestion", "[sema][features]") {
  TempDir dir;
  dir.write("d.csv", "Income,Age,Home\n1,2,3\n");
  const Checked c = check(
      "features f from csv(\"d.csv\") {\n"
      "  Incme : number\n"
      "  Age : number\n"
      "  label Zebra : number\n"
      "}\n",
      dir.path);
  INFO(c.rendered);
  CHECK_FALSE(c.set.has_value());
  CHECK(c.errors == 2);
  CHECK(has_diagnostic(c.rendered, "2:3", "column 'Incme' is not in the header of 'd.csv'"));
  CHECK(contains(c.rendered, "hint: did you mean 'Income'?"));
  CHECK(has_diagnostic(c.rendered, "4:9", "column 'Zebra' is not in the header of 'd.csv'"));
  CHECK(contains(c.rendered, "hint: its columns are Income, Age, Home"));

  dir.write("empty.csv", "\n1,2\n");
  const Checked e = check("features f from csv(\"empty.csv\") {\n  a : number\n}\n", dir.path);
  CHECK_FALSE(e.set.has_value());
  CHECK(has_diagnostic(e.rendered, "1:17", "the first line of 'empty.csv' is empty"));
}

TEST_CASE("csv: an image is the columns NAME_0 ... NAME_{n-1} of its pixels", "[sema][features]") {
  TempDir dir;
  dir.write("img.csv", "label,p_0,p_1,p_2,p_3,p_4,p_5,size\n1,0,0,0,0,0,0,3\n");
  const std::string block = " {\n  p : pixels[2, 3] -> scale(0.5)\n  size : number\n  label label : category[2]\n}\n";
  const Checked c = check("features f from csv(\"img.csv\")" + block, dir.path);
  INFO(c.rendered);
  REQUIRE(c.set.has_value());
  CHECK(c.set->width() == 7);
  CHECK(c.set->input_type().to_string() == "f32[batch, 7]");

  // A header without one of them: the first missing is named, with the rule.
  dir.write("short.csv", "label,p_0,p_1,p_2,p_4,p_5,size\n");
  const Checked d = check("features f from csv(\"short.csv\")" + block, dir.path);
  INFO(d.rendered);
  CHECK(d.errors == 1);
  CHECK(has_diagnostic(d.rendered, "2:3", "column 'p_3' is not in the header of 'short.csv'"));
  CHECK(has_hint(d.rendered, "pixels column 'p' of 6 values is read from the columns p_0 ... p_5, row-major"));

  // Alone, a 3-dimensional image keeps its shape, as from an idx source.
  dir.write("rgb.csv", "y,im_0,im_1,im_2,im_3\n");
  const Checked rgb =
      check("features f from csv(\"rgb.csv\") {\n  im : pixels[1, 2, 2]\n  label y : category[2]\n}\n", dir.path);
  INFO(rgb.rendered);
  REQUIRE(rgb.set.has_value());
  CHECK(rgb.set->input_type().to_string() == "f32[batch, 1, 2, 2]");
}

TEST_CASE("csv: a wide image's header is read whole, up to the reader's record limit", "[sema][features]") {
  TempDir dir;
  // 300x300x3 pixels: a header of about 2.4 MB (sema once read only the first 1 MiB and
  // called the columns past it missing).
  const std::int64_t n = 300 * 300 * 3;
  std::string header = "y";
  for (std::int64_t i = 0; i < n; ++i) header += ",im_" + std::to_string(i);
  REQUIRE(header.size() > (std::size_t{2} << 20));
  dir.write("wide.csv", header + "\n");
  const std::string block = " {\n  im : pixels[300, 300, 3]\n  label y : category[2]\n}\n";
  const Checked wide = check("features f from csv(\"wide.csv\")" + block, dir.path);
  INFO(wide.rendered.substr(0, 2000));
  REQUIRE(wide.set.has_value());
  CHECK(wide.errors == 0);
  CHECK(wide.set->input_type().to_string() == "f32[batch, 300, 300, 3]");

  // A first line past 16 MiB is no header the CSV reader would take: said so, not a missing column.
  dir.write("long.csv", "y," + std::string((std::size_t{16} << 20) + 10, 'a') + "\n1,2\n");
  const Checked long_line = check("features f from csv(\"long.csv\") {\n  a : number\n}\n", dir.path);
  INFO(long_line.rendered.substr(0, 2000));
  CHECK_FALSE(long_line.set.has_value());
  CHECK(long_line.errors == 1);
  CHECK(has_diagnostic(long_line.rendered, "1:17",
                       "the first line of 'long.csv' is longer than 16 MiB, the longest record Kiln reads"));
  CHECK(has_hint(long_line.rendered,
                 "a csv source starts with one header line naming its columns; is the file a csv file?"));

  // Exactly 16 MiB and then the end of the line is still a header.
  const std::string name(std::size_t{16} << 20, 'b');
  dir.write("edge.csv", name + "\n1\n");
  const Checked edge = check("features f from csv(\"edge.csv\") {\n  a : number\n}\n", dir.path);
  CHECK(edge.errors == 1);
  CHECK(contains(edge.rendered, "column 'a' is not in the header of 'edge.csv'"));
  CHECK(has_hint(edge.rendered, "its columns are " + std::string(64, 'b') + "..."));
  CHECK(edge.rendered.size() < 1000);

  // A misspelt column beside a wide image: the hint names the first columns and how many more.
  const Checked typo =
      check("features f from csv(\"wide.csv\") {\n  weight_kg : number\n  label y : category[2]\n}\n", dir.path);
  INFO(typo.rendered.substr(0, 2000));
  CHECK(typo.errors == 1);
  CHECK(has_hint(typo.rendered,
                 "its columns are y, im_0, im_1, im_2, im_3, im_4, im_5, im_6, im_7, im_8, im_9, im_10, "
                 "im_11, im_12, im_13, im_14, im_15, im_16, im_17, im_18, im_19, im_20, im_21, im_22, ... "
                 "(269977 more)"));
  CHECK(typo.rendered.size() < 1000);
}

TEST_CASE("idx: a missing file is a warning", "[sema][features]") {
  TempDir dir;
  dir.write("img.gz", "");
  const Checked c = check(
      "features f from idx(images: \"img.gz\", labels: \"lab.gz\") {\n"
      "  p : pixels[2, 3]\n"
      "  label y : category[10]\n"
      "}\n",
      dir.path);
  INFO(c.rendered);
  REQUIRE(c.set.has_value());
  CHECK(c.warnings == 1);
  CHECK(has_diagnostic(c.rendered, "1:47", "data file 'lab.gz' not found", "warning"));
  CHECK(c.set->idx_images == dir.path / "img.gz");
  CHECK(c.set->input_type().to_string() == "f32[batch, 6]");
}

// One user error per row: the bad column is line 3 of a block whose line 2 is a valid
// number column; the diagnostic must be at line 3, at the column where `at` starts.
TEST_CASE("column errors: message, position and hint", "[sema][features]") {
  struct Case {
    const char* line;
    const char* at;
    const char* message;
    const char* hint;
  };
  const Case cases[] = {
      {"  b : nubmer", "nubmer", "unknown column type 'nubmer'", "did you mean 'number'?"},
      {"  b : vector", "vector", "unknown column type 'vector'", "column types are number, category and pixels"},
      {"  b : number[x, y]", "x, y", "a number column has no levels", "category[...]"},
      {"  b : category[lo, hi, lo] -> index(levels: 3)", "lo]", "duplicate level 'lo' in column 'b'",
       "'lo' is already level 0 (at t.kiln:3:16)"},
      {"  b : category[0] -> one_hot(levels: 2)", "0", "category[0] has no classes", "N must be at least 1"},
      {"  b : pixels", "pixels", "pixels needs the image shape", "pixels[h, w]"},
      {"  b : pixels[28]", "28", "pixels takes 2 or 3 dimensions, got 1", nullptr},
      {"  b : pixels[28, w]", "w]", "a pixels dimension must be an integer, not 'w'", nullptr},
      {"  b : pixels[28, 0]", "0]", "a pixels dimension must be positive", nullptr},
      {"  b : number -> standarize", "standarize", "unknown transform 'standarize'", "did you mean 'standardize'?"},
      {"  b : number -> frobnicate", "frobnicate", "unknown transform 'frobnicate'", "transforms are fill, "},
      {"  b : number -> standardize(1)", "1)", "standardize takes no arguments", "write '-> standardize'"},
      {"  b : number -> log1p(base: 2)", "base", "log1p takes no arguments", nullptr},
      {"  b : number -> fill", "fill", "fill needs to know what to fill with", "fill(median)"},
      {"  b : number -> fill(medain)", "medain", "unknown fill mode 'medain'", "did you mean 'median'?"},
      {"  b : number -> fill(mean, median)", "median", "fill takes one argument", nullptr},
      {"  b : number -> fill(value: 0)", "value", "fill has no argument 'value'", nullptr},
      {"  b : number -> fill(constant: \"x\")", "\"x\"", "the fill value of number column 'b' must be a number",
       nullptr},
      {"  b : category -> fill(median) -> one_hot(levels: 2)", "median",
       "fill(median) needs a number column; 'b' is a category", "fill(constant: \"unknown\")"},
      {"  b : number -> clip(5, 1)", "5, 1", "clip needs lo < hi, got clip(5, 1)", nullptr},
      {"  b : number -> clip(1)", "clip", "clip needs both bounds", "clip(lo, hi)"},
      {"  b : number -> clip(1, 2, 3)", "3", "clip takes 2 arguments, got more", nullptr},
      {"  b : number -> scale(0)", "0", "scale(0) would erase column 'b'", nullptr},
      {"  b : number -> scale(x)", "x", "the factor of scale must be a number, not 'x'", nullptr},
      {"  b : number -> bucketize([10, 20, 15])", "15",
       "bucket edges must be strictly increasing: 15 does not follow 20", nullptr},
      {"  b : number -> bucketize([1, 1])", "1]", "bucket edges must be strictly increasing", nullptr},
      {"  b : number -> bucketize(3)", "3", "bucketize takes a list of edges", nullptr},
      {"  b : number -> bucketize([])", "[]", "bucketize needs at least one edge", nullptr},
      {"  b : category -> one_hot(levels: 0)", "0", "levels must be a positive integer, not 0", nullptr},
      {"  b : category -> one_hot(levels: 2.5)", "2.5", "levels must be a positive integer, not 2.5", nullptr},
      {"  b : category -> one_hot(level: 3)", "level", "one_hot has no argument 'level'", "did you mean 'levels'?"},
      {"  b : category -> one_hot", "one_hot", "one_hot needs the number of levels", "one_hot(levels: N)"},
      {"  b : category -> index(levels: 3, levels: 4)", "levels: 4", "argument 'levels' of index is given twice",
       nullptr},
      {"  b : category -> log1p -> one_hot(levels: 2)", "log1p", "log1p does not apply to category column 'b'",
       nullptr},
      {"  b : number -> one_hot(levels: 3)", "one_hot", "one_hot does not apply to number column 'b'",
       "bucketize([e1, e2, ...])"},
      {"  b : pixels[2, 2] -> standardize", "standardize", "standardize does not apply to pixels column 'b'",
       "pixels take scale(f)"},
      {"  Home : category", "Home",
       "category column 'Home' must be encoded: add -> one_hot(levels: N) or -> index(levels: N)", nullptr},
      {"  b : category[x, y] -> fill(constant: \"x\")", "b",
       "category column 'b' must be encoded: add -> one_hot(levels: 2) or -> index(levels: 2)", nullptr},
      {"  b : category -> one_hot(levels: 2) -> fill(constant: \"x\")", "fill(", "fill cannot follow one_hot",
       "one_hot must be the last transform of column 'b'"},
      {"  b : number -> bucketize([1]) -> scale(2)", "scale", "scale cannot follow bucketize", nullptr},
      {"  label y : category[a, b] -> one_hot(levels: 2)", "one_hot", "label 'y' cannot be encoded with one_hot",
       "remove '-> one_hot(levels: 2)'"},
      {"  label y : category", "category", "category label 'y' needs its classes", "category[N]"},
      {"  label y : pixels[2, 2]", "pixels", "a label must be a number or a category column, not pixels", nullptr},
      {"  a : number", "a", "duplicate column 'a'", "'a' is first declared at t.kiln:2:3"},
      {"  b : category[99999999999999999999] -> one_hot(levels: 2)", "999", "'99999999999999999999' is out of range",
       nullptr},
  };
  TempDir dir;  // no d.csv: the header check is skipped with a warning
  for (const Case& k : cases) {
    const std::string line = k.line;
    const std::string text = std::string(kHead) + line + "\n}\n";
    const std::string where = "3:" + std::to_string(line.find(k.at) + 1);
    const Checked c = check(text, dir.path);
    INFO(text);
    INFO(c.rendered);
    CHECK_FALSE(c.set.has_value());
    CHECK(c.errors == 1);
    CHECK(has_diagnostic(c.rendered, where, k.message));
    if (k.hint != nullptr) CHECK(has_hint(c.rendered, k.hint));
  }
}

TEST_CASE("source and block errors", "[sema][features]") {
  TempDir dir;
  struct Case {
    std::string text;
    const char* where;
    const char* message;
    const char* hint;
  };
  const std::string body = " {\n  a : number\n}\n";
  const Case cases[] = {
      {"features f from cvs(\"d.csv\")" + body, "1:17", "unknown data source 'cvs'", "did you mean 'csv'?"},
      {"features f from parquet(\"d.pq\")" + body, "1:17", "unknown data source 'parquet'", "csv(\"file.csv\")"},
      {"features f from csv(\"a\", \"b\")" + body, "1:17", "csv takes one argument, the path of the file", nullptr},
      {"features f from csv()" + body, "1:17", "csv takes one argument", nullptr},
      {"features f from csv(42)" + body, "1:21", "the csv path must be a string", nullptr},
      {"features f from csv(\"\")" + body, "1:21", "the csv path is empty", nullptr},
      {"features f from data.csv" + body, "1:17", "a data source must be csv(...) or idx(...)", nullptr},
      {"features f from idx(images: \"i\")" + body, "1:17", "idx needs 'labels'", nullptr},
      {"features f from idx(image: \"i\", labels: \"l\")" + body, "1:21", "idx has no argument 'image'",
       "did you mean 'images'?"},
      {"features f from idx(\"i\", labels: \"l\")" + body, "1:21", "idx takes named arguments", nullptr},
      {"features f from csv(\"d.csv\") {\n  label y : number\n}\n", "1:10", "features 'f' has no input columns",
       "every column is a label"},
      {"features f from csv(\"d.csv\") {\n}\n", "1:10", "features 'f' has no input columns", nullptr},
      {"features f from csv(\"d.csv\") {\n  p : pixels[2, 2]\n  q : pixels[2, 2]\n}\n", "3:3",
       "a csv source holds one pixels column", "'p' is the image of these records"},
      {"features f from idx(images: \"i\", labels: \"l\") {\n  p : pixels[2, 2]\n  n : number\n}\n", "3:3",
       "an idx source holds one pixels column and one label", nullptr},
      {"features f from idx(images: \"i\", labels: \"l\") {\n  p : pixels[2, 2]\n  label y : category[2]\n"
       "  label z : category[2]\n}\n",
       "4:9", "an idx source has one label column", nullptr},
  };
  for (const Case& k : cases) {
    const Checked c = check(k.text, dir.path);
    INFO(k.text);
    INFO(c.rendered);
    CHECK_FALSE(c.set.has_value());
    CHECK(c.errors == 1);
    CHECK(has_diagnostic(c.rendered, k.where, k.message));
    if (k.hint != nullptr) CHECK(has_hint(c.rendered, k.hint));
  }
}

TEST_CASE("several errors in one block are all reported", "[sema][features]") {
  TempDir dir;
  const Checked c = check(
      "features f from csv(\"d.csv\") {\n"
      "  a : nubmer\n"
      "  b : number -> fill(medain) -> standarize\n"
      "  c : category\n"
      "}\n",
      dir.path);
  INFO(c.rendered);
  CHECK_FALSE(c.set.has_value());
  CHECK(c.errors == 4);
  CHECK(has_diagnostic(c.rendered, "2:7", "unknown column type 'nubmer'"));
  CHECK(has_diagnostic(c.rendered, "3:22", "unknown fill mode 'medain'"));
  CHECK(has_diagnostic(c.rendered, "3:33", "unknown transform 'standarize'"));
  CHECK(has_diagnostic(c.rendered, "4:3", "category column 'c' must be encoded"));
}
