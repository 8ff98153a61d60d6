// The reference executor: lowers the graph once into a step Program and an initialize
// Program, and runs either by walking its instructions over one arena, calling each op's
// adapter (reference_adapters.cpp). Slow and obviously correct: the oracle.
#include <fmt/format.h>

#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "compiler/ir/program.h"
#include "runtime/exec/executor.h"
#include "runtime/exec/reference_adapters.h"

namespace kiln::runtime {
namespace {

class ReferenceExecutor final : public Executor {
 public:
  ReferenceExecutor(const ir::Graph& graph, std::int64_t batch)
      : batch_(batch),
        step_(lower_to_program(graph, batch, ProgramKind::kStep)),
        init_(lower_to_program(graph, batch, ProgramKind::kInitialize)) {
    // Every op must have an adapter before anything runs, so a gap is found at build time
    // of the executor, not halfway through a step.
    for (const Program* p : {&step_, &init_}) {
      for (const Instruction& inst : p->instructions) adapter_of(inst);
    }
    // Variables exist (zero-filled) from the start so a checkpoint can be loaded into
    // them without running the initialisers.
    for (const NamedBuffer& r : init_.results) {
      const Buffer& b = init_.buffers[r.buffer];
      variables_.emplace(r.name, Tensor(b.dtype, b.dims));
    }
  }

  void initialize(std::uint64_t seed) override {
    StepOptions options;
    options.seed = seed;
    const std::map<std::string, Tensor> no_feeds;
    std::map<std::string, Tensor> assignments;
    const std::byte* arena = execute(init_, no_feeds, options, assignments);
    for (const NamedBuffer& r : init_.results) {
      const Buffer& b = init_.buffers[r.buffer];
      Tensor value(b.dtype, b.dims);
      if (b.bytes > 0) std::memcpy(value.raw(), arena + b.offset, b.bytes);
      variables_[r.name] = std::move(value);
    }
  }

  std::map<std::string, Tensor> run(const std::map<std::string, Tensor>& feeds, const StepOptions& options) override {
    std::map<std::string, Tensor> assignments;
    const std::byte* arena = execute(step_, feeds, options, assignments);
    std::map<std::string, Tensor> outputs;
    for (const NamedBuffer& r : step_.results) {
      const Buffer& b = step_.buffers[r.buffer];
      Tensor value(b.dtype, b.dims);
      if (b.bytes > 0) std::memcpy(value.raw(), arena + b.offset, b.bytes);
      outputs.emplace(r.name, std::move(value));
    }
    // Applied only now, so every read during the step saw the old values.
    pending_.clear();
    if (options.training) {
      pending_ = std::move(assignments);
      if (!options.hold_updates) commit_updates();
    }
    return outputs;
  }

  std::optional<std::string> pending_non_finite() const override {
    for (const auto& [name, value] : pending_) {
      const BufferView view{const_cast<void*>(value.raw()), value.dtype(), value.dims()};
      if (!all_finite(view)) return name;
    }
    return std::nullopt;
  }

  void commit_updates() override {
    for (auto& [name, value] : pending_) variables_[name] = std::move(value);
    pending_.clear();
  }

  void discard_updates() override { pending_.clear(); }

  std::optional<ir::ValueId> first_non_finite(const std::map<std::string, Tensor>& feeds,
                                              const StepOptions& options) override {
    std::map<std::string, Tensor> ignored;
    std::optional<ir::ValueId> found;
    execute(step_, feeds, options, ignored, &found);
    return found;
  }

  Tensor& variable(const std::string& name) override { return find_variable(variables_, name); }

 private:
  static const Adapter& adapter_of(const Instruction& inst) {
    const std::string_view op = ir::core_ops().get(inst.op).name;
    const auto& table = reference_adapters();
    const auto it = table.find(op);
    if (it == table.end()) throw std::logic_error(fmt::format("the reference executor has no kernel for op '{}'", op));
    return it->second;
  }

  // Runs `program` over the arena and returns the arena's base, where the caller reads
  // the results. Every buffer is written before it is read, so the arena is reused as is.
  const std::byte* execute(const Program& program, const std::map<std::string, Tensor>& feeds,
                           const StepOptions& options, std::map<std::string, Tensor>& assignments,
                           std::optional<ir::ValueId>* first_non_finite = nullptr) {
    if (arena_.bytes() != program.arena_bytes) {
      arena_ = Tensor(ir::DType::kBool, {static_cast<std::int64_t>(program.arena_bytes)});
    }
    auto* base = static_cast<std::byte*>(arena_.raw());
    RunContext context;
    context.feeds = &feeds;
    context.variables = &variables_;
    context.assignments = &assignments;
    context.options = options;
    context.batch = batch_;
    const auto view = [&](BufferId id) {
      const Buffer& b = program.buffers[id];
      return BufferView{base + b.offset, b.dtype, b.dims};
    };
    std::vector<BufferView> operands;
    for (const Instruction& inst : program.instructions) {
      operands.clear();
      for (const BufferId b : inst.operands) operands.push_back(view(b));
      OpCall call{inst, inst.label, std::move(operands), view(inst.result), context};
      adapter_of(inst)(call);
      operands = std::move(call.in);
      if (first_non_finite != nullptr && !*first_non_finite && !all_finite(call.out)) {
        *first_non_finite = inst.node;
        break;
      }
    }
    return base;
  }

  static bool all_finite(const BufferView& b) {
    std::int64_t n = 1;
    for (std::int64_t d : b.dims) n *= d;
    if (b.dtype == ir::DType::kF32) {
      const auto* p = reinterpret_cast<const float*>(b.data);
      for (std::int64_t i = 0; i < n; ++i) {
        if (!std::isfinite(p[i])) return false;
      }
    } else if (b.dtype == ir::DType::kF64) {
      const auto* p = reinterpret_cast<const double*>(b.data);
      for (std::int64_t i = 0; i < n; ++i) {
        if (!std::isfinite(p[i])) return false;
      }
    }
    return true;
  }

  std::int64_t batch_;
  Program step_;
  Program init_;
  std::map<std::string, Tensor> variables_;
  std::map<std::string, Tensor> pending_;  // new values of the last training step, not yet applied
  Tensor arena_;                           // one block of program.arena_bytes, 64-byte aligned
};

}  // namespace

std::unique_ptr<Executor> make_reference_executor(const ir::Graph& graph, std::int64_t batch) {
  return std::make_unique<ReferenceExecutor>(graph, batch);
}

}  // namespace kiln::runtime
