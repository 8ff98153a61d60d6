// The `kiln` command-line driver. Exit codes: 0 ok, 1 a user error (bad model, bad
// arguments, unreadable file), 2 an internal error (a bug in Kiln).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "compiler/autodiff/optimizer.h"
#include "compiler/ir/graph.h"
#include "compiler/sema/sema.h"
#include "compiler/syntax/ast_printer.h"
#include "compiler/syntax/formatter.h"
#include "compiler/syntax/parser.h"
#include "runtime/checkpoint/checkpoint.h"
#include "runtime/train/predict.h"
#include "runtime/train/trainer.h"
#include "tools/kiln/build_command.h"
#include "tools/kiln/ckpt_command.h"

#ifndef KILN_VERSION
#define KILN_VERSION "dev"
#endif

namespace fs = std::filesystem;

namespace kiln::cli {
namespace {

constexpr int kOk = 0;
constexpr int kUserError = 1;
constexpr int kInternalError = 2;

struct Common {
  std::vector<std::string> stdlib_dirs;
  bool color = false;
};

sema::SemaOptions sema_options(const Common& common) {
  sema::SemaOptions options;
  for (const std::string& d : common.stdlib_dirs) options.stdlib_dirs.emplace_back(d);
  return options;
}

// Opens FILE for a command; prints a message and returns false when it cannot be read.
bool readable(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    std::cerr << "kiln: error: cannot open '" << path << "': no such file\n";
    return false;
  }
  if (fs::is_directory(path, ec)) {
    std::cerr << "kiln: error: '" << path << "' is a directory, not a .kiln file\n";
    return false;
  }
  std::ifstream in(path);
  if (!in) {
    std::cerr << "kiln: error: cannot open '" << path << "': permission denied\n";
    return false;
  }
  return true;
}

// kiln predict --input: what readable() checks, without opening the file (a named pipe's
// writer would lose its reader); "-" is standard input.
bool readable_input(const fs::path& path) {
  if (path == "-") return true;
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    std::cerr << "kiln predict: error: cannot open '" << path.string() << "': no such file\n";
    return false;
  }
  if (fs::is_directory(path, ec)) {
    std::cerr << "kiln predict: error: '" << path.string() << "' is a directory, not a CSV or JSON-lines file\n";
    return false;
  }
  if (access(path.c_str(), R_OK) != 0) {
    std::cerr << "kiln predict: error: cannot open '" << path.string() << "': permission denied\n";
    return false;
  }
  return true;
}

std::unique_ptr<sema::Compilation> compile_and_report(const std::string& path, const Common& common) {
  auto c = sema::compile_file(path, sema_options(common));
  std::cerr << c->diags.render(c->sources, common.color);
  return c;
}

int exit_code(const sema::Compilation& c) {
  if (c.internal_error) return kInternalError;
  return c.diags.has_errors() ? kUserError : kOk;
}

int run_check(const std::vector<std::string>& files, const Common& common, bool quiet) {
  int worst = kOk;
  for (const std::string& path : files) {
    if (!readable(path)) {
      worst = std::max(worst, kUserError);
      continue;
    }
    auto c = compile_and_report(path, common);
    int code = exit_code(*c);
    worst = std::max(worst, code);
    if (code == kOk && !quiet) {
      std::cout << path << ": ok";
      for (const sema::LoweredModel& m : c->models) {
        std::int64_t weights = 0;
        for (const ir::NamedValue& p : m.graph.parameters()) {
          weights += m.graph.node(p.value).type.shape.static_elements();
        }
        std::cout << " — model " << m.name << " (" << m.graph.parameters().size() << " parameter tensors, " << weights
                  << " weights, " << m.graph.size() << " nodes)";
      }
      std::cout << "\n";
    } else if (code != kOk) {
      std::cerr << path << ": " << c->diags.error_count() << " error" << (c->diags.error_count() == 1 ? "" : "s")
                << "\n";
    }
  }
  return worst;
}

int run_dump(const std::string& path, bool ast_mode, bool ir_mode, bool train, const std::string& model,
             const Common& common) {
  if (!readable(path)) return kUserError;
  if (ast_mode == ir_mode) {
    std::cerr << "kiln dump: choose one of --ast or --ir\n";
    return kUserError;
  }
  if (ast_mode) {
    SourceManager sources;
    Diagnostics diags;
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    FileId id = sources.add(path, text.str());
    ast::File file = parse_file(sources, id, diags);
    std::cerr << diags.render(sources, common.color);
    if (diags.has_errors()) return kUserError;
    std::cout << print_ast(file, sources);
    return kOk;
  }
  auto c = compile_and_report(path, common);
  if (exit_code(*c) != kOk) return exit_code(*c);
  bool found = false;
  if (train) {
    for (const sema::LoweredTrain& t : c->trains) {
      if (!model.empty() && t.spec.model != model) continue;
      autodiff::TrainingStep step = autodiff::build_training_step(t);
      for (const Diagnostic& d : step.diagnostics) std::cerr << render_diagnostic(d, c->sources, common.color);
      if (!step.ok()) return kUserError;
      std::cout << ir::print_graph(step.graph, &c->sources);
      found = true;
    }
  } else {
    for (const sema::LoweredModel& m : c->models) {
      if (!model.empty() && m.name != model) continue;
      std::cout << ir::print_graph(m.graph, &c->sources);
      found = true;
    }
  }
  if (!found) {
    std::cerr << "kiln dump: no " << (train ? "train block" : "model")
              << (model.empty() ? "" : " named '" + model + "'") << " in " << path << "\n";
    return kUserError;
  }
  return kOk;
}

int run_graph(const std::string& path, const std::string& out, const std::string& model, const Common& common) {
  if (!readable(path)) return kUserError;
  auto c = compile_and_report(path, common);
  if (exit_code(*c) != kOk) return exit_code(*c);
  const sema::LoweredModel* m =
      model.empty() ? (c->models.empty() ? nullptr : &c->models.front()) : c->find_model(model);
  if (m == nullptr) {
    std::cerr << "kiln graph: no model" << (model.empty() ? "" : " named '" + model + "'") << " in " << path << "\n";
    return kUserError;
  }
  std::string dot = ir::graph_to_dot(m->graph);
  if (out.empty() || out == "-") {
    std::cout << dot;
    return kOk;
  }
  std::ofstream file(out, std::ios::binary | std::ios::trunc);
  file << dot;
  file.close();
  if (!file) {
    std::cerr << "kiln graph: error: cannot write '" << out << "'\n";
    return kUserError;
  }
  return kOk;
}

// Replaces `path` with `text` without a window where the file is half-written.
bool write_atomically(const std::string& path, const std::string& text) {
  fs::path target(path);
  fs::path temp = target;
  temp += ".kiln-fmt-tmp";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) {
      std::error_code ec;
      fs::remove(temp, ec);
      return false;
    }
  }
  std::error_code ec;
  fs::permissions(temp, fs::status(target, ec).permissions(), ec);
  fs::rename(temp, target, ec);
  if (ec) {
    fs::remove(temp, ec);
    return false;
  }
  return true;
}

int run_fmt(const std::vector<std::string>& files, bool check, bool to_stdout, const Common& common) {
  int worst = kOk;
  for (const std::string& path : files) {
    if (!readable(path)) {
      worst = std::max(worst, kUserError);
      continue;
    }
    SourceManager sources;
    Diagnostics diags;
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    FileId id = sources.add(path, text.str());
    ast::File file = parse_file(sources, id, diags);
    if (diags.has_errors()) {
      std::cerr << diags.render(sources, common.color);
      std::cerr << path << ": not formatted: fix the syntax errors first (the file is unchanged)\n";
      worst = std::max(worst, kUserError);
      continue;
    }
    std::string formatted = format_file(file, sources);
    if (to_stdout) {
      std::cout << formatted;
      continue;
    }
    if (formatted == sources.file(id).text()) continue;
    if (check) {
      std::cout << path << ": not formatted (run: kiln fmt " << path << ")\n";
      worst = std::max(worst, kUserError);
      continue;
    }
    if (!write_atomically(path, formatted)) {
      std::cerr << "kiln fmt: error: cannot write '" << path << "' (the file is unchanged)\n";
      worst = std::max(worst, kUserError);
    }
  }
  return worst;
}

const sema::LoweredTrain* find_train(const sema::Compilation& c, const std::string& model, const std::string& path) {
  for (const sema::LoweredTrain& t : c.trains) {
    if (model.empty() || t.spec.model == model) return &t;
  }
  std::cerr << "kiln: error: no train block" << (model.empty() ? "" : " for model '" + model + "'") << " in " << path
            << "\n";
  return nullptr;
}

struct TrainArgs {
  std::string file, model, out;
  std::optional<std::int64_t> epochs;
  std::optional<std::uint64_t> seed;
  std::int64_t max_steps = 0;
  std::int64_t checkpoint_every = 0;
  bool no_checkpoints = false;
  runtime::Backend backend = runtime::Backend::kJit;
  runtime::TrainOptions checkpointing;  // retention, resume, reset_optimizer, warm_start
};

int run_train(const TrainArgs& args, const Common& common) {
  if (!readable(args.file)) return kUserError;
  auto c = compile_and_report(args.file, common);
  if (exit_code(*c) != kOk) return exit_code(*c);
  const sema::LoweredTrain* t = find_train(*c, args.model, args.file);
  if (t == nullptr) return kUserError;
  runtime::TrainOptions options;
  options.epochs = args.epochs;
  options.seed = args.seed;
  options.run_dir = args.out.empty() ? fs::path("runs") / t->spec.model : fs::path(args.out);
  options.terminal = isatty(1) != 0;
  options.max_steps_per_epoch = args.max_steps;
  options.checkpoints = !args.no_checkpoints;
  options.checkpoint_every = args.no_checkpoints ? 0 : args.checkpoint_every;
  options.retention = args.checkpointing.retention;
  if (options.retention.keep_best > 0 && options.retention.best_metric.empty()) {
    options.retention.best_metric = t->spec.early_stop ? t->spec.early_stop->metric : "loss";
  }
  options.resume = args.checkpointing.resume;
  options.reset_optimizer = args.checkpointing.reset_optimizer;
  options.warm_start = args.checkpointing.warm_start;
  options.kiln_version = KILN_VERSION;
  options.backend = args.backend;
  try {
    runtime::TrainResult r = runtime::train(*c, *t, options, std::cout);
    std::cout << "trained " << t->spec.model << ": " << r.epochs.size() << " epoch(s)"
              << (r.early_stopped ? " (early stop)" : "") << "; run folder " << options.run_dir.string() << "\n";
  } catch (const runtime::TrainError& e) {
    std::cerr << "kiln train: error: " << e.what() << "\n";
    return kUserError;
  } catch (const std::runtime_error& e) {
    std::cerr << "kiln train: error: " << e.what() << "\n";
    return kUserError;
  }
  return kOk;
}

int run_eval(const std::string& file, const std::string& model, const std::string& run_dir, runtime::Backend backend,
             const Common& common) {
  if (!readable(file)) return kUserError;
  auto c = compile_and_report(file, common);
  if (exit_code(*c) != kOk) return exit_code(*c);
  const sema::LoweredTrain* t = find_train(*c, model, file);
  if (t == nullptr) return kUserError;
  try {
    runtime::Confusion confusion;
    std::ostringstream compiled;
    std::map<std::string, double> metrics = runtime::evaluate_run(*c, *t, run_dir, &confusion, backend, &compiled);
    std::cout << "{";
    bool first = true;
    for (const auto& [name, value] : metrics) {
      std::printf("%s\"%s\": %.6g", first ? "" : ", ", name.c_str(), value);
      std::fflush(stdout);
      first = false;
    }
    std::cout << "}\n";
    if (!confusion.counts.empty()) {
      std::cout << "confusion matrix on the holdout (rows: true class, columns: predicted)\n"
                << runtime::format_confusion(confusion);
    }
    std::cout.flush();
    std::cerr << compiled.str();
  } catch (const runtime::TrainError& e) {
    std::cerr << "kiln eval: error: " << e.what() << "\n";
    return kUserError;
  } catch (const std::runtime_error& e) {
    std::cerr << "kiln eval: error: " << e.what() << "\n";
    return kUserError;
  }
  return kOk;
}

int run_predict(const std::string& file, const std::string& model, const runtime::PredictOptions& options,
                const Common& common) {
  if (!readable(file)) return kUserError;
  if (!options.input.empty() && !readable_input(options.input)) return kUserError;
  std::error_code ec;
  if (fs::exists(options.run_dir / checkpoint::kManifestFile, ec)) {
    // A checkpoint folder: it holds params.safetensors and pipeline.json like a run folder; verify it first.
    std::vector<std::string> problems = checkpoint::verify_checkpoint(options.run_dir);
    for (const std::string& p : problems) std::cerr << "kiln predict: error: " << p << "\n";
    if (!problems.empty()) return kUserError;
  }
  auto c = compile_and_report(file, common);
  if (exit_code(*c) != kOk) return exit_code(*c);
  const sema::LoweredTrain* t = find_train(*c, model, file);
  if (t == nullptr) return kUserError;
  try {
    runtime::predict(*c, *t, options, std::cout, std::cerr);
  } catch (const runtime::TrainError& e) {
    std::cerr << "kiln predict: error: " << e.what() << "\n";
    return kUserError;
  } catch (const std::runtime_error& e) {
    std::cerr << "kiln predict: error: " << e.what() << "\n";
    return kUserError;
  }
  return kOk;
}

int run_ops() {
  for (const ir::OpInfo& op : ir::core_ops().all()) {
    std::string args;
    for (std::string_view o : op.operands) args += (args.empty() ? "" : ", ") + std::string(o);
    for (const ir::AttrSpec& a : op.attrs) args += (args.empty() ? "" : ", ") + std::string(a.name) + ":";
    std::printf("%-24s %-48s %s\n", std::string(op.name).c_str(), ("(" + args + ")").c_str(),
                std::string(op.doc).c_str());
  }
  return kOk;
}

int main_impl(int argc, char** argv) {
  CLI::App app{"kiln — write a model in a .kiln file; check, train, explain and deploy it"};
  app.set_version_flag("--version", std::string("kiln ") + KILN_VERSION);
  app.require_subcommand(1);
  Common common;
  common.color = isatty(2) != 0 && std::getenv("NO_COLOR") == nullptr;
  app.add_option("--stdlib", common.stdlib_dirs,
                 "Where `import NAME` finds NAME.kiln (repeatable; default: KILN_STDLIB or the built-in stdlib)");

  std::vector<std::string> check_files;
  bool quiet = false;
  auto* check = app.add_subcommand("check", "Parse and check .kiln files: syntax, names, types and shapes");
  check->add_option("FILE", check_files, "Files to check")->required();
  check->add_flag("-q,--quiet", quiet, "Print nothing when a file is fine");

  std::string dump_file, dump_model;
  bool dump_ast = false, dump_ir = false, dump_train = false;
  auto* dump = app.add_subcommand("dump", "Print the AST or the Graph IR of a .kiln file");
  dump->add_option("FILE", dump_file, "The .kiln file")->required();
  dump->add_flag("--ast", dump_ast, "Print the syntax tree");
  dump->add_flag("--ir", dump_ir, "Print each model's Graph IR");
  dump->add_flag("--train", dump_train,
                 "With --ir: print the training step (model, labels, loss, gradients, optimizer update)");
  dump->add_option("--model", dump_model, "Only this model");

  std::string graph_file, graph_out, graph_model;
  auto* graph = app.add_subcommand("graph", "Write a model's Graph IR as Graphviz DOT");
  graph->add_option("FILE", graph_file, "The .kiln file")->required();
  graph->add_option("-o,--output", graph_out, "Where to write the .dot file (default: standard output)");
  graph->add_option("--model", graph_model, "Which model (default: the first)");

  std::vector<std::string> fmt_files;
  bool fmt_check = false, fmt_stdout = false;
  auto* fmt = app.add_subcommand("fmt", "Rewrite .kiln files in the canonical layout (comments are kept)");
  fmt->add_option("FILE", fmt_files, "Files to format in place")->required();
  fmt->add_flag("--check", fmt_check, "Change nothing; exit 1 and list the files that are not formatted");
  fmt->add_flag("--stdout", fmt_stdout, "Print the formatted text instead of rewriting the file");

  auto* ops = app.add_subcommand("ops", "List the primitive ops of the op registry");

  // --backend for train, eval and predict: the LLVM JIT by default, the reference kernels for checking.
  const std::map<std::string, runtime::Backend> backends{{"jit", runtime::Backend::kJit},
                                                         {"reference", runtime::Backend::kReference}};
  const char* backend_help = "Where to run: jit (LLVM, native code; the default) or reference (the naive oracle)";
  runtime::Backend eval_backend = runtime::Backend::kJit;

  TrainArgs train_args;
  auto* train = app.add_subcommand("train", "Train a model on its train block's data");
  train->add_option("--backend", train_args.backend, backend_help)->transform(CLI::CheckedTransformer(backends));
  train->add_option("FILE", train_args.file, "The .kiln file")->required();
  train->add_option("--model", train_args.model, "Which model's train block (default: the first)");
  train->add_option("--epochs", train_args.epochs, "Override the train block's epochs");
  train->add_option("--seed", train_args.seed, "Override the train block's seed");
  train->add_option("--out", train_args.out, "The run folder (default: runs/MODEL)");
  train->add_option("--max-steps", train_args.max_steps, "At most this many batches per epoch (quick checks)");
  train->add_option("--checkpoint-every", train_args.checkpoint_every,
                    "Also checkpoint every N steps (one is always written at each epoch's end)");
  train->add_flag("--no-checkpoints", train_args.no_checkpoints, "Write no checkpoints");
  train->add_option("--keep", train_args.checkpointing.retention.keep_last,
                    "Keep the newest N checkpoints (default 3)");
  train->add_option("--keep-every", train_args.checkpointing.retention.keep_every,
                    "Also keep every checkpoint whose step is a multiple of K");
  train->add_option("--keep-every-minutes", train_args.checkpointing.retention.keep_every_minutes,
                    "Also keep the first checkpoint of every K-minute window");
  train->add_option("--keep-best", train_args.checkpointing.retention.keep_best,
                    "Also keep the best N epoch-end checkpoints by --best-metric");
  train->add_option("--best-metric", train_args.checkpointing.retention.best_metric,
                    "Holdout metric for --keep-best (default: the early-stop metric, else loss)");
  train->add_option("--resume", train_args.checkpointing.resume,
                    "Continue a run: 'latest' (RUN/checkpoints/latest) or a checkpoint, checkpoints or run folder");
  train->add_flag("--reset-optimizer", train_args.checkpointing.reset_optimizer,
                  "With --resume: allow a changed optimizer; its state (moments, step count) restarts");
  train->add_option("--warm-start", train_args.checkpointing.warm_start,
                    "Start a new run from a checkpoint's weights only (fresh optimizer, epoch 1)");

  std::string eval_file, eval_model, eval_run;
  runtime::PredictOptions predict_options;
  std::string predict_file, predict_model, predict_format = "csv", predict_run, predict_input;
  auto* predict =
      app.add_subcommand("predict", "Predict with a finished run: records in, one prediction per record out");
  predict->add_option("FILE", predict_file, "The .kiln file")->required();
  auto* predict_run_opt = predict->add_option("--run", predict_run, "The run folder written by kiln train");
  auto* predict_ckpt_opt = predict->add_option("--checkpoint", predict_run, "A checkpoint folder (verified first)");
  predict_run_opt->excludes(predict_ckpt_opt);
  predict->add_option(
      "--input", predict_input,
      "A CSV or JSON-lines file (.jsonl, or a first character '{') with the features block's columns (labels may "
      "be absent), or - for standard input; default: the block's own source");
  predict->add_option("--format", predict_format, "Output: csv or jsonl")->check(CLI::IsMember({"csv", "jsonl"}));
  predict->add_option("--backend", predict_options.backend, backend_help)->transform(CLI::CheckedTransformer(backends));
  predict->add_option("--model", predict_model, "Which model's train block (default: the first)");

  auto* eval = app.add_subcommand("eval", "Evaluate a finished run on the holdout split of its data");
  eval->add_option("FILE", eval_file, "The .kiln file")->required();
  auto* eval_run_opt = eval->add_option("--run", eval_run, "The run folder written by kiln train");
  auto* eval_ckpt_opt = eval->add_option("--checkpoint", eval_run, "A checkpoint folder (verified first)");
  eval_run_opt->excludes(eval_ckpt_opt);
  eval->add_option("--model", eval_model, "Which model's train block (default: the first)");
  eval->add_option("--backend", eval_backend, backend_help)->transform(CLI::CheckedTransformer(backends));

  CkptArgs ckpt_args;
  auto* ckpt = add_ckpt_command(app, ckpt_args);

  BuildArgs build_args;
  auto* build = add_build_command(app, build_args);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kOk : kUserError;
  }
  if (check->parsed()) return run_check(check_files, common, quiet);
  if (dump->parsed()) return run_dump(dump_file, dump_ast, dump_ir, dump_train, dump_model, common);
  if (graph->parsed()) return run_graph(graph_file, graph_out, graph_model, common);
  if (fmt->parsed()) return run_fmt(fmt_files, fmt_check, fmt_stdout, common);
  if (ops->parsed()) return run_ops();
  if (train->parsed()) return run_train(train_args, common);
  if (ckpt->parsed()) return run_ckpt(ckpt_args);
  if (build->parsed()) return run_build(build_args, common.stdlib_dirs, common.color);
  if ((eval->parsed() && eval_run.empty()) || (predict->parsed() && predict_run.empty())) {
    std::cerr << "kiln: error: --run or --checkpoint is required\n";
    return kUserError;
  }
  if (eval->parsed()) return run_eval(eval_file, eval_model, eval_run, eval_backend, common);
  if (predict->parsed()) {
    predict_options.run_dir = predict_run;
    predict_options.input = predict_input;
    predict_options.format =
        predict_format == "jsonl" ? runtime::PredictFormat::kJsonLines : runtime::PredictFormat::kCsv;
    return run_predict(predict_file, predict_model, predict_options, common);
  }
  return kUserError;
}

}  // namespace
}  // namespace kiln::cli

int main(int argc, char** argv) {
  try {
    return kiln::cli::main_impl(argc, argv);
  } catch (const std::bad_alloc&) {
    std::cerr << "kiln: internal error: out of memory\n";
  } catch (const std::exception& e) {
    std::cerr << "kiln: internal error (a bug in Kiln; please report it): " << e.what() << "\n";
  } catch (...) {
    std::cerr << "kiln: internal error (a bug in Kiln; please report it)\n";
  }
  return kiln::cli::kInternalError;
}
