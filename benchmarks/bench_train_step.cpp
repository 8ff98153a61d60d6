// Training-step throughput of an example model on a backend: the model's whole training
// step (forward, loss, backward, optimizer update) run on synthetic batches of the right
// types, as `kiln train` runs it minus data loading. Prints one JSON line per model and
// batch size: compile time, median samples/s over timed windows, and the windows' spread.
//
//   bench_train_step [--backend jit|reference] [--threads N] [--seconds S] [--windows W]
//                    MODEL.kiln BATCH [BATCH...]
//
// The peers (PyTorch, libtorch) run the same architecture through benchmarks/run_models.sh.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "compiler/autodiff/optimizer.h"
#include "compiler/sema/sema.h"
#include "runtime/exec/executor.h"
#include "runtime/exec/thread_pool.h"

namespace {

using kiln::ir::DType;
using kiln::runtime::Tensor;

std::map<std::string, Tensor> synthetic_feeds(const kiln::ir::Graph& g, std::int64_t batch, std::mt19937& rng) {
  std::map<std::string, Tensor> feeds;
  for (const kiln::ir::NamedValue& in : g.inputs()) {
    const kiln::ir::Node& node = g.node(in.value);
    std::vector<std::int64_t> dims;
    for (const kiln::ir::Dim d : node.type.shape.dims) dims.push_back(d.is_batch() ? batch : d.size);
    Tensor t(node.type.dtype, dims);
    if (in.name == "lr") {
      t.data<float>()[0] = 1e-3f;
    } else if (node.type.dtype == DType::kF32) {
      std::uniform_real_distribution<float> u(0, 1);
      for (std::int64_t i = 0; i < t.elements(); ++i) t.data<float>()[i] = u(rng);
    } else if (node.type.dtype == DType::kI32) {
      std::uniform_int_distribution<std::int32_t> u(0, 9);  // class labels of the example models
      for (std::int64_t i = 0; i < t.elements(); ++i) t.data<std::int32_t>()[i] = u(rng);
    } else if (node.type.dtype == DType::kI64) {
      std::uniform_int_distribution<std::int64_t> u(0, 9);
      for (std::int64_t i = 0; i < t.elements(); ++i) t.data<std::int64_t>()[i] = u(rng);
    }
    feeds.emplace(in.name, std::move(t));
  }
  return feeds;
}

}  // namespace

int main(int argc, char** argv) {
  std::string backend_name = "jit";
  double seconds = 1.0;
  int windows = 5;
  int threads = 0;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--backend" && i + 1 < argc) {
      backend_name = argv[++i];
    } else if (a == "--seconds" && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else if (a == "--windows" && i + 1 < argc) {
      windows = std::atoi(argv[++i]);
    } else if (a == "--threads" && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else {
      positional.push_back(a);
    }
  }
  if (positional.size() < 2) {
    std::cerr << "usage: bench_train_step [--backend jit|reference] [--threads N] [--seconds S] [--windows W] "
                 "MODEL.kiln BATCH...\n";
    return 2;
  }
  const auto backend = kiln::runtime::parse_backend(backend_name);
  if (!backend) {
    std::cerr << "unknown backend " << backend_name << "\n";
    return 2;
  }
  if (threads > 0) kiln::runtime::set_thread_count(threads);
  auto c = kiln::sema::compile_file(positional[0]);
  if (c->diags.has_errors() || c->trains.empty()) {
    std::cerr << positional[0] << ": does not compile or has no train block\n";
    return 1;
  }
  const kiln::sema::LoweredTrain& t = c->trains.front();
  const kiln::autodiff::TrainingStep step = kiln::autodiff::build_training_step(t);
  std::mt19937 rng(1);
  for (std::size_t k = 1; k < positional.size(); ++k) {
    const std::int64_t batch = std::atoll(positional[k].c_str());
    const auto t0 = std::chrono::steady_clock::now();
    auto exec = kiln::runtime::make_executor(step.graph, batch, *backend);
    const double build_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    exec->initialize(1);
    // A few distinct batches, cycled, so caches see changing data as in training.
    std::vector<std::map<std::string, Tensor>> feeds;
    for (int i = 0; i < 4; ++i) feeds.push_back(synthetic_feeds(step.graph, batch, rng));
    kiln::runtime::StepOptions options;
    options.training = true;
    options.seed = 1;
    for (int i = 0; i < 3; ++i) exec->run(feeds[i % feeds.size()], options);  // warm-up
    std::vector<double> rates;
    std::uint64_t s = 0;
    for (int w = 0; w < windows; ++w) {
      std::int64_t steps = 0;
      const auto start = std::chrono::steady_clock::now();
      double elapsed = 0;
      while (elapsed < seconds) {
        options.step = s++;
        exec->run(feeds[steps % feeds.size()], options);
        ++steps;
        elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      }
      rates.push_back(static_cast<double>(steps * batch) / elapsed);
    }
    std::sort(rates.begin(), rates.end());
    std::cout << fmt::format(
        "{{\"model\": \"{}\", \"backend\": \"{}\", \"threads\": {}, \"batch\": {}, \"compile_s\": {:.3f}, "
        "\"samples_per_s\": {:.0f}, \"min\": {:.0f}, \"max\": {:.0f}}}\n",
        t.spec.model, backend_name, kiln::runtime::thread_count(), batch, build_s, rates[rates.size() / 2],
        rates.front(), rates.back());
  }
  return 0;
}
