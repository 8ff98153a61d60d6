// Front-end speed: `kiln check` (parse + sema + Graph IR) of every example model, and
// parsing and checking a generated 10,000-line model. Targets: each example under 20 ms,
// the 10k-line file under 0.5 s. The peer (CPython's own parser on a Python file of the
// same size) runs beside it in benchmarks/run_front_end.sh.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <string>

#include "compiler/sema/sema.h"
#include "compiler/syntax/parser.h"

namespace {

namespace fs = std::filesystem;

kiln::sema::SemaOptions options() {
  kiln::sema::SemaOptions o;
  o.stdlib_dirs = {fs::path(KILN_SOURCE_DIR) / "stdlib"};
  return o;
}

void check_model(benchmark::State& state, const std::string& file) {
  fs::path path = fs::path(KILN_SOURCE_DIR) / "models" / file;
  for (auto _ : state) {
    auto c = kiln::sema::compile_file(path, options());
    if (c->diags.has_errors()) {
      state.SkipWithError(("model does not check: " + file).c_str());
      break;
    }
    benchmark::DoNotOptimize(c->models.size());
  }
}

// A model of `lines` lines: a deep MLP of dense layers, each line a binding.
std::string generated_model(int lines) {
  std::string text = "import nn\n\nmodel generated {\n  input x : f32[batch, 32]\n  h0 = x\n";
  int i = 1;
  for (; i < lines - 6; ++i) {
    text += "  h" + std::to_string(i) + " = relu(nn.dense(h" + std::to_string(i - 1) + ", 32)) * 0.5 + h" +
            std::to_string(i - 1) + "  # layer " + std::to_string(i) + "\n";
  }
  text += "  output y = nn.dense(h" + std::to_string(i - 1) + ", 10)\n}\n";
  return text;
}

void BM_Parse10kLines(benchmark::State& state) {
  std::string text = generated_model(10000);
  for (auto _ : state) {
    kiln::SourceManager sources;
    kiln::Diagnostics diags;
    kiln::FileId id = sources.add("generated.kiln", text);
    kiln::ast::File file = kiln::parse_file(sources, id, diags);
    if (diags.has_errors()) state.SkipWithError("generated model does not parse");
    benchmark::DoNotOptimize(file.exprs.size());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
}

void BM_Check10kLines(benchmark::State& state) {
  std::string text = generated_model(10000);
  for (auto _ : state) {
    auto c = kiln::sema::compile_source("generated.kiln", text, options());
    if (c->diags.has_errors()) state.SkipWithError("generated model does not check");
    benchmark::DoNotOptimize(c->models.size());
  }
}

}  // namespace

BENCHMARK_CAPTURE(check_model, fashion_mlp, "fashion_mlp.kiln")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(check_model, fashion_cnn, "fashion_cnn.kiln")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(check_model, credit_risk, "credit_risk.kiln")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(check_model, shuttle_autoencoder, "shuttle_autoencoder.kiln")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(check_model, recommender, "recommender.kiln")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(check_model, concrete_regression, "concrete_regression.kiln")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Parse10kLines)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Check10kLines)->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
