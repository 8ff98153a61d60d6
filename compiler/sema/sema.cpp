// The sema driver: load modules, check layers, features, models, train and promote
// blocks, in that order, reporting every error it can find.
#include "compiler/sema/sema.h"

#include <cstdlib>
#include <set>

#include "compiler/sema/lowering.h"

#ifndef KILN_DEFAULT_STDLIB
#define KILN_DEFAULT_STDLIB "stdlib"
#endif

namespace kiln::sema {
namespace fs = std::filesystem;

std::vector<fs::path> default_stdlib_dirs() {
  std::vector<fs::path> dirs;
  if (const char* env = std::getenv("KILN_STDLIB"); env && *env) {
    std::string all = env;
    std::size_t start = 0;
    while (start <= all.size()) {
      std::size_t end = all.find(':', start);
      if (end == std::string::npos) end = all.size();
      if (end > start) dirs.emplace_back(all.substr(start, end - start));
      start = end + 1;
    }
  }
  if (dirs.empty()) dirs.emplace_back(KILN_DEFAULT_STDLIB);
  return dirs;
}

const LoweredModel* Compilation::find_model(const std::string& name) const {
  for (const LoweredModel& m : models) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

const FeatureSet* Compilation::find_features(const std::string& name) const {
  for (const FeatureSet& f : features) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

namespace {

void check_everything(Compilation& c, const SemaOptions& options) {
  if (c.root == nullptr) return;
  // After a syntax error, names from the declarations that failed to parse would all be
  // "unknown": report the syntax errors alone.
  for (const auto& m : c.modules) {
    if (m->parse_failed) return;
  }
  std::set<const ast::LayerDecl*> broken;
  for (const auto& m : c.modules) detail::check_layer_names(c, *m, broken);

  const Module& root = *c.root;
  fs::path base_dir = root.path.parent_path();
  std::set<std::string> broken_features;
  for (const ast::Decl& decl : root.ast.decls) {
    if (const auto* f = std::get_if<ast::FeaturesDecl>(&decl)) {
      if (root.features.at(f->name) != f) continue;  // a duplicate, already reported
      if (auto set = check_features(root.ast, *f, base_dir, c.sources, c.diags)) {
        c.features.push_back(std::move(*set));
      } else {
        broken_features.insert(f->name);
      }
    }
  }

  std::map<std::string, detail::Lowerer::ModelResult> results;
  std::set<std::string> used_features;
  for (const ast::Decl& decl : root.ast.decls) {
    const auto* m = std::get_if<ast::ModelDecl>(&decl);
    if (m == nullptr || root.models.at(m->name) != m) continue;
    LoweredModel lowered{m->name, m->span, ir::Graph(m->name)};
    detail::Lowerer lowerer(c, lowered.graph, broken, broken_features);
    detail::Lowerer::ModelResult r = lowerer.lower_model(root, *m);
    for (const auto& [input, features] : r.input_features) used_features.insert(features);
    if (r.ok) {
      std::vector<std::string> problems = ir::verify(lowered.graph);
      for (const std::string& p : problems) {
        c.diags.error(m->name_span, "internal error: the graph of model '" + m->name + "' is invalid: " + p,
                      "this is a bug in Kiln; please report it with this file");
        c.internal_error = true;
      }
    }
    results[m->name] = std::move(r);
    c.models.push_back(std::move(lowered));
  }

  std::set<std::string> trained;
  for (const ast::Decl& decl : root.ast.decls) {
    if (const auto* t = std::get_if<ast::TrainDecl>(&decl)) {
      std::optional<TrainSpec> spec = check_train(root.ast, *t, c.sources, c.diags);
      auto model = root.models.find(t->model);
      if (model == root.models.end()) {
        std::vector<std::string> names;
        for (const auto& [n, md] : root.models) names.push_back(n);
        std::string near = closest_match(t->model, names);
        c.diags.error(t->model_span, "train block for unknown model '" + t->model + "'",
                      near.empty() ? "" : "did you mean '" + near + "'?");
        continue;
      }
      if (!trained.insert(t->model).second) {
        c.diags.error(t->model_span, "model '" + t->model + "' has more than one train block");
        continue;
      }
      if (!spec) continue;
      const FeatureSet* data = c.find_features(spec->data);
      if (data == nullptr) {
        if (!broken_features.count(spec->data)) {
          std::vector<std::string> names;
          for (const FeatureSet& f : c.features) names.push_back(f.name);
          std::string near = closest_match(spec->data, names);
          c.diags.error(spec->data_span, "unknown features block '" + spec->data + "'",
                        near.empty() ? "data names a features block of this file" : "did you mean '" + near + "'?");
        }
        continue;
      }
      used_features.insert(spec->data);
      if (!spec->test.empty()) {
        used_features.insert(spec->test);
        if (c.find_features(spec->test) == nullptr && !broken_features.count(spec->test)) {
          c.diags.error(spec->test_span, "unknown features block '" + spec->test + "'");
        }
      }
      const auto& r = results[t->model];
      for (const auto& [input, features] : r.input_features) {
        if (features != spec->data) {
          c.diags.error(spec->data_span,
                        "model '" + t->model + "' reads input '" + input + "' from features '" + features +
                            "', but this train block's data is '" + spec->data + "'",
                        "train a model on the features block its inputs name");
        }
      }
      if (!r.ok) continue;  // its errors are reported; a loss over it would only repeat them
      LoweredTrain lowered{*spec, ir::Graph(t->model + ".train")};
      detail::Lowerer lowerer(c, lowered.graph, broken, broken_features);
      detail::Lowerer::ModelResult again = lowerer.lower_model(root, *model->second);
      Span loss_span = root.ast.expr(spec->loss).span;
      if (again.ok && lowerer.lower_loss(root, again, *data, spec->loss, loss_span)) {
        for (const std::string& p : ir::verify(lowered.graph)) {
          c.diags.error(t->model_span, "internal error: the training graph is invalid: " + p,
                        "this is a bug in Kiln; please report it with this file");
          c.internal_error = true;
        }
        c.trains.push_back(std::move(lowered));
      }
    }
  }

  for (const ast::Decl& decl : root.ast.decls) {
    if (const auto* p = std::get_if<ast::PromoteDecl>(&decl)) {
      std::optional<PromoteSpec> spec = check_promote(root.ast, *p, c.sources, c.diags);
      if (!root.models.count(p->model)) {
        std::vector<std::string> names;
        for (const auto& [n, md] : root.models) names.push_back(n);
        std::string near = closest_match(p->model, names);
        c.diags.error(p->model_span, "promote block for unknown model '" + p->model + "'",
                      near.empty() ? "" : "did you mean '" + near + "'?");
      } else if (spec) {
        c.promotes.push_back(std::move(*spec));
      }
    }
  }

  for (const FeatureSet& f : c.features) {
    if (!used_features.count(f.name) && !c.diags.has_errors()) {
      c.diags.warning(
          f.span, "features block '" + f.name + "' is never used",
          "a model input ('input x : " + f.name + "') or a train block ('data = " + f.name + "') would use it");
    }
  }
  (void)options;
}

std::unique_ptr<Compilation> compile(const fs::path& path, const std::optional<std::string>& text,
                                     const SemaOptions& options) {
  auto c = std::make_unique<Compilation>();
  std::vector<fs::path> dirs = options.stdlib_dirs.empty() ? default_stdlib_dirs() : options.stdlib_dirs;
  detail::load_modules(*c, path, text, dirs);
  check_everything(*c, options);
  return c;
}

}  // namespace

std::unique_ptr<Compilation> compile_file(const fs::path& path, const SemaOptions& options) {
  return compile(path, std::nullopt, options);
}

std::unique_ptr<Compilation> compile_source(const fs::path& path, std::string text, const SemaOptions& options) {
  return compile(path, std::move(text), options);
}

}  // namespace kiln::sema
