// The trainer end to end on real data (reference backend): the credit model reaches the
// issue's holdout AUC, the same seed gives bit-identical parameters, the regression and
// autoencoder train, a finished run evaluates to the metrics it reported, and a NaN loss
// stops the run naming the op and its source line.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "runtime/train/trainer.h"

namespace {

namespace fs = std::filesystem;
using namespace kiln;

std::unique_ptr<sema::Compilation> compile(const fs::path& path) {
  sema::SemaOptions o;
  o.stdlib_dirs = {fs::path(KILN_SOURCE_DIR) / "stdlib"};
  auto c = sema::compile_file(path, o);
  INFO(c->diags.render(c->sources));
  REQUIRE_FALSE(c->diags.has_errors());
  REQUIRE(c->trains.size() == 1);
  return c;
}

fs::path run_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / "kiln_trainer" / name;
  fs::remove_all(dir);
  return dir;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

runtime::TrainResult train(const sema::Compilation& c, const fs::path& dir, std::optional<std::int64_t> epochs,
                           std::optional<std::uint64_t> seed = std::nullopt) {
  runtime::TrainOptions options;
  options.run_dir = dir;
  options.epochs = epochs;
  options.seed = seed;
  std::ostringstream log;
  return runtime::train(c, c.trains[0], options, log);
}

const fs::path kModels = fs::path(KILN_SOURCE_DIR) / "models";

}  // namespace

TEST_CASE("credit risk reaches holdout AUC >= 0.82 and its run evaluates to the same metrics", "[trainer]") {
  auto c = compile(kModels / "credit_risk.kiln");
  fs::path dir = run_dir("credit");
  runtime::TrainResult r = train(*c, dir, std::nullopt);  // the train block's own epochs and early stop
  REQUIRE_FALSE(r.epochs.empty());
  const auto& last = r.epochs.back().holdout;
  INFO("holdout AUC " << last.at("auc") << " after " << r.epochs.size() << " epochs");
  CHECK(last.at("auc") >= 0.82);
  for (const char* file : {"metrics.jsonl", "params.safetensors", "pipeline.json", "data_summary.json", "run.json"}) {
    CHECK(fs::exists(dir / file));
  }
  std::map<std::string, double> again = runtime::evaluate_run(*c, c->trains[0], dir);
  CHECK(again.at("auc") == Approx(last.at("auc")).epsilon(1e-9));
  CHECK(again.at("accuracy") == Approx(last.at("accuracy")).epsilon(1e-9));
}

TEST_CASE("same seed, bit-identical parameters; another seed, different ones", "[trainer]") {
  auto c = compile(kModels / "credit_risk.kiln");
  const fs::path a = run_dir("seed_a"), b = run_dir("seed_b"), other = run_dir("seed_c");
  train(*c, a, 2, 11);
  train(*c, b, 2, 11);
  train(*c, other, 2, 12);
  const std::string params = slurp(a / "params.safetensors");
  REQUIRE(params.size() > 1000);
  CHECK(params == slurp(b / "params.safetensors"));
  CHECK(params != slurp(other / "params.safetensors"));
}

TEST_CASE("the concrete regression and the shuttle autoencoder train; their metrics are reported", "[trainer]") {
  auto concrete = compile(kModels / "concrete_regression.kiln");
  runtime::TrainResult r = train(*concrete, run_dir("concrete"), 5);
  REQUIRE(r.epochs.size() == 5);
  CHECK(r.epochs.back().holdout.count("rmse") == 1);
  CHECK(r.epochs.back().holdout.count("mae") == 1);
  CHECK(r.epochs.back().train_loss < r.epochs.front().train_loss);

  auto shuttle = compile(kModels / "shuttle_autoencoder.kiln");
  runtime::TrainResult s = train(*shuttle, run_dir("shuttle"), 2);
  REQUIRE(s.epochs.size() == 2);
  CHECK(s.epochs.back().holdout.at("loss") < s.epochs.front().train_loss);
}

TEST_CASE("a NaN loss or gradient stops the run naming the step, the op and its source line", "[trainer]") {
  fs::path dir = fs::temp_directory_path() / "kiln_trainer_nan";
  fs::create_directories(dir);
  {
    std::ofstream csv(dir / "d.csv");
    csv << "a,y\n";
    for (int i = 0; i < 64; ++i) csv << i << "," << (i % 2 ? "yes" : "no") << "\n";
  }
  std::ofstream(dir / "nan.kiln") << R"(import nn
features d from csv("d.csv") {
  a : number -> standardize
  label y : category[no, yes]
}
model m {
  input x : d
  output p = nn.dense(x, 2)
}
train m {
  data = d
  loss = reduce_mean(log(p - 1000))
  optimizer = sgd(lr: 0.1)
  batch = 8
  epochs = 1
}
)";
  auto c = compile(dir / "nan.kiln");
  runtime::TrainOptions options;
  options.run_dir = dir / "run";
  std::ostringstream log;
  CHECK_THROWS_WITH(
      runtime::train(*c, c->trains[0], options, log),
      Catch::Contains("the loss is NaN at step 1 (epoch 1): the first NaN or infinity comes from op log") &&
          Catch::Contains("nan.kiln:12:22"));

  // A finite loss with an infinite gradient: sqrt at 0 (its derivative is 1 / (2 sqrt(0))).
  std::ofstream(dir / "grad.kiln") << R"(import nn
features d from csv("d.csv") {
  a : number -> standardize
  label y : category[no, yes]
}
model m {
  input x : d
  output p = nn.dense(x, 2)
}
train m {
  data = d
  loss = reduce_mean(sqrt(p * 0))
  optimizer = sgd(lr: 0.1)
  batch = 8
  epochs = 1
}
)";
  auto g = compile(dir / "grad.kiln");
  options.run_dir = dir / "run_grad";
  CHECK_THROWS_WITH(runtime::train(*g, g->trains[0], options, log),
                    Catch::Contains("is not finite (a NaN or infinite gradient) at step 1 (epoch 1)") &&
                        Catch::Contains("grad.kiln:12:22"));
}
