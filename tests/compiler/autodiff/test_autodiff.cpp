// Tests of the reverse-mode pass on small hand-built graphs, where the structure of the
// gradient graph can be checked node by node: which ops the rules emit, how repeated uses
// accumulate, what gets no gradient, and the source locations new nodes carry.
#include <catch2/catch.hpp>

#include "compiler/autodiff/autodiff.h"
#include "compiler/autodiff/emitter.h"

using namespace kiln;
using namespace kiln::autodiff;
using ir::ValueId;

namespace {

constexpr std::int64_t kB = ir::Dim::kBatch;
const Span kSpanX{0, 1, 2};
const Span kSpanOp{0, 10, 20};

// A graph under construction: inputs and parameters are registered by name.
struct Builder {
  ir::Graph g{"t"};
  Emitter at_nothing{g, Span{}, {}};

  ValueId input(const std::string& name, std::vector<std::int64_t> shape, std::string dtype = "f32") {
    const ValueId v =
        Emitter(g, kSpanX, {})
            .emit("input", {}, make_attrs({{"name", name}, {"dtype", dtype}, {"shape", shape}, {"label", false}}),
                  name);
    g.add_input(name, v);
    return v;
  }
  ValueId param(const std::string& name, std::vector<std::int64_t> shape, Span span = {}) {
    Emitter e(g, span, {{"nn.dense", Span{0, 3, 4}}});
    const ValueId init = e.emit("full", {}, make_attrs({{"shape", shape}, {"value", 0.5}}));
    const ValueId p = e.emit("parameter", {init}, make_attrs({{"name", name}}), name);
    g.add_parameter(name, p);
    return p;
  }
  ValueId op(std::string_view name, std::vector<ValueId> operands, ir::Attrs attrs = {}, Span span = {}) {
    return Emitter(g, span, {}).emit(name, std::move(operands), std::move(attrs));
  }
  ValueId sum(ValueId v) { return op("reduce_sum", {v}); }
  std::string_view op_of(ValueId v) const { return ir::core_ops().get(g.node(v).op).name; }
};

}  // namespace

TEST_CASE("matmul's gradients are matmuls with transpose flags", "[autodiff]") {
  Builder b;
  const ValueId x = b.input("x", {kB, 3});
  const ValueId w = b.param("w", {3, 4});
  const ValueId y = b.op("matmul", {x, w}, {}, kSpanOp);
  const ValueId loss = b.sum(y);
  const std::size_t forward = b.g.size();
  const auto grads = differentiate(b.g, loss, std::vector<ValueId>{x, w});
  REQUIRE(grads[0]);
  REQUIRE(grads[1]);
  const ir::Node& dx = b.g.node(*grads[0]);
  CHECK(b.op_of(*grads[0]) == "matmul");
  CHECK(dx.attrs.get_bool("transpose_b"));
  CHECK_FALSE(dx.attrs.get_bool("transpose_a"));
  CHECK(dx.operands[1] == w);
  const ir::Node& dw = b.g.node(*grads[1]);
  CHECK(b.op_of(*grads[1]) == "matmul");
  CHECK(dw.attrs.get_bool("transpose_a"));  // x^T dy: contracts over the batch
  CHECK(dw.operands[0] == x);
  CHECK(dw.type == b.g.node(w).type);
  // Every node the matmul rule built points at the matmul.
  CHECK(dx.span.begin == kSpanOp.begin);
  CHECK(dw.span.end == kSpanOp.end);
  CHECK(ir::verify(b.g).empty());
  CHECK(b.g.size() > forward);
}

TEST_CASE("a value used several times gets the sum of its gradients", "[autodiff]") {
  Builder b;
  const ValueId w = b.param("w", {5});
  const ValueId loss = b.sum(b.op("mul", {w, w}));  // d/dw = w + w
  const ParameterGradients grads = build_gradients(b.g, loss);
  REQUIRE(grads.gradients.count("w") == 1);
  const ValueId dw = grads.gradients.at("w");
  CHECK(b.op_of(dw) == "add");
  CHECK(b.op_of(b.g.node(dw).operands[0]) == "mul");
  CHECK(b.op_of(b.g.node(dw).operands[1]) == "mul");
  CHECK(grads.warnings.empty());
  CHECK(ir::verify(b.g).empty());
}

TEST_CASE("broadcast operands get their gradient summed to their own shape", "[autodiff]") {
  Builder b;
  const ValueId x = b.input("x", {kB, 4});
  const ValueId bias = b.param("b", {4});
  const ValueId loss = b.sum(b.op("add", {x, bias}));
  const ValueId db = build_gradients(b.g, loss).gradients.at("b");
  CHECK(b.op_of(db) == "reduce_sum");
  CHECK(b.g.node(db).attrs.get_ints("axes") == std::vector<std::int64_t>{0});
  CHECK(b.g.node(db).type.shape == ir::Shape{ir::Dim::of(4)});
}

TEST_CASE("relu's gradient is a select on relu(x) > 0", "[autodiff]") {
  Builder b;
  const ValueId w = b.param("w", {3});
  const ValueId r = b.op("relu", {w});
  const ValueId loss = b.sum(r);
  const ValueId dw = build_gradients(b.g, loss).gradients.at("w");
  REQUIRE(b.op_of(dw) == "select");
  const ValueId cond = b.g.node(dw).operands[0];
  CHECK(b.op_of(cond) == "greater");
  CHECK(b.g.node(cond).operands[0] == r);  // the relu's output: y > 0 exactly when w > 0
}

TEST_CASE("the mean over the batch divides by the batch size at run time", "[autodiff]") {
  Builder b;
  const ValueId x = b.input("x", {kB, 2});
  const ValueId w = b.param("w", {2});
  const ValueId loss = b.op("reduce_mean", {b.op("mul", {x, w})});
  build_gradients(b.g, loss);
  bool batch_ones = false;
  for (const ir::Node& n : b.g.nodes()) {
    if (ir::core_ops().get(n.op).name == "broadcast_to" && n.attrs.get_ints("shape") == std::vector<std::int64_t>{kB}) {
      batch_ones = true;
    }
  }
  CHECK(batch_ones);
  CHECK(ir::verify(b.g).empty());
}

TEST_CASE("labels, indices, conditions and the inference branch get no gradient", "[autodiff]") {
  Builder b;
  const ValueId logits_in = b.input("logits", {kB, 3});
  const ValueId labels = b.input("labels", {kB}, "i32");
  const ValueId w = b.param("w", {3});
  const ValueId logits = b.op("mul", {logits_in, w});
  const ValueId other = b.input("other", {kB, 3});
  const ValueId picked = b.op("if_training", {logits, other});
  const ValueId loss = b.op("reduce_mean", {b.op("softmax_cross_entropy", {picked, labels})});
  const auto grads = differentiate(b.g, loss, std::vector<ValueId>{labels, other, w});
  CHECK_FALSE(grads[0]);
  CHECK_FALSE(grads[1]);
  REQUIRE(grads[2]);
  // softmax - one_hot(labels) appears, and nothing flows into the labels.
  bool one_hot = false;
  for (const ir::Node& n : b.g.nodes()) one_hot |= ir::core_ops().get(n.op).name == "one_hot";
  CHECK(one_hot);
  CHECK(ir::verify(b.g).empty());
}

TEST_CASE("nodes off the path to the loss are not differentiated", "[autodiff]") {
  Builder b;
  const ValueId x = b.input("x", {kB, 3});
  const ValueId w = b.param("w", {3});
  const ValueId h = b.op("mul", {x, w});
  const ValueId side = b.op("tanh", {h});  // a model output the loss does not use
  b.g.add_output("side", side);
  const ValueId loss = b.sum(h);
  const std::size_t forward = b.g.size();
  build_gradients(b.g, loss);
  for (ValueId v = static_cast<ValueId>(forward); v < b.g.size(); ++v) {
    for (const ValueId operand : b.g.node(v).operands) CHECK(operand != side);
    CHECK(b.op_of(v) != "tanh");
  }
}

TEST_CASE("a parameter that does not reach the loss gets zeros and a warning", "[autodiff]") {
  Builder b;
  const ValueId w = b.param("w", {3});
  b.param("unused", {2, 2}, Span{0, 30, 36});
  const ValueId loss = b.sum(w);
  const ParameterGradients grads = build_gradients(b.g, loss);
  REQUIRE(grads.gradients.count("unused") == 1);
  const ir::Node& zero = b.g.node(grads.gradients.at("unused"));
  CHECK(ir::core_ops().get(zero.op).name == "full");
  CHECK(zero.type == ir::TensorType{ir::DType::kF32, {ir::Dim::of(2), ir::Dim::of(2)}});
  CHECK(zero.attrs.get_float("value", 1) == 0.0);
  REQUIRE(grads.warnings.size() == 1);
  CHECK(grads.warnings[0].severity == Severity::kWarning);
  CHECK(grads.warnings[0].span.begin == 30);
  CHECK(grads.warnings[0].message.find("'unused'") != std::string::npos);
  REQUIRE(grads.warnings[0].chain.size() == 1);
  CHECK(grads.warnings[0].chain[0].layer == "nn.dense");
  CHECK(ir::verify(b.g).empty());
}

TEST_CASE("gradient nodes inherit the forward node's expansion chain", "[autodiff]") {
  Builder b;
  const ValueId w = b.param("w", {3});
  const ValueId t = Emitter(b.g, kSpanOp, {{"nn.layer_norm", Span{0, 40, 50}}}).emit("tanh", {w});
  const ValueId loss = b.sum(t);
  const std::size_t forward = b.g.size();
  build_gradients(b.g, loss);
  bool found = false;
  for (ValueId v = static_cast<ValueId>(forward); v < b.g.size(); ++v) {
    const ir::Node& n = b.g.node(v);
    if (ir::core_ops().get(n.op).name != "sub") continue;  // 1 - y^2, from tanh's rule
    found = true;
    CHECK(n.span.begin == kSpanOp.begin);
    REQUIRE(n.expansion.size() == 1);
    CHECK(n.expansion[0].layer == "nn.layer_norm");
  }
  CHECK(found);
}
