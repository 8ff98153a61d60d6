// Tests of check_train and check_promote: the example models' blocks, resolved values and
// defaults, and one case per user error with its message and the line:col it points at.
#if __has_include(<catch2/catch_test_macros.hpp>)
#include <catch2/catch_test_macros.hpp>
#else
#include <catch2/catch.hpp>
#endif

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include "compiler/sema/train_spec.h"
#include "compiler/syntax/parser.h"
#include "tests/support/files.h"

using namespace kiln;
using namespace kiln::sema;
namespace fs = std::filesystem;

namespace {

using kiln::testing::read_file;

// Owns the source and the parsed file, since a TrainSpec's loss refers into file.exprs.
struct Parsed {
  SourceManager sources;
  Diagnostics diags;
  ast::File file;

  explicit Parsed(const std::string& text) {
    const FileId id = sources.add("t.kiln", text);
    file = parse_file(sources, id, diags);
  }
  template <typename Decl>
  const Decl& first() const {
    for (const ast::Decl& d : file.decls) {
      if (const auto* decl = std::get_if<Decl>(&d)) return *decl;
    }
    FAIL("no such declaration");
    throw;  // unreachable: FAIL throws
  }
  std::string rendered() const { return diags.render(sources); }
};

std::optional<TrainSpec> train(Parsed& p) {
  INFO(p.rendered());
  REQUIRE_FALSE(p.diags.has_errors());
  return check_train(p.file, p.first<ast::TrainDecl>(), p.sources, p.diags);
}

std::optional<PromoteSpec> promote(Parsed& p) {
  INFO(p.rendered());
  REQUIRE_FALSE(p.diags.has_errors());
  return check_promote(p.file, p.first<ast::PromoteDecl>(), p.sources, p.diags);
}

// True when `rendered` has a line "t.kiln:WHERE: error: ..." containing `message`.
bool has_error(const std::string& rendered, const std::string& where, const std::string& message) {
  std::istringstream lines(rendered);
  const std::string prefix = "t.kiln:" + where + ": error: ";
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

struct Case {
  const char* line;     // the bad line
  const char* at;       // where on that line the diagnostic points
  const char* message;  // a substring of the message
  const char* hint;     // a substring of the hint, or nullptr
};

}  // namespace

TEST_CASE("known metrics", "[sema][train]") {
  CHECK(known_metrics() ==
        std::vector<std::string>{"accuracy", "auc", "precision", "recall", "f1", "rmse", "mae", "loss"});
}

TEST_CASE("every example model's train and promote blocks check cleanly", "[sema][train]") {
  for (const auto& entry : fs::directory_iterator(kiln::testing::source_dir() / "models")) {
    if (entry.path().extension() != ".kiln") continue;
    INFO(entry.path().string());
    Parsed p(read_file(entry.path()));
    REQUIRE_FALSE(p.diags.has_errors());
    std::size_t blocks = 0;
    for (const ast::Decl& d : p.file.decls) {
      if (const auto* t = std::get_if<ast::TrainDecl>(&d)) {
        CHECK(check_train(p.file, *t, p.sources, p.diags).has_value());
        ++blocks;
      } else if (const auto* pr = std::get_if<ast::PromoteDecl>(&d)) {
        CHECK(check_promote(p.file, *pr, p.sources, p.diags).has_value());
        ++blocks;
      }
    }
    CHECK(blocks >= 1);
    CHECK(p.rendered().empty());
  }
}

TEST_CASE("credit: train values", "[sema][train]") {
  Parsed p(read_file(kiln::testing::source_dir() / "models/credit_risk.kiln"));
  const std::optional<TrainSpec> t = train(p);
  INFO(p.rendered());
  REQUIRE(t.has_value());
  CHECK(t->model == "credit_risk");
  CHECK(t->data == "credit");
  CHECK(p.sources.text(t->data_span) == "credit");
  CHECK(t->test.empty());
  REQUIRE(t->loss != ast::kNoExpr);
  CHECK(p.file.expr(t->loss).kind == ast::ExprKind::kCall);
  CHECK(t->optimizer.kind == "adam");
  CHECK(t->optimizer.lr == 1e-3);
  CHECK(t->optimizer.beta1 == 0.9);
  CHECK(t->optimizer.beta2 == 0.999);
  CHECK(t->batch == 128);
  CHECK(t->epochs == 40);
  CHECK(t->holdout == 0.2);
  CHECK(t->seed == 7);
  CHECK(t->metrics == std::vector<std::string>{"auc", "accuracy"});
  REQUIRE(t->early_stop.has_value());
  CHECK(t->early_stop->metric == "auc");
  CHECK(t->early_stop->patience == 5);
  CHECK(t->max_reject_share == 0.05);
  CHECK(t->clip_grad == 0);
  CHECK(t->schedule.kind == "constant");
}

TEST_CASE("credit: promotion gates", "[sema][promote]") {
  Parsed p(read_file(kiln::testing::source_dir() / "models/credit_risk.kiln"));
  const std::optional<PromoteSpec> s = promote(p);
  INFO(p.rendered());
  REQUIRE(s.has_value());
  CHECK(s->model == "credit_risk");
  REQUIRE(s->gates.size() == 3);
  CHECK(p.sources.text(p.file.expr(s->gates[1].condition).span) == "auc >= production.auc - 0.005");
  CHECK(s->shadow == 10000);
  CHECK(s->canary == 0.05);
  REQUIRE(s->rollback.has_value());
  CHECK(p.sources.text(p.file.expr(s->rollback->condition).span) == "auc < production.auc - 0.02");
}

TEST_CASE("fashion and recommender: test split and adamw", "[sema][train]") {
  Parsed fashion(read_file(kiln::testing::source_dir() / "models/fashion_cnn.kiln"));
  const std::optional<TrainSpec> f = train(fashion);
  REQUIRE(f.has_value());
  CHECK(f->test == "fashion_test");
  CHECK(fashion.sources.text(f->test_span) == "fashion_test");
  CHECK(f->holdout == 0.1);
  CHECK(f->metrics == std::vector<std::string>{"accuracy", "loss"});

  Parsed rec(read_file(kiln::testing::source_dir() / "models/recommender.kiln"));
  const std::optional<TrainSpec> r = train(rec);
  REQUIRE(r.has_value());
  CHECK(r->optimizer.kind == "adamw");
  CHECK(r->optimizer.weight_decay == 1e-4);
}

TEST_CASE("values, defaults and integer literals for float fields", "[sema][train]") {
  Parsed p(
      "train m {\n"
      "  data = d\n"
      "  loss = mse(y, t)\n"
      "  optimizer = sgd(lr: 1, momentum: 0.9, nesterov: true, weight_decay: 5e-4)\n"
      "  epochs = 30\n"
      "  schedule = step(every: 10, factor: 0.5, warmup: 2)\n"
      "  clip_grad = 1\n"
      "  max_reject_share = 0\n"
      "  seed = 0\n"
      "}\n");
  const std::optional<TrainSpec> t = train(p);
  INFO(p.rendered());
  REQUIRE(t.has_value());
  CHECK(t->optimizer.kind == "sgd");
  CHECK(t->optimizer.lr == 1);
  CHECK(t->optimizer.momentum == 0.9);
  CHECK(t->optimizer.nesterov);
  CHECK(t->optimizer.weight_decay == 5e-4);
  CHECK(t->schedule.kind == "step");
  CHECK(t->schedule.every == 10);
  CHECK(t->schedule.factor == 0.5);
  CHECK(t->schedule.warmup == 2);
  CHECK(t->clip_grad == 1);
  CHECK(t->max_reject_share == 0);
  CHECK(t->batch == 64);  // defaults
  CHECK(t->holdout == 0.2);
  CHECK(t->metrics.empty());
  CHECK_FALSE(t->early_stop.has_value());

  // A bare optimizer or schedule name takes every default; arguments may be positional.
  Parsed q(
      "train m {\n  data = d\n  loss = l\n  optimizer = adam\n  schedule = cosine(3)\n"
      "  early_stop = early_stop(metric: loss)\n}\n");
  const std::optional<TrainSpec> u = train(q);
  INFO(q.rendered());
  REQUIRE(u.has_value());
  CHECK(u->optimizer.kind == "adam");
  CHECK(u->optimizer.lr == 1e-3);
  CHECK(u->optimizer.eps == 1e-8);
  CHECK(u->schedule.kind == "cosine");
  CHECK(u->schedule.warmup == 3);
  CHECK(u->early_stop->patience == 5);
}

// One user error per row: line 4 of a train block with data and loss on lines 2 and 3
// (and a valid optimizer after it, unless the row is about the optimizer).
TEST_CASE("train field errors: message, position and hint", "[sema][train]") {
  const Case cases[] = {
      {"  epoch = 10", "epoch", "unknown field 'epoch' in train block", "did you mean 'epochs'?"},
      {"  zzzqqq = 1", "zzzqqq", "unknown field 'zzzqqq' in train block", "the fields are data, loss, optimizer,"},
      {"  loss = l2", "loss", "duplicate field 'loss' in train block", "'loss' is first set at t.kiln:3:3"},
      {"  test = \"credit_test\"", "\"credit_test\"", "test must name a features block, not '\"credit_test\"'",
       "for example: test = credit_test"},
      {"  test = 3", "3", "test must name a features block", nullptr},
      {"  optimizer = adma(lr: 1e-3)", "adma", "unknown optimizer 'adma'", "did you mean 'adam'?"},
      {"  optimizer = rmsprop(lr: 1e-3)", "rmsprop", "unknown optimizer 'rmsprop'", "choose one of sgd, adam, adamw"},
      {"  optimizer = 0.1", "0.1", "optimizer must be a call such as adam(lr: 1e-3), not '0.1'", nullptr},
      {"  optimizer = adam(lr: -0.1)", "-0.1", "lr must be a number > 0, got -0.1", nullptr},
      {"  optimizer = adam(lr: 0)", "0)", "lr must be a number > 0, got 0", nullptr},
      {"  optimizer = adam(lr: \"fast\")", "\"fast\"", "lr must be a number > 0, not '\"fast\"'", nullptr},
      {"  optimizer = adam(beta1: 1.0)", "1.0", "beta1 must be a number in [0, 1), got 1.0", nullptr},
      {"  optimizer = adamw(beta2: -0.5)", "-0.5", "beta2 must be a number in [0, 1), got -0.5", nullptr},
      {"  optimizer = adam(eps: 0)", "0)", "eps must be a number > 0", nullptr},
      {"  optimizer = adam(betta1: 0.9)", "betta1", "adam has no argument 'betta1'", "did you mean 'beta1'?"},
      {"  optimizer = adam(momentum: 0.9)", "momentum", "adam has no argument 'momentum'",
       "adam takes lr, beta1, beta2, eps, weight_decay"},
      {"  optimizer = adam(lr: 1e-3, lr: 1e-2)", "lr: 1e-2", "argument 'lr' of adam is given twice", nullptr},
      {"  optimizer = sgd(lr: 0.1, nesterov: true)", "sgd", "nesterov needs momentum > 0", nullptr},
      {"  optimizer = sgd(lr: 0.1, nesterov: 1)", "1)", "nesterov must be true or false, not '1'", nullptr},
      {"  optimizer = sgd(lr: 0.1, weight_decay: -1)", "-1", "weight_decay must be a number >= 0, got -1", nullptr},
      {"  batch = 0", "0", "batch must be a positive integer, got 0", nullptr},
      {"  batch = 12.5", "12.5", "batch must be an integer, not 12.5", "without a decimal point"},
      {"  epochs = -3", "-3", "epochs must be a positive integer, got -3", nullptr},
      {"  seed = -1", "-1", "seed must be an integer >= 0, got -1", nullptr},
      {"  seed = 1e3", "1e3", "seed must be an integer, not 1e3", nullptr},
      {"  holdout = 1", "1", "holdout must be a number in (0, 1), got 1", nullptr},
      {"  holdout = many", "many", "holdout must be a number in (0, 1), not 'many'", nullptr},
      {"  metrics = [auc, acurracy]", "acurracy", "unknown metric 'acurracy'", "did you mean 'accuracy'?"},
      {"  metrics = auc", "auc", "metrics must be a list of metric names, not 'auc'", "metrics = [auc, accuracy]"},
      {"  metrics = [auc, auc]", "auc]", "metric 'auc' is listed twice", nullptr},
      {"  metrics = [\"auc\"]", "\"auc\"", "a metric must be a metric name", "the metrics are accuracy, auc,"},
      {"  schedule = step(factor: 0.5)", "step", "step needs 'every'", "step(every: 10, factor: 0.5)"},
      {"  schedule = step(every: 5, factor: 1.5)", "1.5", "factor must be a number in (0, 1), got 1.5", nullptr},
      {"  schedule = step(every: 2.5)", "2.5", "every must be an integer, not 2.5", nullptr},
      {"  schedule = cosin(warmup: 1)", "cosin", "unknown schedule 'cosin'", "did you mean 'cosine'?"},
      {"  schedule = cosine(warmup: 20)", "20", "warm-up of 20 epochs is not shorter than training (10 epochs)",
       nullptr},
      {"  schedule = cosine(warmup: -1)", "-1", "warmup must be an integer >= 0, got -1", nullptr},
      {"  schedule = constant(1)", "1", "constant takes 0 argument(s), got more", nullptr},
      {"  early_stop = early_stop(metric: auk, patience: 5)", "auk", "unknown metric 'auk'", "did you mean 'auc'?"},
      {"  early_stop = early_stop(metric: auc, patience: 0)", "0)", "patience must be a positive integer, got 0",
       nullptr},
      {"  early_stop = early_stop(patience: 3)", "early_stop(", "early_stop needs the metric it watches", nullptr},
      {"  early_stop = early_stop(metric: auc, wait: 3)", "wait", "early_stop has no argument 'wait'",
       "early_stop takes metric, patience"},
      {"  clip_grad = 0", "0", "clip_grad must be a number > 0, got 0", nullptr},
      {"  max_reject_share = 1.5", "1.5", "max_reject_share must be a number in [0, 1], got 1.5", nullptr},
  };
  for (const Case& k : cases) {
    const std::string line = k.line;
    const bool about_optimizer = line.rfind("  optimizer", 0) == 0;
    const std::string text = "train m {\n  data = d\n  loss = l\n" + line + "\n" +
                             (about_optimizer ? "" : "  optimizer = sgd(lr: 0.1)\n") + "}\n";
    Parsed p(text);
    const std::optional<TrainSpec> t = train(p);
    const std::string rendered = p.rendered();
    INFO(text);
    INFO(rendered);
    CHECK_FALSE(t.has_value());
    CHECK(p.diags.error_count() == 1);
    CHECK(has_error(rendered, "4:" + std::to_string(line.find(k.at) + 1), k.message));
    if (k.hint != nullptr) CHECK(has_hint(rendered, k.hint));
  }
}

TEST_CASE("missing required train fields are reported at the model name", "[sema][train]") {
  Parsed p("train my_model {\n  batch = 3\n}\n");
  const std::optional<TrainSpec> t = train(p);
  const std::string rendered = p.rendered();
  INFO(rendered);
  CHECK_FALSE(t.has_value());
  CHECK(p.diags.error_count() == 3);
  CHECK(has_error(rendered, "1:7", "train block for 'my_model' has no 'data' field"));
  CHECK(has_error(rendered, "1:7", "train block for 'my_model' has no 'loss' field"));
  CHECK(has_error(rendered, "1:7", "train block for 'my_model' has no 'optimizer' field"));
  CHECK(contains(rendered, "hint: add: optimizer = adam(lr: 1e-3)"));
}

TEST_CASE("a bad optimizer still counts as present", "[sema][train]") {
  Parsed p("train m {\n  data = d\n  loss = l\n  optimizer = adam(lr: 0)\n}\n");
  CHECK_FALSE(train(p).has_value());
  CHECK(p.diags.error_count() == 1);
}

// One user error per row: line 3 of a promote block whose line 2 is a valid gate.
TEST_CASE("promote errors: message, position and hint", "[sema][promote]") {
  const Case cases[] = {
      {"  gate auc", "auc", "a gate must be a comparison, not 'auc'", "auc >= production.auc - 0.005"},
      {"  gate acc >= 0.8", "acc", "unknown metric 'acc'", "did you mean 'accuracy'?"},
      {"  gate f2 >= 0.8", "f2", "unknown metric 'f2'", "did you mean 'f1'?"},
      {"  gate auc >= production.aucc", "aucc", "unknown metric 'aucc' of production", "did you mean 'auc'?"},
      {"  gate auc >= staging.auc", "staging", "'staging.auc' is not a metric", "production.METRIC"},
      {"  gate auc >= production", "production", "'production' needs a metric", "production.auc"},
      {"  gate auc >= max(0.8, production.auc)", "max", "'max(0.8, production.auc)' cannot appear in a gate", nullptr},
      {"  gate auc >= \"high\"", "\"high\"", "'\"high\"' cannot appear in a gate", nullptr},
      {"  gate auc @ 2 > 1", "auc", "'@' is not allowed inside a gate", nullptr},
      {"  gate auc >= (0.8 >= 0.7)", "0.8", "'>=' is not allowed inside a gate", nullptr},
      {"  gate 1 < 2", "1", "a gate does not mention a metric of the new model", nullptr},
      {"  gate production.auc > 0.5", "production", "a gate does not mention a metric of the new model", nullptr},
      {"  shadow = 0", "0", "shadow must be a positive integer, got 0", nullptr},
      {"  shadow = 0.5", "0.5", "shadow must be an integer, not 0.5", nullptr},
      {"  canary = 1.5", "1.5", "canary must be a number in (0, 1), got 1.5", nullptr},
      {"  canary = 0", "0", "canary must be a number in (0, 1), got 0", nullptr},
      {"  rollback = auc", "auc", "rollback must be a comparison, not 'auc'", nullptr},
      {"  rollback = acu < 0.5", "acu", "unknown metric 'acu'", "did you mean 'auc'?"},
      {"  canery = 0.1", "canery", "unknown field 'canery' in promote block", "did you mean 'canary'?"},
      {"  traffic = 0.1", "traffic", "unknown field 'traffic' in promote block",
       "the fields are shadow, canary, rollback"},
  };
  for (const Case& k : cases) {
    const std::string line = k.line;
    const std::string text = "promote m {\n  gate auc >= 0.8\n" + line + "\n}\n";
    Parsed p(text);
    const std::optional<PromoteSpec> s = promote(p);
    const std::string rendered = p.rendered();
    INFO(text);
    INFO(rendered);
    CHECK_FALSE(s.has_value());
    CHECK(p.diags.error_count() == 1);
    CHECK(has_error(rendered, "3:" + std::to_string(line.find(k.at) + 1), k.message));
    if (k.hint != nullptr) CHECK(has_hint(rendered, k.hint));
  }
}

TEST_CASE("promote block errors", "[sema][promote]") {
  Parsed none("promote m {\n  shadow = 5\n}\n");
  CHECK_FALSE(promote(none).has_value());
  CHECK(none.diags.error_count() == 1);
  CHECK(has_error(none.rendered(), "1:9", "promote block for 'm' has no gate"));

  Parsed twice("promote m {\n  gate auc > 0.5\n  shadow = 5\n  shadow = 6\n}\n");
  CHECK_FALSE(promote(twice).has_value());
  CHECK(twice.diags.error_count() == 1);
  CHECK(has_error(twice.rendered(), "4:3", "duplicate field 'shadow' in promote block"));
  CHECK(contains(twice.rendered(), "'shadow' is first set at t.kiln:3:3"));

  // Every bad operand of one gate is reported.
  Parsed many("promote m {\n  gate acc + production.aucc >= \"x\"\n}\n");
  CHECK_FALSE(promote(many).has_value());
  CHECK(many.diags.error_count() == 3);
  CHECK(has_error(many.rendered(), "2:8", "unknown metric 'acc'"));
  CHECK(has_error(many.rendered(), "2:25", "unknown metric 'aucc' of production"));
  CHECK(has_error(many.rendered(), "2:33", "cannot appear in a gate"));
}

TEST_CASE("long operand chains do not exhaust the stack", "[sema][promote]") {
  std::string chain = "auc";
  for (int i = 0; i < 100000; ++i) chain += " + 0";
  std::string minus(100000, '-');
  Parsed p("promote m {\n  gate " + chain + " >= " + minus + "1\n}\n");
  INFO(p.rendered().substr(0, 500));
  REQUIRE_FALSE(p.diags.has_errors());
  CHECK(check_promote(p.file, p.first<ast::PromoteDecl>(), p.sources, p.diags).has_value());
}
