// Executors run a Graph IR at a concrete batch size. The reference executor lowers the
// graph to a Program (instructions over buffers in one arena, reused by liveness) and
// runs each instruction on the naive reference kernels: the oracle every faster backend
// (LLVM, CUDA) is checked against. The interface is backend-neutral; the trainer sees
// only Executor.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "compiler/ir/graph.h"
#include "runtime/exec/tensor.h"

namespace kiln::runtime {

struct StepOptions {
  std::uint64_t seed = 0;  // the run's seed: random ops draw from (seed, stream, step, index)
  std::uint64_t step = 0;  // the training step (dropout masks differ per step)
  bool training = false;   // if_training(a, b) picks a when true
  // With training: keep the step's new parameter and state values pending until
  // commit_updates(), so a caller can check them first (a NaN gradient must not land).
  bool hold_updates = false;
};

class Executor {
 public:
  virtual ~Executor() = default;

  // Runs every parameter's and state's initialiser (seeded; the same numbers on every backend).
  virtual void initialize(std::uint64_t seed) = 0;

  // Runs the graph once: `feeds` holds every input by name (batch dimension = the batch
  // size the executor was built for). Returns every output by name. In a training step
  // (options.training) it then applies the graph's assign nodes (new values of parameters
  // and states), so the next step sees them; an inference run never changes the model.
  virtual std::map<std::string, Tensor> run(const std::map<std::string, Tensor>& feeds, const StepOptions& options) = 0;

  // Runs the graph like run() but changes nothing, checking each float result as it is
  // made; returns the graph node of the first result holding a NaN or an infinity (for
  // "the loss became NaN at step 412 in op log at model.kiln:9:12"), or nullopt.
  virtual std::optional<ir::ValueId> first_non_finite(const std::map<std::string, Tensor>& feeds,
                                                      const StepOptions& options) = 0;

  // The name of a pending new value (held by hold_updates) that holds a NaN or an infinity,
  // or nullopt when all are finite.
  virtual std::optional<std::string> pending_non_finite() const = 0;
  // Applies the pending values (or drops them), as run() would have.
  virtual void commit_updates() = 0;
  virtual void discard_updates() = 0;

  // Parameters and states by name (read and write: checkpoints, warm starts, tests).
  virtual Tensor& variable(const std::string& name) = 0;

  // Seconds spent compiling the step (0 for backends that compile nothing).
  virtual double compile_seconds() const { return 0; }
};

// The reference backend. Throws std::invalid_argument with a clear message when a feed is
// missing or has the wrong type.
std::unique_ptr<Executor> make_reference_executor(const ir::Graph& graph, std::int64_t batch);

// The LLVM backend (runtime/exec/jit_executor.cpp): the step compiled to native code by the
// ORC JIT, kernels split over the global thread pool. Throws std::runtime_error when the
// graph holds an op or dtype it cannot compile (the message names the op and suggests
// --backend reference).
std::unique_ptr<Executor> make_jit_executor(const ir::Graph& graph, std::int64_t batch);

enum class Backend : std::uint8_t { kJit, kReference };
std::unique_ptr<Executor> make_executor(const ir::Graph& graph, std::int64_t batch, Backend backend);
std::string_view backend_name(Backend backend);
std::optional<Backend> parse_backend(std::string_view name);  // "jit" (or "llvm"), "reference"

// For executors cached by batch size: "compiled the STEP with LLVM in 0.41 s (batch sizes
// 64, 16)"; "" when none of them compiled anything (the reference backend). The time is
// `wall_seconds` when given (compiles that overlapped), else the sum of their compile times.
std::string compile_summary(const std::map<std::int64_t, std::unique_ptr<Executor>>& executors, const std::string& step,
                            double wall_seconds = -1);

}  // namespace kiln::runtime
