// The LLVM backend against the oracle: every op of the registry, every example model's
// training step and a short training run, each on the JIT and on the reference executor
// with the same feeds, seed and step, compared output by output.
//
// How results are compared (compare() below):
//   - integer and bool outputs, data movement (reshape, transpose, slice, concat, gather,
//     broadcast_to, select, if_training, max pooling, one_hot), IEEE-exact elementwise math
//     (neg, abs, relu, add, sub, mul, div, sqrt, maximum, minimum, casts, comparisons) and
//     random_uniform: bit for bit (two NaNs count as equal whatever their payload);
//   - float math (transcendentals, reductions, matmul, convolution, softmax, losses,
//     gradients, optimizer updates): |jit - ref| <= (1e-5 + 1e-4 * |ref|) * sqrt(k), where k
//     is the length of the longest sum behind one output element (1 for elementwise math,
//     the reduced extent for reductions, K for a matmul, KH*KW*C for a convolution), since
//     a sum of k terms in another order drifts like sqrt(k) roundings;
//   - random_normal: |jit - ref| <= 1e-6 * |ref| + 1e-7 (libm's log and cos in both).
// Non-finite values must agree exactly (NaN with NaN, inf with the same inf).
//
// The op harness records every op of every graph it ran on both backends and checks the
// set equals the registry's, so a new op without a JIT test fails here. The (op, dtype)
// pairs the JIT refuses are listed explicitly (kRefused) and must fail to compile with a
// message naming the op.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "compiler/autodiff/autodiff.h"
#include "compiler/autodiff/emitter.h"
#include "compiler/autodiff/optimizer.h"
#include "compiler/codegen/codegen.h"
#include "compiler/codegen/fusion.h"
#include "compiler/ir/program.h"
#include "compiler/sema/sema.h"
#include "kernels/cpu/kernels.h"
#include "runtime/exec/executor.h"
#include "runtime/train/trainer.h"
#include "tests/support/files.h"

namespace {

namespace fs = std::filesystem;
using namespace kiln;
using autodiff::make_attrs;
using ir::DType;
using ir::ValueId;
using runtime::StepOptions;
using runtime::Tensor;
using Ints = std::vector<std::int64_t>;

constexpr std::int64_t B = ir::Dim::kBatch;

// ---- comparing -------------------------------------------------------------------------------

struct Cmp {
  enum Kind { kExact, kClose, kNormal } kind = kExact;
  double k = 1;  // kClose: length of the longest sum behind one element
};
constexpr Cmp kExact{Cmp::kExact, 1};
Cmp tolerant(double k = 1) {
  return {Cmp::kClose, k};
}
constexpr Cmp kNormalDraws{Cmp::kNormal, 1};

double value_at(const Tensor& t, std::int64_t i) {
  switch (t.dtype()) {
    case DType::kF32: return t.data<float>()[i];
    case DType::kF64: return t.data<double>()[i];
    case DType::kI32: return t.data<std::int32_t>()[i];
    case DType::kI64: return static_cast<double>(t.data<std::int64_t>()[i]);
    case DType::kBool: return t.data<bool>()[i] ? 1 : 0;
  }
  return 0;
}

bool same_element(const Tensor& a, const Tensor& b, std::int64_t i) {
  const std::size_t size = ir::dtype_size(a.dtype());
  const auto* pa = static_cast<const char*>(a.raw()) + static_cast<std::size_t>(i) * size;
  const auto* pb = static_cast<const char*>(b.raw()) + static_cast<std::size_t>(i) * size;
  if (std::memcmp(pa, pb, size) == 0) return true;
  return ir::is_float(a.dtype()) && std::isnan(value_at(a, i)) && std::isnan(value_at(b, i));
}

bool within(double jit, double ref, Cmp cmp) {
  if (!std::isfinite(jit) || !std::isfinite(ref)) return (std::isnan(jit) && std::isnan(ref)) || jit == ref;
  if (cmp.kind == Cmp::kNormal) return std::abs(jit - ref) <= 1e-6 * std::abs(ref) + 1e-7;
  return std::abs(jit - ref) <= (1e-5 + 1e-4 * std::abs(ref)) * std::sqrt(std::max(1.0, cmp.k));
}

// Checks jit against ref; reports the first few differing elements.
void compare(const std::string& what, const Tensor& jit, const Tensor& ref, Cmp cmp) {
  INFO(what << ": jit " << jit.to_string() << ", reference " << ref.to_string());
  REQUIRE(jit.dtype() == ref.dtype());
  REQUIRE(jit.dims() == ref.dims());
  const bool exact = cmp.kind == Cmp::kExact || !ir::is_float(ref.dtype());
  std::int64_t bad = 0;
  std::ostringstream first;
  for (std::int64_t i = 0; i < ref.elements(); ++i) {
    const bool ok = exact ? same_element(jit, ref, i) : within(value_at(jit, i), value_at(ref, i), cmp);
    if (ok) continue;
    if (bad++ < 5) {
      first.precision(9);
      first << "  [" << i << "] jit " << value_at(jit, i) << " vs reference " << value_at(ref, i) << "\n";
    }
  }
  INFO(bad << " of " << ref.elements() << " elements differ (" << (exact ? "bitwise" : "tolerance") << ")\n"
           << first.str());
  CHECK(bad == 0);
}

// An updated convolution filter ([KH, KW, C, F]) after one step. The JIT runs 5×5, stride-1
// convolutions with enough channels as Winograd F(2×2, 5×5) (kernels/cpu/winograd.cpp), whose
// filter gradient mixes the 25 taps of each (c, f): a tap whose exact gradient is 0 (its
// inputs all zero where dy is not, as at the zero borders of MNIST-like images) comes out as
// rounding noise of about 1e-8 of the gradient's largest element instead. The gradient itself
// passes the usual tolerance, but Adam's first step lr·g/(|g| + eps) turns noise that size
// into a step of up to lr. So elements whose reference gradient is below 1e-6 of the largest
// (under the Winograd path's rounding) may differ by up to lr; every other element is held to
// the usual tolerance.
void compare_conv_filter_update(const std::string& name, const Tensor& jit, const Tensor& ref, const Tensor& grad,
                                double lr, Cmp cmp) {
  INFO("updated " << name << ": jit " << jit.to_string() << ", reference " << ref.to_string());
  REQUIRE(jit.dims() == ref.dims());
  REQUIRE(grad.dims() == ref.dims());
  double largest = 0.0;
  for (std::int64_t i = 0; i < grad.elements(); ++i) largest = std::max(largest, std::abs(value_at(grad, i)));
  std::int64_t bad = 0;
  for (std::int64_t i = 0; i < ref.elements(); ++i) {
    const double j = value_at(jit, i), r = value_at(ref, i);
    const bool noise = std::abs(value_at(grad, i)) <= 1e-6 * largest;
    if (within(j, r, cmp) || (noise && std::abs(j - r) <= lr * (1 + 1e-6))) continue;
    if (bad++ < 5) UNSCOPED_INFO("[" << i << "] jit " << j << " vs reference " << r);
  }
  CHECK(bad == 0);
}

// Ops that ran on both backends (for the registry coverage check).
std::set<std::string>& covered() {
  static std::set<std::string> ops;
  return ops;
}

// ---- one graph under test --------------------------------------------------------------------

enum class Domain { kAny, kPositive, kAwayFromZero, kUnit, kSpecial, kSmallInts, kIndex, kBool };

class Case {
 public:
  Case(std::string name, unsigned seed) : graph_(std::move(name)), emit_(graph_, Span{}, {}), rng_(seed) {}

  ir::Graph& graph() { return graph_; }
  std::mt19937& rng() { return rng_; }

  // An input of `dims` (B: the batch dimension) fed with values from `domain`. kIndex draws
  // integers in [lo, hi].
  ValueId input(Ints dims, DType dtype = DType::kF32, Domain domain = Domain::kAny, std::int64_t lo = 0,
                std::int64_t hi = 0) {
    const std::string name = "x" + std::to_string(inputs_.size());
    const ValueId v = emit_.emit(
        "input", {},
        make_attrs({{"name", name}, {"dtype", std::string(ir::dtype_name(dtype))}, {"shape", dims}, {"label", false}}),
        name);
    graph_.add_input(name, v);
    inputs_.push_back({name, v, dtype, domain, lo, hi});
    return v;
  }
  ValueId index_input(Ints dims, DType dtype, std::int64_t lo, std::int64_t hi) {
    return input(std::move(dims), dtype, Domain::kIndex, lo, hi);
  }

  ValueId op(std::string_view name, std::vector<ValueId> operands, ir::Attrs attrs = {}) {
    return emit_.emit(name, std::move(operands), std::move(attrs));
  }
  autodiff::Emitter& emitter() { return emit_; }

  // Registers `v` as an output compared by `cmp`; `differentiate`: part of the loss whose
  // gradients with_gradients() compares.
  void out(ValueId v, Cmp cmp, bool differentiate = false) {
    const std::string name =
        "y" + std::to_string(outputs_.size()) + "." + std::string(ir::core_ops().get(graph_.node(v).op).name);
    graph_.add_output(name, v);
    outputs_.push_back({name, v, cmp, differentiate});
  }

  // Adds loss = sum_i reduce_sum(out_i * w_i) over the outputs marked `differentiate` (w_i
  // random, not differentiated) and outputs d loss / d each float input, compared with
  // tolerance tolerant(k).
  void with_gradients(double k) {
    std::vector<ValueId> terms;
    const std::size_t own_inputs = inputs_.size();  // not the loss weights added below
    const std::vector<Output> outs = outputs_;
    for (const Output& o : outs) {
      if (!o.differentiate) continue;
      const ir::TensorType t = graph_.node(o.value).type;
      const ValueId w = input(autodiff::shape_ints(t.shape), t.dtype);
      terms.push_back(op("reduce_sum", {op("mul", {o.value, w})}));
    }
    REQUIRE(!terms.empty());
    ValueId loss = terms[0];
    for (std::size_t i = 1; i < terms.size(); ++i) loss = op("add", {loss, terms[i]});
    std::vector<ValueId> wrt;
    std::vector<std::string> names;
    for (std::size_t i = 0; i < own_inputs; ++i) {
      const InputSpec& in = inputs_[i];
      if (!ir::is_float(in.dtype) || in.domain == Domain::kSpecial) continue;
      wrt.push_back(in.value);
      names.push_back(in.name);
    }
    const auto grads = autodiff::differentiate(graph_, loss, wrt);
    for (std::size_t i = 0; i < wrt.size(); ++i) {
      if (!grads[i]) continue;
      graph_.add_output("grad." + names[i], *grads[i]);
      outputs_.push_back({"grad." + names[i], *grads[i], tolerant(k), false});
    }
  }

  // Builds both executors at `batch`, initialises them with the same seed, then for each of
  // `steps` runs both on the same feeds and compares every output and every variable.
  void run(std::int64_t batch = 3, std::vector<StepOptions> steps = {StepOptions{}}, Cmp variables = kExact) {
    INFO("graph " << graph_.name() << " at batch " << batch << "\n" << ir::print_graph(graph_));
    REQUIRE(ir::verify(graph_).empty());
    std::map<std::string, Tensor> feeds;
    for (const InputSpec& in : inputs_) feeds.emplace(in.name, make_feed(in, batch));
    const ir::Program program = ir::lower_to_program(graph_, batch);
    const auto why = codegen::unsupported_reason(program);
    INFO("JIT refuses: " << why.value_or("-"));
    REQUIRE(!why);
    auto ref = runtime::make_reference_executor(graph_, batch);
    auto jit = runtime::make_jit_executor(graph_, batch);
    ref->initialize(17);
    jit->initialize(17);
    for (const StepOptions& options : steps) {
      INFO("seed " << options.seed << " step " << options.step << (options.training ? " training" : " inference"));
      const auto want = ref->run(feeds, options);
      const auto got = jit->run(feeds, options);
      REQUIRE(got.size() == want.size());
      for (const auto& [name, expected] : want) {
        Cmp cmp = kExact;
        for (const Output& o : outputs_)
          if (o.name == name) cmp = o.cmp;
        REQUIRE(got.count(name) == 1);
        compare("output " + name, got.at(name), expected, cmp);
      }
      for (const auto* list : {&graph_.parameters(), &graph_.states()}) {
        for (const ir::NamedValue& v : *list)
          compare("variable " + v.name, jit->variable(v.name), ref->variable(v.name), variables);
      }
    }
    for (const ir::Node& n : graph_.nodes()) covered().insert(std::string(ir::core_ops().get(n.op).name));
  }

 private:
  struct InputSpec {
    std::string name;
    ValueId value;
    DType dtype;
    Domain domain;
    std::int64_t lo, hi;
  };
  struct Output {
    std::string name;
    ValueId value;
    Cmp cmp;
    bool differentiate;
  };

  double draw(Domain d) {
    switch (d) {
      case Domain::kAny: return std::normal_distribution<double>(0, 1)(rng_);
      case Domain::kPositive: return std::uniform_real_distribution<double>(0.5, 2)(rng_);
      case Domain::kUnit: return std::uniform_real_distribution<double>(0.05, 0.95)(rng_);
      case Domain::kAwayFromZero: {
        const double m = std::uniform_real_distribution<double>(0.5, 2)(rng_);
        return std::bernoulli_distribution(0.5)(rng_) ? m : -m;
      }
      case Domain::kSpecial: {
        static const double kSpecials[] = {0.0,
                                           -0.0,
                                           1.0,
                                           -1.0,
                                           2.5,
                                           -2.5,
                                           0.49999997,
                                           3e9,
                                           -3e9,
                                           1e19,
                                           -1e19,
                                           std::numeric_limits<double>::infinity(),
                                           -std::numeric_limits<double>::infinity(),
                                           std::numeric_limits<double>::quiet_NaN(),
                                           1e-30,
                                           65504.0};
        if (std::bernoulli_distribution(0.5)(rng_)) return std::normal_distribution<double>(0, 100)(rng_);
        return kSpecials[std::uniform_int_distribution<std::size_t>(0, std::size(kSpecials) - 1)(rng_)];
      }
      case Domain::kSmallInts: return static_cast<double>(std::uniform_int_distribution<int>(-2, 2)(rng_));
      case Domain::kIndex:
      case Domain::kBool: break;
    }
    return 0;
  }

  Tensor make_feed(const InputSpec& in, std::int64_t batch) {
    Ints dims;
    for (const ir::Dim& d : graph_.node(in.value).type.shape.dims) dims.push_back(d.is_batch() ? batch : d.size);
    Tensor t(in.dtype, dims);
    for (std::int64_t i = 0; i < t.elements(); ++i) {
      if (in.domain == Domain::kIndex) {
        const std::int64_t v = std::uniform_int_distribution<std::int64_t>(in.lo, in.hi)(rng_);
        if (in.dtype == DType::kI32) t.data<std::int32_t>()[i] = static_cast<std::int32_t>(v);
        if (in.dtype == DType::kI64) t.data<std::int64_t>()[i] = v;
        continue;
      }
      switch (in.dtype) {
        case DType::kBool: t.data<bool>()[i] = std::bernoulli_distribution(0.5)(rng_); break;
        case DType::kF32: t.data<float>()[i] = static_cast<float>(draw(in.domain)); break;
        case DType::kF64: t.data<double>()[i] = draw(in.domain); break;
        case DType::kI32: {
          // Integers: small (so comparisons tie), or the edges (overflowing division).
          static const std::int32_t kEdges[] = {0, 1, -1, std::numeric_limits<std::int32_t>::min(),
                                                std::numeric_limits<std::int32_t>::max()};
          t.data<std::int32_t>()[i] = std::bernoulli_distribution(0.2)(rng_)
                                          ? kEdges[std::uniform_int_distribution<int>(0, 4)(rng_)]
                                          : std::uniform_int_distribution<std::int32_t>(-9, 9)(rng_);
          break;
        }
        case DType::kI64: {
          static const std::int64_t kEdges[] = {0,
                                                1,
                                                -1,
                                                std::numeric_limits<std::int64_t>::min(),
                                                std::numeric_limits<std::int64_t>::max(),
                                                std::int64_t{1} << 40};
          t.data<std::int64_t>()[i] = std::bernoulli_distribution(0.2)(rng_)
                                          ? kEdges[std::uniform_int_distribution<int>(0, 5)(rng_)]
                                          : std::uniform_int_distribution<std::int64_t>(-9, 9)(rng_);
          break;
        }
      }
    }
    return t;
  }

  ir::Graph graph_;
  autodiff::Emitter emit_;
  std::mt19937 rng_;
  std::vector<InputSpec> inputs_;
  std::vector<Output> outputs_;
};

ir::Attrs dtype_attr(DType d) {
  return make_attrs({{"dtype", std::string(ir::dtype_name(d))}});
}

StepOptions step_options(std::uint64_t seed, std::uint64_t step, bool training) {
  StepOptions o;
  o.seed = seed;
  o.step = step;
  o.training = training;
  return o;
}

// ---- op families -----------------------------------------------------------------------------

void unary_ops() {
  // Float math, every op over shapes with sizes 1, primes and the batch, forward and backward.
  for (const DType dt : {DType::kF32, DType::kF64}) {
    Case c(std::string("unary_") + std::string(ir::dtype_name(dt)), 1);
    const std::vector<Ints> shapes = {{}, {1}, {7}, {13, 31}, {B, 5, 3}};
    for (const Ints& dims : shapes) {
      const ValueId any = c.input(dims, dt);
      const ValueId positive = c.input(dims, dt, Domain::kPositive);
      for (const char* op : {"neg", "abs", "relu"}) c.out(c.op(op, {any}), kExact, dt == DType::kF32);
      c.out(c.op("sqrt", {positive}), kExact, dt == DType::kF32);
      c.out(c.op("log", {positive}), tolerant(), dt == DType::kF32);
      for (const char* op : {"exp", "tanh", "sigmoid"}) c.out(c.op(op, {any}), tolerant(), dt == DType::kF32);
    }
    // Out-of-domain and extreme values: NaN, infinities, overflow, -0.
    const ValueId special = c.input({31}, dt, Domain::kSpecial);
    for (const char* op : {"neg", "abs", "relu", "sqrt", "log", "exp", "tanh", "sigmoid"})
      c.out(c.op(op, {special}), op == std::string("neg") || op == std::string("abs") ? kExact : tolerant());
    // A fused chain: log(sigmoid(x) + 1) * exp(-|x|).
    const ValueId x = c.input({B, 17}, dt);
    const ValueId one = c.emitter().scalar(1, dt);
    c.out(c.op("mul", {c.op("log", {c.op("add", {c.op("sigmoid", {x}), one})}),
                       c.op("exp", {c.op("neg", {c.op("abs", {x})})})}),
          tolerant(), dt == DType::kF32);
    if (dt == DType::kF32) c.with_gradients(1);
    c.run(3);
  }
  // Integer versions of the numeric unary ops.
  Case c("unary_int", 2);
  for (const DType dt : {DType::kI32, DType::kI64}) {
    const ValueId x = c.input({7, 13}, dt);
    for (const char* op : {"neg", "abs"}) c.out(c.op(op, {x}), kExact);  // relu and the rest: floats only
  }
  c.run(1);
}

void casts() {
  Case c("cast", 3);
  const std::vector<DType> all = {DType::kF32, DType::kF64, DType::kI32, DType::kI64, DType::kBool};
  for (const DType from : all) {
    const Domain d = ir::is_float(from) ? Domain::kSpecial : Domain::kAny;
    const ValueId x = c.input({B, 13}, from, d);
    for (const DType to : all) c.out(c.op("cast", {x}, dtype_attr(to)), kExact);
  }
  const ValueId small = c.input({31}, DType::kF32, Domain::kSmallInts);
  c.out(c.op("cast", {c.op("cast", {small}, dtype_attr(DType::kI32))}, dtype_attr(DType::kF32)), kExact);
  // A differentiable cast (f32 -> f64 -> f32).
  const ValueId g = c.input({B, 5});
  c.out(c.op("cast", {c.op("cast", {g}, dtype_attr(DType::kF64))}, dtype_attr(DType::kF32)), kExact, true);
  c.with_gradients(1);
  c.run(7);
}

// Pairs of broadcasting shapes: [N,1] vs [1,M], scalars, missing leading dims, the batch.
std::vector<std::pair<Ints, Ints>> broadcast_shapes() {
  return {{{7, 1}, {1, 13}},       {{}, {7, 13}}, {{31}, {}},    {{B, 7, 13}, {13}},
          {{7, 1, 5}, {1, 13, 1}}, {{31}, {31}},  {{1}, {B, 1}}, {{B, 1, 3}, {B, 5, 1}}};
}

void binary_ops() {
  for (const DType dt : {DType::kF32, DType::kF64}) {
    Case c(std::string("binary_") + std::string(ir::dtype_name(dt)), 4);
    for (const auto& [sa, sb] : broadcast_shapes()) {
      const ValueId a = c.input(sa, dt), b = c.input(sb, dt);
      const ValueId nonzero = c.input(sb, dt, Domain::kAwayFromZero), positive = c.input(sa, dt, Domain::kPositive);
      for (const char* op : {"add", "sub", "mul", "maximum", "minimum"})
        c.out(c.op(op, {a, b}), kExact, dt == DType::kF32);
      c.out(c.op("div", {a, nonzero}), kExact, dt == DType::kF32);
      c.out(c.op("pow", {positive, b}), tolerant(), dt == DType::kF32);
    }
    // NaN, infinities, zero divisors.
    const ValueId s = c.input({31}, dt, Domain::kSpecial), t = c.input({31}, dt, Domain::kSpecial);
    for (const char* op : {"add", "sub", "mul", "div", "maximum", "minimum"}) c.out(c.op(op, {s, t}), kExact);
    c.out(c.op("pow", {s, t}), tolerant());
    if (dt == DType::kF32) c.with_gradients(1);
    c.run(3);
  }
  Case c("binary_int", 5);
  for (const DType dt : {DType::kI32, DType::kI64}) {
    for (const auto& [sa, sb] : broadcast_shapes()) {
      const ValueId a = c.input(sa, dt), b = c.input(sb, dt);  // zeros and INT_MIN / -1 among them
      for (const char* op : {"add", "sub", "mul", "div", "maximum", "minimum"}) c.out(c.op(op, {a, b}), kExact);
    }
  }
  c.run(2);
}

void compares_and_select() {
  Case c("compare", 6);
  for (const DType dt : {DType::kF32, DType::kF64, DType::kI32, DType::kI64, DType::kBool}) {
    const Domain d = ir::is_float(dt) ? Domain::kSmallInts : Domain::kAny;  // ties
    for (const auto& [sa, sb] : broadcast_shapes()) {
      const ValueId a = c.input(sa, dt, d), b = c.input(sb, dt, d);
      for (const char* op : {"less", "less_equal", "greater", "greater_equal", "equal", "not_equal"})
        c.out(c.op(op, {a, b}), kExact);
    }
    if (ir::is_float(dt)) {  // NaN compares false (not_equal true)
      const ValueId s = c.input({31}, dt, Domain::kSpecial), t = c.input({31}, dt, Domain::kSpecial);
      for (const char* op : {"less", "less_equal", "greater", "greater_equal", "equal", "not_equal"})
        c.out(c.op(op, {s, t}), kExact);
    }
  }
  // select over every dtype, with cond, a and b broadcasting three ways.
  for (const DType dt : {DType::kF32, DType::kF64, DType::kI32, DType::kI64, DType::kBool}) {
    const ValueId cond = c.input({B, 1}, DType::kBool);
    const ValueId a = c.input({1, 13}, dt), b = c.input({}, dt);
    c.out(c.op("select", {cond, a, b}), kExact, dt == DType::kF32);
    const ValueId cond2 = c.input({7, 13}, DType::kBool);
    c.out(c.op("select", {cond2, c.input({7, 13}, dt), c.input({13}, dt)}), kExact, dt == DType::kF32);
  }
  // A compare feeding a select in one fused loop: relu written by hand.
  const ValueId x = c.input({B, 31});
  c.out(
      c.op("select", {c.op("greater", {x, c.emitter().scalar(0, DType::kF32)}), x, c.emitter().scalar(0, DType::kF32)}),
      kExact, true);
  c.with_gradients(1);
  c.run(5);
}

void reductions() {
  Case c("reduce", 7);
  struct R {
    Ints dims;
    Ints axes;
  };
  const std::vector<R> cases = {
      {{7, 13, 5}, {}},     {{7, 13, 5}, {0}},      {{7, 13, 5}, {1}},      {{7, 13, 5}, {2}}, {{7, 13, 5}, {-1}},
      {{7, 13, 5}, {0, 2}}, {{7, 13, 5}, {0, 1}},   {{7, 13, 5}, {1, 2}},   {{1}, {0}},        {{B, 31}, {1}},
      {{B, 31}, {0}},       {{3, 1, 5, 2}, {1, 3}}, {{3, 1, 5, 2}, {0, 2}}, {{}, {}},          {{33, 65}, {}}};
  for (const R& r : cases) {
    const ValueId x = c.input(r.dims);
    std::int64_t k = 1;
    for (std::size_t a = 0; a < r.dims.size(); ++a) {
      const bool reduced =
          r.axes.empty() || std::find(r.axes.begin(), r.axes.end(), std::int64_t(a)) != r.axes.end() ||
          std::find(r.axes.begin(), r.axes.end(), std::int64_t(a) - std::int64_t(r.dims.size())) != r.axes.end();
      if (reduced) k *= r.dims[a] == B ? 3 : r.dims[a];
    }
    for (const bool keep : {false, true}) {
      const ir::Attrs attrs = make_attrs({{"axes", r.axes}, {"keepdims", keep}});
      c.out(c.op("reduce_sum", {x}, attrs), tolerant(double(k)), true);
      c.out(c.op("reduce_mean", {x}, attrs), tolerant(double(k)), true);
      c.out(c.op("reduce_max", {x}, attrs), kExact, true);
    }
  }
  // NaN and infinities through max (sums of such values depend on the order).
  const ValueId s = c.input({5, 31}, DType::kF32, Domain::kSpecial);
  c.out(c.op("reduce_max", {s}, make_attrs({{"axes", Ints{1}}})), kExact);
  c.out(c.op("reduce_max", {s}, make_attrs({{"axes", Ints{0}}})), kExact);
  c.with_gradients(1);
  c.run(3);
}

void matmuls() {
  Case c("matmul", 8);
  struct M {
    std::int64_t m, k, n;
  };
  for (const M& s : {M{1, 1, 1}, M{7, 13, 5}, M{33, 17, 65}, M{64, 784, 256}}) {
    for (const bool ta : {false, true}) {
      for (const bool tb : {false, true}) {
        const ValueId a = c.input(ta ? Ints{s.k, s.m} : Ints{s.m, s.k});
        const ValueId b = c.input(tb ? Ints{s.n, s.k} : Ints{s.k, s.n});
        c.out(c.op("matmul", {a, b}, make_attrs({{"transpose_a", ta}, {"transpose_b", tb}})), tolerant(double(s.k)),
              s.k < 784);
      }
    }
  }
  // Batched (rank 3, operands broadcasting a leading 1 or a rank-2 operand) and vectors.
  const ValueId a3 = c.input({B, 7, 13});
  c.out(c.op("matmul", {a3, c.input({13, 5})}), tolerant(13), true);
  c.out(c.op("matmul", {a3, c.input({B, 13, 5})}), tolerant(13), true);
  c.out(c.op("matmul", {c.input({B, 13, 7}), c.input({1, 5, 13})},
             make_attrs({{"transpose_a", true}, {"transpose_b", true}})),
        tolerant(13), true);
  c.out(c.op("matmul", {c.input({13}), c.input({13, 5})}), tolerant(13), true);
  c.out(c.op("matmul", {c.input({7, 13}), c.input({13})}), tolerant(13), true);
  c.out(c.op("matmul", {c.input({17}), c.input({17})}), tolerant(17), true);
  // Epilogues: + row bias, then relu (fused into the matmul); a [1, n] bias.
  const ValueId x = c.input({B, 33});
  const ValueId w = c.input({33, 17});
  c.out(c.op("relu", {c.op("add", {c.op("matmul", {x, w}), c.input({17})})}), tolerant(33), true);
  c.out(c.op("add", {c.input({1, 17}), c.op("matmul", {c.input({B, 33}), w})}), tolerant(33), true);
  c.with_gradients(65);  // the longest backward sum: n = 65
  c.run(3);
}

void layout() {
  Case c("layout", 9);
  for (const DType dt : {DType::kF32, DType::kF64, DType::kI32, DType::kI64, DType::kBool}) {
    const bool diff = dt == DType::kF32;
    const ValueId x = c.input({B, 7, 13}, dt);
    const ValueId x4 = c.input({2, 3, 5, 7}, dt);
    // reshape
    c.out(c.op("reshape", {x}, make_attrs({{"shape", Ints{B, 91}}})), kExact, diff);
    c.out(c.op("reshape", {x}, make_attrs({{"shape", Ints{B, 13, 1, 7}}})), kExact, diff);
    // Reshapes of intermediate values of 64 KiB or more are views (no copy): one, one of
    // another, and one whose operand is read again after it; a reshape of an output, or of
    // a small value, stays a copy.
    if (dt == DType::kF32) {
      const ValueId xl = c.input({B, 70, 97});    // 80 KB at batch 3
      const ValueId t = c.op("transpose", {xl});  // [97, 70, B], made in the arena
      const ValueId v1 = c.op("reshape", {t}, make_attrs({{"shape", Ints{6790, B}}}));
      const ValueId v2 = c.op("reshape", {v1}, make_attrs({{"shape", Ints{B, 6790}}}));
      c.out(c.op("neg", {v2}), kExact, true);
      c.out(c.op("add", {c.op("reshape", {c.op("neg", {xl})}, make_attrs({{"shape", Ints{B, 6790}}})),
                         c.op("reshape", {xl}, make_attrs({{"shape", Ints{B, 6790}}}))}),
            kExact, true);
      c.out(c.op("exp", {c.op("reshape", {c.op("neg", {x})}, make_attrs({{"shape", Ints{B, 91}}}))}), kExact, true);
      const ValueId shown = c.op("transpose", {xl});
      c.out(shown, kExact, true);
      c.out(c.op("reshape", {shown}, make_attrs({{"shape", Ints{70, B, 97}}})), kExact, true);
      ir::Program program = ir::lower_to_program(c.graph(), 3);
      const codegen::detail::FusionPlan plan = codegen::detail::plan_fusion(program);
      int views = 0;
      for (const auto& [view, of] : plan.views) {
        ++views;
        CHECK(program.buffers[view].offset == program.buffers[of].offset);
        CHECK(program.buffers[of].last >= program.buffers[view].last);
        CHECK(!program.buffers[of].pinned());
      }
      CHECK(views == 3);  // v1, v2 and the reshape of neg(xl); not those of an input, an output or neg(x)
    }
    // transpose: every permutation of rank 3, the default, and rank 4
    Ints perm{0, 1, 2};
    do {
      c.out(c.op("transpose", {x}, make_attrs({{"perm", perm}})), kExact, diff);
    } while (std::next_permutation(perm.begin(), perm.end()));
    c.out(c.op("transpose", {x}), kExact, diff);
    c.out(c.op("transpose", {x4}, make_attrs({{"perm", Ints{3, 1, 0, 2}}})), kExact, diff);
    c.out(c.op("transpose", {x4}, make_attrs({{"perm", Ints{0, 2, -1, 1}}})), kExact, diff);
    // broadcast_to
    c.out(c.op("broadcast_to", {c.input({1, 13}, dt)}, make_attrs({{"shape", Ints{B, 7, 13}}})), kExact, diff);
    c.out(c.op("broadcast_to", {c.input({7, 1}, dt)}, make_attrs({{"shape", Ints{7, 31}}})), kExact, diff);
    c.out(c.op("broadcast_to", {c.input({}, dt)}, make_attrs({{"shape", Ints{5, 3}}})), kExact, diff);
    // slice along each axis: first, middle, last element and whole ranges
    for (const std::int64_t axis : {1, 2, -1, -2}) {
      const std::int64_t size = axis == 1 || axis == -2 ? 7 : 13;
      for (const auto& [start, end] : std::vector<std::pair<std::int64_t, std::int64_t>>{
               {0, 1}, {size / 2, size}, {size - 1, size}, {0, size}, {1, size - 1}}) {
        c.out(c.op("slice", {x}, make_attrs({{"axis", axis}, {"start", start}, {"end", end}})), kExact, diff);
      }
    }
    c.out(c.op("slice", {x4}, make_attrs({{"axis", 0}, {"start", 1}, {"end", 2}})), kExact, diff);
    c.out(c.op("slice", {x4}, make_attrs({{"axis", 3}, {"start", 2}, {"end", 5}})), kExact, diff);
    // concat along each axis, of 1, 2 and 3 parts
    c.out(c.op("concat", {x}, make_attrs({{"axis", 1}})), kExact, diff);
    c.out(c.op("concat", {x, c.input({B, 5, 13}, dt)}, make_attrs({{"axis", 1}})), kExact, diff);
    c.out(c.op("concat", {x, c.input({B, 7, 1}, dt), c.input({B, 7, 3}, dt)}, make_attrs({{"axis", -1}})), kExact,
          diff);
    c.out(c.op("concat", {x4, c.input({1, 3, 5, 7}, dt)}, make_attrs({{"axis", 0}})), kExact, diff);
    c.out(c.op("concat", {x4, c.input({2, 1, 5, 7}, dt), x4}, make_attrs({{"axis", 1}})), kExact, diff);
    c.out(c.op("concat", {c.input({5}, dt), c.input({7}, dt)}, make_attrs({{"axis", 0}})), kExact, diff);
  }
  c.with_gradients(8);
  c.run(3);
}

void indexing() {
  Case c("indexing", 10);
  for (const DType index : {DType::kI32, DType::kI64}) {
    // gather: rows of f32 and i32 tables, in range and out of range (a zero row).
    const ValueId table = c.input({7, 5});
    c.out(c.op("gather", {table, c.index_input({B}, index, 0, 6)}), kExact, true);
    c.out(c.op("gather", {table, c.index_input({B, 3}, index, -3, 9)}), kExact, true);
    c.out(c.op("gather", {c.input({13}), c.index_input({31}, index, -1, 13)}), kExact, true);
    c.out(c.op("gather", {c.input({5, 2, 3}, DType::kI32), c.index_input({B, 2}, index, -1, 5)}), kExact);
    // scatter_add: duplicate and out-of-range indices.
    c.out(c.op("scatter_add", {c.index_input({B}, index, -1, 5), c.input({B, 7})}, make_attrs({{"rows", 5}})),
          tolerant(3), true);
    c.out(c.op("scatter_add", {c.index_input({31}, index, 0, 2), c.input({31, 3})}, make_attrs({{"rows", 3}})),
          tolerant(31), true);
    // one_hot
    c.out(c.op("one_hot", {c.index_input({B}, index, -2, 8)}, make_attrs({{"depth", 7}})), kExact);
    c.out(c.op("one_hot", {c.index_input({B, 3}, index, 0, 12)}, make_attrs({{"depth", 13}})), kExact);
  }
  // argmax along each axis, with ties (small integers) and NaN.
  const ValueId ties = c.input({7, 13}, DType::kF32, Domain::kSmallInts);
  for (const std::int64_t axis : {0, -1, 1}) c.out(c.op("argmax", {ties}, make_attrs({{"axis", axis}})), kExact);
  const ValueId x3 = c.input({3, 5, 130}, DType::kF32, Domain::kSmallInts);
  for (const std::int64_t axis : {0, 1, 2}) c.out(c.op("argmax", {x3}, make_attrs({{"axis", axis}})), kExact);
  const ValueId nan = c.input({B, 31}, DType::kF32, Domain::kSpecial);
  c.out(c.op("argmax", {nan}), kExact);
  c.out(c.op("argmax", {c.input({1})}), kExact);
  c.with_gradients(31);
  c.run(3);
}

void convolutions() {
  Case c("conv2d", 11);
  const ValueId x = c.input({B, 9, 11, 3});
  const ValueId w = c.input({3, 3, 3, 4});
  for (const std::int64_t stride : {1, 2}) {
    for (const std::int64_t dilation : {1, 2}) {
      for (const char* padding : {"same", "valid"}) {
        c.out(c.op("conv2d", {x, w},
                   make_attrs({{"stride", stride}, {"dilation", dilation}, {"padding", std::string(padding)}})),
              tolerant(27), true);
      }
    }
  }
  // 1x1 filters, a single channel, an even filter with "same" padding.
  c.out(c.op("conv2d", {x, c.input({1, 1, 3, 5})}), tolerant(3), true);
  c.out(c.op("conv2d", {c.input({1, 7, 7, 1}), c.input({2, 2, 1, 1})},
             make_attrs({{"padding", std::string("same")}, {"stride", 2}})),
        tolerant(4), true);
  c.out(c.op("conv2d", {c.input({B, 13, 5, 2}), c.input({5, 2, 2, 3})}, make_attrs({{"stride", 2}})), tolerant(20),
        true);
  // Epilogues (+ a bias per filter, then relu, inside the convolution): direct and Winograd
  // (5×5, stride 1, 8 channels or more) convolutions, a [F] and a [1, 1, 1, F] bias on either
  // side of the add, with and without the relu.
  const auto same = make_attrs({{"padding", std::string("same")}});
  // (Filters of their own: the emitter would give conv2d(x, w) the node of an output above.)
  c.out(c.op("relu", {c.op("add", {c.op("conv2d", {x, c.input({3, 3, 3, 4})}), c.input({4})})}), tolerant(27), true);
  c.out(c.op("add", {c.input({1, 1, 1, 4}), c.op("conv2d", {x, c.input({3, 3, 3, 4})}, same)}), tolerant(27), true);
  const ValueId x8 = c.input({B, 8, 7, 8});
  const ValueId w8 = c.input({5, 5, 8, 9});
  c.out(c.op("relu", {c.op("add", {c.op("conv2d", {x8, w8}, same), c.input({9})})}), tolerant(200), true);
  c.out(c.op("add", {c.op("conv2d", {x8, w8}), c.input({1, 1, 1, 9})}), tolerant(200), true);
  {
    ir::Program program = ir::lower_to_program(c.graph(), 2);
    const codegen::detail::FusionPlan plan = codegen::detail::plan_fusion(program);
    int conv_epilogues = 0, with_relu = 0;
    for (const auto& [at, e] : plan.epilogues) {
      if (ir::core_ops().get(program.instructions[at].op).name != "conv2d") continue;
      ++conv_epilogues;
      with_relu += e.act == 1 ? 1 : 0;
      CHECK(e.bias.has_value());
    }
    CHECK(conv_epilogues == 4);
    CHECK(with_relu == 2);
  }
  c.with_gradients(3 * 9 * 11 * 4);
  c.run(2);
}

void pools() {
  Case c("pool", 12);
  const ValueId x = c.input({B, 9, 11, 3});
  for (const std::int64_t size : {1, 2, 3}) {
    for (const std::int64_t stride : {0, 1, 2}) {
      for (const char* padding : {"same", "valid"}) {
        const ir::Attrs a = make_attrs({{"size", size}, {"stride", stride}, {"padding", std::string(padding)}});
        c.out(c.op("max_pool2d", {x}, a), kExact, true);
        c.out(c.op("avg_pool2d", {x}, a), tolerant(double(size * size)), true);
      }
    }
  }
  c.out(c.op("max_pool2d", {c.input({1, 7, 7, 1})}, make_attrs({{"size", 3}, {"stride", 2}})), kExact, true);
  c.with_gradients(9);
  c.run(2);
}

void softmaxes_and_losses() {
  Case c("softmax", 13);
  for (const Ints& dims : {Ints{7, 13}, Ints{B, 5, 3}, Ints{1, 1}, Ints{B, 131}}) {
    const ValueId x = c.input(dims);
    for (const std::int64_t axis : {0, -1, 1}) {
      c.out(c.op("softmax", {x}, make_attrs({{"axis", axis}})), tolerant(double(dims.back() == B ? 3 : 13)), true);
      c.out(c.op("log_softmax", {x}, make_attrs({{"axis", axis}})), tolerant(131), true);
    }
  }
  // Large logits: the stable forms must agree (no inf - inf).
  const ValueId big = c.input({5, 7}, DType::kF32, Domain::kAny);
  c.out(c.op("softmax", {c.op("mul", {big, c.emitter().scalar(80, DType::kF32)})}), tolerant(7));
  for (const DType index : {DType::kI32, DType::kI64}) {
    c.out(c.op("softmax_cross_entropy", {c.input({B, 7}), c.index_input({B}, index, 0, 6)}), tolerant(7), true);
    c.out(c.op("softmax_cross_entropy", {c.input({B, 3, 2}), c.index_input({B, 3}, index, 0, 1)}), tolerant(2), true);
    c.out(c.op("softmax_cross_entropy", {c.input({13, 1}), c.index_input({13}, index, 0, 0)}), tolerant(1), true);
  }
  const Ints dims{B, 13};
  c.out(c.op("sigmoid_cross_entropy", {c.input(dims), c.input(dims, DType::kF32, Domain::kUnit)}), tolerant(), true);
  c.out(c.op("sigmoid_cross_entropy", {c.op("mul", {c.input({31}), c.emitter().scalar(40, DType::kF32)}),
                                       c.input({31}, DType::kF32, Domain::kUnit)}),
        tolerant(), true);
  c.with_gradients(131);
  c.run(3);
}

void random_ops() {
  Case c("random", 14);
  const auto uniform = [&](Ints shape, double low, double high, std::int64_t stream) {
    return c.op("random_uniform", {}, make_attrs({{"shape", shape}, {"low", low}, {"high", high}, {"stream", stream}}));
  };
  c.out(uniform({7, 13}, 0, 1, 1), kExact);
  c.out(uniform({1}, -3, 5, 2), kExact);
  c.out(uniform({31, 3}, -0.5, 0.5, 1), kExact);  // the same stream, another shape
  c.out(uniform({B, 5}, 1e-3, 2e-3, 7), kExact);
  c.out(c.op("random_uniform_like", {c.input({B, 17})}, make_attrs({{"stream", 9}})), kExact);
  c.out(c.op("random_uniform_like", {c.input({13}, DType::kI32)}, make_attrs({{"low", -2.0}, {"stream", 10}})), kExact);
  for (const Ints& shape : {Ints{7, 13}, Ints{1}, Ints{B, 3}, Ints{5}}) {
    c.out(c.op("random_normal", {}, make_attrs({{"shape", shape}, {"mean", 0.5}, {"stddev", 2.0}, {"stream", 3}})),
          kNormalDraws);
  }
  // Dropout as the stdlib writes it: keep where uniform >= rate, scale survivors.
  const ValueId x = c.input({B, 64});
  const ValueId keep = c.op("greater_equal", {c.op("random_uniform_like", {x}, make_attrs({{"stream", 11}})),
                                              c.emitter().scalar(0.3, DType::kF32)});
  c.out(c.op("select",
             {keep, c.op("mul", {x, c.emitter().scalar(1 / 0.7, DType::kF32)}), c.emitter().scalar(0, DType::kF32)}),
        kExact);
  // Fills (constant, full) of every dtype.
  for (const DType dt : {DType::kF32, DType::kF64, DType::kI32, DType::kI64, DType::kBool}) {
    c.out(c.op("full", {},
               make_attrs({{"shape", Ints{7, 3}}, {"value", -2.75}, {"dtype", std::string(ir::dtype_name(dt))}})),
          kExact);
    c.out(c.op("constant", {}, make_attrs({{"value", 3e10}, {"dtype", std::string(ir::dtype_name(dt))}})), kExact);
  }
  c.run(3, {step_options(0, 0, true), step_options(1, 0, true), step_options(1, 5, false),
            step_options(0xFFFFFFFFFFFFull, 1ull << 40, true)});
}

// Parameters, states and assign_state; the fused optimizer ops; if_training.
void training_ops() {
  {
    // assign_state semantics: reads in a step see the old values, assigns land after it.
    Case c("assign", 15);
    const ir::TensorType scalar{DType::kF32, {}};
    const ValueId zero = c.emitter().filled(0, scalar);
    const ValueId counter = c.op("state", {zero}, make_attrs({{"name", std::string("counter")}}));
    c.graph().add_state("counter", counter);
    const ValueId init = c.op("random_uniform", {}, make_attrs({{"shape", Ints{7, 13}}, {"stream", 4}}));
    const ValueId p = c.op("parameter", {init}, make_attrs({{"name", std::string("p")}}));
    c.graph().add_parameter("p", p);
    const ValueId next = c.op("add", {counter, c.op("constant", {}, make_attrs({{"value", 1.0}}))});
    c.op("assign_state", {counter, next});
    const ValueId moved = c.op("sub", {p, c.op("mul", {c.input({7, 13}), c.emitter().scalar(0.5, DType::kF32)})});
    c.op("assign_state", {p, moved});
    c.out(c.op("add", {p, counter}), kExact);  // the old values
    c.out(moved, kExact);
    c.out(c.op("if_training", {c.op("mul", {p, p}), c.op("neg", {p})}), kExact);
    c.run(1, {step_options(0, 0, true), step_options(0, 1, true), step_options(0, 2, false), step_options(0, 3, true)});
  }
  {
    // New values made by kernels that copy (reshape, a rank-0 reduction) and an assign's old
    // value stored by another assign: each lives in an assign slot, and must get there with
    // its full size (a review found them written with 0 bytes).
    Case c("assign_homes", 18);
    const ir::TensorType vec{DType::kF32, ir::Shape{ir::Dim::of(4)}};
    const ir::TensorType one{DType::kF32, {}};
    const ValueId w = c.op("parameter", {c.emitter().filled(0.25, vec)}, make_attrs({{"name", std::string("w")}}));
    c.graph().add_parameter("w", w);
    const ValueId s = c.op("state", {c.emitter().filled(2, one)}, make_attrs({{"name", std::string("s")}}));
    c.graph().add_state("s", s);
    const ValueId a = c.op("state", {c.emitter().filled(3, vec)}, make_attrs({{"name", std::string("a")}}));
    c.graph().add_state("a", a);
    const ValueId b = c.op("state", {c.emitter().filled(5, vec)}, make_attrs({{"name", std::string("b")}}));
    c.graph().add_state("b", b);
    const ValueId x = c.input({2, 2});
    c.op("assign_state", {w, c.op("reshape", {x}, make_attrs({{"shape", Ints{4}}}))});
    c.op("assign_state", {s, c.op("reduce_sum", {c.op("mul", {s, s})}, make_attrs({{"axes", Ints{}}}))});
    const ValueId old_a =
        c.op("assign_state", {a, c.op("add", {a, c.op("reshape", {x}, make_attrs({{"shape", Ints{4}}}))})});
    c.op("assign_state", {b, old_a});
    c.out(c.op("add", {w, b}), kExact);
    c.run(1, {step_options(0, 0, true), step_options(0, 1, true), step_options(0, 2, true)});
  }
  {
    // Integer fills that saturate: 1e19 and infinity are INT64_MAX, NaN is 0.
    Case c("integer_fills", 19);
    for (const double v : {1e19, -1e19, std::numeric_limits<double>::infinity(), std::nan("")}) {
      for (const char* dt : {"i32", "i64"})
        c.out(c.op("full", {}, make_attrs({{"shape", Ints{3}}, {"value", v}, {"dtype", std::string(dt)}})), kExact);
    }
    c.run();
  }
  {
    // sgd_update and adam_update, each kind of hyper-parameters, several steps (Adam's bias
    // correction counts the step).
    Case c("optimizers", 16);
    const ValueId grad = c.input({13, 7});
    const auto param = [&](const std::string& name) {
      const ValueId init =
          c.op("random_uniform", {}, make_attrs({{"shape", Ints{13, 7}}, {"low", -1.0}, {"stream", 5}}));
      const ValueId v = c.op("parameter", {init}, make_attrs({{"name", name}}));
      c.graph().add_parameter(name, v);
      return v;
    };
    const auto state = [&](const std::string& name, double value) {
      const ValueId init = c.op("full", {}, make_attrs({{"shape", Ints{13, 7}}, {"value", value}}));
      const ValueId v = c.op("state", {init}, make_attrs({{"name", name}}));
      c.graph().add_state(name, v);
      return v;
    };
    int k = 0;
    for (const double momentum : {0.0, 0.9}) {
      for (const bool nesterov : {false, true}) {
        for (const double decay : {0.0, 1e-2}) {
          const std::string n = "sgd" + std::to_string(k++);
          const ValueId p = param(n);
          const ValueId vel = state(n + ".v", 0.25);
          const ValueId np =
              c.op("sgd_update", {p, grad, vel},
                   make_attrs({{"lr", 0.1}, {"momentum", momentum}, {"nesterov", nesterov}, {"weight_decay", decay}}));
          c.op("assign_state", {p, np});
          c.out(np, tolerant());
        }
      }
    }
    for (const bool decoupled : {false, true}) {
      for (const double decay : {0.0, 1e-2}) {
        const std::string n = "adam" + std::to_string(k++);
        const ValueId p = param(n);
        const ValueId m = state(n + ".m", 0.1), v = state(n + ".v", 0.01);
        const ValueId np = c.op("adam_update", {p, grad, m, v},
                                make_attrs({{"lr", 1e-2},
                                            {"beta1", 0.8},
                                            {"beta2", 0.99},
                                            {"eps", 1e-6},
                                            {"weight_decay", decay},
                                            {"decoupled", decoupled}}));
        c.op("assign_state", {p, np});
        c.out(np, tolerant());
      }
    }
    c.run(1, {step_options(0, 0, true), step_options(0, 1, true), step_options(0, 7, true)}, tolerant());
  }
}

// ---- the refused (op, dtype) pairs -----------------------------------------------------------

struct Refused {
  const char* op;
  DType dtype;
};
// What the JIT does not compile: float math kernels in f64 and integer kernels (the
// elementwise loops take every dtype; exp/log/sqrt/tanh/sigmoid/relu of an integer are refused
// by the shape rules already, pow of an integer by the JIT).
const std::vector<Refused> kRefused = {
    {"matmul", DType::kF64},
    {"matmul", DType::kI32},
    {"reduce_sum", DType::kF64},
    {"reduce_sum", DType::kI32},
    {"reduce_mean", DType::kF64},
    {"reduce_max", DType::kI64},
    {"argmax", DType::kF64},
    {"argmax", DType::kI32},
    {"softmax", DType::kF64},
    {"log_softmax", DType::kF64},
    {"conv2d", DType::kF64},
    {"max_pool2d", DType::kF64},
    {"avg_pool2d", DType::kF64},
    {"pow", DType::kI32},
    {"pow", DType::kI64},
    {"softmax_cross_entropy", DType::kF64},
    {"sigmoid_cross_entropy", DType::kF64},
    {"scatter_add", DType::kF64},
    {"one_hot", DType::kF64},
    {"random_uniform", DType::kF64},
    {"random_normal", DType::kF64},
    {"sgd_update", DType::kF64},
    {"adam_update", DType::kF64},
};

ValueId refused_graph(Case& c, const std::string& op, DType dt) {
  const auto dts = std::string(ir::dtype_name(dt));
  if (op == "matmul") return c.op(op, {c.input({3, 4}, dt), c.input({4, 5}, dt)});
  if (op == "argmax" || op == "softmax" || op == "log_softmax" || op.starts_with("reduce_"))
    return c.op(op, {c.input({3, 4}, dt)});
  if (op == "conv2d") return c.op(op, {c.input({1, 5, 5, 2}, dt), c.input({3, 3, 2, 2}, dt)});
  if (op.ends_with("pool2d")) return c.op(op, {c.input({1, 4, 4, 2}, dt)});
  if (op == "pow") return c.op(op, {c.input({3}, dt), c.input({3}, dt)});
  if (op == "softmax_cross_entropy") return c.op(op, {c.input({3, 4}, dt), c.index_input({3}, DType::kI32, 0, 3)});
  if (op == "sigmoid_cross_entropy") return c.op(op, {c.input({3, 4}, dt), c.input({3, 4}, dt, Domain::kUnit)});
  if (op == "scatter_add")
    return c.op(op, {c.index_input({3}, DType::kI32, 0, 1), c.input({3, 2}, dt)}, make_attrs({{"rows", 2}}));
  if (op == "one_hot")
    return c.op(op, {c.index_input({3}, DType::kI32, 0, 1)}, make_attrs({{"depth", 4}, {"dtype", dts}}));
  if (op.starts_with("random_")) return c.op(op, {}, make_attrs({{"shape", Ints{3}}, {"dtype", dts}}));
  if (op == "sgd_update")
    return c.op(op, {c.input({3}, dt), c.input({3}, dt), c.input({3}, dt)}, make_attrs({{"lr", 0.1}}));
  if (op == "adam_update")
    return c.op(op, {c.input({3}, dt), c.input({3}, dt), c.input({3}, dt), c.input({3}, dt, Domain::kPositive)},
                make_attrs({{"lr", 0.1}}));
  FAIL("no refused-graph builder for " << op);
  return 0;
}

// ---- the example models ----------------------------------------------------------------------

sema::SemaOptions stdlib() {
  sema::SemaOptions o;
  o.stdlib_dirs = {testing::source_dir() / "stdlib"};
  return o;
}

// The exclusive upper bound of the integer input `v`: the rows of the table it indexes or
// the classes of the cross-entropy it labels; 1 when nothing reads it, 0 when unknown.
std::int64_t index_bound(const ir::Graph& g, ValueId v) {
  bool read = false;
  for (const ir::Node& n : g.nodes()) {
    read = read || std::find(n.operands.begin(), n.operands.end(), v) != n.operands.end();
    const std::string_view op = ir::core_ops().get(n.op).name;
    if (op == "gather" && n.operands[1] == v) return g.node(n.operands[0]).type.shape.dims[0].size;
    if (op == "softmax_cross_entropy" && n.operands[1] == v) return g.node(n.operands[0]).type.shape.dims.back().size;
    if (op == "one_hot" && n.operands[0] == v) return n.attrs.get_int("depth");
  }
  return read ? 0 : 1;
}

std::map<std::string, Tensor> model_feeds(const ir::Graph& g, std::int64_t batch, std::mt19937& rng) {
  std::map<std::string, Tensor> feeds;
  for (const ir::NamedValue& in : g.inputs()) {
    const ir::Node& node = g.node(in.value);
    Ints dims;
    for (const ir::Dim d : node.type.shape.dims) dims.push_back(d.is_batch() ? batch : d.size);
    Tensor t(node.type.dtype, dims);
    INFO("input " << in.name << " " << t.to_string());
    if (in.name == autodiff::kLearningRateInput) {
      t.data<float>()[0] = 1e-3f;
    } else if (node.type.dtype == DType::kF32) {
      std::uniform_real_distribution<float> u(0, 1);
      for (std::int64_t i = 0; i < t.elements(); ++i) t.data<float>()[i] = u(rng);
    } else {
      const std::int64_t bound = index_bound(g, in.value);
      REQUIRE(bound > 0);
      std::uniform_int_distribution<std::int64_t> u(0, bound - 1);
      for (std::int64_t i = 0; i < t.elements(); ++i) {
        if (node.type.dtype == DType::kI32) t.data<std::int32_t>()[i] = static_cast<std::int32_t>(u(rng));
        if (node.type.dtype == DType::kI64) t.data<std::int64_t>()[i] = u(rng);
      }
    }
    feeds.emplace(in.name, std::move(t));
  }
  return feeds;
}

// One training step (seed 9, updates held) on both executors, initialised alike: every
// output of `graph` (the JIT's) against the reference's (an output only the reference has
// must be a "grad." one, added to its graph for the check below), then, after commit, every parameter and state of
// `graph` (the JIT's). Where `relaxed(update)` and the reference output the variable's
// gradient, the update is held to compare_conv_filter_update's rule instead.
template <class Relaxed>
void check_held_step(runtime::Executor& ref, runtime::Executor& jit, const ir::Graph& graph,
                     const std::map<std::string, Tensor>& feeds, double lr, Cmp cmp, Relaxed relaxed) {
  StepOptions options = step_options(9, 0, true);
  options.hold_updates = true;
  const auto want = ref.run(feeds, options);
  const auto got = jit.run(feeds, options);
  REQUIRE(got.size() == graph.outputs().size());
  for (const ir::NamedValue& out : graph.outputs()) {
    INFO("output " << out.name);
    REQUIRE(got.contains(out.name));
    REQUIRE(want.contains(out.name));
    compare("output " + out.name, got.at(out.name), want.at(out.name), cmp);
  }
  for (const auto& [name, expected] : want)
    if (!got.contains(name)) CHECK(name.rfind("grad.", 0) == 0);
  CHECK(jit.pending_non_finite() == std::nullopt);
  ref.commit_updates();
  jit.commit_updates();
  for (const auto* list : {&graph.parameters(), &graph.states()}) {
    for (const ir::NamedValue& v : *list) {
      const Tensor& jit_value = jit.variable(v.name);
      const auto grad = want.find("grad." + v.name);
      if (grad != want.end() && relaxed(jit_value))
        compare_conv_filter_update(v.name, jit_value, ref.variable(v.name), grad->second, lr, cmp);
      else
        compare("updated " + v.name, jit_value, ref.variable(v.name), cmp);
    }
  }
}

}  // namespace

TEST_CASE("the JIT agrees with the reference on every op of the registry", "[jit]") {
  const std::vector<std::pair<const char*, std::function<void()>>> families = {
      {"unary", unary_ops},
      {"cast", casts},
      {"binary", binary_ops},
      {"compare and select", compares_and_select},
      {"reductions", reductions},
      {"matmul", matmuls},
      {"layout", layout},
      {"indexing", indexing},
      {"conv2d", convolutions},
      {"pooling", pools},
      {"softmax and losses", softmaxes_and_losses},
      {"random and fills", random_ops},
      {"variables, optimizers, if_training", training_ops}};
  for (const auto& [name, run] : families) {
    INFO("family: " << name);
    run();
  }
  // Every op of the registry ran on both backends in some graph above.
  std::set<std::string> registry;
  for (const ir::OpInfo& op : ir::core_ops().all()) registry.insert(std::string(op.name));
  std::vector<std::string> missing;
  for (const std::string& op : registry)
    if (!covered().contains(op)) missing.push_back(op);
  std::string list;
  for (const std::string& op : missing) list += (list.empty() ? "" : ", ") + op;
  INFO("ops without a JIT test: " << list);
  CHECK(missing.empty());
  CHECK(covered() == registry);
}

TEST_CASE("the JIT refuses exactly its listed (op, dtype) pairs, naming the op", "[jit]") {
  for (const Refused& r : kRefused) {
    INFO(r.op << " " << ir::dtype_name(r.dtype));
    Case c(std::string("refused_") + r.op, 20);
    c.out(refused_graph(c, r.op, r.dtype), kExact);
    REQUIRE(ir::verify(c.graph()).empty());
    const auto why = codegen::unsupported_reason(ir::lower_to_program(c.graph(), 1));
    REQUIRE(why.has_value());
    CHECK_THAT(*why, Catch::Contains("'" + std::string(r.op) + "'"));
    CHECK_THROWS_AS(runtime::make_jit_executor(c.graph(), 1), std::runtime_error);
    CHECK_THROWS_WITH(runtime::make_jit_executor(c.graph(), 1), Catch::Contains(r.op));
    CHECK_NOTHROW(runtime::make_reference_executor(c.graph(), 1));
  }
}

TEST_CASE("every example model's training step agrees on the JIT and the reference", "[jit]") {
  int models = 0;
  for (const auto& entry : fs::directory_iterator(testing::source_dir() / "models")) {
    if (entry.path().extension() != ".kiln") continue;
    INFO(entry.path().filename().string());
    auto c = sema::compile_file(entry.path(), stdlib());
    INFO(c->diags.render(c->sources));
    REQUIRE(!c->diags.has_errors());
    for (const sema::LoweredTrain& train : c->trains) {
      ++models;
      autodiff::TrainingStep step = autodiff::build_training_step(train);
      REQUIRE(step.ok());
      for (const auto& [param, grad] : step.gradients) step.graph.add_output("grad." + param, grad);
      const std::int64_t batch = entry.path().stem() == "fashion_cnn" ? 4 : 8;
      std::mt19937 rng(5);
      const auto feeds = model_feeds(step.graph, batch, rng);
      auto ref = runtime::make_reference_executor(step.graph, batch);
      auto jit = runtime::make_jit_executor(step.graph, batch);
      ref->initialize(3);
      jit->initialize(3);
      for (const auto* list : {&step.graph.parameters(), &step.graph.states()}) {
        for (const ir::NamedValue& v : *list)
          compare("initial " + v.name, jit->variable(v.name), ref->variable(v.name), kExact);
      }
      // The longest sums of the example models: 784-wide inputs, batch-summed gradients.
      // Both graphs are the same here, every gradient an output of each.
      check_held_step(*ref, *jit, step.graph, feeds, train.spec.optimizer.lr, tolerant(784),
                      [](const Tensor& update) { return update.dims().size() == 4; });
    }
  }
  CHECK(models == 6);
}

// The training step of an example model's (first) train block.
autodiff::TrainingStep example_training_step(const std::string& file) {
  auto c = sema::compile_file(testing::source_dir() / "models" / file, stdlib());
  REQUIRE(!c->diags.has_errors());
  autodiff::TrainingStep step = autodiff::build_training_step(c->trains.front());
  REQUIRE(step.ok());
  return step;
}

TEST_CASE("the AVX2 and the portable kernels (older CPUs than this one) agree with the reference", "[jit]") {
  // KILN_CPU=NAME makes the JIT compile for that CPU: x86-64-v3 (AVX2 and FMA, no AVX-512)
  // gets the AVX2 kernel bitcode and x86-64 (neither) the portable one, whatever this
  // machine has; both run here.
  struct Target {
    const char* cpu;
    const char* kernels;
    std::int64_t batch;  // big enough for the AVX2 GEMM's micro-tiles; small for the slow portable ones
  };
  const Target target = GENERATE(Target{"x86-64-v3", "avx2", 16}, Target{"x86-64", "portable", 3});
  INFO("KILN_CPU=" << target.cpu);
  struct CpuOverride {
    explicit CpuOverride(const char* cpu) { ::setenv("KILN_CPU", cpu, 1); }
    ~CpuOverride() { ::unsetenv("KILN_CPU"); }
  } override_cpu(target.cpu);
  for (const char* name : {"fashion_mlp.kiln", "fashion_cnn.kiln"}) {
    INFO(name);
    autodiff::TrainingStep step = example_training_step(name);
    // Gradients are compared rather than Adam's first update, which divides a gradient by
    // its own magnitude and so turns a last-bit difference in a near-zero gradient into a
    // different step.
    for (const auto& [param, grad] : step.gradients) step.graph.add_output("grad." + param, grad);
    const std::int64_t batch = target.batch;
    codegen::CodegenOptions options;
    options.cpu = target.cpu;
    const auto program = codegen::jit_compile(ir::lower_to_program(step.graph, batch), options,
                                              reinterpret_cast<void*>(&kiln_parallel_for));
    CHECK(program->report().kernels == target.kernels);
    std::mt19937 rng(11);
    const auto feeds = model_feeds(step.graph, batch, rng);
    auto ref = runtime::make_reference_executor(step.graph, batch);
    auto jit = runtime::make_jit_executor(step.graph, batch);
    ref->initialize(4);
    jit->initialize(4);
    const StepOptions options_step = step_options(2, 0, true);
    const auto want = ref->run(feeds, options_step);
    const auto got = jit->run(feeds, options_step);
    REQUIRE(got.size() == want.size());
    for (const auto& [out, expected] : want) compare("output " + out, got.at(out), expected, tolerant(784));
  }
}

TEST_CASE("a batch-1 product skips its input's zeros and gives the dense sum bit for bit, on every kernel flavour",
          "[jit]") {
  // The few-rows matmul lists the nonzero elements of a row of A (compress on AVX-512, a
  // permutation table on AVX2, a scalar loop otherwise) and reads only their rows of B.
  // Each flavour must give the dense chain's bits: one FMA per k where the CPU has FMA, a
  // multiply then an add where it has not (the portable kernels' x86-64).
  struct Target {
    const char* cpu;  // KILN_CPU; "" is this machine
    bool fma;
  };
  const Target target = GENERATE(Target{"", true}, Target{"x86-64-v3", true}, Target{"x86-64", false});
  INFO("KILN_CPU=" << target.cpu);
  struct CpuOverride {
    explicit CpuOverride(const char* cpu) {
      if (*cpu != 0) ::setenv("KILN_CPU", cpu, 1);
    }
    ~CpuOverride() { ::unsetenv("KILN_CPU"); }
  } override_cpu(target.cpu);
  const std::int64_t n = 200, k = 784;
  Case c("listed_rows", 7);
  const ValueId x = c.input({B, k});
  const ValueId w = c.input({k, n});
  c.out(c.op("matmul", {x, w}), kExact);
  for (std::int64_t batch : {1, 3}) {
    INFO("batch " << batch);
    const ir::Program program = ir::lower_to_program(c.graph(), batch);
    codegen::CodegenOptions options;
    options.cpu = target.cpu;
    const std::string kernels =
        codegen::jit_compile(program, options, reinterpret_cast<void*>(&kiln_parallel_for))->report().kernels;
    if (*target.cpu == 0 && kernels != "avx512")
      WARN("this CPU has no AVX-512 (kernels: " << kernels << "): the AVX-512 listing is not run here");
    std::mt19937 rng(static_cast<std::uint32_t>(batch));
    Tensor xs(DType::kF32, {batch, k}), ws(DType::kF32, {k, n});
    std::uniform_real_distribution<float> value(-1.0f, 1.0f);
    std::bernoulli_distribution zero(0.5);
    float* xp = xs.data<float>();
    for (std::int64_t e = 0; e < batch * k; ++e) xp[e] = zero(rng) ? 0.0f : value(rng);
    // Not a zero: reaches every column of row 1 (batch 3).
    if (batch > 1) xp[k + k / 2] = std::numeric_limits<float>::quiet_NaN();
    for (std::int64_t e = 0; e < k * n; ++e) ws.data<float>()[e] = value(rng);
    const std::vector<float> x_values(xp, xp + batch * k), w_values(ws.data<float>(), ws.data<float>() + k * n);
    std::map<std::string, Tensor> feeds;
    feeds.emplace("x0", std::move(xs));
    feeds.emplace("x1", std::move(ws));
    auto jit = runtime::make_jit_executor(c.graph(), batch);
    jit->initialize(1);
    const auto got = jit->run(feeds, StepOptions{});
    REQUIRE(got.size() == 1);
    const float* y = got.begin()->second.data<float>();
    std::int64_t wrong = 0, nans = 0;
    for (std::int64_t i = 0; i < batch; ++i)
      for (std::int64_t j = 0; j < n; ++j) {
        float acc = 0.0f;
        for (std::int64_t kk = 0; kk < k; ++kk) {
          const float a = x_values[static_cast<std::size_t>(i * k + kk)];
          const float b = w_values[static_cast<std::size_t>(kk * n + j)];
          if (target.fma) {
            acc = std::fma(a, b, acc);
          } else {
            const float product = a * b;  // its own statement: not contracted
            acc = acc + product;
          }
        }
        const float got_value = y[i * n + j];
        nans += std::isnan(got_value) ? 1 : 0;
        wrong += (std::isnan(acc) && std::isnan(got_value)) || std::memcmp(&acc, &got_value, sizeof acc) == 0 ? 0 : 1;
      }
    CHECK(nans == (batch > 1 ? n : 0));  // row 1's, from its NaN
    CHECK(wrong == 0);
  }
}

TEST_CASE("a relu's gradient after a max-pool's gradient is folded into the pool gradient", "[jit]") {
  // fashion_cnn has relu -> max_pool twice; each backward pass computes
  // select(c > 0, max_pool2d_grad(c, dy), 0), which becomes the pool gradient's epilogue
  // (the agreement with the reference is checked by the example-model tests above).
  autodiff::TrainingStep step = example_training_step("fashion_cnn.kiln");
  ir::Program program = ir::lower_to_program(step.graph, 4);
  const codegen::detail::FusionPlan plan = codegen::detail::plan_fusion(program);
  int pool_epilogues = 0;
  for (const auto& [at, e] : plan.epilogues) {
    if (e.act != 2) continue;
    ++pool_epilogues;
    CHECK(ir::core_ops().get(program.instructions[at].op).name == "max_pool2d_grad");
    CHECK(program.buffers[e.target].dims == program.buffers[program.instructions[at].result].dims);
  }
  CHECK(pool_epilogues == 2);
  // No select is left: the dense layer's relu gradient (2-D) is its matmul's epilogue.
  int selects = 0;
  for (std::size_t i = 0; i < program.instructions.size(); ++i) {
    const ir::Instruction& inst = program.instructions[i];
    if (ir::core_ops().get(inst.op).name == "select" && !plan.absorbed[i]) ++selects;
  }
  CHECK(selects == 0);
}

TEST_CASE("a relu's gradient after a matmul is folded into the matmul", "[jit]") {
  // fashion_mlp's backward pass computes select(h > 0, dy·Wᵀ, 0) for both hidden layers; each
  // becomes the epilogue of the matmul that makes dy·Wᵀ, gated by the relu's output h.
  autodiff::TrainingStep step = example_training_step("fashion_mlp.kiln");
  ir::Program program = ir::lower_to_program(step.graph, 8);
  const codegen::detail::FusionPlan plan = codegen::detail::plan_fusion(program);
  int gated = 0;
  for (const auto& [at, e] : plan.epilogues) {
    if (e.act != 3) continue;
    ++gated;
    const ir::Instruction& mm = program.instructions[at];
    CHECK(ir::core_ops().get(mm.op).name == "matmul");
    CHECK(!e.bias);
    CHECK(program.buffers[e.gate].dims == program.buffers[mm.result].dims);
    CHECK(program.buffers[e.target].dims == program.buffers[mm.result].dims);
    // The gate is the output of a relu, computed before the matmul and alive while it runs.
    const std::int32_t relu = plan.producer[e.gate];
    REQUIRE(relu >= 0);
    CHECK(static_cast<std::size_t>(relu) < at);
    CHECK(program.buffers[e.gate].last >= at);
  }
  CHECK(gated == 2);
  for (std::size_t i = 0; i < program.instructions.size(); ++i)
    CHECK((ir::core_ops().get(program.instructions[i].op).name != "select" || plan.absorbed[i]));
}

TEST_CASE("a matmul whose result one elementwise loop alone reads hands it C block by block", "[jit]") {
  // Each loop below is the only reader of its matmul's C, so the matmul runs at the loop's
  // place and calls the loop's code on every block of C (kiln_k_matmul_chained) instead of
  // storing it. The loops broadcast a scalar, a row, a column and a full matrix, follow a
  // bias (and relu) epilogue, read C twice, and cover the few-rows path (batch 3), blocks
  // that start past column 0 (150 × 1100: split by columns, and wider than a block), several
  // blocks of rows (1000 × 300) and both transposes. A C that is also an output
  // is stored as before. These Cs are smaller than the size from which the compiler chains
  // by default (CodegenOptions::chain_min_bytes), so the test lowers it to 0. No gradients:
  // their ops would read C too, and the chains checked below are those of the graph run.
  struct ChainAll {
    ChainAll() { ::setenv("KILN_CHAIN_MIN_BYTES", "0", 1); }
    ~ChainAll() { ::unsetenv("KILN_CHAIN_MIN_BYTES"); }
  } chain_all;
  Case c("chains", 21);
  const ValueId x = c.input({B, 33});
  const ValueId row = c.input({17});
  const auto product = [&] { return c.op("matmul", {x, c.input({33, 17})}); };
  c.out(c.op("tanh", {c.op("add", {c.op("mul", {product(), c.input({})}), row})}), tolerant(33));
  c.out(c.op("sub", {c.op("mul", {product(), c.input({B, 1})}), c.input({B, 17})}), tolerant(33));
  const ValueId h = c.op("relu", {c.op("add", {product(), row})});
  c.out(c.op("add", {c.op("mul", {h, h}), h}), tolerant(33));
  const ValueId wide = c.op("matmul", {c.input({150, 40}), c.input({1100, 40})}, make_attrs({{"transpose_b", true}}));
  c.out(c.op("sigmoid", {c.op("add", {wide, c.input({1, 1100})})}), tolerant(40));
  const ValueId tall = c.op("matmul", {c.input({40, 1000}), c.input({40, 300})}, make_attrs({{"transpose_a", true}}));
  c.out(c.op("maximum", {tall, c.input({1000, 1})}), tolerant(40));
  const ValueId stored = product();
  c.out(stored, tolerant(33));
  c.out(c.op("neg", {stored}), tolerant(33));
  {
    ir::Program program = ir::lower_to_program(c.graph(), 3);
    CHECK(codegen::detail::plan_fusion(program).chain_root.empty());  // all below the default size
    program = ir::lower_to_program(c.graph(), 3);
    const codegen::detail::FusionPlan plan = codegen::detail::plan_fusion(program, 0);
    CHECK(plan.chain_root.size() == 5);
    for (const auto& [m, root] : plan.chain_root) {
      CHECK(root > m);
      CHECK(codegen::detail::op_class(ir::core_ops().get(program.instructions[root].op).name) ==
            codegen::detail::OpClass::kElementwise);
      // What the matmul reads lives until it runs, at the loop's place.
      for (const ir::BufferId operand : program.instructions[m].operands)
        CHECK((program.buffers[operand].pinned() || program.buffers[operand].last >= root));
    }
  }
  c.run(3);
}

TEST_CASE("KILN_CHAIN_MIN_BYTES takes digits only and says so", "[jit]") {
  autodiff::TrainingStep step = example_training_step("credit_risk.kiln");
  for (const char* bad : {"4M", "-1", "x", " 5"}) {
    INFO("KILN_CHAIN_MIN_BYTES=" << bad);
    ::setenv("KILN_CHAIN_MIN_BYTES", bad, 1);
    try {
      runtime::make_jit_executor(step.graph, 4);
      FAIL("accepted");
    } catch (const std::runtime_error& e) {
      CHECK_THAT(e.what(), Catch::Contains("KILN_CHAIN_MIN_BYTES must be a number of bytes"));
    }
    ::unsetenv("KILN_CHAIN_MIN_BYTES");
  }
  ::setenv("KILN_CHAIN_MIN_BYTES", "1048576", 1);
  CHECK_NOTHROW(runtime::make_jit_executor(step.graph, 4));
  ::unsetenv("KILN_CHAIN_MIN_BYTES");
}

TEST_CASE("a large weight gradient goes straight into the optimizer's update", "[jit]") {
  // fashion_cnn's dense layer's weight gradient Xᵀ·dY (3136 × 1024, 12.8 MB) is read only by
  // the Adam update of its weight (both moments and the weight, one loop): its matmul is
  // chained to that loop, so the gradient is never stored. The output layer's (40 KB) and
  // fashion_mlp's (at most 0.8 MB) stay in cache when stored and are not chained.
  autodiff::TrainingStep cnn = example_training_step("fashion_cnn.kiln");
  const std::int64_t batch = 4;
  ir::Program program = ir::lower_to_program(cnn.graph, batch);
  const codegen::detail::FusionPlan plan = codegen::detail::plan_fusion(program);
  std::set<std::string> updated;
  for (const auto& [m, root] : plan.chain_root) {
    CHECK(plan.outside[program.instructions[m].result]);
    const auto home = plan.assign_home.find(program.instructions[root].result);
    REQUIRE(home != plan.assign_home.end());
    updated.insert(program.instructions[home->second].variable);
  }
  CHECK(updated == std::set<std::string>{"h.w"});
  autodiff::TrainingStep mlp = example_training_step("fashion_mlp.kiln");
  ir::Program mlp_program = ir::lower_to_program(mlp.graph, 8);
  CHECK(codegen::detail::plan_fusion(mlp_program).chain_root.empty());

  // One step of that chained program on the JIT against the reference. The example-model
  // test above makes every gradient an output, which stores it and so chains nothing; here
  // only the reference graph has them (for the tolerance of Adam's first step, which divides
  // each gradient by its own magnitude: see compare_conv_filter_update).
  autodiff::TrainingStep with_gradients = example_training_step("fashion_cnn.kiln");
  for (const auto& [param, grad] : with_gradients.gradients) with_gradients.graph.add_output("grad." + param, grad);
  std::mt19937 rng(5);
  const auto feeds = model_feeds(cnn.graph, batch, rng);
  auto ref = runtime::make_reference_executor(with_gradients.graph, batch);
  auto jit = runtime::make_jit_executor(cnn.graph, batch);
  ref->initialize(3);
  jit->initialize(3);
  check_held_step(*ref, *jit, cnn.graph, feeds, 1e-3 /* fashion_cnn.kiln: adam(lr: 1e-3) */, tolerant(3136),
                  [](const Tensor&) { return true; });
}

TEST_CASE("fashion_cnn's flatten and its gradient copy nothing", "[jit]") {
  // nn.flatten is a reshape of the pool's output, and its gradient a reshape of the dense
  // layer's input gradient: both results are views of their operands' bytes.
  autodiff::TrainingStep step = example_training_step("fashion_cnn.kiln");
  ir::Program program = ir::lower_to_program(step.graph, 8);
  const codegen::detail::FusionPlan plan = codegen::detail::plan_fusion(program);
  int reshapes = 0;
  for (const ir::Instruction& inst : program.instructions) {
    if (ir::core_ops().get(inst.op).name != "reshape" || program.buffers[inst.result].bytes < 4096) continue;
    ++reshapes;
    CHECK(plan.views.contains(inst.result));
  }
  CHECK(reshapes == 2);
}

TEST_CASE("the JIT is deterministic: the same steps on two executors give bit-identical results", "[jit]") {
  // Threads split work so that each result element has one owner and a fixed summation
  // order (per-thread partial sums, as in conv2d_grad_filter, are added in task order), so
  // a run repeats bit for bit at a given thread count.
  for (const char* name : {"fashion_mlp.kiln", "fashion_cnn.kiln"}) {
    INFO(name);
    autodiff::TrainingStep step = example_training_step(name);
    const std::int64_t batch = std::string(name) == "fashion_cnn.kiln" ? 16 : 64;
    std::mt19937 rng(13);
    const auto feeds = model_feeds(step.graph, batch, rng);
    auto first = runtime::make_jit_executor(step.graph, batch);
    auto second = runtime::make_jit_executor(step.graph, batch);
    first->initialize(6);
    second->initialize(6);
    for (std::uint64_t s = 0; s < 3; ++s) {
      const auto a = first->run(feeds, step_options(6, s, true));
      const auto b = second->run(feeds, step_options(6, s, true));
      for (const auto& [out, value] : a)
        compare("step " + std::to_string(s) + " output " + out, b.at(out), value, kExact);
    }
    for (const ir::NamedValue& v : step.graph.parameters())
      compare("after 3 steps " + v.name, second->variable(v.name), first->variable(v.name), kExact);
  }
}

TEST_CASE("a named CPU gets the kernels its instruction set allows; profiling two executors keeps them apart",
          "[jit]") {
  auto c = sema::compile_file(testing::source_dir() / "models" / "credit_risk.kiln", stdlib());
  REQUIRE(!c->diags.has_errors());
  const ir::Graph& g = c->trains.front().graph;
  codegen::CodegenOptions options;
  options.cpu = "znver4";  // compiled only, so this holds on a machine without AVX-512 too
  CHECK(codegen::jit_compile(ir::lower_to_program(g, 4), options, reinterpret_cast<void*>(&kiln_parallel_for))
            ->report()
            .kernels == "avx512");
  options.cpu = "znver3";
  CHECK(codegen::jit_compile(ir::lower_to_program(g, 4), options, reinterpret_cast<void*>(&kiln_parallel_for))
            ->report()
            .kernels == "avx2");
  options.cpu = "zen9";
  CHECK_THROWS_WITH(
      codegen::jit_compile(ir::lower_to_program(g, 4), options, reinterpret_cast<void*>(&kiln_parallel_for)),
      Catch::Contains("'zen9' is not a CPU LLVM knows"));
  options.cpu = "x86-64";
  CHECK(codegen::jit_compile(ir::lower_to_program(g, 4), options, reinterpret_cast<void*>(&kiln_parallel_for))
            ->report()
            .kernels == "portable");

  // KILN_PROFILE=1 with a big and a small executor alive: each charges its own table (the
  // small one ran nothing and prints nothing), and neither reads the other's instructions.
  ::setenv("KILN_PROFILE", "1", 1);
  {
    autodiff::TrainingStep step = autodiff::build_training_step(c->trains.front());
    auto big = runtime::make_jit_executor(step.graph, 8);
    auto small = runtime::make_jit_executor(g, 2);
    big->initialize(1);
    std::mt19937 rng(3);
    const auto feeds = model_feeds(step.graph, 8, rng);
    for (std::uint64_t s = 0; s < 3; ++s) big->run(feeds, step_options(1, s, true));
    small.reset();
  }
  ::unsetenv("KILN_PROFILE");
}

TEST_CASE("credit risk trains to the same holdout metrics on the JIT and the reference", "[jit]") {
  auto c = sema::compile_file(testing::source_dir() / "models" / "credit_risk.kiln", stdlib());
  REQUIRE(!c->diags.has_errors());
  REQUIRE(c->trains.size() == 1);
  std::map<runtime::Backend, runtime::TrainResult> results;
  for (const runtime::Backend backend : {runtime::Backend::kReference, runtime::Backend::kJit}) {
    testing::TempDir dir;
    runtime::TrainOptions options;
    options.run_dir = dir.path;
    options.epochs = 2;
    options.seed = 21;
    options.backend = backend;
    std::ostringstream log;
    results[backend] = runtime::train(*c, c->trains[0], options, log);
  }
  const auto& ref = results.at(runtime::Backend::kReference);
  const auto& jit = results.at(runtime::Backend::kJit);
  REQUIRE(ref.epochs.size() == 2);
  REQUIRE(jit.epochs.size() == 2);
  for (std::size_t e = 0; e < 2; ++e) {
    CHECK(jit.epochs[e].train_loss == Approx(ref.epochs[e].train_loss).margin(1e-3));
    for (const auto& [metric, value] : ref.epochs[e].holdout) {
      INFO("epoch " << e + 1 << " " << metric << ": jit " << jit.epochs[e].holdout.at(metric) << ", reference "
                    << value);
      CHECK(std::abs(jit.epochs[e].holdout.at(metric) - value) <= 1e-3);
    }
  }
}
