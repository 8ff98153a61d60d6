// One small graph per differentiable op, shared by the autodiff structure tests and the
// numeric gradient check (tests/runtime/test_gradcheck.cpp): inputs -> the op -> a weighted
// sum to a scalar "loss". Weighting by a random, non-differentiated input makes dy differ
// element by element, so a rule that permutes or mis-sums its gradient cannot hide behind
// a gradient of all ones. Shapes are drawn at random from sizes that include 1 and primes;
// each input records the domain its values must come from (log needs positive numbers,
// indices a bound, ...). A differentiable op without a sample here fails the tests.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "compiler/autodiff/emitter.h"
#include "compiler/ir/graph.h"

namespace kiln::autodiff::test {

enum class Domain {
  kAny,           // normal(0, 1)
  kPositive,      // uniform [0.5, 2]
  kAwayFromZero,  // +-uniform [0.5, 2]
  kUnit,          // uniform [0.1, 0.9] (targets of a binary cross-entropy)
  kIndex,         // integers in [0, bound)
  kBool,
};

struct SampleInput {
  std::string name;
  ir::ValueId value = 0;
  Domain domain = Domain::kAny;
  std::int64_t bound = 0;      // kIndex only
  bool differentiate = false;  // a float operand of the op (not the loss weights)
};

struct OpSample {
  ir::Graph graph{"sample"};
  std::vector<SampleInput> inputs;
  ir::ValueId out = 0;   // the op's node
  ir::ValueId loss = 0;  // reduce_sum(out * weights), registered as output "loss"
};

class SampleBuilder {
 public:
  SampleBuilder(ir::DType dtype, std::mt19937& rng, bool allow_batch)
      : dtype_(dtype), rng_(rng), allow_batch_(allow_batch), emit_(sample_.graph, Span{}, {}) {}

  ir::DType dtype() const { return dtype_; }
  std::int64_t dim() { return pick({1, 2, 3, 5, 7}); }
  std::int64_t pick(std::vector<std::int64_t> choices) {
    return choices[std::uniform_int_distribution<std::size_t>(0, choices.size() - 1)(rng_)];
  }
  bool coin() { return std::bernoulli_distribution(0.5)(rng_); }
  // A leading dimension: sometimes the symbolic batch, when the caller allows it.
  std::int64_t lead() { return allow_batch_ && coin() ? ir::Dim::kBatch : dim(); }

  ir::TensorType type(std::vector<std::int64_t> dims, std::optional<ir::DType> dtype = std::nullopt) {
    ir::TensorType t{dtype.value_or(dtype_), {}};
    for (const std::int64_t d : dims) t.shape.dims.push_back(ir::Dim::of(d));
    return t;
  }

  ir::ValueId input(std::vector<std::int64_t> dims, Domain domain = Domain::kAny, std::int64_t bound = 0) {
    const ir::DType dt = domain == Domain::kIndex  ? ir::DType::kI32
                         : domain == Domain::kBool ? ir::DType::kBool
                                                   : dtype_;
    const std::string name = "x" + std::to_string(sample_.inputs.size());
    const ir::ValueId v = emit_.emit(
        "input", {},
        make_attrs({{"name", name}, {"dtype", std::string(ir::dtype_name(dt))}, {"shape", dims}, {"label", false}}),
        name);
    sample_.graph.add_input(name, v);
    sample_.inputs.push_back({name, v, domain, bound, ir::is_float(dt)});
    return v;
  }

  ir::ValueId op(std::string_view name, std::vector<ir::ValueId> operands, ir::Attrs attrs = {}) {
    return emit_.emit(name, std::move(operands), std::move(attrs));
  }

  OpSample finish(ir::ValueId out) {
    sample_.out = out;
    std::vector<std::int64_t> dims = shape_ints(sample_.graph.node(out).type.shape);
    const ir::ValueId weights = input(dims);
    sample_.inputs.back().differentiate = false;
    sample_.loss = op("reduce_sum", {op("mul", {out, weights})});
    sample_.graph.add_output("loss", sample_.loss);
    return std::move(sample_);
  }

 private:
  ir::DType dtype_;
  std::mt19937& rng_;
  bool allow_batch_;
  OpSample sample_;
  Emitter emit_;
};

using SampleMaker = std::function<OpSample(SampleBuilder&)>;

// Samples by op name; several ops share a maker.
const std::map<std::string, SampleMaker, std::less<>>& op_samples();

inline OpSample make_sample(std::string_view op, ir::DType dtype, std::mt19937& rng, bool allow_batch) {
  SampleBuilder b(dtype, rng, allow_batch);
  return op_samples().find(op)->second(b);
}

}  // namespace kiln::autodiff::test
