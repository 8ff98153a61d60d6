// Tests of the gradient rule table against the op table: every differentiable op has a
// rule and a sample graph, and every rule, on many random sample graphs (with and without
// the batch dimension, f32 and f64), builds nodes that verify and gradients of exactly their
// operands' types.
#include <catch2/catch.hpp>
#include <random>
#include <set>

#include "compiler/autodiff/autodiff.h"
#include "compiler/autodiff/gradient_rules.h"
#include "tests/compiler/autodiff/op_samples.h"

using namespace kiln;
using namespace kiln::autodiff;

namespace {

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  return out;
}

}  // namespace

TEST_CASE("every differentiable op has a gradient rule and a sample", "[autodiff]") {
  std::size_t differentiable = 0;
  for (const ir::OpInfo& op : ir::core_ops().all()) {
    if (!op.has(ir::kDifferentiable)) continue;
    ++differentiable;
    INFO("op " << op.name);
    CHECK(find_gradient_rule(op.name) != nullptr);
    CHECK(test::op_samples().count(op.name) == 1);
  }
  CHECK(differentiable > 30);
  // And no rule for an op that the table does not call differentiable (a stale entry).
  for (const auto& [name, rule] : gradient_rules()) {
    INFO("rule " << name);
    const ir::OpInfo* op = ir::core_ops().find(name);
    REQUIRE(op != nullptr);
    CHECK(op->has(ir::kDifferentiable));
  }
}

TEST_CASE("every gradient rule builds well-typed nodes on random samples", "[autodiff]") {
  for (const ir::OpInfo& op : ir::core_ops().all()) {
    if (!op.has(ir::kDifferentiable) || test::op_samples().count(op.name) == 0) continue;
    for (unsigned seed = 0; seed < 40; ++seed) {
      const ir::DType dtype = seed % 2 == 0 ? ir::DType::kF32 : ir::DType::kF64;
      const bool allow_batch = seed % 4 < 2;
      std::mt19937 rng(seed);
      test::OpSample sample = test::make_sample(op.name, dtype, rng, allow_batch);
      ir::Graph& g = sample.graph;
      INFO("op " << op.name << " seed " << seed << "\n" << ir::print_graph(g));
      REQUIRE(ir::verify(g).empty());

      std::vector<ir::ValueId> wrt;
      for (const test::SampleInput& in : sample.inputs) {
        if (in.differentiate) wrt.push_back(in.value);
      }
      const auto grads = differentiate(g, sample.loss, wrt);
      REQUIRE(grads.size() == wrt.size());
      for (std::size_t i = 0; i < wrt.size(); ++i) {
        // if_training's inference branch is the only float operand without a gradient.
        if (op.name == "if_training" && i == 1) {
          CHECK(!grads[i]);
          continue;
        }
        REQUIRE(grads[i]);
        CHECK(g.node(*grads[i]).type == g.node(wrt[i]).type);
        g.add_output("grad." + g.node(wrt[i]).name, *grads[i]);
      }
      const auto problems = ir::verify(g);
      INFO(joined(problems) << ir::print_graph(g));
      CHECK(problems.empty());
    }
  }
}
