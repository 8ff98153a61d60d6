// check_train and check_promote: each field of a train or promote block is looked up in a
// table of known fields and checked by a small function of its own; the block then checks
// what concerns several fields (required ones, warm-up against epochs). Every problem is
// reported; a spec is returned only when none was an error.
#include "compiler/sema/train_spec.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <set>

#include "compiler/sema/literals.h"

namespace kiln::sema {
namespace {

using ast::ExprKind;

// Range checks for numeric fields and arguments; `what` names the value in messages.
enum class Range : std::uint8_t {
  kPositive,      // > 0
  kNonNegative,   // >= 0
  kOpenUnit,      // (0, 1)
  kClosedUnit,    // [0, 1]
  kHalfOpenUnit,  // [0, 1)
};

bool in_range(double v, Range r) {
  switch (r) {
    case Range::kPositive: return v > 0;
    case Range::kNonNegative: return v >= 0;
    case Range::kOpenUnit: return v > 0 && v < 1;
    case Range::kClosedUnit: return v >= 0 && v <= 1;
    case Range::kHalfOpenUnit: return v >= 0 && v < 1;
  }
  return false;
}

const char* range_text(Range r, bool integer) {
  switch (r) {
    case Range::kPositive: return integer ? "a positive integer" : "a number > 0";
    case Range::kNonNegative: return integer ? "an integer >= 0" : "a number >= 0";
    case Range::kOpenUnit: return "a number in (0, 1)";
    case Range::kClosedUnit: return "a number in [0, 1]";
    case Range::kHalfOpenUnit: return "a number in [0, 1)";
  }
  return "";
}

class Checker {
 public:
  Checker(const ast::File& file, const SourceManager& sources, Diagnostics& diags)
      : file_(file), sources_(sources), diags_(diags) {}

  std::string text(ast::ExprId id) const {
    std::string t(sources_.text(file_.expr(id).span));
    return t.size() > 40 ? t.substr(0, 37) + "..." : t;
  }
  Span span(ast::ExprId id) const { return file_.expr(id).span; }
  void error(Span at, std::string message, std::string hint = {}) {
    diags_.error(at, std::move(message), std::move(hint));
  }

  // A float value (integers are accepted).
  std::optional<double> real(ast::ExprId id, const std::string& what, Range r) {
    std::optional<Number> n = fold_number(file_, id);
    if (!n || !std::isfinite(n->value)) {
      diags_.error(span(id), what + " must be " + range_text(r, false) + ", not '" + text(id) + "'");
      return std::nullopt;
    }
    if (!in_range(n->value, r)) {
      diags_.error(span(id), what + " must be " + range_text(r, false) + ", got " + text(id));
      return std::nullopt;
    }
    return n->value;
  }

  std::optional<std::int64_t> integer(ast::ExprId id, const std::string& what, Range r) {
    std::optional<Number> n = fold_number(file_, id);
    if (!n) {
      diags_.error(span(id), what + " must be " + range_text(r, true) + ", not '" + text(id) + "'");
      return std::nullopt;
    }
    if (!n->is_integer) {
      diags_.error(span(id), what + " must be an integer, not " + text(id),
                   "write it without a decimal point or exponent");
      return std::nullopt;
    }
    if (!in_range(static_cast<double>(n->integer), r)) {
      diags_.error(span(id), what + " must be " + range_text(r, true) + ", got " + text(id));
      return std::nullopt;
    }
    return n->integer;
  }

  std::optional<bool> boolean(ast::ExprId id, const std::string& what) {
    const ast::Expr& e = file_.expr(id);
    if (e.kind != ExprKind::kBool) {
      diags_.error(e.span, what + " must be true or false, not '" + text(id) + "'");
      return std::nullopt;
    }
    return e.boolean;
  }

  std::optional<std::string> metric(ast::ExprId id, const std::string& what) {
    const ast::Expr& e = file_.expr(id);
    if (e.kind != ExprKind::kName) {
      diags_.error(e.span, what + " must be a metric name, not '" + text(id) + "'",
                   "the metrics are " + join(known_metrics()));
      return std::nullopt;
    }
    if (!contains(known_metrics(), e.text)) {
      diags_.error(e.span, "unknown metric '" + e.text + "'",
                   did_you_mean(e.text, known_metrics(), "the metrics are " + join(known_metrics())));
      return std::nullopt;
    }
    return e.text;
  }

  // A call `f(a: x, ...)` (or a bare `f`, meaning all defaults) of one of `kinds`. Binds the
  // arguments to `params(kind)` (positional ones in order) and returns the kind, or nullopt
  // after reporting. `usage` shows a correct call.
  struct Bound {
    std::string kind;
    std::vector<ast::ExprId> values;  // by parameter; kNoExpr when not given
    Span span;
  };
  std::optional<Bound> call(ast::ExprId id, const std::string& what, const std::vector<std::string>& kinds,
                            const std::function<std::vector<std::string>(const std::string&)>& params,
                            const std::string& usage) {
    const ast::Expr& e = file_.expr(id);
    const ast::Expr* callee = &e;
    if (e.kind == ExprKind::kCall) callee = &file_.expr(e.lhs);
    if (callee->kind != ExprKind::kName) {
      diags_.error(e.span, what + " must be a call such as " + usage + ", not '" + text(id) + "'");
      return std::nullopt;
    }
    if (!contains(kinds, callee->text)) {
      diags_.error(callee->span, "unknown " + what + " '" + callee->text + "'",
                   did_you_mean(callee->text, kinds, "choose one of " + join(kinds)));
      return std::nullopt;
    }
    Bound out;
    out.kind = callee->text;
    out.span = e.span;
    std::vector<std::string> names = params(out.kind);
    out.values.assign(names.size(), ast::kNoExpr);
    if (e.kind != ExprKind::kCall) return out;
    bool ok = true;
    std::size_t next = 0;
    for (const ast::CallArg& arg : e.args) {
      Span at = arg.name.empty() ? span(arg.value) : arg.name_span;
      std::size_t slot = names.size();
      if (arg.name.empty()) {
        if (next >= names.size()) {
          diags_.error(at, out.kind + " takes " + std::to_string(names.size()) + " argument(s), got more",
                       names.empty() ? "write " + out.kind + "()" : out.kind + " takes " + join(names));
          ok = false;
          continue;
        }
        slot = next++;
      } else {
        auto it = std::find(names.begin(), names.end(), arg.name);
        if (it == names.end()) {
          diags_.error(
              at, out.kind + " has no argument '" + arg.name + "'",
              did_you_mean(arg.name, names,
                           names.empty() ? out.kind + " takes no arguments" : out.kind + " takes " + join(names)));
          ok = false;
          continue;
        }
        slot = static_cast<std::size_t>(it - names.begin());
      }
      if (out.values[slot] != ast::kNoExpr) {
        diags_.error(at, "argument '" + names[slot] + "' of " + out.kind + " is given twice");
        ok = false;
        continue;
      }
      out.values[slot] = arg.value;
    }
    if (!ok) return std::nullopt;
    return out;
  }

  // A features block name.
  std::optional<std::string> name_of(ast::ExprId id, const std::string& field, const std::string& example) {
    const ast::Expr& e = file_.expr(id);
    if (e.kind != ExprKind::kName) {
      diags_.error(e.span, field + " must name a features block, not '" + text(id) + "'",
                   "for example: " + field + " = " + example);
      return std::nullopt;
    }
    return e.text;
  }

  // A comparison over numbers, metrics and production.METRIC (a gate or a rollback).
  void condition(ast::ExprId id, const std::string& what) {
    static const std::set<std::string> kCompare = {"<", "<=", ">", ">=", "==", "!="};
    const ast::Expr& e = file_.expr(id);
    if (e.kind != ExprKind::kBinary || kCompare.count(e.text) == 0) {
      diags_.error(e.span, what + " must be a comparison, not '" + text(id) + "'",
                   "for example: auc >= 0.8, or auc >= production.auc - 0.005");
      return;
    }
    bool mentions_metric = false;
    const bool lhs_ok = operand(e.lhs, mentions_metric);  // both sides, so every error is reported
    const bool ok = operand(e.rhs, mentions_metric) && lhs_ok;
    if (ok && !mentions_metric) {
      diags_.error(e.span, what + " does not mention a metric of the new model",
                   "compare a metric, e.g. auc >= 0.8 or auc >= production.auc");
    }
  }

 private:
  // Walks the operand with an explicit stack: `a + b + c + ...` is a left-deep tree of any
  // depth. Every bad leaf is reported.
  bool operand(ast::ExprId root, bool& mentions_metric) {
    static const char* kOperandHint =
        "a gate compares numbers, metric names and production.METRIC, combined with + - * /";
    bool ok = true;
    std::vector<ast::ExprId> stack = {root};
    while (!stack.empty()) {
      const ast::ExprId id = stack.back();
      stack.pop_back();
      const ast::Expr& e = file_.expr(id);
      switch (e.kind) {
        case ExprKind::kNumber: break;
        case ExprKind::kUnary: stack.push_back(e.lhs); break;
        case ExprKind::kName:
          if (e.text == "production") {
            diags_.error(e.span, "'production' needs a metric", "write production.METRIC, e.g. production.auc");
            ok = false;
          } else {
            mentions_metric = true;
            ok &= metric(id, "a gate operand").has_value();
          }
          break;
        case ExprKind::kMember: {
          const ast::Expr& base = file_.expr(e.lhs);
          if (base.kind != ExprKind::kName || base.text != "production") {
            bool near_production = base.kind == ExprKind::kName && !closest_match(base.text, {"production"}).empty();
            diags_.error(e.span, "'" + text(id) + "' is not a metric",
                         near_production ? "did you mean 'production." + e.text + "'?" : std::string(kOperandHint));
            ok = false;
          } else if (!contains(known_metrics(), e.text)) {
            Span member{e.span.file, e.span.end - static_cast<std::uint32_t>(e.text.size()), e.span.end};
            diags_.error(member, "unknown metric '" + e.text + "' of production",
                         did_you_mean(e.text, known_metrics(), "the metrics are " + join(known_metrics())));
            ok = false;
          }
          break;
        }
        case ExprKind::kBinary:
          if (e.text == "+" || e.text == "-" || e.text == "*" || e.text == "/") {
            stack.push_back(e.rhs);  // lhs on top: errors come out left to right
            stack.push_back(e.lhs);
          } else {
            diags_.error(e.span, "'" + e.text + "' is not allowed inside a gate", kOperandHint);
            ok = false;
          }
          break;
        default:
          diags_.error(e.span, "'" + text(id) + "' cannot appear in a gate", kOperandHint);
          ok = false;
          break;
      }
    }
    return ok;
  }

  const ast::File& file_;
  const SourceManager& sources_;
  Diagnostics& diags_;
};

// Reports a field whose name is not in `known` or repeats an earlier one; true when the
// field should be checked.
bool accept_field(const ast::Field& field, const std::vector<std::string>& known, const std::string& block,
                  std::map<std::string, Span>& seen, const SourceManager& sources, Diagnostics& diags) {
  if (!contains(known, field.name)) {
    diags.error(field.name_span, "unknown field '" + field.name + "' in " + block + " block",
                did_you_mean(field.name, known, "the fields are " + join(known)));
    return false;
  }
  auto [it, inserted] = seen.emplace(field.name, field.name_span);
  if (!inserted) {
    diags.error(field.name_span, "duplicate field '" + field.name + "' in " + block + " block",
                "'" + field.name + "' is first set at " + sources.location(it->second));
    return false;
  }
  return true;
}

std::vector<std::string> optimizer_params(const std::string& kind) {
  if (kind == "sgd") return {"lr", "momentum", "nesterov", "weight_decay"};
  return {"lr", "beta1", "beta2", "eps", "weight_decay"};
}

std::optional<OptimizerSpec> check_optimizer(Checker& c, ast::ExprId id) {
  std::optional<Checker::Bound> b =
      c.call(id, "optimizer", {"sgd", "adam", "adamw"}, optimizer_params, "adam(lr: 1e-3)");
  if (!b) return std::nullopt;
  OptimizerSpec spec;
  spec.kind = b->kind;
  spec.span = b->span;
  bool ok = true;
  auto real = [&](std::size_t i, const std::string& what, Range r, double& out) {
    if (b->values[i] == ast::kNoExpr) return;
    std::optional<double> v = c.real(b->values[i], what, r);
    if (v) out = *v;
    ok &= v.has_value();
  };
  real(0, "lr", Range::kPositive, spec.lr);
  if (spec.kind == "sgd") {
    real(1, "momentum", Range::kHalfOpenUnit, spec.momentum);
    if (b->values[2] != ast::kNoExpr) {
      std::optional<bool> v = c.boolean(b->values[2], "nesterov");
      if (v) spec.nesterov = *v;
      ok &= v.has_value();
    }
    real(3, "weight_decay", Range::kNonNegative, spec.weight_decay);
  } else {
    real(1, "beta1", Range::kHalfOpenUnit, spec.beta1);
    real(2, "beta2", Range::kHalfOpenUnit, spec.beta2);
    real(3, "eps", Range::kPositive, spec.eps);
    real(4, "weight_decay", Range::kNonNegative, spec.weight_decay);
  }
  if (!ok) return std::nullopt;
  if (spec.nesterov && spec.momentum == 0) {
    c.error(spec.span, "nesterov needs momentum > 0", "for example sgd(lr: 0.01, momentum: 0.9, nesterov: true)");
    return std::nullopt;
  }
  return spec;
}

}  // namespace

const std::vector<std::string>& known_metrics() {
  static const std::vector<std::string> metrics = {"accuracy", "auc",  "precision", "recall",
                                                   "f1",       "rmse", "mae",       "loss"};
  return metrics;
}

std::optional<TrainSpec> check_train(const ast::File& file, const ast::TrainDecl& decl, const SourceManager& sources,
                                     Diagnostics& diags) {
  static const std::vector<std::string> kFields = {
      "data",    "loss",     "optimizer",  "batch",     "epochs",           "holdout", "seed",
      "metrics", "schedule", "early_stop", "clip_grad", "max_reject_share", "test"};
  const std::size_t errors_before = diags.error_count();
  Checker c(file, sources, diags);
  TrainSpec spec;
  spec.model = decl.model;
  spec.span = decl.span;
  std::map<std::string, Span> seen;
  std::optional<Span> warmup_span;

  for (const ast::Field& field : decl.fields) {
    if (!accept_field(field, kFields, "train", seen, sources, diags)) continue;
    const ast::ExprId v = field.value;
    const std::string& f = field.name;
    if (f == "data" || f == "test") {
      std::optional<std::string> name = c.name_of(v, f, f == "data" ? "credit" : "credit_test");
      if (name) (f == "data" ? spec.data : spec.test) = *name;
      (f == "data" ? spec.data_span : spec.test_span) = c.span(v);
    } else if (f == "loss") {
      spec.loss = v;
    } else if (f == "optimizer") {
      if (auto opt = check_optimizer(c, v)) spec.optimizer = *opt;
    } else if (f == "batch" || f == "epochs") {
      if (auto n = c.integer(v, f, Range::kPositive)) (f == "batch" ? spec.batch : spec.epochs) = *n;
    } else if (f == "seed") {
      if (auto n = c.integer(v, f, Range::kNonNegative)) spec.seed = *n;
    } else if (f == "holdout") {
      if (auto n = c.real(v, f, Range::kOpenUnit)) spec.holdout = *n;
    } else if (f == "clip_grad") {
      if (auto n = c.real(v, f, Range::kPositive)) spec.clip_grad = *n;
    } else if (f == "max_reject_share") {
      if (auto n = c.real(v, f, Range::kClosedUnit)) spec.max_reject_share = *n;
    } else if (f == "metrics") {
      const ast::Expr& list = file.expr(v);
      if (list.kind != ExprKind::kList) {
        diags.error(list.span, "metrics must be a list of metric names, not '" + c.text(v) + "'",
                    "for example: metrics = [auc, accuracy]");
        continue;
      }
      for (const ast::CallArg& item : list.args) {
        std::optional<std::string> m = c.metric(item.value, "a metric");
        if (!m) continue;
        if (contains(spec.metrics, *m)) {
          diags.error(c.span(item.value), "metric '" + *m + "' is listed twice");
          continue;
        }
        spec.metrics.push_back(*m);
      }
    } else if (f == "schedule") {
      auto params = [](const std::string& kind) -> std::vector<std::string> {
        if (kind == "step") return {"every", "factor", "warmup"};
        if (kind == "cosine") return {"warmup"};
        return {};
      };
      std::optional<Checker::Bound> b =
          c.call(v, "schedule", {"constant", "step", "cosine"}, params, "cosine(warmup: 2)");
      if (!b) continue;
      spec.schedule.kind = b->kind;
      spec.schedule.span = b->span;
      if (b->kind == "step") {
        if (b->values[0] == ast::kNoExpr) {
          diags.error(b->span, "step needs 'every'", "for example step(every: 10, factor: 0.5)");
        } else if (auto n = c.integer(b->values[0], "every", Range::kPositive)) {
          spec.schedule.every = *n;
        }
        if (b->values[1] != ast::kNoExpr) {
          if (auto n = c.real(b->values[1], "factor", Range::kOpenUnit)) spec.schedule.factor = *n;
        }
      }
      ast::ExprId warmup = b->kind == "step" ? b->values[2] : b->kind == "cosine" ? b->values[0] : ast::kNoExpr;
      if (warmup != ast::kNoExpr) {
        if (auto n = c.integer(warmup, "warmup", Range::kNonNegative)) {
          spec.schedule.warmup = *n;
          warmup_span = c.span(warmup);
        }
      }
    } else if (f == "early_stop") {
      auto params = [](const std::string&) -> std::vector<std::string> { return {"metric", "patience"}; };
      std::optional<Checker::Bound> b =
          c.call(v, "early stop", {"early_stop"}, params, "early_stop(metric: auc, patience: 5)");
      if (!b) continue;
      EarlyStopSpec es;
      es.span = b->span;
      if (b->values[0] == ast::kNoExpr) {
        diags.error(b->span, "early_stop needs the metric it watches",
                    "for example early_stop(metric: auc, patience: 5)");
        continue;
      }
      std::optional<std::string> m = c.metric(b->values[0], "the metric of early_stop");
      if (!m) continue;
      es.metric = *m;
      if (b->values[1] != ast::kNoExpr) {
        std::optional<std::int64_t> p = c.integer(b->values[1], "patience", Range::kPositive);
        if (!p) continue;
        es.patience = *p;
      }
      spec.early_stop = es;
    }
  }

  for (const char* required : {"data", "loss", "optimizer"}) {
    if (seen.count(required) > 0) continue;
    std::string example = std::string(required) == "data"   ? "data = my_features"
                          : std::string(required) == "loss" ? "loss = losses.softmax_cross_entropy(logits, label)"
                                                            : "optimizer = adam(lr: 1e-3)";
    diags.error(decl.model_span, "train block for '" + decl.model + "' has no '" + required + "' field",
                "add: " + example);
  }
  if (warmup_span && spec.schedule.warmup >= spec.epochs) {
    diags.error(*warmup_span,
                "warm-up of " + std::to_string(spec.schedule.warmup) + " epochs is not shorter than training (" +
                    std::to_string(spec.epochs) + " epochs)",
                "lower the warm-up or raise epochs");
  }
  if (diags.error_count() > errors_before) return std::nullopt;
  return spec;
}

std::optional<PromoteSpec> check_promote(const ast::File& file, const ast::PromoteDecl& decl,
                                         const SourceManager& sources, Diagnostics& diags) {
  static const std::vector<std::string> kFields = {"shadow", "canary", "rollback"};
  const std::size_t errors_before = diags.error_count();
  Checker c(file, sources, diags);
  PromoteSpec spec;
  spec.model = decl.model;
  spec.span = decl.span;
  std::map<std::string, Span> seen;

  for (const ast::Field& field : decl.fields) {
    if (field.is_gate) {
      c.condition(field.value, "a gate");
      spec.gates.push_back(GateSpec{field.value, field.span});
      continue;
    }
    if (!accept_field(field, kFields, "promote", seen, sources, diags)) continue;
    if (field.name == "shadow") {
      if (auto n = c.integer(field.value, "shadow", Range::kPositive)) spec.shadow = *n;
    } else if (field.name == "canary") {
      if (auto n = c.real(field.value, "canary", Range::kOpenUnit)) spec.canary = *n;
    } else if (field.name == "rollback") {
      c.condition(field.value, "rollback");
      spec.rollback = GateSpec{field.value, field.span};
    }
  }
  if (spec.gates.empty()) {
    diags.error(decl.model_span, "promote block for '" + decl.model + "' has no gate",
                "add a condition the new model must meet, e.g. 'gate auc >= production.auc'");
  }
  if (diags.error_count() > errors_before) return std::nullopt;
  return spec;
}

}  // namespace kiln::sema
