// End-to-end tests of the `kiln` command line: every subcommand, --help everywhere, and the
// exit codes (0 ok, 1 user error, 2 internal error) on good and bad input.
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "runtime/train/safetensors.h"

namespace {

namespace fs = std::filesystem;

struct Run {
  int code = -1;
  std::string out;  // stdout and stderr together
};

Run run_kiln(const std::string& args) {
  std::string command = "cd '" KILN_SOURCE_DIR "' && KILN_STDLIB='" KILN_SOURCE_DIR "/stdlib' NO_COLOR=1 '" KILN_BINARY
                        "' " +
                        args + " 2>&1";
  Run r;
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::array<char, 4096> buffer{};
  std::size_t n = 0;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) r.out.append(buffer.data(), n);
  int status = pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

fs::path temp_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("kiln_cli_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("kiln check: every example model is ok", "[cli]") {
  Run r = run_kiln("check models/*.kiln");
  CHECK(r.code == 0);
  CHECK_THAT(r.out,
             Catch::Contains("models/fashion_mlp.kiln: ok — model fashion_mlp (6 parameter tensors, 235146 weights"));
}

TEST_CASE("kiln check: a user error exits 1 with file:line:col; a missing file exits 1", "[cli]") {
  fs::path dir = temp_dir("check");
  std::ofstream(dir / "bad.kiln") << "model m {\n  input x : f32[batch, 2]\n  output y = relu(z)\n}\n";
  Run r = run_kiln("check " + (dir / "bad.kiln").string());
  CHECK(r.code == 1);
  CHECK_THAT(r.out, Catch::Contains("bad.kiln:3:19: error: unknown name 'z'"));
  Run missing = run_kiln("check /nonexistent/model.kiln");
  CHECK(missing.code == 1);
  CHECK_THAT(missing.out, Catch::Contains("kiln: error: cannot open '/nonexistent/model.kiln': no such file"));
  Run directory = run_kiln("check " + dir.string());
  CHECK(directory.code == 1);
  CHECK_THAT(directory.out, Catch::Contains("is a directory"));
}

TEST_CASE("kiln --help and every subcommand's --help", "[cli]") {
  Run top = run_kiln("--help");
  CHECK(top.code == 0);
  for (const char* sub : {"check", "dump", "graph", "fmt", "ops"}) {
    CHECK_THAT(top.out, Catch::Contains(sub));
    Run help = run_kiln(std::string(sub) + " --help");
    INFO(sub);
    CHECK(help.code == 0);
    CHECK_THAT(help.out, Catch::Contains("Usage"));
  }
  Run unknown = run_kiln("frobnicate");
  CHECK(unknown.code == 1);
  Run none = run_kiln("");
  CHECK(none.code == 1);
}

TEST_CASE("kiln dump --ast and --ir", "[cli]") {
  Run ast = run_kiln("dump --ast models/fashion_mlp.kiln");
  CHECK(ast.code == 0);
  CHECK_THAT(ast.out, Catch::Contains("model fashion_mlp"));
  Run ir = run_kiln("dump --ir models/fashion_mlp.kiln");
  CHECK(ir.code == 0);
  CHECK_THAT(ir.out, Catch::Contains("graph fashion_mlp {"));
  CHECK_THAT(ir.out, Catch::Contains("parameter h1.w = "));
  CHECK_THAT(ir.out, Catch::Contains(": f32[batch, 10]"));
  Run train = run_kiln("dump --ir --train models/credit_risk.kiln");
  CHECK(train.code == 0);
  CHECK_THAT(train.out, Catch::Contains("graph credit_risk.train {"));
  CHECK_THAT(train.out, Catch::Contains("output loss = "));
  // The printer is stable: the same file dumps to the same text.
  CHECK(run_kiln("dump --ir models/fashion_cnn.kiln").out == run_kiln("dump --ir models/fashion_cnn.kiln").out);
  Run both = run_kiln("dump models/fashion_mlp.kiln");
  CHECK(both.code == 1);
}

TEST_CASE("kiln graph writes Graphviz DOT", "[cli]") {
  fs::path dir = temp_dir("graph");
  Run r = run_kiln("graph models/fashion_cnn.kiln -o " + (dir / "cnn.dot").string());
  CHECK(r.code == 0);
  std::string dot = read(dir / "cnn.dot");
  CHECK(dot.rfind("digraph", 0) == 0);
  CHECK_THAT(dot, Catch::Contains("conv2d"));
  Run unwritable = run_kiln("graph models/fashion_cnn.kiln -o /nonexistent/dir/cnn.dot");
  CHECK(unwritable.code == 1);
}

TEST_CASE("kiln fmt: --check, in place, idempotent, refuses broken files untouched", "[cli]") {
  fs::path dir = temp_dir("fmt");
  std::ofstream(dir / "m.kiln") << "import nn\nmodel m{\ninput x:f32[batch,4]   # the input\n"
                                   "output y=nn.dense(x,2)}\n";
  std::string before = read(dir / "m.kiln");
  Run check = run_kiln("fmt --check " + (dir / "m.kiln").string());
  CHECK(check.code == 1);
  CHECK_THAT(check.out, Catch::Contains("not formatted"));
  CHECK(read(dir / "m.kiln") == before);
  CHECK(run_kiln("fmt " + (dir / "m.kiln").string()).code == 0);
  std::string after = read(dir / "m.kiln");
  CHECK(after != before);
  CHECK_THAT(after, Catch::Contains("# the input"));
  CHECK(run_kiln("fmt --check " + (dir / "m.kiln").string()).code == 0);
  CHECK(run_kiln("check " + (dir / "m.kiln").string()).code == 0);

  std::ofstream(dir / "broken.kiln") << "model m {\n  y = (\n";
  std::string broken = read(dir / "broken.kiln");
  Run refused = run_kiln("fmt " + (dir / "broken.kiln").string());
  CHECK(refused.code == 1);
  CHECK_THAT(refused.out, Catch::Contains("the file is unchanged"));
  CHECK(read(dir / "broken.kiln") == broken);
}

TEST_CASE("every example model and stdlib module is formatted", "[cli]") {
  Run r = run_kiln("fmt --check models/*.kiln stdlib/*.kiln");
  INFO(r.out);
  CHECK(r.code == 0);
}

TEST_CASE("kiln ops lists the op table", "[cli]") {
  Run r = run_kiln("ops");
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("matmul"));
  CHECK_THAT(r.out, Catch::Contains("softmax_cross_entropy"));
}

TEST_CASE("kiln train, eval and predict on the credit model", "[cli][trainer]") {
  fs::path dir = temp_dir("train");
  Run train = run_kiln("train models/credit_risk.kiln --epochs 2 --out " + (dir / "run").string());
  INFO(train.out);
  REQUIRE(train.code == 0);
  CHECK_THAT(train.out, Catch::Contains("epoch 2/2"));
  CHECK_THAT(train.out, Catch::Contains("auc"));
  CHECK(fs::exists(dir / "run" / "params.safetensors"));
  std::string jsonl = read(dir / "run" / "metrics.jsonl");
  CHECK(std::count(jsonl.begin(), jsonl.end(), '\n') == 2);

  Run eval = run_kiln("eval models/credit_risk.kiln --run " + (dir / "run").string());
  CHECK(eval.code == 0);
  CHECK_THAT(eval.out, Catch::Contains("\"auc\": 0."));
  CHECK_THAT(eval.out, Catch::Contains("confusion matrix on the holdout"));
  // The JIT's compile time is reported, once per batch size the holdout needs.
  CHECK_THAT(eval.out, Catch::Contains("compiled the evaluation step with LLVM in"));
  Run eval_reference =
      run_kiln("eval models/credit_risk.kiln --run " + (dir / "run").string() + " --backend reference");
  CHECK(eval_reference.code == 0);
  CHECK_THAT(eval_reference.out, !Catch::Contains("with LLVM"));
  CHECK_THAT(eval_reference.out, Catch::Contains("\"auc\": 0."));

  // Records without the label column: one prediction each, with the class.
  std::ofstream(dir / "new.csv")
      << "Seniority,Home,Time,Age,Marital,Records,Job,Expenses,Income,Assets,Debt,Amount,Price\n"
         "9,rent,60,30,married,no,freelance,73,129,0,0,800,846\n"
         "x,rent,60,30,married,no,freelance,73,129,0,0,800,846\n";
  Run predict = run_kiln("predict models/credit_risk.kiln --run " + (dir / "run").string() + " --input " +
                         (dir / "new.csv").string() + " --format jsonl");
  CHECK(predict.code == 0);
  CHECK_THAT(predict.out, Catch::Contains("{\"line\":2,\"risk\":["));
  CHECK_THAT(predict.out, Catch::Contains("\"risk_class\":"));
  CHECK_THAT(predict.out, Catch::Contains("new.csv:3: skipped:"));
  CHECK_THAT(predict.out, Catch::Contains("compiled the forward pass with LLVM in"));

  // More than one batch (128) with a partial last one: its executor is compiled beside the
  // full batch's, for the size a count of the file's lines predicts. A rejected record
  // makes that guess wrong (131 lines, 130 records); the right size is then compiled at the
  // end and the predictions are the same.
  const std::string row = "9,rent,60,30,married,no,freelance,73,129,0,0,800,846\n";
  {
    std::ofstream many(dir / "many.csv");
    many << "Seniority,Home,Time,Age,Marital,Records,Job,Expenses,Income,Assets,Debt,Amount,Price\n";
    for (int i = 0; i < 130; ++i) many << row;
  }
  fs::copy_file(dir / "many.csv", dir / "many_bad.csv");
  std::ofstream(dir / "many_bad.csv", std::ios::app) << "x,rent,60,30,married,no,freelance,73,129,0,0,800,846\n";
  const auto predictions = [](const std::string& out) {
    std::string kept;
    std::istringstream lines(out);
    for (std::string line; std::getline(lines, line);)
      if (line.rfind("{\"line\":", 0) == 0) kept += line + "\n";
    return kept;
  };
  Run guessed = run_kiln("predict models/credit_risk.kiln --run " + (dir / "run").string() + " --input " +
                         (dir / "many.csv").string() + " --format jsonl");
  Run missed = run_kiln("predict models/credit_risk.kiln --run " + (dir / "run").string() + " --input " +
                        (dir / "many_bad.csv").string() + " --format jsonl");
  CHECK(guessed.code == 0);
  CHECK(missed.code == 0);
  CHECK_THAT(guessed.out, Catch::Contains("(batch sizes 128, 2)"));
  CHECK_THAT(missed.out, Catch::Contains("(batch sizes 128, 2)"));
  CHECK_THAT(missed.out, Catch::Contains("many_bad.csv:132: skipped:"));
  const std::string want = predictions(guessed.out);
  CHECK(std::count(want.begin(), want.end(), '\n') == 130);
  CHECK(predictions(missed.out) == want);

  // A weight that is not finite (the trainer never writes one; an edited or foreign file
  // can hold one): eval, predict and build refuse the run, naming the tensor and element.
  fs::copy(dir / "run", dir / "nan_run", fs::copy_options::recursive);
  {
    kiln::runtime::SafetensorsFile params = kiln::runtime::read_safetensors(dir / "run" / "params.safetensors");
    std::string poisoned;
    for (auto& [name, tensor] : params.tensors)
      if (tensor.dims().size() == 2 && poisoned.empty()) {
        poisoned = name;
        tensor.data<float>()[tensor.dims()[1] + 2] = std::numeric_limits<float>::quiet_NaN();  // [1, 2]
      }
    REQUIRE(!poisoned.empty());
    std::vector<std::pair<std::string, const kiln::runtime::Tensor*>> out;
    for (const auto& [name, tensor] : params.tensors) out.emplace_back(name, &tensor);
    kiln::runtime::write_safetensors(dir / "nan_run" / "params.safetensors", out, params.metadata);
    const std::string why = "tensor '" + poisoned + "' holds a NaN at [1, 2]; Kiln's trainer never writes";
    const std::string nan_run = (dir / "nan_run").string();
    for (const std::string& command :
         {"eval models/credit_risk.kiln --run " + nan_run,
          "predict models/credit_risk.kiln --run " + nan_run + " --input " + (dir / "new.csv").string(),
          "build models/credit_risk.kiln --run " + nan_run + " -o " + (dir / "nan_out").string()}) {
      INFO(command);
      Run refused = run_kiln(command);
      CHECK(refused.code == 1);
      CHECK_THAT(refused.out, Catch::Contains(why));
    }
  }

  Run missing_run = run_kiln("eval models/credit_risk.kiln --run " + (dir / "nowhere").string());
  CHECK(missing_run.code == 1);
  CHECK_THAT(missing_run.out, Catch::Contains("no run.json"));
}
