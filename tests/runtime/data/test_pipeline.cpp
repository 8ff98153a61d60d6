// The feature pipeline on the real credit data: widths, statistics fitted on the training
// split only (checked against values recomputed from the raw file, and by editing holdout
// rows), vocabularies, and an exact JSON round trip.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "runtime/data/csv_reader.h"
#include "runtime/data/dataset.h"
#include "runtime/data/pipeline.h"
#include "tests/runtime/data/data_helpers.h"

using namespace kiln;
using namespace kiln::data;
using namespace kiln::data::testing;

namespace {

// The raw credit file as records by line, with the header's column positions.
struct RawCsv {
  std::map<std::int64_t, CsvRecord> by_line;
  std::map<std::string, std::size_t> column;
};

RawCsv read_raw(const fs::path& path) {
  RawCsv raw;
  CsvReader reader(path);
  CsvRecord r;
  REQUIRE(reader.next(r));
  for (std::size_t i = 0; i < r.fields.size(); ++i) raw.column[r.fields[i]] = i;
  while (reader.next(r)) raw.by_line[r.line] = r;
  return raw;
}

const FittedColumn& column(const FittedPipeline& p, const std::string& name) {
  for (const FittedColumn& c : p.columns) {
    if (c.name == name) return c;
  }
  FAIL("no column " + name);
  return p.columns.front();
}

LoadOptions credit_options() {
  LoadOptions o;
  o.holdout = 0.2;
  o.seed = 7;
  o.max_reject_share = 0.05;
  return o;
}

}  // namespace

TEST_CASE("pipeline: credit_risk's width is FeatureSet::width() = 30", "[data]") {
  auto c = compile_model("credit_risk.kiln");
  const sema::FeatureSet* set = c->find_features("credit");
  REQUIRE(set != nullptr);
  Dataset data = load_dataset(*set, credit_options());
  CHECK(set->width() == 30);
  CHECK(data.pipeline.width() == 30);
  CHECK(data.pipeline.row_shape() == std::vector<std::int64_t>{30});
  CHECK(data.train.feature_shape() == std::vector<std::int64_t>{data.train.rows, 30});
  CHECK(data.train.rows + data.holdout.rows == 4454);
  CHECK(data.pipeline.class_labels() == 1);
  // Each one-hot block has exactly one 1 per row.
  const FittedColumn& home = column(data.pipeline, "Home");
  CHECK(home.width == 7);
  for (std::int64_t r = 0; r < data.train.rows; ++r) {
    const float* block = data.train.features.data() + r * 30 + home.offset;
    float sum = 0;
    for (int k = 0; k < 7; ++k) sum += block[k];
    REQUIRE(sum == 1.0f);
  }
}

TEST_CASE("pipeline: statistics come from the training split only", "[data]") {
  auto c = compile_model("credit_risk.kiln");
  const sema::FeatureSet& set = *c->find_features("credit");
  Dataset data = load_dataset(set, credit_options());
  RawCsv raw = read_raw(set.csv_path);

  // Recompute Seniority's mean and Income's median from the raw training records.
  std::vector<double> seniority, income;
  for (std::int64_t line : data.train.lines) {
    const CsvRecord& r = raw.by_line.at(line);
    seniority.push_back(std::stod(r.fields[raw.column.at("Seniority")]));
    const std::string& v = r.fields[raw.column.at("Income")];
    if (!v.empty()) income.push_back(std::stod(v));
  }
  double mean = 0;
  for (double v : seniority) mean += v;
  mean /= static_cast<double>(seniority.size());
  const FittedColumn& sen = column(data.pipeline, "Seniority");
  REQUIRE(sen.stages.size() == 1);
  CHECK(sen.stages[0].mean == Approx(mean).epsilon(1e-12));
  const FittedColumn& inc = column(data.pipeline, "Income");
  REQUIRE(inc.stages[0].op == "fill");
  CHECK(inc.stages[0].value == median_of(income));

  // The training features of a standardized column have mean 0 and deviation 1.
  double m = 0, sq = 0;
  for (std::int64_t r = 0; r < data.train.rows; ++r) m += data.train.features[r * 30 + sen.offset];
  m /= static_cast<double>(data.train.rows);
  for (std::int64_t r = 0; r < data.train.rows; ++r) {
    double d = data.train.features[r * 30 + sen.offset] - m;
    sq += d * d;
  }
  CHECK(std::abs(m) < 1e-5);
  CHECK(std::sqrt(sq / static_cast<double>(data.train.rows)) == Approx(1.0).epsilon(1e-4));

  // Rewrite every holdout row's numbers wildly: the fitted pipeline must not move.
  TempDir dir;
  std::string text = read_file(set.csv_path);
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  for (std::int64_t line : data.holdout.lines) {
    std::string& l = lines[static_cast<std::size_t>(line - 1)];
    // Seniority is the second field: make it huge.
    std::size_t comma = l.find(',');
    l.insert(comma + 1, "9999");
  }
  std::string edited;
  for (const std::string& l : lines) edited += l + "\n";
  sema::FeatureSet copy = set;
  copy.csv_path = dir.write("credit_edited.csv", edited);
  Dataset edited_data = load_dataset(copy, credit_options());
  CHECK(edited_data.holdout.lines == data.holdout.lines);
  CHECK(edited_data.pipeline == data.pipeline);
  CHECK(edited_data.pipeline.to_json() == data.pipeline.to_json());
  CHECK(edited_data.summary.content_hash != data.summary.content_hash);
  // ... while fitting on everything would have moved it.
  LoadOptions all = credit_options();
  all.holdout = 0;
  CHECK(column(load_dataset(copy, all).pipeline, "Seniority").stages[0].mean != sen.stages[0].mean);
}

TEST_CASE("pipeline: one_hot vocabularies are the most frequent training values", "[data]") {
  auto c = compile_model("credit_risk.kiln");
  const sema::FeatureSet& set = *c->find_features("credit");
  Dataset data = load_dataset(set, credit_options());
  RawCsv raw = read_raw(set.csv_path);
  std::map<std::string, int> counts;
  for (std::int64_t line : data.train.lines) {
    const std::string& v = raw.by_line.at(line).fields[raw.column.at("Home")];
    if (!v.empty()) ++counts[v];
  }
  const FittedColumn& home = column(data.pipeline, "Home");
  REQUIRE(home.vocabulary.size() == counts.size());
  for (std::size_t i = 1; i < home.vocabulary.size(); ++i) {
    CHECK(counts[home.vocabulary[i - 1]] >= counts[home.vocabulary[i]]);
  }
  CHECK(home.vocabulary[0] == "owner");
  // The Status label keeps its declared classes: bad = 0, good = 1.
  CHECK(column(data.pipeline, "Status").classes == std::vector<std::string>{"bad", "good"});
  // A missing Home (no fill) goes to the unknown slot, the last one.
  Row row;
  reset_row(row, set.columns.size());
  for (std::size_t i = 0; i < set.columns.size(); ++i) {
    if (set.columns[i].kind == sema::ColumnKind::kNumber) row.numbers[i] = 1, row.missing[i] = 0;
  }
  row.texts[set.columns.size() - 1] = "good";
  row.missing[set.columns.size() - 1] = 0;
  TransformedRow t = data.pipeline.transform(row);
  CHECK(t.features[static_cast<std::size_t>(home.offset + 6)] == 1.0f);
  CHECK(t.classes == std::vector<std::int32_t>{1});
}

TEST_CASE("pipeline: a JSON round trip gives bit-identical transforms", "[data]") {
  auto c = compile_model("credit_risk.kiln");
  const sema::FeatureSet& set = *c->find_features("credit");
  Dataset data = load_dataset(set, credit_options());
  TempDir dir;
  data.pipeline.save(dir.path / "pipeline.json");
  FittedPipeline loaded = FittedPipeline::load(dir.path / "pipeline.json");
  CHECK(loaded == data.pipeline);
  LoadOptions again = credit_options();
  again.pipeline = &loaded;
  Dataset reloaded = load_dataset(set, again);
  CHECK(reloaded.train.features == data.train.features);
  CHECK(reloaded.holdout.features == data.holdout.features);
  CHECK(reloaded.train.classes == data.train.classes);
  CHECK(nlohmann::json::parse(data.pipeline.to_json().dump()) == data.pipeline.to_json());
}

TEST_CASE("pipeline: a malformed pipeline document is a DataError", "[data]") {
  TempDir dir;
  fs::path bad = dir.write("bad.json", R"({"format": "kiln.pipeline", "version": 1, "features": "x",
    "columns": [{"name": "a", "kind": "category", "label": false, "index": false, "width": 3, "stages": []}]})");
  CHECK_THROWS_WITH(FittedPipeline::load(bad),
                    bad.string() + ": error: category column 'a' has no one_hot or index stage");
  fs::path junk = dir.write("junk.json", "{not json");
  CHECK_THROWS_WITH(FittedPipeline::load(junk), junk.string() + ": error: not valid JSON");
}

// A document of the right form with a field of the wrong type, or missing: the message names
// the field by its path and says what it should be, not the JSON library's exception text.
TEST_CASE("pipeline: a field of the wrong type or missing is named by its path", "[data]") {
  auto c = compile_model("credit_risk.kiln");
  Dataset data = load_dataset(*c->find_features("credit"), credit_options());
  TempDir dir;
  auto error_of = [&](const nlohmann::json& doc) {
    fs::path path = dir.write("p.json", doc.dump());
    try {
      FittedPipeline::load(path);
    } catch (const DataError& e) {
      return std::string(e.what()).substr(path.string().size());
    }
    return std::string("no error");
  };
  const std::string prefix = ": error: malformed pipeline document: ";
  nlohmann::json doc = data.pipeline.to_json();
  doc["columns"][2]["width"] = "3";
  CHECK(error_of(doc) == prefix + "columns[2].width is string; expected an integer");
  doc = data.pipeline.to_json();
  doc["columns"][1]["stages"][0]["mean"] = nullptr;
  CHECK(error_of(doc) == prefix + "columns[1].stages[0].mean is null; expected a number");
  doc = data.pipeline.to_json();
  doc["columns"][3].erase("label");
  CHECK(error_of(doc) == prefix + "columns[3].label is missing");
  doc = data.pipeline.to_json();
  doc["columns"][4]["vocabulary"] = {"a", 7};
  CHECK(error_of(doc) == prefix + "columns[4].vocabulary[1] is number; expected a string");
  doc = data.pipeline.to_json();
  doc["columns"] = {1, 2};
  CHECK(error_of(doc) == prefix + "columns[0] is number; expected an object");
}

TEST_CASE("pipeline: fill, min_max, log1p, clip, scale, bucketize and index on a small set", "[data]") {
  TempDir dir;
  dir.write("t.csv",
            "a,b,c,d,e,y\n"
            "1,10,x,5,p,1.5\n"
            ",20,y,-5,q,2.5\n"
            "3,30,x,0,p,3.5\n"
            "5,40,z,100,r,4.5\n");
  auto comp = compile_text(dir.path, R"(
features small from csv("t.csv") {
  a : number -> fill(mean) -> min_max
  b : number -> log1p -> scale(2)
  c : category -> index(levels: 2)
  d : number -> clip(-1, 10) -> bucketize([0, 5])
  e : category -> fill(constant: "p") -> one_hot(levels: 1)
  label y : number
}
)");
  const sema::FeatureSet& set = *comp->find_features("small");
  LoadOptions o;
  o.holdout = 0;
  Dataset data = load_dataset(set, o);
  REQUIRE(data.train.rows == 4);
  const FittedPipeline& p = data.pipeline;
  CHECK(p.width() == 1 + 1 + 3 + 2);
  CHECK(column(p, "a").stages[0].value == 3.0);  // mean of 1, 3, 5
  CHECK(column(p, "a").stages[1].low == 1.0);
  CHECK(column(p, "a").stages[1].high == 5.0);
  CHECK(column(p, "c").vocabulary == std::vector<std::string>{"x", "y"});  // tie y/z: y was seen first
  CHECK(column(p, "e").vocabulary == std::vector<std::string>{"p"});
  const std::vector<float>& f = data.train.features;
  // Row 2: a missing -> 3 -> 0.5; b = 2 log(21); d = -5 clipped to -1 -> bucket 0.
  CHECK(f[7 + 0] == 0.5f);
  CHECK(f[7 + 1] == Approx(2 * std::log1p(20.0)));
  CHECK(std::vector<float>(f.begin() + 7 + 2, f.begin() + 7 + 5) == std::vector<float>{1, 0, 0});
  // Row 3: d = 0 is in bucket 1 (edges[0] <= x < edges[1]); row 4: 100 -> 10 -> bucket 2.
  CHECK(std::vector<float>(f.begin() + 14 + 2, f.begin() + 14 + 5) == std::vector<float>{0, 1, 0});
  CHECK(std::vector<float>(f.begin() + 21 + 2, f.begin() + 21 + 5) == std::vector<float>{0, 0, 1});
  CHECK(data.train.indices == std::vector<std::int32_t>{0, 1, 0, 2});  // z is unknown: 2
  CHECK(data.train.targets == std::vector<float>{1.5f, 2.5f, 3.5f, 4.5f});
  // e sits at 5..6: row 1 is p (slot 0), row 4 is r (the unknown slot 1).
  CHECK(std::vector<float>(f.begin() + 5, f.begin() + 7) == std::vector<float>{1, 0});
  CHECK(std::vector<float>(f.begin() + 21 + 5, f.begin() + 21 + 7) == std::vector<float>{0, 1});
}
