// Tests of the Graph IR container, its verifier, text printer and DOT output, on a
// small hand-built model (one dense layer with softmax and a step counter).
#include "compiler/ir/graph.h"
#include "tests/compiler/ir/helpers.h"

using namespace kiln;
using namespace kiln::ir;
using namespace kiln::ir::test;

namespace {

constexpr std::int64_t b = -1;

Node make(const char* op, std::vector<ValueId> operands, Attrs attrs, TensorType type, std::string name = {},
          Span span = {}) {
  Node node;
  node.op = core_ops().id_of(op);
  node.operands = std::move(operands);
  node.attrs = std::move(attrs);
  node.type = std::move(type);
  node.name = std::move(name);
  node.span = span;
  return node;
}

const char* const kModelText = "model m {\n  input x : [batch, 784]\n  logits = x @ w\n}\n";

Span span_of(FileId file, std::string_view word) {
  const auto begin = static_cast<std::uint32_t>(std::string_view(kModelText).find(word));
  return Span{file, begin, begin + static_cast<std::uint32_t>(word.size())};
}

// The model the printer and DOT tests render; `file` locates the spans.
Graph small_model(FileId file) {
  Graph g("mlp");
  const ValueId x = g.add(make("input", {}, A({{"name", S("x")}, {"dtype", S("f32")}, {"shape", Is({b, 784})}}),
                               F32({b, 784}), "x", span_of(file, "x :")));
  const ValueId init = g.add(
      make("random_normal", {},
           A({{"shape", Is({784, 10})}, {"mean", F(0)}, {"stddev", F(0.01)}, {"dtype", S("f32")}, {"stream", I(0)}}),
           F32({784, 10})));
  const ValueId w = g.add(make("parameter", {init}, A({{"name", S("w")}}), F32({784, 10}), "w"));
  const ValueId logits = g.add(make("matmul", {x, w}, A({{"transpose_a", B(false)}, {"transpose_b", B(false)}}),
                                    F32({b, 10}), "logits", span_of(file, "logits")));
  const ValueId probs = g.add(make("softmax", {logits}, A({{"axis", I(-1)}}), F32({b, 10})));
  const ValueId zero =
      g.add(make("constant", {}, A({{"value", F(0)}, {"dtype", S("f32")}, {"shape", Is({})}}), F32({})));
  const ValueId step = g.add(make("state", {zero}, A({{"name", S("step")}}), F32({})));
  const ValueId one =
      g.add(make("constant", {}, A({{"value", F(1)}, {"dtype", S("f32")}, {"shape", Is({})}}), F32({})));
  const ValueId next = g.add(make("add", {step, one}, {}, F32({})));
  g.add(make("assign_state", {step, next}, {}, F32({})));
  g.add_input("x", x);
  g.add_parameter("w", w);
  g.add_state("step", step);
  g.add_output("probs", probs);
  return g;
}

bool has_problem(const std::vector<std::string>& problems, const std::string& part) {
  for (const std::string& p : problems) {
    if (contains(p, part)) return true;
  }
  return false;
}

std::string join(const std::vector<std::string>& problems) {
  std::string out;
  for (const std::string& p : problems) out += p + "\n";
  return out;
}

}  // namespace

TEST_CASE("a well-formed graph verifies", "[ir][graph]") {
  SourceManager sources;
  const Graph g = small_model(sources.add("models/x.kiln", kModelText));
  CHECK(g.size() == 10);
  CHECK(g.name() == "mlp");
  CHECK(g.node(3).operands == std::vector<ValueId>{0, 2});
  const auto problems = verify(g);
  INFO(join(problems));
  CHECK(problems.empty());
}

TEST_CASE("print_graph gives the exact, stable text form", "[ir][graph][printer]") {
  SourceManager sources;
  const Graph g = small_model(sources.add("models/x.kiln", kModelText));
  const std::string expected =
      "graph mlp {\n"
      "  input x = %0\n"
      "  parameter w = %2\n"
      "  state step = %6\n"
      "  %0 = input() {dtype=\"f32\", name=\"x\", shape=[-1, 784]} : f32[batch, 784]  # x @ models/x.kiln:2:9\n"
      "  %1 = random_normal() {dtype=\"f32\", mean=0.0, shape=[784, 10], stddev=0.01, stream=0} : f32[784, 10]\n"
      "  %2 = parameter(%1) {name=\"w\"} : f32[784, 10]  # w\n"
      "  %3 = matmul(%0, %2) {transpose_a=false, transpose_b=false} : f32[batch, 10]  # logits @ "
      "models/x.kiln:3:3\n"
      "  %4 = softmax(%3) {axis=-1} : f32[batch, 10]\n"
      "  %5 = constant() {dtype=\"f32\", shape=[], value=0.0} : f32[]\n"
      "  %6 = state(%5) {name=\"step\"} : f32[]\n"
      "  %7 = constant() {dtype=\"f32\", shape=[], value=1.0} : f32[]\n"
      "  %8 = add(%6, %7) : f32[]\n"
      "  %9 = assign_state(%6, %8) : f32[]\n"
      "  output probs = %4\n"
      "}\n";
  CHECK(print_graph(g, &sources) == expected);
  // Without sources the locations are left out, names stay.
  const std::string bare = print_graph(g);
  CHECK(contains(bare, "  %3 = matmul(%0, %2) {transpose_a=false, transpose_b=false} : f32[batch, 10]  # logits\n"));
  CHECK_FALSE(contains(bare, "@"));
  CHECK(print_graph(g, &sources) == print_graph(small_model(0), &sources));  // deterministic
}

TEST_CASE("print_graph survives a malformed graph", "[ir][graph][printer]") {
  Graph g("bad");
  Node node;
  node.op = 9999;
  node.operands = {42};
  node.span = Span{7, 0, 1};  // a file the manager does not have
  g.add(node);
  g.add_output("y", 77);
  SourceManager sources;
  const std::string text = print_graph(g, &sources);
  CHECK(contains(text, "  %0 = <op 9999>(%42) : f32[]\n"));
  CHECK(contains(text, "  output y = %77\n"));
  CHECK(contains(graph_to_dot(g), "<op 9999>"));
}

TEST_CASE("graph_to_dot renders nodes, edges and roles", "[ir][graph][dot]") {
  Graph g = small_model(0);
  g.node(3).name = "lo\"gits";
  const std::string dot = graph_to_dot(g);
  CHECK(dot.rfind("digraph \"mlp\" {\n", 0) == 0);
  CHECK(contains(dot, "  n0 [label=\"%0 input\\nx\\nf32[batch, 784]\", style=filled, fillcolor=\"lightblue\"];\n"));
  CHECK(contains(dot, "  n2 [label=\"%2 parameter\\nw\\nf32[784, 10]\", style=filled, fillcolor=\"lightyellow\"];\n"));
  CHECK(contains(dot, "  n3 [label=\"%3 matmul\\nlo\\\"gits\\nf32[batch, 10]\"];\n"));
  CHECK(contains(dot, "  n0 -> n3;\n"));
  CHECK(contains(dot, "  n2 -> n3;\n"));
  CHECK(contains(dot, "  n1 -> n2;\n"));
  CHECK(contains(dot, "  out0 [label=\"output probs\", shape=ellipse, style=filled, fillcolor=\"lightgreen\"];\n"));
  CHECK(contains(dot, "  n4 -> out0;\n"));
  CHECK(dot.size() >= 2);
  CHECK(dot.substr(dot.size() - 2) == "}\n");
}

TEST_CASE("the verifier reports malformed graphs without crashing", "[ir][graph][verifier]") {
  SECTION("wrong node type") {
    Graph g = small_model(0);
    g.node(3).type = F32({b, 11});
    const auto problems = verify(g);
    CHECK(has_problem(problems, "%3 matmul: type is f32[batch, 11] but the shape rule gives f32[batch, 10]"));
  }
  SECTION("operand out of range and used before definition") {
    Graph g = small_model(0);
    g.node(3).operands = {0, 99};
    g.node(4).operands = {4};
    const auto problems = verify(g);
    CHECK(has_problem(problems, "%3 matmul: operand 1 is %99, which is not defined before it"));
    CHECK(has_problem(problems, "%4 softmax: operand 0 is %4, which is not defined before it"));
  }
  SECTION("operand count") {
    Graph g = small_model(0);
    g.node(4).operands = {3, 3};
    CHECK(has_problem(verify(g), "%4 softmax: has 2 operands, expected 1"));
  }
  SECTION("missing, unknown and mistyped attributes") {
    Graph g = small_model(0);
    g.node(0).attrs = A({{"name", S("x")}, {"dtype", S("f32")}});
    g.node(4).attrs = A({{"axis", F(1.0)}, {"bogus", I(1)}});
    g.node(1).attrs.set("dtype", S("f16"));
    const auto problems = verify(g);
    INFO(join(problems));
    CHECK(has_problem(problems, "%0 input: missing required attribute 'shape'"));
    CHECK(has_problem(problems, "%4 softmax: unknown attribute 'bogus'"));
    CHECK(has_problem(problems, "%4 softmax: attribute 'axis' should be a int, got 1.0"));
    CHECK(has_problem(problems, "%1 random_normal: attribute 'dtype' should be a dtype, got \"f16\""));
  }
  SECTION("failing shape rule") {
    Graph g = small_model(0);
    g.node(2).type = F32({256, 10});
    g.node(1).type = F32({256, 10});
    g.node(1).attrs.set("shape", Is({256, 10}));
    CHECK(has_problem(verify(g), "%3 matmul: matmul: inner dimensions differ (784 vs 256)"));
  }
  SECTION("unknown op id") {
    Graph g = small_model(0);
    g.node(4).op = 5000;
    CHECK(has_problem(verify(g), "%4: unknown op id 5000"));
  }
  SECTION("roles point at the wrong nodes") {
    Graph g = small_model(0);
    g.add_parameter("h", 3);
    g.add_input("y", 1234);
    g.add_output("probs", 4);
    g.add_output("lost", 999);
    g.add_state("w", 6);
    const auto problems = verify(g);
    INFO(join(problems));
    CHECK(has_problem(problems, "parameter 'h' refers to %3, a matmul node, not parameter"));
    CHECK(has_problem(problems, "input 'y' refers to %1234, which is not a valid node"));
    CHECK(has_problem(problems, "output 'probs' is declared twice"));
    CHECK(has_problem(problems, "output 'lost' refers to %999, which is not a valid node"));
    CHECK(has_problem(problems, "state 'w' has the same name as parameter 'w'"));
    CHECK(has_problem(problems, "state 'w' refers to %6, whose name attribute is 'step'"));
  }
  SECTION("duplicate and unregistered parameters") {
    Graph g = small_model(0);
    g.add_parameter("w", 2);
    const ValueId init = g.add(make("constant", {}, A({{"value", F(0)}}), F32({})));
    g.add(make("parameter", {init}, A({{"name", S("b")}}), F32({})));
    const auto problems = verify(g);
    CHECK(has_problem(problems, "parameter 'w' is declared twice"));
    CHECK(has_problem(problems, "%11 parameter is not registered as a graph parameter"));
  }
  SECTION("assign_state must target a state") {
    Graph g = small_model(0);
    g.add(make("assign_state", {7, 8}, {}, F32({})));
    CHECK(has_problem(verify(g), "%10 assign_state: operand 'state' is %7, which is not a state node"));
  }
  SECTION("an empty graph is valid") {
    CHECK(verify(Graph("empty")).empty());
  }
}
