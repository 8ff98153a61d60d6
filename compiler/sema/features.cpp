// check_features: resolves a features block into a FeatureSet. Each column is checked in
// three steps (type and levels, transform chain, fit to its kind), then the block as a
// whole (duplicates, an input column, the source's header). Every problem is reported;
// the set is returned only when none was an error.
#include "compiler/sema/features.h"

#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <string>
#include <system_error>
#include <unordered_set>

#include "compiler/sema/literals.h"

namespace kiln::sema {
namespace {

using ast::ExprKind;

constexpr const char* kSourceHint = "write csv(\"file.csv\") or idx(images: \"...\", labels: \"...\")";
// The header line of a csv file is read up to this many bytes, the longest record the CSV
// reader takes (runtime/data/csv_reader.h, kMaxRecordBytes); a longer line is refused there
// too. An image's header is long: 224x224x3 pixel columns take about 1.4 MB.
constexpr std::size_t kMaxHeaderBytes = std::size_t{16} << 20;

const std::vector<std::string>& transform_names() {
  static const std::vector<std::string> names = {"fill",  "standardize", "min_max", "log1p", "clip",
                                                 "scale", "bucketize",   "one_hot", "index", "passthrough"};
  return names;
}

Span cover(Span a, Span b) {
  return Span{a.file, std::min(a.begin, b.begin), std::max(a.end, b.end)};
}

std::string show(const SourceManager& sources, Span span) {
  std::string text(sources.text(span));
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return text;
}

// Binds the arguments of a transform to its parameters, positional ones in order.
// Reports unknown names, repeats and surplus arguments; a parameter left unbound is kNoExpr.
class ArgBinder {
 public:
  ArgBinder(const ast::File& file, const ast::Transform& t, std::vector<std::string> params, Diagnostics& diags)
      : params_(std::move(params)), values_(params_.size(), ast::kNoExpr) {
    std::size_t next = 0;
    for (const ast::CallArg& arg : t.args) {
      Span at = arg.name.empty() ? file.expr(arg.value).span : arg.name_span;
      std::size_t slot = params_.size();
      if (arg.name.empty()) {
        if (next >= params_.size()) {
          ok_ = false;
          diags.error(at, t.name + " takes " + count_text() + ", got more",
                      params_.empty() ? "write '" + t.name + "' without arguments"
                                      : "write " + t.name + "(" + join(params_) + ")");
          continue;
        }
        slot = next++;
      } else {
        for (std::size_t i = 0; i < params_.size(); ++i) {
          if (params_[i] == arg.name) slot = i;
        }
        if (slot == params_.size()) {
          ok_ = false;
          diags.error(at, t.name + " has no argument '" + arg.name + "'",
                      did_you_mean(arg.name, params_, t.name + " takes " + join(params_)));
          continue;
        }
      }
      if (values_[slot] != ast::kNoExpr) {
        ok_ = false;
        diags.error(at, "argument '" + params_[slot] + "' of " + t.name + " is given twice");
        continue;
      }
      values_[slot] = arg.value;
    }
  }

  bool ok() const { return ok_; }
  ast::ExprId value(std::size_t i) const { return values_[i]; }

 private:
  std::string count_text() const {
    return params_.size() == 1 ? "one argument" : std::to_string(params_.size()) + " arguments";
  }

  std::vector<std::string> params_;
  std::vector<ast::ExprId> values_;
  bool ok_ = true;
};

bool is_encoding(const std::string& name) {
  return name == "one_hot" || name == "index";
}

const char* kind_name(ColumnKind kind) {
  switch (kind) {
    case ColumnKind::kNumber: return "number";
    case ColumnKind::kCategory: return "category";
    case ColumnKind::kPixels: return "pixels";
  }
  return "number";
}

// Which column kinds each transform applies to.
bool transform_fits(const std::string& name, ColumnKind kind) {
  if (name == "fill") return kind != ColumnKind::kPixels;
  if (name == "scale" || name == "clip" || name == "passthrough") return kind != ColumnKind::kCategory;
  if (is_encoding(name)) return kind == ColumnKind::kCategory;
  return kind == ColumnKind::kNumber;  // standardize, min_max, log1p, bucketize
}

std::string misfit_hint(const std::string& name, ColumnKind kind) {
  if (is_encoding(name) && kind == ColumnKind::kNumber) {
    return "to one-hot a number, bucketize it: bucketize([e1, e2, ...]); or declare the column as a category";
  }
  if (kind == ColumnKind::kCategory) {
    return "a category column is filled with fill(constant: \"...\") and encoded with one_hot(levels: N) or "
           "index(levels: N)";
  }
  if (kind == ColumnKind::kPixels) return "pixels take scale(f), clip(lo, hi) and passthrough";
  return name + " applies to " + (is_encoding(name) ? "category" : "number") + " columns";
}

class ColumnChecker {
 public:
  ColumnChecker(const ast::File& file, const SourceManager& sources, Diagnostics& diags)
      : file_(file), sources_(sources), diags_(diags) {}

  FeatureColumn check(const ast::Column& c) {
    FeatureColumn col;
    col.name = c.name;
    col.span = c.name_span;
    col.is_label = c.is_label;
    check_type(c, col);
    if (!kind_known_) return col;
    check_transforms(c, col);
    compute_width(col);
    return col;
  }

 private:
  void check_type(const ast::Column& c, FeatureColumn& col) {
    static const std::vector<std::string> kKinds = {"number", "category", "pixels"};
    kind_known_ = true;
    if (c.type_name == "number") {
      col.kind = ColumnKind::kNumber;
    } else if (c.type_name == "category") {
      col.kind = ColumnKind::kCategory;
    } else if (c.type_name == "pixels") {
      col.kind = ColumnKind::kPixels;
    } else {
      kind_known_ = false;
      diags_.error(c.type_span, "unknown column type '" + c.type_name + "'",
                   did_you_mean(c.type_name, kKinds, "column types are number, category and pixels"));
      return;
    }
    Span levels_span = c.levels.empty() ? c.type_span : cover(c.levels.front().span, c.levels.back().span);
    if (col.kind == ColumnKind::kNumber && c.has_levels) {
      diags_.error(levels_span, "a number column has no levels",
                   "for a closed set of values write '" + c.name + " : category[...]'");
    }
    if (col.kind == ColumnKind::kCategory && c.has_levels) check_category_levels(c, col);
    if (col.kind == ColumnKind::kPixels) check_pixel_shape(c, col, levels_span);
    if (c.is_label && col.kind == ColumnKind::kPixels) {
      diags_.error(c.type_span, "a label must be a number or a category column, not pixels");
    }
    if (c.is_label && col.kind == ColumnKind::kCategory && !c.has_levels) {
      diags_.error(c.type_span, "category label '" + c.name + "' needs its classes",
                   "list them, category[a, b, ...], or give their count, category[N] for 0..N-1");
    }
  }

  void check_category_levels(const ast::Column& c, FeatureColumn& col) {
    if (c.levels.size() == 1 && c.levels[0].kind == ast::Level::Kind::kInt) {
      std::optional<std::int64_t> n = parse_int(c.levels[0]);
      if (n && *n < 1) {
        diags_.error(c.levels[0].span, "category[" + c.levels[0].text + "] has no classes",
                     "category[N] declares the integer classes 0..N-1; N must be at least 1");
      } else if (n) {
        col.class_count = *n;
      }
      return;
    }
    std::map<std::string, Span> seen;
    for (const ast::Level& level : c.levels) {
      if (level.text.empty()) {
        diags_.error(level.span, "a level must not be empty");
        continue;
      }
      auto [it, inserted] = seen.emplace(level.text, level.span);
      if (!inserted) {
        diags_.error(level.span, "duplicate level '" + level.text + "' in column '" + c.name + "'",
                     "'" + level.text + "' is already level " + std::to_string(index_of(c, level.text)) + " (at " +
                         sources_.location(it->second) + ")");
        continue;
      }
      col.levels.push_back(level.text);
    }
    col.class_count = static_cast<std::int64_t>(col.levels.size());
  }

  static std::size_t index_of(const ast::Column& c, const std::string& text) {
    for (std::size_t i = 0; i < c.levels.size(); ++i) {
      if (c.levels[i].text == text) return i;
    }
    return 0;
  }

  std::optional<std::int64_t> parse_int(const ast::Level& level) {
    std::int64_t value = 0;
    const char* end = level.text.data() + level.text.size();
    auto [p, ec] = std::from_chars(level.text.data(), end, value);
    if (ec != std::errc() || p != end) {
      diags_.error(level.span, "'" + level.text + "' is out of range", "integers must fit in 64 bits");
      return std::nullopt;
    }
    return value;
  }

  void check_pixel_shape(const ast::Column& c, FeatureColumn& col, Span levels_span) {
    if (!c.has_levels) {
      diags_.error(c.type_span, "pixels needs the image shape",
                   "write pixels[h, w] for grey-scale or pixels[h, w, c] for c channels");
      return;
    }
    if (c.levels.size() != 2 && c.levels.size() != 3) {
      diags_.error(levels_span, "pixels takes 2 or 3 dimensions, got " + std::to_string(c.levels.size()),
                   "write pixels[h, w] or pixels[h, w, c]");
      return;
    }
    bool ok = true;
    std::int64_t elements = 1;
    for (const ast::Level& level : c.levels) {
      if (level.kind != ast::Level::Kind::kInt) {
        diags_.error(level.span, "a pixels dimension must be an integer, not '" + level.text + "'",
                     "write pixels[h, w] or pixels[h, w, c], e.g. pixels[28, 28]");
        ok = false;
        continue;
      }
      std::optional<std::int64_t> n = parse_int(level);
      if (!n) {
        ok = false;
      } else if (*n < 1) {
        diags_.error(level.span, "a pixels dimension must be positive");
        ok = false;
      } else if (__builtin_mul_overflow(elements, *n, &elements) || elements > (std::int64_t{1} << 31)) {
        diags_.error(levels_span, "image of " + show(sources_, levels_span) + " pixels is too large",
                     "an image column holds at most 2^31 values per row");
        ok = false;
        break;
      } else {
        col.pixel_shape.push_back(*n);
      }
    }
    if (!ok) col.pixel_shape.clear();
  }

  void check_transforms(const ast::Column& c, FeatureColumn& col) {
    const ast::Transform* terminal = nullptr;  // one_hot, index or bucketize: must be last
    for (const ast::Transform& t : c.transforms) {
      Span name_span{t.span.file, t.span.begin, static_cast<std::uint32_t>(t.span.begin + t.name.size())};
      const std::vector<std::string>& known = transform_names();
      if (std::find(known.begin(), known.end(), t.name) == known.end()) {
        diags_.error(name_span, "unknown transform '" + t.name + "'",
                     did_you_mean(t.name, known, "transforms are " + join(known)));
        continue;
      }
      if (terminal != nullptr) {
        diags_.error(name_span, t.name + " cannot follow " + terminal->name,
                     terminal->name + " must be the last transform of column '" + c.name + "'");
      }
      if (c.is_label && is_encoding(t.name)) {
        diags_.error(
            name_span, "label '" + c.name + "' cannot be encoded with " + t.name,
            "a category label is fed to the loss as its class index; remove '-> " + show(sources_, t.span) + "'");
        continue;
      }
      if (!transform_fits(t.name, col.kind)) {
        diags_.error(name_span,
                     t.name + " does not apply to " + std::string(kind_name(col.kind)) + " column '" + c.name + "'",
                     misfit_hint(t.name, col.kind));
        continue;
      }
      std::optional<TransformSpec> spec = check_arguments(t, col);
      if (!spec) continue;
      spec->span = t.span;
      if (is_encoding(t.name) || t.name == "bucketize") terminal = &t;
      col.transforms.push_back(std::move(*spec));
    }
    if (col.kind == ColumnKind::kCategory && !c.is_label &&
        (col.transforms.empty() || !is_encoding(col.transforms.back().name))) {
      bool reported = false;  // an encoding that failed its own check was already reported
      for (const ast::Transform& t : c.transforms) reported |= is_encoding(t.name);
      if (!reported) {
        std::string n = col.class_count > 0 ? std::to_string(col.class_count) : "N";
        diags_.error(c.name_span, "category column '" + c.name + "' must be encoded: add -> one_hot(levels: " + n +
                                      ") or -> index(levels: " + n + ")");
      }
    }
  }

  std::optional<Number> number_arg(const ArgBinder& args, std::size_t i, const std::string& what) {
    std::optional<Number> n = fold_number(file_, args.value(i));
    if (!n) {
      const ast::Expr& e = file_.expr(args.value(i));
      diags_.error(e.span, what + " must be a number, not '" + show(sources_, e.span) + "'");
    } else if (!std::isfinite(n->value)) {
      diags_.error(file_.expr(args.value(i)).span, what + " must be finite");
      return std::nullopt;
    }
    return n;
  }

  Span value_span(const ArgBinder& args, std::size_t i) const { return file_.expr(args.value(i)).span; }

  std::optional<TransformSpec> check_arguments(const ast::Transform& t, const FeatureColumn& col) {
    TransformSpec spec;
    spec.name = t.name;
    if (t.name == "fill") return check_fill(t, col);
    if (t.name == "clip") {
      ArgBinder args(file_, t, {"lo", "hi"}, diags_);
      if (!args.ok()) return std::nullopt;
      if (args.value(0) == ast::kNoExpr || args.value(1) == ast::kNoExpr) {
        diags_.error(t.span, "clip needs both bounds", "write clip(lo, hi), e.g. clip(0, 100)");
        return std::nullopt;
      }
      std::optional<Number> lo = number_arg(args, 0, "the lower bound of clip");
      std::optional<Number> hi = number_arg(args, 1, "the upper bound of clip");
      if (!lo || !hi) return std::nullopt;
      if (!(lo->value < hi->value)) {
        diags_.error(cover(value_span(args, 0), value_span(args, 1)), "clip needs lo < hi, got clip(" +
                                                                          show(sources_, value_span(args, 0)) + ", " +
                                                                          show(sources_, value_span(args, 1)) + ")");
        return std::nullopt;
      }
      spec.low = lo->value;
      spec.high = hi->value;
      return spec;
    }
    if (t.name == "scale") {
      ArgBinder args(file_, t, {"factor"}, diags_);
      if (!args.ok()) return std::nullopt;
      if (args.value(0) == ast::kNoExpr) {
        diags_.error(t.span, "scale needs a factor", "write scale(f), e.g. scale(0.01)");
        return std::nullopt;
      }
      std::optional<Number> f = number_arg(args, 0, "the factor of scale");
      if (!f) return std::nullopt;
      if (f->value == 0) {
        diags_.error(value_span(args, 0), "scale(0) would erase column '" + col.name + "'");
        return std::nullopt;
      }
      spec.constant = f->value;
      return spec;
    }
    if (t.name == "bucketize") return check_bucketize(t);
    if (is_encoding(t.name)) {
      ArgBinder args(file_, t, {"levels"}, diags_);
      if (!args.ok()) return std::nullopt;
      if (args.value(0) == ast::kNoExpr) {
        // A closed set of levels is its own count.
        if (col.class_count > 0) {
          spec.levels = col.class_count;
          return spec;
        }
        diags_.error(t.span, t.name + " needs the number of levels",
                     "write " + t.name + "(levels: N): the N most frequent training values are kept");
        return std::nullopt;
      }
      std::optional<Number> n = number_arg(args, 0, "levels");
      if (!n) return std::nullopt;
      if (!n->is_integer || n->integer < 1) {
        diags_.error(value_span(args, 0),
                     "levels must be a positive integer, not " + show(sources_, value_span(args, 0)),
                     t.name + "(levels: N) keeps the N most frequent values, plus one slot for unknown ones");
        return std::nullopt;
      }
      if (n->integer > (std::int64_t{1} << 31)) {
        diags_.error(value_span(args, 0), "levels " + show(sources_, value_span(args, 0)) + " is too large",
                     "at most 2^31 levels");
        return std::nullopt;
      }
      spec.levels = n->integer;
      return spec;
    }
    // standardize, min_max, log1p, passthrough
    if (!t.args.empty()) {
      Span first = t.args.front().name.empty() ? file_.expr(t.args.front().value).span : t.args.front().name_span;
      Span args_span = cover(first, file_.expr(t.args.back().value).span);
      diags_.error(args_span, t.name + " takes no arguments", "write '-> " + t.name + "'");
      return std::nullopt;
    }
    return spec;
  }

  std::optional<TransformSpec> check_fill(const ast::Transform& t, const FeatureColumn& col) {
    static const std::vector<std::string> kModes = {"median", "mean"};  // ties go to the first
    const char* usage = "write fill(mean), fill(median) or fill(constant: v)";
    TransformSpec spec;
    spec.name = "fill";
    if (t.args.empty()) {
      diags_.error(t.span, "fill needs to know what to fill with", usage);
      return std::nullopt;
    }
    if (t.args.size() > 1) {
      diags_.error(t.args[1].name.empty() ? file_.expr(t.args[1].value).span : t.args[1].name_span,
                   "fill takes one argument", usage);
      return std::nullopt;
    }
    const ast::CallArg& arg = t.args[0];
    const ast::Expr& value = file_.expr(arg.value);
    if (!arg.name.empty() && arg.name != "constant") {
      diags_.error(arg.name_span, "fill has no argument '" + arg.name + "'",
                   did_you_mean(arg.name, {"constant"}, usage));
      return std::nullopt;
    }
    if (arg.name.empty() && value.kind == ExprKind::kName) {
      if (value.text != "mean" && value.text != "median") {
        diags_.error(value.span, "unknown fill mode '" + value.text + "'", did_you_mean(value.text, kModes, usage));
        return std::nullopt;
      }
      if (col.kind != ColumnKind::kNumber) {
        diags_.error(value.span,
                     "fill(" + value.text + ") needs a number column; '" + col.name + "' is a " + kind_name(col.kind),
                     "fill a category with a level: fill(constant: \"unknown\")");
        return std::nullopt;
      }
      spec.fill_mode = value.text;
      return spec;
    }
    // fill(constant: v), or fill(v) for short.
    spec.fill_mode = "constant";
    if (col.kind == ColumnKind::kCategory) {
      if (value.kind == ExprKind::kString) {
        spec.constant_text = value.text;
        return spec;
      }
      if (value.kind == ExprKind::kNumber && value.is_integer) {
        spec.constant_text = value.text;
        spec.constant = value.number;
        return spec;
      }
      diags_.error(value.span, "the fill value of category column '" + col.name + "' must be a string",
                   "for example fill(constant: \"unknown\")");
      return std::nullopt;
    }
    std::optional<Number> n = fold_number(file_, arg.value);
    if (!n || !std::isfinite(n->value)) {
      diags_.error(value.span,
                   "the fill value of number column '" + col.name + "' must be a number, not '" +
                       show(sources_, value.span) + "'",
                   usage);
      return std::nullopt;
    }
    spec.constant = n->value;
    return spec;
  }

  std::optional<TransformSpec> check_bucketize(const ast::Transform& t) {
    const char* usage = "write bucketize([e1, e2, ...]) with increasing edges, e.g. bucketize([18, 30, 50])";
    ArgBinder args(file_, t, {"edges"}, diags_);
    if (!args.ok()) return std::nullopt;
    if (args.value(0) == ast::kNoExpr) {
      diags_.error(t.span, "bucketize needs its bucket edges", usage);
      return std::nullopt;
    }
    const ast::Expr& list = file_.expr(args.value(0));
    if (list.kind != ExprKind::kList) {
      diags_.error(list.span, "bucketize takes a list of edges", usage);
      return std::nullopt;
    }
    if (list.args.empty()) {
      diags_.error(list.span, "bucketize needs at least one edge", usage);
      return std::nullopt;
    }
    TransformSpec spec;
    spec.name = "bucketize";
    bool ok = true;
    for (std::size_t i = 0; i < list.args.size(); ++i) {
      const ast::Expr& item = file_.expr(list.args[i].value);
      std::optional<Number> n = fold_number(file_, list.args[i].value);
      if (!n || !std::isfinite(n->value)) {
        diags_.error(item.span, "a bucket edge must be a number, not '" + show(sources_, item.span) + "'");
        ok = false;
        continue;
      }
      if (!spec.edges.empty() && !(n->value > spec.edges.back())) {
        diags_.error(item.span,
                     "bucket edges must be strictly increasing: " + show(sources_, item.span) + " does not follow " +
                         show(sources_, file_.expr(list.args[i - 1].value).span),
                     usage);
        ok = false;
      }
      spec.edges.push_back(n->value);
    }
    if (!ok) return std::nullopt;
    return spec;
  }

  static void compute_width(FeatureColumn& col) {
    col.width = 0;
    col.is_index = !col.transforms.empty() && col.transforms.back().name == "index";
    if (col.is_label || col.is_index) return;
    switch (col.kind) {
      case ColumnKind::kNumber:
        col.width = 1;
        for (const TransformSpec& t : col.transforms) {
          if (t.name == "bucketize") col.width = static_cast<std::int64_t>(t.edges.size()) + 1;
        }
        break;
      case ColumnKind::kCategory:
        if (!col.transforms.empty() && col.transforms.back().name == "one_hot") {
          col.width = col.transforms.back().levels + 1;
        }
        break;
      case ColumnKind::kPixels:
        col.width = col.pixel_shape.empty() ? 0 : 1;
        for (std::int64_t d : col.pixel_shape) col.width *= d;
        break;
    }
  }

  const ast::File& file_;
  const SourceManager& sources_;
  Diagnostics& diags_;
  bool kind_known_ = true;
};

// One string argument of a source call.
std::optional<std::string> string_arg(const ast::File& file, const ast::CallArg& arg, const std::string& what,
                                      Diagnostics& diags) {
  const ast::Expr& value = file.expr(arg.value);
  if (value.kind != ExprKind::kString) {
    diags.error(value.span, what + " must be a string", kSourceHint);
    return std::nullopt;
  }
  if (value.text.empty()) {
    diags.error(value.span, what + " is empty", kSourceHint);
    return std::nullopt;
  }
  return value.text;
}

std::filesystem::path resolve(const std::filesystem::path& base_dir, const std::string& written) {
  std::filesystem::path p(written);
  if (p.is_absolute()) return p;
  return (base_dir / p).lexically_normal();
}

bool file_exists(const std::filesystem::path& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

struct ResolvedSource {
  SourceKind kind = SourceKind::kCsv;
  std::string csv_written;
  Span csv_span;
  std::filesystem::path csv, images, labels;
};

std::optional<ResolvedSource> check_source(const ast::File& file, const ast::FeaturesDecl& decl,
                                           const std::filesystem::path& base_dir, Diagnostics& diags) {
  static const std::vector<std::string> kSources = {"csv", "idx"};
  const ast::Expr& call = file.expr(decl.source);
  if (call.kind != ExprKind::kCall || file.expr(call.lhs).kind != ExprKind::kName) {
    diags.error(call.span, "a data source must be csv(...) or idx(...)", kSourceHint);
    return std::nullopt;
  }
  const ast::Expr& callee = file.expr(call.lhs);
  ResolvedSource out;
  if (callee.text == "csv") {
    out.kind = SourceKind::kCsv;
    if (call.args.size() != 1 || !call.args[0].name.empty()) {
      diags.error(call.span, "csv takes one argument, the path of the file", "write csv(\"data/file.csv\")");
      return std::nullopt;
    }
    std::optional<std::string> path = string_arg(file, call.args[0], "the csv path", diags);
    if (!path) return std::nullopt;
    out.csv_written = *path;
    out.csv_span = call.span;
    out.csv = resolve(base_dir, *path);
  } else if (callee.text == "idx") {
    out.kind = SourceKind::kIdx;
    static const std::vector<std::string> kArgs = {"images", "labels"};
    std::optional<std::string> images, labels;
    bool ok = true;
    for (const ast::CallArg& arg : call.args) {
      if (arg.name.empty()) {
        diags.error(file.expr(arg.value).span, "idx takes named arguments",
                    "write idx(images: \"...\", labels: \"...\")");
        ok = false;
      } else if (arg.name != "images" && arg.name != "labels") {
        diags.error(arg.name_span, "idx has no argument '" + arg.name + "'",
                    did_you_mean(arg.name, kArgs, "idx takes images and labels"));
        ok = false;
      } else {
        std::optional<std::string>& slot = arg.name == "images" ? images : labels;
        if (slot) {
          diags.error(arg.name_span, "argument '" + arg.name + "' of idx is given twice");
          ok = false;
          continue;
        }
        slot = string_arg(file, arg, "the " + arg.name + " path", diags);
        if (!slot) {
          ok = false;
          slot = std::string();  // reported; keeps a repeat from being reported as missing
        } else {
          std::filesystem::path resolved = resolve(base_dir, *slot);
          (arg.name == "images" ? out.images : out.labels) = resolved;
          if (!file_exists(resolved)) {
            diags.warning(file.expr(arg.value).span, "data file '" + *slot + "' not found",
                          "kiln check does not need the data; looked for " + resolved.string());
          }
        }
      }
    }
    for (const char* name : {"images", "labels"}) {
      // After a misspelt or positional argument, "missing" would only repeat that error.
      if (ok && !(std::string(name) == "images" ? images : labels)) {
        diags.error(call.span, std::string("idx needs '") + name + "'", "write idx(images: \"...\", labels: \"...\")");
        ok = false;
      }
    }
    if (!ok) return std::nullopt;
  } else {
    diags.error(callee.span, "unknown data source '" + callee.text + "'",
                did_you_mean(callee.text, kSources, kSourceHint));
    return std::nullopt;
  }
  return out;
}

// The column names of a csv header line: comma-separated, optionally quoted ("a ""b""").
std::vector<std::string> split_header(std::string line) {
  if (line.size() >= 3 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  std::vector<std::string> names;
  std::string field;
  bool quoted = false, was_quoted = false;
  std::size_t quoted_size = 0;  // the field's size at its closing quote
  auto finish = [&] {
    if (was_quoted && field.find_first_not_of(" \t", quoted_size) == std::string::npos) {
      field.resize(quoted_size);  // spaces after the closing quote
    } else {
      std::size_t b = field.find_first_not_of(" \t");
      std::size_t e = field.find_last_not_of(" \t");
      field = b == std::string::npos ? std::string() : field.substr(b, e - b + 1);
    }
    names.push_back(field);
    field.clear();
    was_quoted = false;
  };
  for (std::size_t i = 0; i < line.size(); ++i) {
    char ch = line[i];
    if (quoted) {
      if (ch == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        field.push_back('"');
        ++i;
      } else if (ch == '"') {
        quoted = false;
        quoted_size = field.size();
      } else {
        field.push_back(ch);
      }
    } else if (ch == '"' && field.find_first_not_of(" \t") == std::string::npos) {
      field.clear();
      quoted = was_quoted = true;
    } else if (ch == ',') {
      finish();
    } else {
      field.push_back(ch);
    }
  }
  finish();
  return names;
}

// The header line, from a plain or a gzip file (zlib reads both), as the CSV reader reads it;
// `too_long` when it has no end within kMaxHeaderBytes.
std::optional<std::string> read_first_line(const std::filesystem::path& path, bool& too_long) {
  too_long = false;
  gzFile in = gzopen(path.c_str(), "rb");
  if (in == nullptr) return std::nullopt;
  std::string line;
  int ch = -1;
  while (line.size() < kMaxHeaderBytes && (ch = gzgetc(in)) != -1 && ch != '\n') line.push_back(static_cast<char>(ch));
  if (line.size() == kMaxHeaderBytes) too_long = (ch = gzgetc(in)) != -1 && ch != '\n';
  int code = Z_OK;
  gzerror(in, &code);
  gzclose(in);
  if (code != Z_OK && code != Z_STREAM_END) return std::nullopt;
  return line;
}

void check_csv_header(const ResolvedSource& src, const FeatureSet& set, Diagnostics& diags) {
  if (!file_exists(src.csv)) {
    diags.warning(src.csv_span, "data file '" + src.csv_written + "' not found; columns are not checked against it",
                  "looked for " + src.csv.string());
    return;
  }
  bool too_long = false;
  std::optional<std::string> line = read_first_line(src.csv, too_long);
  if (!line) {
    diags.warning(src.csv_span,
                  "data file '" + src.csv_written + "' cannot be read; columns are not checked against it");
    return;
  }
  if (too_long) {
    diags.error(src.csv_span,
                "the first line of '" + src.csv_written + "' is longer than " + std::to_string(kMaxHeaderBytes >> 20) +
                    " MiB, the longest record Kiln reads",
                "a csv source starts with one header line naming its columns; is the file a csv file?");
    return;
  }
  std::vector<std::string> header = split_header(*line);
  if (header.size() == 1 && header[0].empty()) {
    diags.error(src.csv_span, "the first line of '" + src.csv_written + "' is empty",
                "a csv source starts with a header line naming its columns");
    return;
  }
  for (const FeatureColumn& col : set.columns) {
    if (col.kind == ColumnKind::kPixels) {
      const std::int64_t n = col.width;  // the product of its shape
      const std::unordered_set<std::string> names(header.begin(), header.end());
      for (std::int64_t i = 0; i < n; ++i) {
        const std::string name = col.name + "_" + std::to_string(i);
        if (names.count(name) != 0) continue;
        diags.error(col.span, "column '" + name + "' is not in the header of '" + src.csv_written + "'",
                    "pixels column '" + col.name + "' of " + std::to_string(n) + " values is read from the columns " +
                        col.name + "_0 ... " + col.name + "_" + std::to_string(n - 1) + ", row-major");
        break;
      }
      continue;
    }
    if (std::find(header.begin(), header.end(), col.name) != header.end()) continue;
    diags.error(col.span, "column '" + col.name + "' is not in the header of '" + src.csv_written + "'",
                did_you_mean(col.name, header, "its columns are " + list_names(header, 24)));
  }
}

ir::TensorType f32_batch(std::vector<std::int64_t> dims) {
  ir::TensorType t;
  t.dtype = ir::DType::kF32;
  t.shape.dims.push_back(ir::Dim::batch());
  for (std::int64_t d : dims) t.shape.dims.push_back(ir::Dim::of(d));
  return t;
}

}  // namespace

ir::TensorType FeatureSet::input_type() const {
  const FeatureColumn* only = nullptr;
  std::size_t inputs = 0;
  for (const FeatureColumn& c : columns) {
    if (c.is_label || c.is_index) continue;
    ++inputs;
    only = &c;
  }
  if (inputs == 1 && only->kind == ColumnKind::kPixels && only->pixel_shape.size() == 3) {
    return f32_batch(only->pixel_shape);
  }
  return f32_batch({width()});
}

std::int64_t FeatureSet::width() const {
  std::int64_t total = 0;
  for (const FeatureColumn& c : columns) total += c.width;
  return total;
}

const FeatureColumn* FeatureSet::find(const std::string& column) const {
  for (const FeatureColumn& c : columns) {
    if (c.name == column) return &c;
  }
  return nullptr;
}

std::optional<ir::TensorType> FeatureSet::column_type(const std::string& column) const {
  const FeatureColumn* c = find(column);
  if (c == nullptr) return std::nullopt;
  if (c->is_label) return label_type(column);
  if (c->is_index) return ir::TensorType{ir::DType::kI32, ir::Shape{ir::Dim::batch()}};
  if (c->kind == ColumnKind::kPixels && c->pixel_shape.size() == 3) return f32_batch(c->pixel_shape);
  return f32_batch({c->width});
}

std::optional<ir::TensorType> FeatureSet::label_type(const std::string& column) const {
  const FeatureColumn* c = find(column);
  if (c == nullptr || !c->is_label) return std::nullopt;
  ir::DType dtype = c->kind == ColumnKind::kCategory ? ir::DType::kI32 : ir::DType::kF32;
  return ir::TensorType{dtype, ir::Shape{ir::Dim::batch()}};
}

std::optional<FeatureSet> check_features(const ast::File& file, const ast::FeaturesDecl& decl,
                                         const std::filesystem::path& base_dir, const SourceManager& sources,
                                         Diagnostics& diags) {
  const std::size_t errors_before = diags.error_count();
  FeatureSet set;
  set.name = decl.name;
  set.span = decl.span;

  std::optional<ResolvedSource> src;
  if (decl.source != ast::kNoExpr) src = check_source(file, decl, base_dir, diags);
  if (src) {
    set.source = src->kind;
    set.csv_path = src->csv;
    set.idx_images = src->images;
    set.idx_labels = src->labels;
  }

  ColumnChecker checker(file, sources, diags);
  std::map<std::string, Span> seen;
  for (const ast::Column& c : decl.columns) {
    auto [it, inserted] = seen.emplace(c.name, c.name_span);
    if (!inserted) {
      diags.error(c.name_span, "duplicate column '" + c.name + "'",
                  "'" + c.name + "' is first declared at " + sources.location(it->second));
      continue;
    }
    set.columns.push_back(checker.check(c));
  }

  std::size_t inputs = 0;
  for (const FeatureColumn& c : set.columns) inputs += c.is_label ? 0 : 1;
  if (inputs == 0) {
    diags.error(decl.name_span, "features '" + decl.name + "' has no input columns",
                decl.columns.empty() ? "declare its columns, e.g. 'age : number -> standardize'"
                                     : "every column is a label; add a column for the model to read");
  }
  if (src && src->kind == SourceKind::kIdx) {
    // An idx row is one image and its class.
    const char* idx_hint = "idx(images: ..., labels: ...) rows are an image and its class";
    bool seen_pixels = false, seen_label = false;
    for (const FeatureColumn& c : set.columns) {
      if (c.is_label) {
        if (seen_label) diags.error(c.span, "an idx source has one label column", idx_hint);
        seen_label = true;
      } else if (c.kind != ColumnKind::kPixels || seen_pixels) {
        diags.error(c.span, "an idx source holds one pixels column and one label", idx_hint);
      } else {
        seen_pixels = true;
      }
    }
  }
  if (src && src->kind == SourceKind::kCsv) {
    // An image in a CSV is the columns NAME_0 ... NAME_{n-1} of its pixels, row-major (as
    // kiln predict and an artifact's predictor read image records); a record holds one.
    const FeatureColumn* first_pixels = nullptr;
    for (const FeatureColumn& c : set.columns) {
      if (c.kind != ColumnKind::kPixels) continue;
      if (first_pixels != nullptr) {
        diags.error(c.span, "a csv source holds one pixels column",
                    "'" + first_pixels->name +
                        "' is the image of these records; put another image in its own "
                        "features block");
      } else {
        first_pixels = &c;
      }
    }
    check_csv_header(*src, set, diags);
  }

  if (diags.error_count() > errors_before) return std::nullopt;
  return set;
}

}  // namespace kiln::sema
