// The JSON-lines record grammar (runtime/data/json_record.h) that kiln predict and an
// artifact's predictor share: what a record's cells are, every way a line is refused with
// its column and reason, and SchemaReader reading a JSON-lines file (missing keys, optional
// labels, blank lines, gzip). fuzz_artifact_reader.py runs the generated C side by side.
#include <fmt/format.h>
#include <zlib.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "runtime/data/json_record.h"
#include "runtime/data/rows.h"
#include "tests/runtime/data/data_helpers.h"

using namespace kiln;
using namespace kiln::data;
using namespace kiln::data::testing;

namespace {

struct Parsed {
  std::vector<JsonCell> cells;
  std::string error;  // describe(...) or ""
};

Parsed parse(std::string_view line) {
  Parsed p;
  if (auto e = parse_json_record(line, p.cells)) p.error = describe(*e);
  return p;
}

// key=text pairs, null as key=null.
// How kiln predict tells the format of the file at `path`.
bool read_as_json_lines(const fs::path& path) {
  ByteSource source(path);
  return looks_like_json_lines(path, source);
}

std::vector<std::string> pairs(const std::vector<JsonCell>& cells) {
  std::vector<std::string> out;
  for (const JsonCell& c : cells) out.push_back(c.key + "=" + (c.null ? "null" : c.text));
  return out;
}

using Strings = std::vector<std::string>;

}  // namespace

TEST_CASE("json record: cells of scalars and arrays", "[data][json]") {
  Parsed p = parse(R"(  {"a": "x y", "b": -1.5e3, "c": true, "d": false, "e": null, "f": 0}  )");
  CHECK(p.error.empty());
  CHECK(pairs(p.cells) == Strings{"a=x y", "b=-1.5e3", "c=true", "d=false", "e=null", "f=0"});
  // Arrays become KEY_0, KEY_1, ...; an empty array gives no cells.
  p = parse(R"({"pixels": [0, 0.5, "7", null], "none": [], "k": 1})");
  CHECK(p.error.empty());
  CHECK(pairs(p.cells) == Strings{"pixels_0=0", "pixels_1=0.5", "pixels_2=7", "pixels_3=null", "k=1"});
  // Escapes, a surrogate pair, white space of every kind, a line end of CRLF.
  p = parse("{\"s\":\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t \\u00e9 \\ud83d\\ude00\"}\r");
  CHECK(p.error.empty());
  REQUIRE(p.cells.size() == 1);
  CHECK(p.cells[0].text == "q\" b\\ s/ \b\f\n\r\t \xc3\xa9 \xf0\x9f\x98\x80");
  CHECK(parse("{}").error.empty());
  CHECK(parse(" \t{ }\t").error.empty());
  // A key given twice gives two cells, in order (SchemaReader takes the last, as a JSON
  // object's reader keeps it: see the reader's cases below).
  p = parse(R"({"a": 1, "a": 2})");
  CHECK(pairs(p.cells) == Strings{"a=1", "a=2"});
  // Numbers are kept as written (the schema reader parses them as it parses a CSV cell).
  for (const char* n : {"0", "-0", "12", "1.25", "1e5", "1E+5", "2.5e-3", "-0.0e0"}) {
    p = parse(std::string(R"({"n": )") + n + "}");
    CHECK(p.error.empty());
    CHECK(pairs(p.cells) == Strings{std::string("n=") + n});
  }
}

TEST_CASE("json record: a line that is not a record says where and why", "[data][json]") {
  const std::string kObject = "expected '{': a record is one JSON object";
  const std::string kValue = "expected a value: a string, a number, true, false, null or an array of them";
  const std::string kNested = "a nested object or array: values are scalars or arrays of scalars";
  const std::string kEscape = "a \\u escape that is not 4 hex digits, is \\u0000 or an unpaired surrogate";
  const struct {
    std::string line, error;
  } cases[] = {
      {"", "column 1: " + kObject},
      {"good,3,rent", "column 1: " + kObject},
      {"[1, 2]", "column 1: " + kObject},
      {R"({"a": 1,})", "column 9: expected a string key"},
      {R"({a: 1})", "column 2: expected a string key"},
      {R"({"a" 1})", "column 6: expected ':' after the key"},
      {R"({"a": })", "column 7: " + kValue},
      {R"({"a": tru})", "column 7: " + kValue},
      {R"({"a": True})", "column 7: " + kValue},
      {R"({"a": nan})", "column 7: " + kValue},
      {R"({"a": 'x'})", "column 7: " + kValue},
      {R"({"a": [1,]})", "column 10: " + kValue},
      {R"({"a": [,1]})", "column 8: " + kValue},
      {R"({"a": {"b": 1}})", "column 7: " + kNested},
      {R"({"a": [1, [2]]})", "column 11: " + kNested},
      {R"({"a": 1 "b": 2})", "column 9: expected ',' or '}' after a value"},
      {R"({"a": 1)", "column 8: expected ',' or '}' after a value"},
      {R"({"a": [1 2]})", "column 10: expected ',' or ']' after an array element"},
      {R"({"a": 1x})", "column 8: expected ',' or '}' after a value"},
      {R"({"a": 01})", "column 7: not a JSON number"},
      {R"({"a": 1.})", "column 7: not a JSON number"},
      {R"({"a": .5})", "column 7: not a JSON number"},
      {R"({"a": +5})", "column 7: not a JSON number"},
      {R"({"a": 1e})", "column 7: not a JSON number"},
      {R"({"a": -})", "column 7: not a JSON number"},
      {R"({"a": 1-2})", "column 7: not a JSON number"},
      {R"({"a": "x)", "column 9: unterminated string"},
      {R"({"a": "x\)", "column 10: unterminated string"},
      {"{\"a\": \"x\ty\"}", "column 9: a control character in a string (JSON escapes it, e.g. \\t)"},
      {R"({"a": "\x"})", "column 8: not a JSON escape"},
      {R"({"a": "\u12"})", "column 8: " + kEscape},
      {R"({"a": "\u0000"})", "column 8: " + kEscape},
      {R"({"a": "\ud83d"})", "column 8: " + kEscape},
      {R"({"a": "\ud83d\u0041"})", "column 8: " + kEscape},
      {R"({"a": "\ude00"})", "column 8: " + kEscape},
      {R"({"a": 1} x)", "column 10: text after the object"},
      {R"({"a": 1}{"b": 2})", "column 9: text after the object"},
      {std::string("{\"a\": 1}\0", 9), "column 9: a NUL byte"},
      {std::string("{\"a\": \"x\0\"}", 11), "column 9: a NUL byte"},
      {std::string("{\"a\": \0}", 8), "column 7: a NUL byte"},
  };
  for (const auto& c : cases) {
    INFO(c.line);
    CHECK(parse(c.line).error == "not a JSON record at " + c.error);
  }
}

TEST_CASE("json record: SchemaReader reads JSON lines by key, labels optional for predictions", "[data][json]") {
  TempDir dir;
  auto comp = compile_text(dir.path, R"(
features small from csv("s.csv") {
  age : number -> standardize
  income : number -> fill(median) -> standardize
  city : category -> one_hot(levels: 3)
  label risk : category[low, high]
}
)");
  sema::FeatureSet set = *comp->find_features("small");
  const std::string text =
      "{\"age\": 30, \"income\": 100, \"city\": \"oslo\", \"risk\": \"low\"}\n"
      "\n"                                                            // blank: not a record, but a line
      "{\"city\": \"bergen\", \"age\": \"41\", \"extra\": [1, 2]}\n"  // line 3: income and risk left out
      "{\"age\": null, \"city\": \"oslo\"}\n"                         // line 4: age is missing, no fill
      "{\"age\": 50, \"city\": \"oslo\", \"risk\": \"medium\"}\n"     // line 5: a label there is checked
      "{\"age\": 60, \"city\": \"oslo\", \"risk\": null}\n"           // line 6: a null label is a missing one
      "{\"age\": 70, \"city\": \"oslo\",}\n"                          // line 7: not a record
      "  {\"age\": 80, \"income\": null, \"city\": \"x\"}  ";         // line 8, no line end
  set.csv_path = dir.write("in.jsonl", text);
  CHECK(read_as_json_lines(set.csv_path));
  const auto read = [&](const ReadOptions& options) {
    SchemaReader reader(set, options);
    const std::vector<std::string> got = read_records(reader, [](const Row& row) {
      return std::to_string(row.line) + ": age " + std::to_string(static_cast<int>(row.numbers[0])) + " income " +
             (row.missing[1] ? "missing" : std::to_string(static_cast<int>(row.numbers[1]))) + " city " + row.texts[2] +
             " risk " + (row.missing[3] ? "missing" : row.texts[3]);
    });
    CHECK(reader.bytes_read() == text.size());
    return got;
  };
  ReadOptions predict;
  predict.json_lines = predict.labels_optional = true;
  CHECK(read(predict) == Strings{
                             "1: age 30 income 100 city oslo risk low",
                             "3: age 41 income missing city bergen risk missing",
                             "4: missing value in number column 'age', which has no fill(...)",
                             "5: 'medium' is not a level of column 'risk' (low, high)",
                             "6: missing value in label column 'risk'",
                             "7: not a JSON record at column 28: expected a string key",
                             "8: age 80 income missing city x risk missing",
                         });
  // Without labels_optional (training's rule) a record without its label is rejected.
  ReadOptions strict;
  strict.json_lines = true;
  const Strings got = read(strict);
  REQUIRE(got.size() == 7);
  CHECK(got[1] == "3: missing value in label column 'risk'");

  // Gzip, and what decides the format: the name, else a first non-blank '{'.
  const fs::path gz = dir.path / "in.jsonl.gz";
  gzFile f = gzopen(gz.c_str(), "wb");
  REQUIRE(f != nullptr);
  gzwrite(f, text.data(), static_cast<unsigned>(text.size()));
  gzclose(f);
  set.csv_path = gz;
  CHECK(read_as_json_lines(gz));
  CHECK(read(predict).size() == 7);
  CHECK(read_as_json_lines(dir.write("records.txt", "\n  {\"age\": 1}\n")));
  CHECK(read_as_json_lines(dir.write("x.ndjson", "age\n")));
  CHECK_FALSE(read_as_json_lines(dir.write("s.csv", "age,income,city,risk\n")));
  // A file that cannot be opened is a DataError naming it.
  set.csv_path = dir.path / "absent.jsonl";
  CHECK_THROWS_WITH(SchemaReader(set, predict), Catch::Contains("absent.jsonl") && Catch::Contains("no such file"));
}

TEST_CASE("schema reader: numbers at a double's limits are read as an artifact's predictor reads them",
          "[data][json]") {
  // The artifact's generated C reads a number cell with strtod; Kiln's reader must accept
  // and refuse the same cells, or training and serving would drop different records.
  TempDir dir;
  auto comp = compile_text(dir.path, R"(
features small from csv("s.csv") {
  age : number -> standardize
  label risk : category[low, high]
}
)");
  sema::FeatureSet set = *comp->find_features("small");
  const std::string long_digits = "6." + std::string(400, '9');
  set.csv_path = dir.write("s.csv", "age,risk\n1e-400,low\n-2e-320,low\n" + long_digits +
                                        ",low\n1e400,low\n\"\n9\",low\n+7,low\n0x10,low\n");
  SchemaReader reader(set);
  Row row;
  RejectedRecord rejected;
  std::vector<std::string> got;
  for (SchemaReader::Result r; (r = reader.next(row, rejected)) != SchemaReader::Result::kEnd;) {
    got.push_back(r == SchemaReader::Result::kRow ? std::to_string(row.line) + ": " + fmt::format("{}", row.numbers[0])
                                                  : std::to_string(rejected.line) + ": " + rejected.reason);
  }
  CHECK(got == Strings{
                   "2: 0",  // an underflow is the nearest double
                   "3: -2e-320",
                   "4: 7",  // however many digits
                   "5: '1e400' in number column 'age' is not a finite number",
                   "6: '\n9' in number column 'age' is not a number",  // white space other than blanks
                   "8: 7",                                             // the record before spans two lines
                   "9: '0x10' in number column 'age' is not a number",
               });
}

TEST_CASE("schema reader: a pixels column from CSV or JSON lines is the cells NAME_0 ... NAME_{n-1}", "[data][json]") {
  // How an image reaches a service (and an artifact's predictor): one cell per pixel, or a
  // JSON array under the column's name. Training reads pixels from IDX files; kiln predict
  // --input reads records with the same columns (as here: the set's source made CSV).
  TempDir dir;
  auto comp = compile_text(dir.path, R"(
features img from idx(images: "i.idx", labels: "l.idx") {
  px : pixels[2, 2] -> scale(0.5)
  label digit : category[3]
}
)");
  sema::FeatureSet set = *comp->find_features("img");
  set.source = sema::SourceKind::kCsv;
  const auto read = [&](const ReadOptions& options) {
    SchemaReader reader(set, options);
    std::vector<std::string> got;
    Row row;
    RejectedRecord rejected;
    for (SchemaReader::Result r; (r = reader.next(row, rejected)) != SchemaReader::Result::kEnd;) {
      if (r == SchemaReader::Result::kRejected) {
        got.push_back(std::to_string(rejected.line) + ": " + rejected.reason);
        continue;
      }
      std::string pixels;
      for (const float p : row.pixels) pixels += fmt::format(" {}", p);
      got.push_back(std::to_string(row.line) + ":" + pixels + " digit " + (row.missing[1] ? "missing" : row.texts[1]));
    }
    return got;
  };
  set.csv_path = dir.write("p.csv",
                           "digit,px_3,px_2,px_1,px_0,other\n"
                           "2,4,3,2,1,x\n"
                           "1,4,,2,1,x\n"      // a pixel missing
                           "0,4,3,dark,1,x\n"  // not a number
                           "0, 4 ,3e0,+2,-1,x\n");
  CHECK(read({}) == Strings{
                        "2: 1 2 3 4 digit 2",
                        "3: missing value in pixel 2 of pixels column 'px'",
                        "4: 'dark' in pixel 1 of pixels column 'px' is not a number",
                        "5: -1 2 3 4 digit 0",
                    });
  ReadOptions json;
  json.json_lines = json.labels_optional = true;
  set.csv_path = dir.write("p.jsonl",
                           "{\"px\": [1, 2, 3, 4], \"digit\": 2}\n"
                           "{\"px\": [1, 2, 3]}\n"                                       // one short
                           "{\"px_0\": 1, \"px_1\": 2, \"px_2\": 3, \"px_3\": \"4\"}\n"  // keys of their own
                           "{\"px\": [1, null, 3, 4]}\n"
                           "{\"px\": [1, 2, 3, 4, 5], \"px_3\": 9}\n");  // the last px_3 wins
  CHECK(read(json) == Strings{
                          "1: 1 2 3 4 digit 2",
                          "2: missing value in pixel 3 of pixels column 'px'",
                          "3: 1 2 3 4 digit missing",
                          "4: missing value in pixel 1 of pixels column 'px'",
                          "5: 1 2 3 9 digit missing",
                      });
  // A CSV header without one of the cells names it.
  set.csv_path = dir.write("q.csv", "px_0,px_1,px_3,digit\n1,2,3,0\n");
  CHECK_THROWS_WITH(SchemaReader(set),
                    Catch::Contains("column 'px_2' of features img is not in the header") &&
                        Catch::Contains("pixels column 'px' of 4 values is read from the columns px_0 ... px_3"));
}
