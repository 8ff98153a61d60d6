// fit: one streaming pass over the training rows collects what the statistics need
// (number columns keep their training values, which is what an exact median needs;
// category columns count values), then each number column's chain is fitted stage by
// stage, each stage on the output of the stages before it. transform applies the same
// stage functions, so fit and transform cannot disagree.
#include "runtime/data/pipeline.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>

#include "runtime/data/data_error.h"
#include "runtime/data/json_fields.h"

namespace kiln::data {
namespace {

using nlohmann::json;
using sema::ColumnKind;

const char* kind_name(ColumnKind kind) {
  switch (kind) {
    case ColumnKind::kNumber: return "number";
    case ColumnKind::kCategory: return "category";
    case ColumnKind::kPixels: return "pixels";
  }
  return "number";
}

// The numeric stages by kind, so the per-value loop switches instead of comparing names
// (a pixel column applies its stages 47 million times while Fashion-MNIST loads).
enum class NumberStage { kFill, kStandardize, kMinMax, kLog1p, kClip, kScale, kOther };

NumberStage number_stage(const std::string& op) {
  if (op == "fill") return NumberStage::kFill;
  if (op == "standardize") return NumberStage::kStandardize;
  if (op == "min_max") return NumberStage::kMinMax;
  if (op == "log1p") return NumberStage::kLog1p;
  if (op == "clip") return NumberStage::kClip;
  if (op == "scale") return NumberStage::kScale;
  return NumberStage::kOther;
}

double apply_stage(NumberStage kind, const FittedStage& s, double x) {
  switch (kind) {
    case NumberStage::kFill: return std::isnan(x) ? s.value : x;
    case NumberStage::kStandardize: return (x - s.mean) / s.stddev;
    case NumberStage::kMinMax: return s.high > s.low ? (x - s.low) / (s.high - s.low) : 0.0;
    case NumberStage::kLog1p: return std::log1p(x);
    case NumberStage::kClip: return std::isnan(x) ? x : std::clamp(x, s.low, s.high);
    case NumberStage::kScale: return x * s.value;
    case NumberStage::kOther: break;
  }
  return x;  // passthrough; bucketize / one_hot / index are terminal and handled by the caller
}

double apply_stage(const FittedStage& s, double x) {
  return apply_stage(number_stage(s.op), s, x);
}

// The bucket of x: the number of edges <= x, so bucket i holds edges[i-1] <= x < edges[i].
std::int64_t bucket_of(const std::vector<double>& edges, double x) {
  return std::upper_bound(edges.begin(), edges.end(), x) - edges.begin();
}

void fit_number_stages(std::vector<FittedStage>& stages, std::vector<double>& values) {
  for (FittedStage& s : stages) {
    std::vector<double> finite;
    bool needs_stats = (s.op == "fill" && s.fill_mode != "constant") || s.op == "standardize" || s.op == "min_max";
    if (needs_stats) {
      finite.reserve(values.size());
      for (double v : values) {
        if (std::isfinite(v)) finite.push_back(v);
      }
    }
    if (s.op == "fill" && s.fill_mode == "median") {
      s.value = median_of(finite);
    } else if (s.op == "fill" && s.fill_mode == "mean") {
      double sum = 0;
      for (double v : finite) sum += v;
      s.value = finite.empty() ? 0.0 : sum / static_cast<double>(finite.size());
    } else if (s.op == "standardize") {
      // Two passes for accuracy; population deviation; a constant column divides by 1.
      double sum = 0;
      for (double v : finite) sum += v;
      s.mean = finite.empty() ? 0.0 : sum / static_cast<double>(finite.size());
      double squares = 0;
      for (double v : finite) squares += (v - s.mean) * (v - s.mean);
      double sd = finite.empty() ? 0.0 : std::sqrt(squares / static_cast<double>(finite.size()));
      s.stddev = sd > 0 && std::isfinite(sd) ? sd : 1.0;
    } else if (s.op == "min_max") {
      s.low = finite.empty() ? 0.0 : *std::min_element(finite.begin(), finite.end());
      s.high = finite.empty() ? 0.0 : *std::max_element(finite.begin(), finite.end());
    }
    if (s.op == "bucketize") break;
    for (double& v : values) v = apply_stage(s, v);
  }
}

FittedColumn skeleton(const sema::FeatureColumn& col) {
  FittedColumn out;
  out.name = col.name;
  out.kind = col.kind;
  out.is_label = col.is_label;
  out.is_index = col.is_index;
  out.pixel_shape = col.pixel_shape;
  out.width = col.width;
  for (const sema::TransformSpec& t : col.transforms) {
    FittedStage s;
    s.op = t.name;
    if (t.name == "fill") {
      s.fill_mode = t.fill_mode;
      s.value = t.constant;
      s.text = t.constant_text;
    } else if (t.name == "scale") {
      s.value = t.constant;
    } else if (t.name == "clip") {
      s.low = t.low;
      s.high = t.high;
    } else if (t.name == "bucketize") {
      s.edges = t.edges;
    } else if (t.name == "one_hot" || t.name == "index") {
      s.levels = t.levels;
    }
    out.stages.push_back(std::move(s));
  }
  // The values a closed category can take, in declared order.
  std::vector<std::string> declared = col.levels;
  if (declared.empty() && col.kind == ColumnKind::kCategory) {
    for (std::int64_t k = 0; k < col.class_count; ++k) declared.push_back(std::to_string(k));
  }
  if (col.is_label && col.kind == ColumnKind::kCategory) out.classes = declared;
  // A closed category that fits in its encoding keeps its declared order: nothing to learn.
  if (!out.stages.empty() && out.stages.back().levels > 0 && !declared.empty() &&
      static_cast<std::int64_t>(declared.size()) <= out.stages.back().levels) {
    out.vocabulary = declared;
  }
  return out;
}

// The value a category cell has after its fill, or nullptr when it stays missing.
const std::string* category_value(const FittedColumn& col, const Row& row, std::size_t c) {
  if (!row.missing[c]) return &row.texts[c];
  for (const FittedStage& s : col.stages) {
    if (s.op == "fill") return &s.text;
  }
  return nullptr;
}

struct ValueCount {
  std::int64_t count = 0;
  std::int64_t first_seen = 0;
};

// Typed reads of a pipeline document (json_fields.h): each names what is wrong and where.
[[noreturn]] void malformed(const std::string& what) {
  throw DataError("pipeline", 0, "malformed pipeline document: " + what);
}

void expect(const json& v, JsonKind kind, const std::string& where) {
  if (std::string problem = json_kind_problem(v, kind, where); !problem.empty()) malformed(problem);
}

// Member `key` of the object at `where` ("" for the document itself).
const json& member(const json& object, const char* key, const std::string& where) {
  expect(object, JsonKind::kObject, where.empty() ? "the document" : where);
  const auto it = object.find(key);
  if (it == object.end()) malformed(json_path(where, key) + " is missing");
  return *it;
}

std::string text_of(const json& v, const std::string& where) {
  expect(v, JsonKind::kString, where);
  return v.get<std::string>();
}

bool flag_of(const json& v, const std::string& where) {
  expect(v, JsonKind::kBool, where);
  return v.get<bool>();
}

std::int64_t integer_of(const json& v, const std::string& where) {
  expect(v, JsonKind::kInteger, where);
  return v.get<std::int64_t>();
}

double number_of(const json& v, const std::string& where) {
  expect(v, JsonKind::kNumber, where);
  return v.get<double>();
}

template <class T, class Read>
std::vector<T> list_of(const json& v, const std::string& where, Read read) {
  expect(v, JsonKind::kArray, where);
  std::vector<T> out;
  for (std::size_t i = 0; i < v.size(); ++i) out.push_back(read(v[i], fmt::format("{}[{}]", where, i)));
  return out;
}

// An optional member: `fallback` when absent, else read as `read` does.
template <class T, class Read>
T optional_of(const json& object, const char* key, T fallback, const std::string& where, Read read) {
  const auto it = object.find(key);
  return it == object.end() ? fallback : read(*it, json_path(where, key));
}

}  // namespace

double median_of(std::vector<double>& values) {
  std::erase_if(values, [](double v) { return !std::isfinite(v); });
  if (values.empty()) return 0.0;
  std::size_t mid = values.size() / 2;
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(mid), values.end());
  double upper = values[mid];
  if (values.size() % 2 == 1) return upper;
  double lower = *std::max_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(mid));
  return lower + (upper - lower) / 2;
}

FittedPipeline fit(const sema::FeatureSet& set, RowSource& training_rows) {
  FittedPipeline p;
  p.features = set.name;
  for (const sema::FeatureColumn& col : set.columns) p.columns.push_back(skeleton(col));
  const std::size_t n = p.columns.size();
  std::vector<std::vector<double>> numbers(n);
  std::vector<bool> keep_numbers(n, false), count_values(n, false);
  for (std::size_t c = 0; c < n; ++c) {
    const FittedColumn& col = p.columns[c];
    if (col.kind == ColumnKind::kNumber) {
      for (const FittedStage& s : col.stages) {
        keep_numbers[c] = keep_numbers[c] || (s.op == "fill" && s.fill_mode != "constant") || s.op == "standardize" ||
                          s.op == "min_max";
      }
    }
    count_values[c] = col.kind == ColumnKind::kCategory && !col.is_label && col.vocabulary.empty();
  }
  std::vector<std::map<std::string, ValueCount>> counts(n);
  std::vector<std::int64_t> distinct(n, 0);
  Row row;
  std::int64_t rows = 0;
  while (training_rows.next(row)) {
    ++rows;
    for (std::size_t c = 0; c < n; ++c) {
      if (keep_numbers[c]) numbers[c].push_back(row.numbers[c]);
      if (!count_values[c]) continue;
      const std::string* value = category_value(p.columns[c], row, c);
      if (value == nullptr) continue;  // missing and not filled: it is "unknown", not a value
      auto [it, inserted] = counts[c].try_emplace(*value);
      if (inserted) it->second.first_seen = distinct[c]++;
      ++it->second.count;
    }
  }
  if (rows == 0) throw DataError(set.name, 0, "no training rows to fit the feature pipeline on");
  for (std::size_t c = 0; c < n; ++c) {
    FittedColumn& col = p.columns[c];
    if (keep_numbers[c]) fit_number_stages(col.stages, numbers[c]);
    if (!count_values[c]) continue;
    // The N most frequent values; ties go to the value seen first in the training split.
    std::vector<std::pair<std::string, ValueCount>> ranked(counts[c].begin(), counts[c].end());
    std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
      if (a.second.count != b.second.count) return a.second.count > b.second.count;
      return a.second.first_seen < b.second.first_seen;
    });
    auto levels = static_cast<std::size_t>(col.stages.back().levels);
    for (std::size_t i = 0; i < ranked.size() && i < levels; ++i) col.vocabulary.push_back(ranked[i].first);
  }
  p.finish();
  return p;
}

void FittedPipeline::finish() {
  width_ = 0;
  index_columns_ = class_labels_ = number_labels_ = 0;
  lookup_.assign(columns.size(), {});
  const FittedColumn* only_input = nullptr;
  std::size_t inputs = 0;
  for (std::size_t c = 0; c < columns.size(); ++c) {
    FittedColumn& col = columns[c];
    col.offset = width_;
    width_ += col.width;
    if (col.is_label) {
      (col.kind == ColumnKind::kCategory ? class_labels_ : number_labels_) += 1;
      for (std::size_t k = 0; k < col.classes.size(); ++k) lookup_[c][col.classes[k]] = static_cast<std::int32_t>(k);
      continue;
    }
    if (col.is_index) {
      ++index_columns_;
    } else {
      ++inputs;
      only_input = &col;
    }
    for (std::size_t k = 0; k < col.vocabulary.size(); ++k) {
      lookup_[c].emplace(col.vocabulary[k], static_cast<std::int32_t>(k));
    }
  }
  if (inputs == 1 && only_input->kind == ColumnKind::kPixels && only_input->pixel_shape.size() == 3) {
    row_shape_ = only_input->pixel_shape;
  } else {
    row_shape_ = {width_};
  }
}

std::string FittedPipeline::transform_into(const Row& row, float* features, std::int32_t* indices,
                                           std::int32_t* classes, float* targets, bool labels_optional) const {
  std::int64_t index_at = 0, class_at = 0, target_at = 0;
  for (std::size_t c = 0; c < columns.size(); ++c) {
    const FittedColumn& col = columns[c];
    float* out = features + col.offset;
    if (col.kind == ColumnKind::kPixels) {
      if (static_cast<std::int64_t>(row.pixels.size()) != col.width) {
        return fmt::format("column '{}' has {} pixels, expected {}", col.name, row.pixels.size(), col.width);
      }
      NumberStage kinds[8];
      const std::size_t stages = col.stages.size();
      if (stages > 8) {  // never in practice; the general loop
        for (std::size_t i = 0; i < row.pixels.size(); ++i) {
          double x = row.pixels[i];
          for (const FittedStage& s : col.stages) x = apply_stage(s, x);
          out[i] = static_cast<float>(x);
        }
      } else {
        for (std::size_t k = 0; k < stages; ++k) kinds[k] = number_stage(col.stages[k].op);
        for (std::size_t i = 0; i < row.pixels.size(); ++i) {
          double x = row.pixels[i];
          for (std::size_t k = 0; k < stages; ++k) x = apply_stage(kinds[k], col.stages[k], x);
          out[i] = static_cast<float>(x);
        }
      }
      // A pixel from a text record may be any number: one beyond a float's range is refused,
      // as a number column's value is (an image from an IDX file never is).
      for (std::size_t i = 0; i < row.pixels.size(); ++i) {
        if (!std::isfinite(out[i])) {
          return fmt::format("column '{}': pixel {} becomes {} after its transforms", col.name, i, out[i]);
        }
      }
      continue;
    }
    if (col.kind == ColumnKind::kCategory) {
      const std::string* value = category_value(col, row, c);
      auto found = value == nullptr ? lookup_[c].end() : lookup_[c].find(*value);
      if (col.is_label) {
        if (found == lookup_[c].end() && labels_optional) {
          classes[class_at++] = -1;
          continue;
        }
        if (found == lookup_[c].end()) {
          return fmt::format("'{}' is not a class of label '{}'", value ? *value : "", col.name);
        }
        classes[class_at++] = found->second;
        continue;
      }
      std::int64_t levels = col.stages.back().levels;
      std::int64_t slot = found == lookup_[c].end() ? levels : found->second;  // N is "unknown"
      if (col.is_index) {
        indices[index_at++] = static_cast<std::int32_t>(slot);
      } else {
        std::fill(out, out + col.width, 0.0f);
        out[slot] = 1.0f;
      }
      continue;
    }
    double x = row.numbers[c];
    if (col.is_label && labels_optional && (row.missing[c] || !std::isfinite(x))) {
      targets[target_at++] = std::nanf("");
      continue;
    }
    const FittedStage* bucketize = nullptr;
    for (const FittedStage& s : col.stages) {
      if (s.op == "bucketize") {
        bucketize = &s;
        break;
      }
      x = apply_stage(s, x);
    }
    if (!std::isfinite(x)) {
      return fmt::format("column '{}': the value {} becomes {} after its transforms", col.name,
                         row.missing[c] ? std::string("(missing)") : fmt::format("{}", row.numbers[c]), x);
    }
    if (col.is_label) {
      targets[target_at++] = static_cast<float>(x);
    } else if (bucketize != nullptr) {
      std::fill(out, out + col.width, 0.0f);
      out[bucket_of(bucketize->edges, x)] = 1.0f;
    } else {
      out[0] = static_cast<float>(x);
    }
  }
  return "";
}

TransformedRow FittedPipeline::transform(const Row& row) const {
  TransformedRow t;
  t.features.assign(static_cast<std::size_t>(width_), 0.0f);
  t.indices.assign(static_cast<std::size_t>(index_columns_), 0);
  t.classes.assign(static_cast<std::size_t>(class_labels_), 0);
  t.targets.assign(static_cast<std::size_t>(number_labels_), 0.0f);
  std::string reason = transform_into(row, t.features.data(), t.indices.data(), t.classes.data(), t.targets.data());
  if (!reason.empty()) throw DataError(features, row.line, reason);
  return t;
}

// JSON: {"format": "kiln.pipeline", "version": 1, "features": NAME, "width": W, "columns": [...]}.
// Doubles are written with enough digits to read back bit for bit.
nlohmann::json FittedPipeline::to_json() const {
  json cols = json::array();
  for (const FittedColumn& col : columns) {
    json stages = json::array();
    for (const FittedStage& s : col.stages) {
      json j = {{"op", s.op}};
      if (s.op == "fill") {
        j["mode"] = s.fill_mode;
        if (col.kind == ColumnKind::kCategory) {
          j["text"] = s.text;
        } else {
          j["value"] = s.value;
        }
      } else if (s.op == "scale") {
        j["factor"] = s.value;
      } else if (s.op == "standardize") {
        j["mean"] = s.mean;
        j["std"] = s.stddev;
      } else if (s.op == "min_max" || s.op == "clip") {
        j["low"] = s.low;
        j["high"] = s.high;
      } else if (s.op == "bucketize") {
        j["edges"] = s.edges;
      } else if (s.op == "one_hot" || s.op == "index") {
        j["levels"] = s.levels;
      }
      stages.push_back(std::move(j));
    }
    json c = {{"name", col.name},      {"kind", kind_name(col.kind)}, {"label", col.is_label},
              {"index", col.is_index}, {"width", col.width},          {"stages", std::move(stages)}};
    if (!col.pixel_shape.empty()) c["pixel_shape"] = col.pixel_shape;
    if (col.is_label && col.kind == ColumnKind::kCategory) c["classes"] = col.classes;
    if (!col.stages.empty() && col.stages.back().levels > 0) c["vocabulary"] = col.vocabulary;
    cols.push_back(std::move(c));
  }
  return json{{"format", "kiln.pipeline"},
              {"version", 1},
              {"features", features},
              {"width", width_},
              {"columns", std::move(cols)}};
}

FittedPipeline FittedPipeline::from_json(const nlohmann::json& doc) {
  FittedPipeline p;
  if (!doc.is_object() || doc.value("format", json()) != "kiln.pipeline" || doc.value("version", json()) != 1) {
    throw DataError("pipeline", 0, "not a kiln.pipeline version 1 document");
  }
  p.features = text_of(member(doc, "features", ""), "features");
  const json& columns = member(doc, "columns", "");
  expect(columns, JsonKind::kArray, "columns");
  for (std::size_t ci = 0; ci < columns.size(); ++ci) {
    const json& c = columns[ci];
    const std::string at = fmt::format("columns[{}]", ci);
    const auto field = [&](const char* key) -> const json& { return member(c, key, at); };
    const auto path = [&](const char* key) { return json_path(at, key); };
    FittedColumn col;
    col.name = text_of(field("name"), path("name"));
    const std::string kind = text_of(field("kind"), path("kind"));
    if (kind == "number") {
      col.kind = ColumnKind::kNumber;
    } else if (kind == "category") {
      col.kind = ColumnKind::kCategory;
    } else if (kind == "pixels") {
      col.kind = ColumnKind::kPixels;
    } else {
      throw DataError("pipeline", 0, "column '" + col.name + "' has unknown kind '" + kind + "'");
    }
    col.is_label = flag_of(field("label"), path("label"));
    col.is_index = flag_of(field("index"), path("index"));
    col.width = integer_of(field("width"), path("width"));
    if (col.width < 0) malformed(path("width") + " is negative");
    col.pixel_shape =
        optional_of(c, "pixel_shape", std::vector<std::int64_t>{}, at,
                    [](const json& v, const std::string& w) { return list_of<std::int64_t>(v, w, integer_of); });
    const auto texts = [](const json& v, const std::string& w) { return list_of<std::string>(v, w, text_of); };
    col.classes = optional_of(c, "classes", std::vector<std::string>{}, at, texts);
    col.vocabulary = optional_of(c, "vocabulary", std::vector<std::string>{}, at, texts);
    const json& stages = field("stages");
    expect(stages, JsonKind::kArray, path("stages"));
    for (std::size_t si = 0; si < stages.size(); ++si) {
      const json& j = stages[si];
      const std::string st = fmt::format("{}.stages[{}]", at, si);
      FittedStage s;
      s.op = text_of(member(j, "op", st), json_path(st, "op"));
      s.fill_mode = optional_of(j, "mode", std::string(), st, text_of);
      s.value = optional_of(j, "value", optional_of(j, "factor", 0.0, st, number_of), st, number_of);
      s.text = optional_of(j, "text", std::string(), st, text_of);
      s.mean = optional_of(j, "mean", 0.0, st, number_of);
      s.stddev = optional_of(j, "std", 1.0, st, number_of);
      s.low = optional_of(j, "low", 0.0, st, number_of);
      s.high = optional_of(j, "high", 0.0, st, number_of);
      s.edges = optional_of(j, "edges", std::vector<double>{}, st,
                            [](const json& v, const std::string& w) { return list_of<double>(v, w, number_of); });
      s.levels = optional_of(j, "levels", std::int64_t{0}, st, integer_of);
      col.stages.push_back(std::move(s));
    }
    if (col.kind == ColumnKind::kCategory && !col.is_label) {
      std::int64_t levels = col.stages.empty() ? 0 : col.stages.back().levels;
      if (levels <= 0) {
        throw DataError("pipeline", 0, "category column '" + col.name + "' has no one_hot or index stage");
      }
      if (static_cast<std::int64_t>(col.vocabulary.size()) > levels || (!col.is_index && col.width != levels + 1)) {
        throw DataError("pipeline", 0, "column '" + col.name + "' has a vocabulary or width that does not fit");
      }
    }
    if (col.kind == ColumnKind::kNumber && !col.is_label) {
      std::int64_t expected = !col.stages.empty() && col.stages.back().op == "bucketize"
                                  ? static_cast<std::int64_t>(col.stages.back().edges.size()) + 1
                                  : 1;
      if (col.width != expected) throw DataError("pipeline", 0, "column '" + col.name + "' has the wrong width");
    }
    p.columns.push_back(std::move(col));
  }
  p.finish();
  if (doc.contains("width") && doc["width"].is_number_integer() && doc["width"].get<std::int64_t>() != p.width_) {
    throw DataError("pipeline", 0, "the columns add up to a different width than the document says");
  }
  return p;
}

void FittedPipeline::save(const std::filesystem::path& path) const {
  std::ofstream out(path);
  out << to_json().dump(2) << "\n";
  if (!out) throw DataError(path, 0, "cannot write the pipeline file");
}

FittedPipeline FittedPipeline::load(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw DataError(path, 0, "cannot open the pipeline file");
  json doc = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) throw DataError(path, 0, "not valid JSON");
  try {
    return from_json(doc);
  } catch (const DataError& e) {
    throw DataError(path, 0, e.reason());
  }
}

}  // namespace kiln::data
