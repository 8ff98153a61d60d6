// The numeric gradient check: for every differentiable op of the table, small f64 sample
// graphs (tests/compiler/autodiff/op_samples.h: inputs -> op -> weighted sum to "loss")
// with random shapes that include 1, primes and the batch dimension, run on the reference
// executor. The analytic gradient that autodiff builds must match central finite
// differences in double to a relative 1e-6. Ops come from the table, so a new
// differentiable op is checked as soon as it has a rule and a sample.
#include <catch2/catch.hpp>
#include <cmath>
#include <random>

#include "compiler/autodiff/autodiff.h"
#include "compiler/autodiff/optimizer.h"
#include "runtime/exec/executor.h"
#include "tests/compiler/autodiff/op_samples.h"

using namespace kiln;
using namespace kiln::autodiff;
using runtime::Tensor;

namespace {

Tensor random_feed(const test::SampleInput& in, const ir::TensorType& type, std::int64_t batch, std::mt19937& rng) {
  std::vector<std::int64_t> dims;
  for (const ir::Dim& d : type.shape.dims) dims.push_back(d.is_batch() ? batch : d.size);
  Tensor t(type.dtype, dims);
  for (std::int64_t i = 0; i < t.elements(); ++i) {
    switch (in.domain) {
      case test::Domain::kIndex:
        t.data<std::int32_t>()[i] =
            std::uniform_int_distribution<std::int32_t>(0, static_cast<std::int32_t>(in.bound - 1))(rng);
        break;
      case test::Domain::kBool: t.data<bool>()[i] = std::bernoulli_distribution(0.5)(rng); break;
      case test::Domain::kAny: t.data<double>()[i] = std::normal_distribution<double>(0, 1)(rng); break;
      case test::Domain::kPositive: t.data<double>()[i] = std::uniform_real_distribution<double>(0.5, 2)(rng); break;
      case test::Domain::kUnit: t.data<double>()[i] = std::uniform_real_distribution<double>(0.1, 0.9)(rng); break;
      case test::Domain::kAwayFromZero: {
        const double magnitude = std::uniform_real_distribution<double>(0.5, 2)(rng);
        t.data<double>()[i] = std::bernoulli_distribution(0.5)(rng) ? magnitude : -magnitude;
        break;
      }
    }
  }
  return t;
}

double loss_of(runtime::Executor& exec, const std::map<std::string, Tensor>& feeds,
               const runtime::StepOptions& options) {
  return exec.run(feeds, options).at("loss").data<double>()[0];
}

}  // namespace

TEST_CASE("autodiff's gradients match finite differences for every differentiable op", "[gradcheck]") {
  constexpr double kStep = 1e-6;
  constexpr double kTolerance = 1e-6;
  for (const ir::OpInfo& op : ir::core_ops().all()) {
    if (!op.has(ir::kDifferentiable)) continue;
    REQUIRE(test::op_samples().count(op.name) == 1);
    for (unsigned seed = 0; seed < 8; ++seed) {
      std::mt19937 rng(1000 + seed);
      test::OpSample sample = test::make_sample(op.name, ir::DType::kF64, rng, seed % 2 == 0);
      ir::Graph& g = sample.graph;
      std::vector<ir::ValueId> wrt;
      std::vector<std::string> wrt_names;
      for (const test::SampleInput& in : sample.inputs) {
        if (!in.differentiate) continue;
        wrt.push_back(in.value);
        wrt_names.push_back(in.name);
      }
      const auto grads = differentiate(g, sample.loss, wrt);
      for (std::size_t i = 0; i < wrt.size(); ++i) {
        if (grads[i]) g.add_output("grad." + wrt_names[i], *grads[i]);
      }
      const std::int64_t batch = std::uniform_int_distribution<std::int64_t>(1, 3)(rng);
      INFO("op " << op.name << " seed " << seed << " batch " << batch << "\n" << ir::print_graph(g));
      REQUIRE(ir::verify(g).empty());

      std::map<std::string, Tensor> feeds;
      for (const test::SampleInput& in : sample.inputs) {
        feeds[in.name] = random_feed(in, g.node(in.value).type, batch, rng);
      }
      const auto exec = runtime::make_reference_executor(g, batch);
      exec->initialize(0);
      runtime::StepOptions options;
      options.training = true;  // if_training takes its first operand, as in training
      const std::map<std::string, Tensor> outputs = exec->run(feeds, options);

      for (std::size_t i = 0; i < wrt.size(); ++i) {
        Tensor& x = feeds.at(wrt_names[i]);
        const Tensor* analytic = grads[i] ? &outputs.at("grad." + wrt_names[i]) : nullptr;
        if (analytic != nullptr) REQUIRE(analytic->dims() == x.dims());
        for (std::int64_t j = 0; j < x.elements(); ++j) {
          const double original = x.data<double>()[j];
          x.data<double>()[j] = original + kStep;
          const double up = loss_of(*exec, feeds, options);
          x.data<double>()[j] = original - kStep;
          const double down = loss_of(*exec, feeds, options);
          x.data<double>()[j] = original;
          const double numeric = (up - down) / (2 * kStep);
          const double exact = analytic != nullptr ? analytic->data<double>()[j] : 0.0;  // none = zero
          INFO("d loss / d " << wrt_names[i] << "[" << j << "]: autodiff " << exact << ", finite differences "
                             << numeric);
          CHECK(std::abs(exact - numeric) <= kTolerance * std::max(1.0, std::abs(numeric)));
        }
      }
    }
  }
}

namespace {

// loss = sum(w * x) over a [batch, 3] input, so d loss / d w = sum of x over the batch.
ir::Graph linear_graph() {
  ir::Graph g("linear");
  Emitter e(g, Span{}, {});
  const ir::ValueId x = e.emit("input", {},
                               make_attrs({{"name", std::string("x")},
                                           {"dtype", std::string("f64")},
                                           {"shape", std::vector<std::int64_t>{ir::Dim::kBatch, 3}}}),
                               "x");
  g.add_input("x", x);
  const ir::ValueId init = e.emit(
      "full", {}, make_attrs({{"shape", std::vector<std::int64_t>{3}}, {"value", 0.5}, {"dtype", std::string("f64")}}));
  const ir::ValueId w = e.emit("parameter", {init}, make_attrs({{"name", std::string("w")}}), "w");
  g.add_parameter("w", w);
  g.add_output("loss", e.emit("reduce_sum", {e.emit("mul", {w, x})}));
  return g;
}

std::map<std::string, Tensor> linear_feeds(double lr) {
  std::map<std::string, Tensor> feeds;
  feeds["x"] = Tensor(ir::DType::kF64, {2, 3});
  const double values[] = {1, -2, 3, 4, 5, -6};  // column sums 5, 3, -3
  for (int i = 0; i < 6; ++i) feeds["x"].data<double>()[i] = values[i];
  feeds["lr"] = Tensor(ir::DType::kF32, {});
  feeds["lr"].data<float>()[0] = static_cast<float>(lr);
  return feeds;
}

}  // namespace

TEST_CASE("the training step's updates run on the reference executor", "[gradcheck]") {
  const double grad[] = {5, 3, -3};
  sema::TrainSpec spec;
  runtime::StepOptions train;
  train.training = true;  // only a training step applies the updates
  SECTION("sgd with momentum: two steps") {
    spec.optimizer.kind = "sgd";
    spec.optimizer.momentum = 0.5;
    const TrainingStep step = add_training_step(linear_graph(), spec);
    REQUIRE(ir::verify(step.graph).empty());
    const auto exec = runtime::make_reference_executor(step.graph, 2);
    exec->initialize(0);
    exec->run(linear_feeds(0.25), train);
    exec->run(linear_feeds(0.25), train);
    for (int i = 0; i < 3; ++i) {
      // v1 = g, w1 = w0 - lr g; v2 = 0.5 g + g, w2 = w1 - lr * 1.5 g.
      CHECK(exec->variable("w").data<double>()[i] == Approx(0.5 - 0.25 * 2.5 * grad[i]));
      CHECK(exec->variable(velocity_state_name("w")).data<double>()[i] == Approx(1.5 * grad[i]));
    }
  }
  SECTION("adam: the first step moves each weight by lr against its gradient's sign") {
    spec.optimizer.kind = "adam";
    const TrainingStep step = add_training_step(linear_graph(), spec);
    REQUIRE(ir::verify(step.graph).empty());
    const auto exec = runtime::make_reference_executor(step.graph, 2);
    exec->initialize(0);
    exec->run(linear_feeds(0.01), train);
    for (int i = 0; i < 3; ++i) {
      CHECK(exec->variable("w").data<double>()[i] == Approx(0.5 - 0.01 * (grad[i] > 0 ? 1 : -1)).epsilon(1e-6));
    }
    CHECK(exec->variable(std::string(kStepState)).data<float>()[0] == 1.0f);
  }
}
