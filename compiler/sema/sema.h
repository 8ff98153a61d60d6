// Sema: from a `.kiln` file to checked declarations and one Graph IR per model.
// compile_file loads the file and its imports (stdlib search path plus relative paths),
// checks every declaration, instantiates layers (parameters named by call site: h1.w),
// infers shapes with one symbolic batch dimension and lowers each model to ir::Graph.
// It reports all the errors it can, not only the first; user errors are diagnostics,
// never exceptions.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "compiler/ir/graph.h"
#include "compiler/sema/features.h"
#include "compiler/sema/train_spec.h"
#include "compiler/syntax/ast.h"
#include "compiler/syntax/diagnostics.h"
#include "compiler/syntax/source.h"

namespace kiln::sema {

struct SemaOptions {
  // Where `import nn` looks for nn.kiln, in order. Empty: default_stdlib_dirs().
  std::vector<std::filesystem::path> stdlib_dirs;
};

// KILN_STDLIB (a ':'-separated list) when set, else the stdlib/ the build was made from.
std::vector<std::filesystem::path> default_stdlib_dirs();

// One loaded `.kiln` file and the names it declares.
struct Module {
  FileId file = kNoFile;
  std::filesystem::path path;  // as opened
  std::string name;            // "nn" for stdlib modules, else the path
  ast::File ast;
  std::map<std::string, const ast::LayerDecl*> layers;
  std::map<std::string, const ast::ModelDecl*> models;
  std::map<std::string, const ast::FeaturesDecl*> features;
  std::map<std::string, Module*> namespaces;  // `import nn` -> "nn"; `import "x.kiln" as y` -> "y"
  std::vector<Module*> unqualified;           // `import "x.kiln"`: its layers by bare name
  // An import of this module failed: names it would have brought are not reported again
  // as unknown (the import error says it all).
  bool incomplete = false;
  bool parse_failed = false;                               // the file has syntax errors
  mutable std::set<std::string> reported_unknown_modules;  // `x.f` with no `import x`: said once
};

struct LoweredModel {
  std::string name;
  Span span;
  ir::Graph graph;
};

// A train block with its training graph: the model, its label inputs, and the scalar
// `loss` output (autodiff and the optimizer update are added by the next issue).
struct LoweredTrain {
  TrainSpec spec;
  ir::Graph graph;
};

class Compilation {
 public:
  SourceManager sources;
  Diagnostics diags;
  std::vector<std::unique_ptr<Module>> modules;
  Module* root = nullptr;
  std::vector<LoweredModel> models;
  std::vector<FeatureSet> features;
  std::vector<LoweredTrain> trains;
  std::vector<PromoteSpec> promotes;
  bool internal_error = false;  // a verifier failure: a bug in Kiln, not in the model

  const LoweredModel* find_model(const std::string& name) const;
  const FeatureSet* find_features(const std::string& name) const;
};

std::unique_ptr<Compilation> compile_file(const std::filesystem::path& path, const SemaOptions& options = {});
// The same for text in memory (tests, fuzzing, benchmarks); imports of relative paths
// resolve against the folder of `path`.
std::unique_ptr<Compilation> compile_source(const std::filesystem::path& path, std::string text,
                                            const SemaOptions& options = {});

}  // namespace kiln::sema
