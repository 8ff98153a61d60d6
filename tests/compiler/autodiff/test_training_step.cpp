// Tests of the training step on every example model and on small models written for
// each optimizer: the step verifies, every parameter has a gradient of its own type, and
// the assigns and optimizer states match the optimizer kind.
#include <catch2/catch.hpp>
#include <filesystem>
#include <map>

#include "compiler/autodiff/emitter.h"
#include "compiler/autodiff/optimizer.h"
#include "compiler/sema/sema.h"

using namespace kiln;
using namespace kiln::autodiff;
namespace fs = std::filesystem;

namespace {

sema::SemaOptions options() {
  sema::SemaOptions opts;
  opts.stdlib_dirs = {fs::path(KILN_SOURCE_DIR) / "stdlib"};
  return opts;
}

std::string_view op_of(const ir::Graph& g, ir::ValueId v) {
  return ir::core_ops().get(g.node(v).op).name;
}

struct Counts {
  std::size_t param_assigns = 0;
  std::size_t state_assigns = 0;
  std::size_t opt_states = 0;
};

Counts count(const ir::Graph& g) {
  Counts c;
  for (const ir::Node& n : g.nodes()) {
    if (ir::core_ops().get(n.op).name != "assign_state") continue;
    (op_of(g, n.operands[0]) == "parameter" ? c.param_assigns : c.state_assigns)++;
  }
  for (const ir::NamedValue& s : g.states()) c.opt_states += s.name.rfind("opt.", 0) == 0 ? 1 : 0;
  return c;
}

const ir::NamedValue* find(const std::vector<ir::NamedValue>& values, std::string_view name) {
  for (const ir::NamedValue& nv : values) {
    if (nv.name == name) return &nv;
  }
  return nullptr;
}

// Everything a valid training step must satisfy, whatever the optimizer.
void check_step(const sema::LoweredTrain& train, const TrainingStep& step) {
  const ir::Graph& g = step.graph;
  const auto problems = ir::verify(g);
  for (const std::string& p : problems) INFO(p);
  CHECK(problems.empty());
  CHECK(step.ok());
  const std::size_t params = g.parameters().size();
  REQUIRE(params == train.graph.parameters().size());
  for (const ir::NamedValue& p : g.parameters()) {
    INFO("parameter " << p.name);
    REQUIRE(step.gradients.count(p.name) == 1);
    CHECK(g.node(step.gradients.at(p.name)).type == g.node(p.value).type);
  }
  const ir::NamedValue* lr = find(g.inputs(), kLearningRateInput);
  REQUIRE(lr != nullptr);
  CHECK(g.node(lr->value).type == ir::TensorType{ir::DType::kF32, {}});
  // The outputs are kept as they were: "loss" and the model's.
  REQUIRE(g.outputs().size() == train.graph.outputs().size());
  for (std::size_t i = 0; i < g.outputs().size(); ++i) {
    CHECK(g.outputs()[i].name == train.graph.outputs()[i].name);
    CHECK(g.outputs()[i].value == train.graph.outputs()[i].value);
  }
  const Counts c = count(g);
  const Counts before = count(train.graph);
  CHECK(c.param_assigns == params);
  const std::string& kind = train.spec.optimizer.kind;
  if (kind == "sgd") {
    const std::size_t per_param = train.spec.optimizer.momentum != 0 ? 1 : 0;
    CHECK(c.opt_states == per_param * params);
    CHECK(c.state_assigns == before.state_assigns + per_param * params);
    if (per_param == 1) {
      for (const ir::NamedValue& p : g.parameters()) CHECK(find(g.states(), velocity_state_name(p.name)) != nullptr);
    }
  } else {
    CHECK(c.opt_states == 2 * params + 1);
    CHECK(c.state_assigns == before.state_assigns + 2 * params + 1);
    CHECK(find(g.states(), kStepState) != nullptr);
    for (const ir::NamedValue& p : g.parameters()) {
      const ir::NamedValue* m = find(g.states(), first_moment_state_name(p.name));
      const ir::NamedValue* v = find(g.states(), second_moment_state_name(p.name));
      REQUIRE(m != nullptr);
      REQUIRE(v != nullptr);
      CHECK(g.node(m->value).type == g.node(p.value).type);
      // Optimizer states start at zero, from `full`.
      const ir::Node& init = g.node(g.node(v->value).operands[0]);
      CHECK(ir::core_ops().get(init.op).name == "full");
      CHECK(init.attrs.get_float("value", 1) == 0.0);
    }
  }
  // Neither fused update op: the update is written with primitives.
  for (const ir::Node& n : g.nodes()) {
    const std::string_view name = ir::core_ops().get(n.op).name;
    CHECK(name != "sgd_update");
    CHECK(name != "adam_update");
  }
}

std::unique_ptr<sema::Compilation> compile(const std::string& optimizer, const std::string& extra = {}) {
  const std::string text = R"(import nn
import losses

features rows from csv("toy.csv") {
  a : number
  b : number
  c : number
  label y : number
}

model toy {
  input x : rows
  h = relu(nn.batch_norm(nn.dense(x, 4)))
  output out = reshape(nn.dense(h, 1), shape: [batch])
}

train toy {
  data = rows
  loss = losses.mse(out, y)
  optimizer = )" + optimizer +
                           "\n" + extra + "}\n";
  return sema::compile_source(fs::path(KILN_SOURCE_DIR) / "tests" / "toy.kiln", text, options());
}

}  // namespace

TEST_CASE("every example model's train block becomes a valid training step", "[autodiff]") {
  std::size_t trains = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(KILN_SOURCE_DIR) / "models")) {
    if (entry.path().extension() != ".kiln") continue;
    INFO(entry.path().filename().string());
    const auto c = sema::compile_file(entry.path(), options());
    INFO(c->diags.render(c->sources));
    REQUIRE_FALSE(c->diags.has_errors());
    for (const sema::LoweredTrain& train : c->trains) {
      ++trains;
      const TrainingStep step = build_training_step(train);
      check_step(train, step);
      CHECK(step.diagnostics.empty());  // every parameter of the examples reaches the loss
    }
  }
  CHECK(trains >= 6);
}

TEST_CASE("each optimizer kind gets its states and assigns", "[autodiff]") {
  const char* optimizers[] = {"sgd(lr: 0.1)",
                              "sgd(lr: 0.1, momentum: 0.9)",
                              "sgd(lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 0.01)",
                              "adam(lr: 1e-3)",
                              "adam(lr: 1e-3, weight_decay: 0.1)",
                              "adamw(lr: 1e-3, weight_decay: 0.01)"};
  for (const char* optimizer : optimizers) {
    for (const char* extra : {"", "clip_grad = 1.0\n"}) {
      INFO(optimizer << " " << extra);
      const auto c = compile(optimizer, extra);
      INFO(c->diags.render(c->sources));
      REQUIRE_FALSE(c->diags.has_errors());
      REQUIRE(c->trains.size() == 1);
      const TrainingStep step = build_training_step(c->trains[0]);
      check_step(c->trains[0], step);
      // batch_norm's running statistics keep their own assigns.
      CHECK(count(c->trains[0].graph).state_assigns == 2);
      bool clipped = false;
      for (const ir::Node& n : step.graph.nodes()) clipped |= ir::core_ops().get(n.op).name == "maximum";
      CHECK(clipped == (std::string(extra) != ""));
    }
  }
}

TEST_CASE("SGD without momentum is p - lr * g", "[autodiff]") {
  const auto c = compile("sgd(lr: 0.1)");
  REQUIRE_FALSE(c->diags.has_errors());
  const TrainingStep step = build_training_step(c->trains[0]);
  const ir::Graph& g = step.graph;
  const ir::ValueId lr = find(g.inputs(), kLearningRateInput)->value;
  std::size_t checked = 0;
  for (const ir::Node& n : g.nodes()) {
    if (ir::core_ops().get(n.op).name != "assign_state" || op_of(g, n.operands[0]) != "parameter") continue;
    const ir::Node& next = g.node(n.operands[1]);
    REQUIRE(ir::core_ops().get(next.op).name == "sub");
    CHECK(next.operands[0] == n.operands[0]);
    const ir::Node& scaled = g.node(next.operands[1]);
    REQUIRE(ir::core_ops().get(scaled.op).name == "mul");
    const std::string name = g.node(n.operands[0]).attrs.get_string("name");
    CHECK(scaled.operands[0] == step.gradients.at(name));
    CHECK(scaled.operands[1] == lr);
    ++checked;
  }
  CHECK(checked == g.parameters().size());
}

TEST_CASE("a name the step needs that the model already uses is an error", "[autodiff]") {
  const auto c = compile("adam");
  REQUIRE_FALSE(c->diags.has_errors());
  sema::LoweredTrain train = c->trains[0];
  ir::Graph& g = train.graph;
  Emitter e(g, Span{}, {});
  const ir::ValueId lr =
      e.emit("input", {}, make_attrs({{"name", std::string("lr")}, {"shape", std::vector<std::int64_t>{}}}), "lr");
  g.add_input("lr", lr);
  const TrainingStep step = build_training_step(train);
  CHECK_FALSE(step.ok());
  REQUIRE(step.diagnostics.size() == 1);
  CHECK(step.diagnostics[0].message.find("'lr'") != std::string::npos);
}
