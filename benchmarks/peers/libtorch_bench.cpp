// libtorch (C++) as the peer of Kiln's trainer and server, on the example models' shapes.
// Prints one JSON line per measurement:
//   train:   steady-state training throughput (samples/s; forward + backward + Adam step) of
//            models/fashion_mlp.kiln's MLP (784-256-128-10, relu, Adam lr 1e-3, softmax
//            cross-entropy) at batch 64 and 256 with libtorch's default thread count; the median
//            of several timed windows after a warm-up.
//   latency: batch-1 inference latency (median and p99 over --calls calls, under
//            torch::InferenceMode, model in eval mode) of the fashion MLP and of
//            models/credit_risk.kiln's MLP (30-64-32-2 with dropout 0.1 after each hidden
//            layer, identity at inference; 30 = the width of its feature pipeline, see
//            `kiln dump --ir models/credit_risk.kiln`).
// The training inputs are random values in [0, 1) and random labels with Fashion-MNIST's
// shapes (60000 x 784, 10 classes): a dense MLP's speed does not depend on the values.
// Options: --seconds S (per training config, default 3; 0 skips training), --calls N
// (default 100000; 0 skips the latency runs), --threads N (default: libtorch's own choice,
// at::get_num_threads(), which each line reports), --batch N (repeatable; default 64, 256),
// --fashion-rows FILE (the fashion MLP's latency on these inputs instead of one random row:
// little-endian f32 rows of 784 features, call i taking row i % rows, each row its own
// tensor made before the timing; a line "model": "fashion_mlp", "inputs": "FILE" then).
// Debian's libtorch is the OpenMP (libgomp) build, whose spinning workers make it several
// times slower on a small shared machine; libgomp reads OMP_WAIT_POLICY when it is loaded, so
// when it is unset this program sets it to PASSIVE and re-executes itself.
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Dense layers of the given widths, relu between them (and dropout after each relu when
// `dropout` > 0), no activation after the last: the logits.
torch::nn::Sequential make_mlp(const std::vector<std::int64_t>& widths, double dropout) {
  torch::nn::Sequential net;
  for (std::size_t i = 0; i + 1 < widths.size(); ++i) {
    net->push_back(torch::nn::Linear(widths[i], widths[i + 1]));
    if (i + 2 < widths.size()) {
      net->push_back(torch::nn::ReLU());
      if (dropout > 0) net->push_back(torch::nn::Dropout(dropout));
    }
  }
  return net;
}

double quantile(std::vector<double> values, double q) {
  std::sort(values.begin(), values.end());
  const auto index = static_cast<std::size_t>(q * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(index, values.size() - 1)];
}

std::string join(const std::vector<double>& values) {
  std::string out;
  for (double v : values) {
    if (!out.empty()) out += ", ";
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.1f", v);
    out += buffer;
  }
  return out;
}

void bench_training(std::int64_t batch, double seconds) {
  constexpr std::int64_t kSamples = 60000, kWidth = 784, kClasses = 10;
  constexpr int kWindows = 5;
  torch::manual_seed(1);
  auto model = make_mlp({kWidth, 256, 128, kClasses}, 0);
  model->train();
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(1e-3));
  const torch::Tensor x = torch::rand({kSamples, kWidth});
  const torch::Tensor y = torch::randint(kClasses, {kSamples}, torch::kLong);
  const std::int64_t steps_per_epoch = kSamples / batch;
  std::int64_t step = 0;
  float last_loss = 0;
  auto train_step = [&] {
    const std::int64_t offset = (step++ % steps_per_epoch) * batch;
    const torch::Tensor xb = x.narrow(0, offset, batch);
    const torch::Tensor yb = y.narrow(0, offset, batch);
    optimizer.zero_grad();
    torch::Tensor loss = torch::nn::functional::cross_entropy(model->forward(xb), yb);
    loss.backward();
    optimizer.step();
    return loss;
  };
  // Warm-up: allocator, thread pool and caches settle.
  const auto warm_start = Clock::now();
  for (int i = 0; i < 10 || seconds_since(warm_start) < 0.2 * seconds; ++i) train_step();
  std::vector<double> rates;
  for (int w = 0; w < kWindows; ++w) {
    const auto start = Clock::now();
    std::int64_t steps = 0;
    torch::Tensor loss;
    do {
      loss = train_step();
      ++steps;
    } while (seconds_since(start) < seconds / kWindows);
    rates.push_back(static_cast<double>(steps * batch) / seconds_since(start));
    last_loss = loss.item<float>();
  }
  std::printf(
      "{\"peer\": \"libtorch\", \"bench\": \"train\", \"model\": \"fashion_mlp\", \"batch\": %lld, "
      "\"threads\": %d, \"samples_per_s\": %.1f, \"windows\": [%s], \"loss\": %.4f, \"version\": \"%s\"}\n",
      static_cast<long long>(batch), at::get_num_threads(), quantile(rates, 0.5), join(rates).c_str(), last_loss,
      TORCH_VERSION);
  std::fflush(stdout);
}

// `rows`: the inputs, one [1, width] tensor each (call i takes rows[i % size]); empty: one
// random row.
void bench_latency(const char* name, const std::vector<std::int64_t>& widths, double dropout, std::int64_t calls,
                   std::vector<torch::Tensor> rows = {}, const std::string& inputs = "") {
  torch::manual_seed(1);
  auto model = make_mlp(widths, dropout);
  model->eval();
  torch::InferenceMode guard;
  if (rows.empty()) rows.push_back(torch::rand({1, widths.front()}));
  const auto count = static_cast<std::int64_t>(rows.size());
  float sink = 0;
  for (int i = 0; i < 2000; ++i) sink += model->forward(rows[static_cast<std::size_t>(i % count)]).data_ptr<float>()[0];
  std::vector<double> micros(static_cast<std::size_t>(calls));
  for (std::int64_t i = 0; i < calls; ++i) {
    const torch::Tensor& x = rows[static_cast<std::size_t>(i % count)];
    const auto start = Clock::now();
    const torch::Tensor out = model->forward(x);
    sink += out.data_ptr<float>()[0];
    micros[static_cast<std::size_t>(i)] = seconds_since(start) * 1e6;
  }
  double mean = 0;
  for (double m : micros) mean += m;
  mean /= static_cast<double>(micros.size());
  std::printf(
      "{\"peer\": \"libtorch\", \"bench\": \"latency\", \"model\": \"%s\", \"batch\": 1, \"threads\": %d, "
      "\"calls\": %lld, \"median_us\": %.2f, \"p99_us\": %.2f, \"mean_us\": %.2f, \"sink\": %.3g%s}\n",
      name, at::get_num_threads(), static_cast<long long>(calls), quantile(micros, 0.5), quantile(micros, 0.99), mean,
      static_cast<double>(sink), inputs.empty() ? "" : (", \"inputs\": \"" + inputs + "\"").c_str());
  std::fflush(stdout);
}

[[noreturn]] void usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s [--seconds S] [--calls N] [--threads N] [--batch N]... [--fashion-rows FILE]\n",
               argv0);
  std::exit(2);
}

// The f32 rows of `width` features in `path`, one [1, width] tensor each.
std::vector<torch::Tensor> read_rows(const std::string& path, std::int64_t width) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    std::fprintf(stderr, "libtorch_bench: cannot open '%s'\n", path.c_str());
    std::exit(2);
  }
  std::vector<torch::Tensor> rows;
  std::vector<float> row(static_cast<std::size_t>(width));
  while (std::fread(row.data(), sizeof(float), row.size(), f) == row.size())
    rows.push_back(torch::from_blob(row.data(), {1, width}, torch::kFloat32).clone());
  std::fclose(f);
  if (rows.empty()) {
    std::fprintf(stderr, "libtorch_bench: '%s' holds no row of %lld f32 values\n", path.c_str(),
                 static_cast<long long>(width));
    std::exit(2);
  }
  return rows;
}

}  // namespace

int main(int argc, char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execv("/proc/self/exe", argv);
    std::perror("libtorch_bench: re-exec with OMP_WAIT_POLICY=PASSIVE failed; going on without it");
  }
  double seconds = 3;
  std::int64_t calls = 100000;
  int threads = 0;
  std::vector<std::int64_t> batches;
  std::string fashion_rows;
  for (int i = 1; i < argc; ++i) {
    const bool has_value = i + 1 < argc;
    if (std::strcmp(argv[i], "--seconds") == 0 && has_value) {
      seconds = std::atof(argv[++i]);
    } else if (std::strcmp(argv[i], "--calls") == 0 && has_value) {
      calls = std::atoll(argv[++i]);
    } else if (std::strcmp(argv[i], "--threads") == 0 && has_value) {
      threads = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--fashion-rows") == 0 && has_value) {
      fashion_rows = argv[++i];
    } else if (std::strcmp(argv[i], "--batch") == 0 && has_value) {
      batches.push_back(std::atoll(argv[++i]));
      if (batches.back() <= 0 || batches.back() > 60000) usage(argv[0]);
    } else {
      usage(argv[0]);
    }
  }
  if (seconds < 0 || calls < 0 || threads < 0) usage(argv[0]);
  if (batches.empty()) batches = {64, 256};
  if (threads > 0) torch::set_num_threads(threads);
  if (seconds > 0)
    for (std::int64_t batch : batches) bench_training(batch, seconds);
  if (calls > 0) {
    bench_latency("fashion_mlp", {784, 256, 128, 10}, 0, calls);
    if (!fashion_rows.empty())
      bench_latency("fashion_mlp", {784, 256, 128, 10}, 0, calls, read_rows(fashion_rows, 784), fashion_rows);
    bench_latency("credit_risk", {30, 64, 32, 2}, 0.1, calls);
  }
  return 0;
}
