// The Program level and the reference executor: every op has an adapter, the MLP example
// runs end to end with seeded, reproducible initialisation, dropout follows the phase,
// assignments show on the next step, and the arena planner reuses memory safely.
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "compiler/ir/program.h"
#include "compiler/sema/sema.h"
#include "kernels/reference/random.h"
#include "runtime/exec/executor.h"
#include "runtime/exec/reference_adapters.h"

using namespace kiln;
using namespace kiln::runtime;

namespace {

namespace fs = std::filesystem;

sema::SemaOptions stdlib() {
  sema::SemaOptions o;
  o.stdlib_dirs = {fs::path(KILN_SOURCE_DIR) / "stdlib"};
  return o;
}

// Keeps the compilation alive with the graph it owns.
struct Compiled {
  std::unique_ptr<sema::Compilation> c;
  const ir::Graph& graph(const std::string& model) const {
    const sema::LoweredModel* m = c->find_model(model);
    REQUIRE(m != nullptr);
    return m->graph;
  }
};

Compiled compile_model_file(const fs::path& path) {
  Compiled r{sema::compile_file(path, stdlib())};
  INFO(r.c->diags.render(r.c->sources));
  REQUIRE(!r.c->diags.has_errors());
  return r;
}

Compiled compile_text(const std::string& text) {
  Compiled r{sema::compile_source("t.kiln", text, stdlib())};
  INFO(r.c->diags.render(r.c->sources));
  REQUIRE(!r.c->diags.has_errors());
  return r;
}

Tensor random_tensor(std::vector<std::int64_t> dims, std::uint64_t stream) {
  Tensor t(ir::DType::kF32, std::move(dims));
  kernels::ref::random_uniform<float>({99, stream, 0}, -1.0, 1.0, t.data<float>(), t.elements());
  return t;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.dims() == b.dims() && std::memcmp(a.raw(), b.raw(), a.bytes()) == 0;
}

Tensor copy_of(const Tensor& t) {
  Tensor c(t.dtype(), t.dims());
  std::memcpy(c.raw(), t.raw(), t.bytes());
  return c;
}

ir::Node make(const char* op, std::vector<ir::ValueId> operands, ir::Attrs attrs, ir::TensorType type,
              std::string name = {}) {
  ir::Node n;
  n.op = ir::core_ops().id_of(op);
  n.operands = std::move(operands);
  n.attrs = std::move(attrs);
  ir::fill_default_attrs(ir::core_ops().get(n.op), n.attrs);
  n.type = std::move(type);
  n.name = std::move(name);
  return n;
}

ir::Attrs attrs(std::initializer_list<std::pair<const char*, ir::AttrValue>> items) {
  ir::Attrs a;
  for (const auto& [k, v] : items) a.set(k, v);
  return a;
}

ir::TensorType f32(std::vector<ir::Dim> dims) {
  return {ir::DType::kF32, ir::Shape(std::move(dims))};
}

const std::string kFashion = std::string(KILN_SOURCE_DIR) + "/models/fashion_mlp.kiln";

}  // namespace

TEST_CASE("every op in the registry has a reference adapter", "[executor]") {
  const auto& table = reference_adapters();
  const auto unsupported = reference_unsupported_ops();
  CHECK(unsupported.empty());
  for (const ir::OpInfo& op : ir::core_ops().all()) {
    INFO("op " << op.name);
    const bool documented_gap = std::find(unsupported.begin(), unsupported.end(), op.name) != unsupported.end();
    CHECK((table.count(std::string(op.name)) == 1 || documented_gap));
  }
  // And no adapter for an op the registry does not know (a renamed op left behind).
  for (const auto& [name, adapter] : table) {
    INFO("adapter " << name);
    CHECK(ir::core_ops().find(name) != nullptr);
  }
}

TEST_CASE("the fashion MLP runs at batch 4 with reproducible initialisation", "[executor]") {
  const Compiled compiled = compile_model_file(kFashion);
  const ir::Graph& graph = compiled.graph("fashion_mlp");
  auto exec = make_reference_executor(graph, 4);

  exec->initialize(7);
  Tensor w1 = copy_of(exec->variable("h1.w"));
  Tensor b3 = copy_of(exec->variable("logits.b"));
  CHECK(w1.to_string() == "f32[784, 256]");
  const float limit = static_cast<float>(std::sqrt(6.0 / (784 + 256)));
  bool in_range = true;
  for (std::int64_t i = 0; i < w1.elements(); ++i) in_range = in_range && std::fabs(w1.data<float>()[i]) <= limit;
  CHECK(in_range);
  for (std::int64_t i = 0; i < b3.elements(); ++i) CHECK(b3.data<float>()[i] == 0.0f);

  std::map<std::string, Tensor> feeds;
  feeds.emplace("x", random_tensor({4, 784}, 1));
  const auto out = exec->run(feeds, {});
  REQUIRE(out.count("logits") == 1);
  CHECK(out.at("logits").to_string() == "f32[4, 10]");
  bool finite = true;
  for (std::int64_t i = 0; i < 40; ++i) finite = finite && std::isfinite(out.at("logits").data<float>()[i]);
  CHECK(finite);
  const auto again = exec->run(feeds, {});
  CHECK(same_bits(out.at("logits"), again.at("logits")));

  exec->initialize(7);
  CHECK(same_bits(w1, exec->variable("h1.w")));
  CHECK(same_bits(b3, exec->variable("logits.b")));
  // A second executor with the same seed: the same numbers (a pure function of the seed).
  auto other = make_reference_executor(graph, 2);
  other->initialize(7);
  CHECK(same_bits(w1, other->variable("h1.w")));
  exec->initialize(8);
  CHECK(!same_bits(w1, exec->variable("h1.w")));
  // Different layers draw from different streams.
  CHECK(std::memcmp(exec->variable("h1.w").raw(), exec->variable("h2.w").raw(), 64) != 0);
}

TEST_CASE("a missing or mistyped feed is refused with the expected type", "[executor]") {
  const Compiled compiled = compile_model_file(kFashion);
  auto exec = make_reference_executor(compiled.graph("fashion_mlp"), 4);
  exec->initialize(1);
  std::map<std::string, Tensor> feeds;
  CHECK_THROWS_WITH(exec->run(feeds, {}),
                    Catch::Contains("missing feed for input 'x'") && Catch::Contains("f32[4, 784]"));
  feeds.emplace("x", random_tensor({3, 784}, 1));
  CHECK_THROWS_AS(exec->run(feeds, {}), std::invalid_argument);
  CHECK_THROWS_WITH(exec->run(feeds, {}), Catch::Contains("input 'x' expects f32[4, 784] (batch 4), got f32[3, 784]"));
  feeds.clear();
  feeds.emplace("x", Tensor(ir::DType::kF64, {4, 784}));
  CHECK_THROWS_WITH(exec->run(feeds, {}), Catch::Contains("got f64[4, 784]"));
  CHECK_THROWS_WITH(exec->variable("h9.w"), Catch::Contains("no parameter or state named 'h9.w'"));
  CHECK_THROWS_AS(make_reference_executor(compiled.graph("fashion_mlp"), 0), std::invalid_argument);
}

TEST_CASE("dropout follows the phase and the step", "[executor]") {
  const Compiled compiled = compile_text(R"(import nn
model m {
  input x : f32[batch, 64]
  output y = nn.dropout(x, 0.5)
})");
  auto exec = make_reference_executor(compiled.graph("m"), 3);
  exec->initialize(0);
  std::map<std::string, Tensor> feeds;
  feeds.emplace("x", random_tensor({3, 64}, 2));
  StepOptions infer;
  StepOptions train;
  train.training = true;
  train.seed = 5;
  const Tensor y_infer = std::move(exec->run(feeds, infer).at("y"));
  CHECK(same_bits(y_infer, feeds.at("x")));  // inference: the identity
  const Tensor y_train = std::move(exec->run(feeds, train).at("y"));
  CHECK(!same_bits(y_train, y_infer));
  int zeros = 0;
  for (std::int64_t i = 0; i < y_train.elements(); ++i) {
    const float v = y_train.data<float>()[i];
    const float x = feeds.at("x").data<float>()[i];
    if (v == 0.0f) {
      ++zeros;
    } else {
      CHECK(v == Approx(2.0f * x));  // survivors scaled by 1 / keep
    }
  }
  CHECK(zeros > 40);
  CHECK(zeros < 150);
  CHECK(same_bits(y_train, exec->run(feeds, train).at("y")));  // same seed and step: same mask
  StepOptions next = train;
  next.step = 1;
  CHECK(!same_bits(y_train, exec->run(feeds, next).at("y")));
}

TEST_CASE("assign_state: batch norm's running mean shows on the next run", "[executor]") {
  const Compiled compiled = compile_text(R"(import nn
model m {
  input x : f32[batch, 3]
  output y = nn.batch_norm(x)
})");
  const ir::Graph& graph = compiled.graph("m");
  std::string running_mean;
  for (const auto& s : graph.states()) {
    if (s.name.find("running_mean") != std::string::npos) running_mean = s.name;
  }
  REQUIRE(!running_mean.empty());
  auto exec = make_reference_executor(graph, 2);
  exec->initialize(0);
  Tensor x(ir::DType::kF32, {2, 3});
  const float values[] = {1, 2, 3, 3, 4, 5};  // column means 2, 3, 4
  std::memcpy(x.raw(), values, sizeof values);
  std::map<std::string, Tensor> feeds;
  feeds.emplace("x", std::move(x));
  StepOptions train;
  train.training = true;
  exec->run(feeds, train);
  const Tensor& rm = exec->variable(running_mean);
  CHECK(rm.data<float>()[0] == Approx(0.2f));  // 0 * 0.9 + 2 * 0.1
  CHECK(rm.data<float>()[2] == Approx(0.4f));
  exec->run(feeds, train);
  CHECK(exec->variable(running_mean).data<float>()[0] == Approx(0.38f));  // 0.2 * 0.9 + 0.2
}

TEST_CASE("assign_state on a parameter and a state: reads see the old value", "[executor]") {
  // counter' = counter + 1; p' = sgd_update(p, g = 1, velocity 0); y = counter + p (old values).
  ir::Graph g("counter");
  const auto scalar = f32({});
  const ir::ValueId zero =
      g.add(make("full", {}, attrs({{"shape", std::vector<std::int64_t>{}}, {"value", 0.0}}), scalar));
  const ir::ValueId counter =
      g.add(make("state", {zero}, attrs({{"name", std::string("counter")}}), scalar, "counter"));
  g.add_state("counter", counter);
  const ir::ValueId ten =
      g.add(make("full", {}, attrs({{"shape", std::vector<std::int64_t>{}}, {"value", 10.0}}), scalar));
  const ir::ValueId p = g.add(make("parameter", {ten}, attrs({{"name", std::string("p")}}), scalar, "p"));
  g.add_parameter("p", p);
  const ir::ValueId one = g.add(make("constant", {}, attrs({{"value", 1.0}}), scalar));
  const ir::ValueId next = g.add(make("add", {counter, one}, {}, scalar));
  g.add(make("assign_state", {counter, next}, {}, scalar));
  const ir::ValueId step = g.add(make("sgd_update", {p, one, zero}, attrs({{"lr", 0.5}}), scalar));
  g.add(make("assign_state", {p, step}, {}, scalar));
  const ir::ValueId y = g.add(make("add", {counter, p}, {}, scalar, "y"));
  g.add_output("y", y);

  auto exec = make_reference_executor(g, 1);
  exec->initialize(0);
  StepOptions train;
  train.training = true;
  CHECK(exec->run({}, train).at("y").data<float>()[0] == 10.0f);  // 0 + 10
  CHECK(exec->variable("counter").data<float>()[0] == 1.0f);
  CHECK(exec->variable("p").data<float>()[0] == 9.5f);
  CHECK(exec->run({}, train).at("y").data<float>()[0] == 10.5f);  // 1 + 9.5
  // An inference run changes nothing.
  CHECK(exec->run({}, {}).at("y").data<float>()[0] == 11.0f);  // 2 + 9
  CHECK(exec->variable("counter").data<float>()[0] == 2.0f);
  // A variable set from outside (a checkpoint) is what the next step reads.
  exec->variable("p").data<float>()[0] = 100.0f;
  CHECK(exec->run({}, train).at("y").data<float>()[0] == 102.0f);
}

TEST_CASE("program: liveness planning reuses memory without overlaps", "[executor]") {
  const Compiled compiled = compile_model_file(kFashion);
  const ir::Graph& graph = compiled.graph("fashion_mlp");
  const Program p = lower_to_program(graph, 4);
  CHECK(p.arena_bytes < p.buffer_bytes_total());
  // The initialisers are not in the step; the step is not in the initialisation.
  for (const Instruction& inst : p.instructions) CHECK(ir::core_ops().get(inst.op).name != "random_uniform");
  const Program init = lower_to_program(graph, 4, ProgramKind::kInitialize);
  CHECK(init.results.size() == 6);
  for (const Instruction& inst : init.instructions) CHECK(ir::core_ops().get(inst.op).name != "matmul");

  // No two buffers that are live at the same time share a byte.
  for (const Program* prog : {&p, &init}) {
    const auto& bs = prog->buffers;
    for (std::size_t i = 0; i < bs.size(); ++i) {
      CHECK(bs[i].offset % kBufferAlignment == 0);
      CHECK(bs[i].offset + bs[i].bytes <= prog->arena_bytes);
      for (std::size_t j = i + 1; j < bs.size(); ++j) {
        const bool both_live =
            bs[i].pinned() || bs[j].pinned() || (bs[i].first <= bs[j].last && bs[j].first <= bs[i].last);
        const bool overlap = bs[i].offset < bs[j].offset + bs[j].bytes && bs[j].offset < bs[i].offset + bs[i].bytes;
        INFO("b" << i << " and b" << j);
        CHECK(!(both_live && overlap && bs[i].bytes > 0 && bs[j].bytes > 0));
      }
    }
  }
}

TEST_CASE("print_program is stable and shows buffers, offsets and memory", "[executor]") {
  const Compiled compiled = compile_model_file(kFashion);
  const ir::Graph& graph = compiled.graph("fashion_mlp");
  const std::string text = print_program(lower_to_program(graph, 4));
  CHECK(text == print_program(lower_to_program(graph, 4)));
  CHECK(text.find("program fashion_mlp (step, batch 4)") == 0);
  CHECK(text.find("= matmul(b0@0, b") != std::string::npos);
  CHECK(text.find(": f32[4, 10]") != std::string::npos);
  CHECK(text.find("result logits = b") != std::string::npos);
  CHECK(text.find("memory: arena ") != std::string::npos);
  CHECK(print_program(lower_to_program(graph, 4, ProgramKind::kInitialize)).find("random_uniform") !=
        std::string::npos);
}

TEST_CASE("every example model and its training graph runs in both phases", "[executor]") {
  // A smoke test over real graphs: convolution, pooling, embeddings, dropout, batch norm
  // and the losses, fed with random floats and zero ids (always in range).
  for (const auto& entry : fs::directory_iterator(fs::path(KILN_SOURCE_DIR) / "models")) {
    if (entry.path().extension() != ".kiln") continue;
    INFO(entry.path().filename().string());
    const Compiled compiled = compile_model_file(entry.path());
    std::vector<const ir::Graph*> graphs;
    for (const auto& m : compiled.c->models) graphs.push_back(&m.graph);
    for (const auto& t : compiled.c->trains) graphs.push_back(&t.graph);
    for (const ir::Graph* graph : graphs) {
      INFO("graph " << graph->name());
      auto exec = make_reference_executor(*graph, 2);
      exec->initialize(3);
      std::map<std::string, Tensor> feeds;
      for (const auto& input : graph->inputs()) {
        const ir::Node& node = graph->node(input.value);
        std::vector<std::int64_t> dims;
        for (const ir::Dim d : node.type.shape.dims) dims.push_back(d.is_batch() ? 2 : d.size);
        Tensor t(node.type.dtype, dims);
        if (node.type.dtype == ir::DType::kF32) t = random_tensor(dims, input.value);
        feeds.emplace(input.name, std::move(t));
      }
      for (const bool training : {false, true}) {
        StepOptions options;
        options.training = training;
        const auto out = exec->run(feeds, options);
        CHECK(out.size() == graph->outputs().size());
        for (const auto& [name, tensor] : out) {
          if (tensor.dtype() != ir::DType::kF32) continue;
          bool finite = true;
          for (std::int64_t i = 0; i < tensor.elements(); ++i)
            finite = finite && std::isfinite(tensor.data<float>()[i]);
          INFO("output " << name << (training ? " (training)" : ""));
          CHECK(finite);
        }
      }
    }
  }
}
