// Loading a `.kiln` file and its imports: stdlib modules by name from the search path,
// other files by path relative to the importer. Detects cycles (and prints them) and
// collects each module's declarations, reporting duplicates.
#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <system_error>

#include "compiler/sema/sema_internal.h"
#include "compiler/syntax/parser.h"

namespace kiln::sema::detail {
namespace fs = std::filesystem;
namespace {

// Paths under the working directory are shown relative to it (short, and stable across
// checkouts for golden tests); others as they are.
std::string display_path(const fs::path& p) {
  std::error_code ec;
  fs::path cwd = fs::current_path(ec);
  fs::path abs = fs::absolute(p, ec).lexically_normal();
  if (!ec && !cwd.empty()) {
    fs::path rel = abs.lexically_relative(cwd);
    if (!rel.empty() && *rel.begin() != "..") return rel.string();
  }
  return p.string();
}

struct Loader {
  Compilation& c;
  std::vector<fs::path> stdlib_dirs;
  std::map<std::string, Module*> by_key;  // canonical path -> module
  std::vector<std::string> in_progress;   // canonical paths on the import stack

  static std::string key_of(const fs::path& p) {
    std::error_code ec;
    fs::path canonical = fs::weakly_canonical(p, ec);
    return (ec ? p : canonical).lexically_normal().string();
  }

  // Reads a file fully; on failure returns nullopt with a reason.
  static std::optional<std::string> read_file(const fs::path& p, std::string& why) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      why = "it is a directory";
      return std::nullopt;
    }
    std::ifstream in(p, std::ios::binary);
    if (!in) {
      why = fs::exists(p, ec) ? "permission denied" : "no such file";
      return std::nullopt;
    }
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }

  Module* load(const fs::path& path, const std::string& name, std::optional<std::string> text, Span import_span) {
    std::string key = key_of(path);
    auto on_stack = std::find(in_progress.begin(), in_progress.end(), key);
    if (on_stack != in_progress.end()) {
      std::string cycle;
      for (auto it = on_stack; it != in_progress.end(); ++it) {
        cycle += fs::path(*it).filename().string() + " -> ";
      }
      cycle += fs::path(key).filename().string();
      if (on_stack + 1 == in_progress.end()) {
        c.diags.error(import_span, "a file cannot import itself", "remove this import");
      } else {
        c.diags.error(import_span, "import cycle: " + cycle,
                      "move the shared layers into a third file that both import");
      }
      return nullptr;
    }
    if (auto it = by_key.find(key); it != by_key.end()) return it->second;

    if (!text) {
      std::string why;
      text = read_file(path, why);
      if (!text) {
        c.diags.error(import_span, "cannot open '" + path.string() + "': " + why);
        return nullptr;
      }
    }
    auto module = std::make_unique<Module>();
    Module* m = module.get();
    m->path = path;
    m->name = name;
    m->file = c.sources.add(display_path(path), std::move(*text));
    std::size_t errors = c.diags.error_count();
    m->ast = parse_file(c.sources, m->file, c.diags);
    m->parse_failed = c.diags.error_count() != errors;
    c.modules.push_back(std::move(module));
    by_key[key] = m;

    in_progress.push_back(key);
    for (const ast::Decl& decl : m->ast.decls) {
      if (const auto* im = std::get_if<ast::Import>(&decl)) resolve_import(*m, *im);
    }
    in_progress.pop_back();
    collect_declarations(*m);
    return m;
  }

  void resolve_import(Module& m, const ast::Import& im) {
    std::size_t errors = c.diags.error_count();
    resolve_import_into(m, im);
    if (c.diags.error_count() != errors) m.incomplete = true;
  }

  void resolve_import_into(Module& m, const ast::Import& im) {
    Module* target = nullptr;
    std::string alias = im.alias;
    if (im.is_path) {
      fs::path p = fs::path(im.target);
      if (p.is_relative()) p = m.path.parent_path() / p;
      std::error_code ec;
      if (!fs::exists(p, ec)) {
        c.diags.error(im.target_span, "cannot find '" + im.target + "'",
                      "relative imports are resolved against the importing file's folder (" +
                          (m.path.parent_path().empty() ? std::string(".") : m.path.parent_path().string()) + ")");
        return;
      }
      target = load(p, p.string(), std::nullopt, im.target_span);
      if (!target) return;
      if (alias.empty()) {
        if (std::find(m.unqualified.begin(), m.unqualified.end(), target) == m.unqualified.end()) {
          m.unqualified.push_back(target);
        }
        return;
      }
    } else {
      std::string rel = im.target;
      std::replace(rel.begin(), rel.end(), '.', '/');
      rel += ".kiln";
      fs::path found;
      for (const fs::path& dir : stdlib_dirs) {
        std::error_code ec;
        if (fs::is_regular_file(dir / rel, ec)) {
          found = dir / rel;
          break;
        }
      }
      if (found.empty()) {
        std::string near = closest_match(im.target, stdlib_module_names(stdlib_dirs));
        std::string dirs;
        for (const fs::path& d : stdlib_dirs) dirs += (dirs.empty() ? "" : ", ") + d.string();
        c.diags.error(im.target_span, "unknown module '" + im.target + "'",
                      !near.empty() ? "did you mean '" + near + "'?"
                                    : "modules are looked up in " + (dirs.empty() ? "<no stdlib dir>" : dirs) +
                                          "; to import a file, quote its path: import \"" + im.target + ".kiln\"");
        return;
      }
      target = load(found, im.target, std::nullopt, im.target_span);
      if (!target) return;
      if (alias.empty()) alias = im.target.substr(im.target.rfind('.') + 1);
    }
    Span where = im.alias.empty() ? im.target_span : im.alias_span;
    if (auto it = m.namespaces.find(alias); it != m.namespaces.end()) {
      if (it->second != target) {
        c.diags.error(where, "the name '" + alias + "' is already used by another import",
                      "give one of them a different name with 'as'");
      }
      return;
    }
    m.namespaces[alias] = target;
  }

  template <typename Decl>
  void declare(std::map<std::string, const Decl*>& table, const Decl& d, const char* what) {
    auto [it, inserted] = table.emplace(d.name, &d);
    if (!inserted) {
      c.diags.error(d.name_span, std::string("duplicate ") + what + " '" + d.name + "'",
                    "the first is at " + c.sources.location(it->second->name_span));
    }
  }

  void collect_declarations(Module& m) {
    for (const ast::Decl& decl : m.ast.decls) {
      if (const auto* l = std::get_if<ast::LayerDecl>(&decl)) declare(m.layers, *l, "layer");
      if (const auto* md = std::get_if<ast::ModelDecl>(&decl)) declare(m.models, *md, "model");
      if (const auto* f = std::get_if<ast::FeaturesDecl>(&decl)) declare(m.features, *f, "features block");
    }
    // A model and a features block share the namespace of `input x : NAME`.
    for (const auto& [name, f] : m.features) {
      if (auto it = m.models.find(name); it != m.models.end()) {
        c.diags.error(f->name_span, "features block '" + name + "' has the same name as a model",
                      "the model is at " + c.sources.location(it->second->name_span));
      }
    }
  }
};

}  // namespace

std::vector<std::string> stdlib_module_names(const std::vector<fs::path>& dirs) {
  std::vector<std::string> names;
  for (const fs::path& dir : dirs) {
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().extension() == ".kiln") names.push_back(it->path().stem().string());
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

void load_modules(Compilation& c, const fs::path& root_path, const std::optional<std::string>& root_text,
                  const std::vector<fs::path>& stdlib_dirs) {
  Loader loader{c, stdlib_dirs, {}, {}};
  c.root = loader.load(root_path, root_path.string(), root_text, Span{});
}

}  // namespace kiln::sema::detail
