// The LLVM backend's executor: the step Program compiled by the ORC JIT (compiler/codegen)
// into one native function over an arena it owns. Variables stay in their tensors and are
// handed to the generated code by pointer (slots); new values of parameters and states
// are written into a second set of tensors and swapped in on commit, so a step copies no
// weights. Initialisation and the NaN hunt (first_non_finite) run on the reference
// kernels: rare, and the reference's random numbers are the contract.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <stdexcept>

#include "compiler/codegen/codegen.h"
#include "kernels/cpu/kernels.h"
#include "runtime/exec/executor.h"
#include "runtime/exec/reference_adapters.h"
#include "runtime/exec/thread_pool.h"

namespace kiln::runtime {
namespace {

bool all_finite(const Tensor& t) {
  if (t.dtype() == ir::DType::kF32) {
    const float* p = t.data<float>();
    for (std::int64_t i = 0; i < t.elements(); ++i)
      if (!std::isfinite(p[i])) return false;
  } else if (t.dtype() == ir::DType::kF64) {
    const double* p = t.data<double>();
    for (std::int64_t i = 0; i < t.elements(); ++i)
      if (!std::isfinite(p[i])) return false;
  }
  return true;
}

class JitExecutor final : public Executor {
 public:
  JitExecutor(const ir::Graph& graph, std::int64_t batch)
      : graph_(graph), batch_(batch), step_(lower_to_program(graph, batch, ProgramKind::kStep)) {
    codegen::CodegenOptions options;
    options.threads = thread_count();
    program_ = codegen::jit_compile(step_, options, reinterpret_cast<void*>(&kiln_parallel_for));
    const codegen::CodegenReport& report = program_->report();
    arena_ = Tensor(ir::DType::kBool, {static_cast<std::int64_t>(std::max<std::size_t>(report.arena_bytes, 1))});
    const Program init = lower_to_program(graph, batch, ProgramKind::kInitialize);
    for (const NamedBuffer& r : init.results) {
      const Buffer& b = init.buffers[r.buffer];
      variables_.emplace(r.name, Tensor(b.dtype, b.dims));
    }
    slots_.assign(report.slots.size(), nullptr);
    for (std::size_t k = 0; k < report.slots.size(); ++k) {
      const codegen::Slot& s = report.slots[k];
      if (s.kind == codegen::SlotKind::kAssign) next_.emplace_back(k, s.name, Tensor(s.dtype, s.dims));
      if (s.kind == codegen::SlotKind::kVariable && !variables_.contains(s.name))
        variables_.emplace(s.name, Tensor(s.dtype, s.dims));
    }
  }

  void initialize(std::uint64_t seed) override {
    auto& ref = reference();
    ref.initialize(seed);
    for (auto& [name, value] : variables_) value = copy(ref.variable(name));
  }

  std::map<std::string, Tensor> run(const std::map<std::string, Tensor>& feeds, const StepOptions& options) override {
    const codegen::CodegenReport& report = program_->report();
    std::map<std::string, Tensor> outputs;
    for (std::size_t k = 0; k < report.slots.size(); ++k) {
      const codegen::Slot& s = report.slots[k];
      switch (s.kind) {
        case codegen::SlotKind::kInput: slots_[k] = const_cast<void*>(feed(feeds, s).raw()); break;
        case codegen::SlotKind::kVariable: slots_[k] = variable(s.name).raw(); break;
        case codegen::SlotKind::kAssign: break;
        case codegen::SlotKind::kOutput: {
          auto [it, _] = outputs.emplace(s.name, Tensor(s.dtype, s.dims));
          slots_[k] = it->second.raw();
          break;
        }
      }
    }
    for (auto& [slot, name, tensor] : next_) slots_[slot] = tensor.raw();
    codegen::RunState state{options.seed, options.step, options.training ? 1u : 0u};
    program_->entry()(arena_.raw(), slots_.data(), &state);
    pending_ = false;
    if (options.training) {
      pending_ = true;
      if (!options.hold_updates) commit_updates();
    }
    return outputs;
  }

  std::optional<ir::ValueId> first_non_finite(const std::map<std::string, Tensor>& feeds,
                                              const StepOptions& options) override {
    auto& ref = reference();
    for (auto& [name, value] : variables_) ref.variable(name) = copy(value);
    return ref.first_non_finite(feeds, options);
  }

  std::optional<std::string> pending_non_finite() const override {
    if (!pending_) return std::nullopt;
    for (const auto& [slot, name, tensor] : next_) {
      if (!all_finite(tensor)) return name;
    }
    return std::nullopt;
  }

  void commit_updates() override {
    if (!pending_) return;
    for (auto& [slot, name, tensor] : next_) std::swap(variable(name), tensor);
    pending_ = false;
  }

  void discard_updates() override { pending_ = false; }

  Tensor& variable(const std::string& name) override {
    const auto it = variables_.find(name);
    if (it == variables_.end()) {
      std::string known;
      for (const auto& [n, _] : variables_) known += (known.empty() ? "" : ", ") + n;
      throw std::invalid_argument(
          fmt::format("no parameter or state named '{}' (the graph has: {})", name, known.empty() ? "none" : known));
    }
    return it->second;
  }

  double compile_seconds() const override { return program_->compile_seconds(); }

 private:
  static Tensor copy(const Tensor& t) {
    Tensor out(t.dtype(), t.dims());
    if (t.bytes() > 0) std::memcpy(out.raw(), t.raw(), t.bytes());
    return out;
  }

  const Tensor& feed(const std::map<std::string, Tensor>& feeds, const codegen::Slot& s) const {
    const auto it = feeds.find(s.name);
    if (it == feeds.end()) {
      throw std::invalid_argument(fmt::format("missing feed for input '{}' (expected {}, batch {})", s.name,
                                              describe_type(s.dtype, s.dims), batch_));
    }
    const Tensor& t = it->second;
    if (t.dtype() != s.dtype || t.dims() != s.dims) {
      throw std::invalid_argument(fmt::format("input '{}' expects {} (batch {}), got {}", s.name,
                                              describe_type(s.dtype, s.dims), batch_, t.to_string()));
    }
    return t;
  }

  Executor& reference() {
    if (!reference_) reference_ = make_reference_executor(graph_, batch_);
    return *reference_;
  }

  ir::Graph graph_;
  std::int64_t batch_;
  Program step_;
  std::unique_ptr<codegen::JitProgram> program_;
  Tensor arena_;
  std::map<std::string, Tensor> variables_;
  std::vector<std::tuple<std::size_t, std::string, Tensor>> next_;  // assign slot, target, new value
  std::vector<void*> slots_;
  bool pending_ = false;
  std::unique_ptr<Executor> reference_;
};

}  // namespace

std::unique_ptr<Executor> make_jit_executor(const ir::Graph& graph, std::int64_t batch) {
  return std::make_unique<JitExecutor>(graph, batch);
}

std::unique_ptr<Executor> make_executor(const ir::Graph& graph, std::int64_t batch, Backend backend) {
  if (backend == Backend::kReference) return make_reference_executor(graph, batch);
  return make_jit_executor(graph, batch);
}

std::string_view backend_name(Backend backend) {
  return backend == Backend::kReference ? "reference" : "jit";
}

std::optional<Backend> parse_backend(std::string_view name) {
  if (name == "jit" || name == "llvm") return Backend::kJit;
  if (name == "reference") return Backend::kReference;
  return std::nullopt;
}

}  // namespace kiln::runtime
