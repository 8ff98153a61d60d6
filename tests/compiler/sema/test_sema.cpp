// Sema tests: imports, layer instantiation and parameter naming, shape inference with the
// symbolic batch dimension, folding, the training graph, and the errors users meet most
// (each with its location, a hint, and the chain of layer expansions).
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include "compiler/sema/sema.h"

namespace {

namespace fs = std::filesystem;
using namespace kiln;

sema::SemaOptions stdlib() {
  sema::SemaOptions o;
  o.stdlib_dirs = {fs::path(KILN_SOURCE_DIR) / "stdlib"};
  return o;
}

struct Checked {
  std::unique_ptr<sema::Compilation> c;
  std::string rendered;
  const sema::LoweredModel& model(const std::string& name = "m") const {
    const sema::LoweredModel* m = c->find_model(name);
    REQUIRE(m != nullptr);
    return *m;
  }
};

Checked check(const std::string& text, const fs::path& path = "t.kiln") {
  Checked r;
  r.c = sema::compile_source(path, text, stdlib());
  r.rendered = r.c->diags.render(r.c->sources);
  return r;
}

std::string type_of(const ir::Graph& g, const std::string& output) {
  for (const ir::NamedValue& o : g.outputs()) {
    if (o.name == output) return g.node(o.value).type.to_string();
  }
  return "<no output " + output + ">";
}

std::vector<std::string> param_names(const ir::Graph& g) {
  std::vector<std::string> names;
  for (const ir::NamedValue& p : g.parameters()) {
    names.push_back(p.name + ":" + g.node(p.value).type.to_string());
  }
  return names;
}

}  // namespace

TEST_CASE("an MLP lowers with call-site parameter names and inferred shapes", "[sema]") {
  auto r = check(R"(import nn
model m {
  input x : f32[batch, 784]
  h1 = relu(nn.dense(x, 256))
  h2 = relu(nn.dense(h1, 128))
  output logits = nn.dense(h2, 10)
})");
  REQUIRE(r.rendered.empty());
  const ir::Graph& g = r.model().graph;
  CHECK(param_names(g) == std::vector<std::string>{"h1.w:f32[784, 256]", "h1.b:f32[256]", "h2.w:f32[256, 128]",
                                                   "h2.b:f32[128]", "logits.w:f32[128, 10]", "logits.b:f32[10]"});
  CHECK(type_of(g, "logits") == "f32[batch, 10]");
  CHECK(ir::verify(g).empty());
}

TEST_CASE("repeated binding names and nested calls get distinct parameter paths", "[sema]") {
  auto r = check(R"(import nn
model m {
  input x : f32[batch, 4]
  h = nn.dense(nn.dense(x, 3), 2)
  h = nn.dense(h, 5)
  output y = h
})");
  REQUIRE(r.rendered.empty());
  auto names = param_names(r.model().graph);
  CHECK(names == std::vector<std::string>{"h.w:f32[4, 3]", "h.b:f32[3]", "h_2.w:f32[3, 2]", "h_2.b:f32[2]",
                                          "h_3.w:f32[2, 5]", "h_3.b:f32[5]"});
}

TEST_CASE("a layer calling layers nests the paths; tuples destructure", "[sema]") {
  auto r = check(R"(import nn
model m {
  input x : f32[batch, 8]
  input h0 : f32[batch, 16]
  input c0 : f32[batch, 16]
  h, c = nn.lstm_cell(x, h0, c0, 16)
  output y = h + c
})");
  REQUIRE(r.rendered.empty());
  const ir::Graph& g = r.model().graph;
  CHECK(type_of(g, "y") == "f32[batch, 16]");
  auto names = param_names(g);
  REQUIRE_FALSE(names.empty());
  for (const std::string& n : names) CHECK(n.rfind("h.", 0) == 0);
}

TEST_CASE("the CNN: conv, pooling, flatten, with the batch dimension symbolic throughout", "[sema]") {
  auto r = check(R"(import nn
model m {
  input x : f32[batch, 28, 28, 1]
  c1 = nn.max_pool(relu(nn.conv2d(x, 32, 5)))
  c2 = nn.max_pool(relu(nn.conv2d(c1, 64, 5)))
  f = nn.flatten(c2)
  output y = nn.dense(relu(nn.dense(f, 1024)), 10)
})");
  REQUIRE(r.rendered.empty());
  const ir::Graph& g = r.model().graph;
  CHECK(type_of(g, "y") == "f32[batch, 10]");
  bool saw_flatten = false;
  for (const ir::Node& n : g.nodes()) {
    if (n.name == "f") {
      CHECK(n.type.to_string() == "f32[batch, 3136]");
      saw_flatten = true;
    }
  }
  CHECK(saw_flatten);
}

TEST_CASE("batch norm declares states and updates them; dropout depends on the phase", "[sema]") {
  auto r = check(R"(import nn
model m {
  input x : f32[batch, 6]
  b = nn.batch_norm(x)
  output y = nn.dropout(b, 0.5)
})");
  REQUIRE(r.rendered.empty());
  const ir::Graph& g = r.model().graph;
  CHECK(g.states().size() == 2);
  int assigns = 0, phase = 0;
  for (const ir::Node& n : g.nodes()) {
    std::string op(ir::core_ops().get(n.op).name);
    assigns += op == "assign_state";
    phase += op == "if_training";
  }
  CHECK(assigns == 2);
  CHECK(phase >= 2);
}

TEST_CASE("constants fold; scalars become constants of the tensor's type", "[sema]") {
  auto r = check(R"(model m {
  input x : f32[batch, 2]
  k = sqrt(16) * 2 + 1
  output y = x * k
})");
  REQUIRE(r.rendered.empty());
  const ir::Graph& g = r.model().graph;
  bool found = false;
  for (const ir::Node& n : g.nodes()) {
    if (ir::core_ops().get(n.op).name == "constant") {
      CHECK(n.attrs.get_float("value") == 9.0);
      found = true;
    }
  }
  CHECK(found);
}

TEST_CASE("errors: all of them are reported, each with location and hint", "[sema][errors]") {
  auto r = check(R"(import nn
model m {
  input x : f32[batch, 4]
  a = nn.dence(x, 3)
  b = relu(y)
  c = nn.dense(x, units: 3, bias: 1)
  output o = x
})");
  CHECK(r.c->diags.error_count() == 3);
  CHECK_THAT(r.rendered, Catch::Contains("t.kiln:4:7: error: module 'nn' has no layer 'dence'"));
  CHECK_THAT(r.rendered, Catch::Contains("hint: did you mean 'nn.dense'?"));
  CHECK_THAT(r.rendered, Catch::Contains("t.kiln:5:12: error: unknown name 'y'"));
  CHECK_THAT(r.rendered,
             Catch::Contains("t.kiln:6:29: error: argument 'bias' of nn.dense must be a bool, not an int (1)"));
}

TEST_CASE("a shape mismatch inside a stdlib layer names the chain of calls", "[sema][errors]") {
  auto r = check(R"(import nn
model m {
  input x : f32[batch, 8]
  input h0 : f32[batch, 16]
  input c0 : f32[batch, 12]
  h, c = nn.lstm_cell(x, h0, c0, 16)
  output y = h
})");
  REQUIRE(r.c->diags.has_errors());
  CHECK_THAT(r.rendered, Catch::Contains("argument 'c' of nn.lstm_cell expects"));
  CHECK_THAT(r.rendered, Catch::Contains("got f32[batch, 12]"));
}

TEST_CASE("a shape error deep in a user layer carries the expansion chain", "[sema][errors]") {
  auto r = check(R"(import nn
layer block(x: f32[batch, n]) {
  w = nn.dense(x, 3)
  return w + x
}
model m {
  input x : f32[batch, 4]
  output y = block(x)
})");
  REQUIRE(r.c->diags.error_count() == 1);
  CHECK_THAT(r.rendered, Catch::Contains("t.kiln:4:10: error: add: shapes [batch, 3] and [batch, 4] do not broadcast"));
  CHECK_THAT(r.rendered, Catch::Contains("in layer block called at t.kiln:8:14"));
}

TEST_CASE("parameters cannot depend on the batch dimension", "[sema][errors]") {
  auto r = check(R"(import init
layer bad(x: f32[n, k]) {
  param w: f32[n, k] = init.zeros()
  return x * w
}
model m {
  input x : f32[batch, 4]
  output y = bad(x)
})");
  CHECK_THAT(r.rendered, Catch::Contains("this shape would depend on the batch dimension ('n' is bound to batch)"));
}

TEST_CASE("the training graph adds labels and a scalar loss", "[sema][train]") {
  fs::path dir = fs::temp_directory_path() / "kiln_sema_train";
  fs::create_directories(dir);
  std::ofstream(dir / "d.csv") << "a,b,y\n1,2,yes\n";
  auto r = check(R"(import nn
import losses
features d from csv("d.csv") {
  a : number -> standardize
  b : number -> standardize
  label y : category[no, yes]
}
model m {
  input x : d
  output logits = nn.dense(x, 2)
}
train m {
  data = d
  loss = losses.softmax_cross_entropy(logits, y)
  optimizer = adam(lr: 0.01)
})",
                 dir / "t.kiln");
  REQUIRE(r.rendered.empty());
  REQUIRE(r.c->trains.size() == 1);
  const ir::Graph& g = r.c->trains[0].graph;
  CHECK(type_of(g, "loss") == "f32[]");
  CHECK(g.inputs().size() == 2);
  CHECK(ir::verify(g).empty());

  auto bad = check(R"(import nn
features d from csv("d.csv") {
  a : number
  label y : category[no, yes]
}
model m {
  input x : d
  output logits = nn.dense(x, 2)
}
train m {
  data = d
  loss = logits
  optimizer = sgd(lr: 0.1)
})",
                   dir / "t.kiln");
  CHECK_THAT(bad.rendered, Catch::Contains("the loss must be a float scalar (f32[]), but it is f32[batch, 2]"));
}

TEST_CASE("imports: relative files, aliases, cycles, unknown modules", "[sema][imports]") {
  fs::path dir = fs::temp_directory_path() / "kiln_sema_imports";
  fs::create_directories(dir / "lib");
  std::ofstream(dir / "lib" / "blocks.kiln") << "import nn\nlayer twice(x: f32[batch, n]) {\n  return x * 2\n}\n";
  std::ofstream(dir / "a.kiln") << "import \"b.kiln\"\n";
  std::ofstream(dir / "b.kiln") << "import \"a.kiln\"\n";

  auto ok = check(
      "import \"lib/blocks.kiln\"\nimport \"lib/blocks.kiln\" as blk\nmodel m {\n"
      "  input x : f32[batch, 3]\n  output y = twice(x) + blk.twice(x)\n}\n",
      dir / "main.kiln");
  CHECK(ok.rendered.empty());

  auto cycle = sema::compile_file(dir / "a.kiln", stdlib());
  CHECK_THAT(cycle->diags.render(cycle->sources), Catch::Contains("import cycle: a.kiln -> b.kiln -> a.kiln"));

  auto unknown = check("import nnn\n");
  CHECK_THAT(unknown.rendered, Catch::Contains("unknown module 'nnn'"));
  CHECK_THAT(unknown.rendered, Catch::Contains("did you mean 'nn'?"));
  auto missing = check("import \"nowhere.kiln\"\n", dir / "m.kiln");
  CHECK_THAT(missing.rendered, Catch::Contains("cannot find 'nowhere.kiln'"));
}

TEST_CASE("every example model checks and its graph verifies", "[sema][models]") {
  for (const auto& entry : fs::directory_iterator(fs::path(KILN_SOURCE_DIR) / "models")) {
    if (entry.path().extension() != ".kiln") continue;
    INFO(entry.path().string());
    auto c = sema::compile_file(entry.path(), stdlib());
    CHECK(c->diags.render(c->sources).empty());
    CHECK(c->models.size() >= 1);
    CHECK(c->trains.size() == 1);
    for (const sema::LoweredModel& m : c->models) CHECK(ir::verify(m.graph).empty());
  }
}
