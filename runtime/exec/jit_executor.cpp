// The LLVM backend's executor: the step Program compiled by the ORC JIT (compiler/codegen)
// into one native function over an arena it owns. Variables stay in their tensors and are
// handed to the generated code by pointer (slots); new values of parameters and states
// are written into a second set of tensors and swapped in on commit, so a step copies no
// weights. Initialisation and the NaN hunt (first_non_finite) run on the reference
// kernels: rare, and the reference's random numbers are the contract.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string_view>

#include "compiler/codegen/codegen.h"
#include "kernels/cpu/kernels.h"
#include "runtime/exec/executor.h"
#include "runtime/exec/reference_adapters.h"
#include "runtime/exec/thread_pool.h"

namespace kiln::runtime {
namespace {

// Checked on the bits (exponent all ones = NaN or infinity) so the loop vectorises: the
// trainer checks every new parameter value each step.
bool all_finite(const Tensor& t) {
  if (t.dtype() == ir::DType::kF32) {
    const auto* p = static_cast<const std::uint32_t*>(t.raw());
    const std::int64_t n = t.elements();
    std::uint32_t bad = 0;
    for (std::int64_t i = 0; i < n; ++i) bad |= static_cast<std::uint32_t>((p[i] & 0x7f800000u) == 0x7f800000u);
    return bad == 0;
  } else if (t.dtype() == ir::DType::kF64) {
    const double* p = t.data<double>();
    for (std::int64_t i = 0; i < t.elements(); ++i)
      if (!std::isfinite(p[i])) return false;
  }
  return true;
}

// KILN_PROFILE=1: the generated code calls profile_mark(state, index) after every
// instruction; the time since the previous mark is charged to that instruction in the
// Profile the run state points at (each executor its own), and the executor prints the
// table (most expensive first) to stderr when it is destroyed.
struct Profile {
  std::chrono::steady_clock::time_point last;
  std::vector<double> seconds;
  std::int64_t runs = 0;
};
extern "C" void profile_mark(const codegen::RunState* state, std::int64_t index) {
  auto* p = static_cast<Profile*>(state->profile);
  if (p == nullptr) return;
  const auto now = std::chrono::steady_clock::now();
  if (index < 0) {
    ++p->runs;
  } else {
    if (p->seconds.size() <= static_cast<std::size_t>(index)) p->seconds.resize(static_cast<std::size_t>(index) + 1);
    p->seconds[static_cast<std::size_t>(index)] += std::chrono::duration<double>(now - p->last).count();
  }
  p->last = now;
}

bool profiling_requested() {
  const char* v = std::getenv("KILN_PROFILE");
  return v != nullptr && std::string_view(v) != "0" && std::string_view(v) != "";
}

class JitExecutor final : public Executor {
 public:
  JitExecutor(const ir::Graph& graph, std::int64_t batch)
      : graph_(graph), batch_(batch), step_(lower_to_program(graph, batch, ProgramKind::kStep)) {
    codegen::CodegenOptions options;
    options.threads = thread_count();
    // KILN_CPU=NAME compiles for that CPU (LLVM's names: x86-64, znver3, ...) instead of
    // this host; a CPU without AVX2 and FMA gets the portable kernels.
    if (const char* cpu = std::getenv("KILN_CPU"); cpu != nullptr && *cpu != '\0') options.cpu = cpu;
    // KILN_CHAIN_MIN_BYTES=N chains matmuls whose result has at least N bytes (tests, tuning).
    if (const char* min = std::getenv("KILN_CHAIN_MIN_BYTES"); min != nullptr && *min != '\0') {
      char* end = nullptr;
      const unsigned long long bytes = std::strtoull(min, &end, 10);
      if (*end != '\0' || !std::isdigit(static_cast<unsigned char>(*min)))
        throw std::runtime_error(fmt::format(
            "KILN_CHAIN_MIN_BYTES must be a number of bytes (digits only), got '{}'; unset it for the default", min));
      options.chain_min_bytes = static_cast<std::size_t>(bytes);
    }
    options.profile = profiling_requested();
    program_ = codegen::jit_compile(step_, options, reinterpret_cast<void*>(&kiln_parallel_for),
                                    reinterpret_cast<void*>(&profile_mark));
    if (options.profile) profile_ = std::make_unique<Profile>();
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
      if (s.kind == codegen::SlotKind::kVariable && !variables_.contains(s.name))
        variables_.emplace(s.name, Tensor(s.dtype, s.dims));
    }
    // std::map nodes never move: the tensors a slot reads, and those an assign replaces, are
    // found once here rather than by name every step.
    slot_variable_.assign(report.slots.size(), nullptr);
    for (std::size_t k = 0; k < report.slots.size(); ++k) {
      const codegen::Slot& s = report.slots[k];
      if (s.kind == codegen::SlotKind::kVariable) slot_variable_[k] = &variable(s.name);
      if (s.kind == codegen::SlotKind::kAssign)
        next_.push_back({k, s.name, Tensor(s.dtype, s.dims), &variable(s.name)});
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
        case codegen::SlotKind::kVariable: {
          // A caller may have replaced the tensor (checkpoints, tests): it must still fit.
          const Tensor& t = *slot_variable_[k];
          if (t.dtype() != s.dtype || t.dims() != s.dims) {
            throw std::invalid_argument(fmt::format("variable '{}' is {}, but the compiled step expects {}", s.name,
                                                    t.to_string(), describe_type(s.dtype, s.dims)));
          }
          slots_[k] = const_cast<Tensor&>(t).raw();
          break;
        }
        case codegen::SlotKind::kAssign: break;
        case codegen::SlotKind::kOutput: {
          auto [it, _] = outputs.emplace(s.name, Tensor(s.dtype, s.dims));
          slots_[k] = it->second.raw();
          break;
        }
      }
    }
    for (Update& u : next_) slots_[u.slot] = u.value.raw();
    codegen::RunState state{options.seed, options.step, options.training ? 1u : 0u, profile_.get()};
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
    for (const Update& u : next_) {
      if (!all_finite(u.value)) return u.name;
    }
    return std::nullopt;
  }

  void commit_updates() override {
    if (!pending_) return;
    for (Update& u : next_) std::swap(*u.target, u.value);
    pending_ = false;
  }

  void discard_updates() override { pending_ = false; }

  Tensor& variable(const std::string& name) override { return find_variable(variables_, name); }

  double compile_seconds() const override { return program_->compile_seconds(); }

  ~JitExecutor() override {
    if (!profile_ || profile_->runs == 0) return;
    std::vector<std::pair<double, std::size_t>> rows;
    double total = 0;
    for (std::size_t i = 0; i < profile_->seconds.size(); ++i) {
      if (profile_->seconds[i] > 0) rows.emplace_back(profile_->seconds[i], i);
      total += profile_->seconds[i];
    }
    std::sort(rows.rbegin(), rows.rend());
    const double runs = static_cast<double>(profile_->runs);
    std::fprintf(stderr, "profile: %s at batch %lld, %lld runs, %.3f ms per run\n", step_.graph_name.c_str(),
                 static_cast<long long>(batch_), static_cast<long long>(profile_->runs), total / runs * 1e3);
    for (const auto& [s, i] : rows) {
      if (s / total < 0.005 || i >= step_.instructions.size()) break;
      std::fprintf(stderr, "  %6.3f ms %5.1f%%  %s\n", s / runs * 1e3, 100 * s / total,
                   step_.instructions[i].label.c_str());
    }
  }

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
  struct Update {
    std::size_t slot;  // the assign slot the generated code writes
    std::string name;  // the parameter or state
    Tensor value;      // its new value, swapped in on commit
    Tensor* target;    // the variable it replaces
  };
  std::vector<Update> next_;
  std::vector<Tensor*> slot_variable_;  // per slot: the variable it reads, or null
  std::vector<void*> slots_;
  bool pending_ = false;
  std::unique_ptr<Executor> reference_;
  std::unique_ptr<Profile> profile_;
};

}  // namespace

std::unique_ptr<Executor> make_jit_executor(const ir::Graph& graph, std::int64_t batch) {
  return std::make_unique<JitExecutor>(graph, batch);
}

std::unique_ptr<Executor> make_executor(const ir::Graph& graph, std::int64_t batch, Backend backend) {
  if (backend == Backend::kReference) return make_reference_executor(graph, batch);
  return make_jit_executor(graph, batch);
}

std::string compile_summary(const std::map<std::int64_t, std::unique_ptr<Executor>>& executors, const std::string& step,
                            double wall_seconds) {
  double seconds = 0;
  std::string sizes;
  // Largest first: the full batch, then the last, partial ones.
  for (auto it = executors.rbegin(); it != executors.rend(); ++it) {
    if (!it->second) continue;
    seconds += it->second->compile_seconds();
    sizes += (sizes.empty() ? "" : ", ") + std::to_string(it->first);
  }
  if (seconds <= 0) return {};
  if (wall_seconds >= 0) seconds = wall_seconds;
  return fmt::format("compiled the {} with LLVM in {:.2f} s (batch size{} {})", step, seconds,
                     executors.size() > 1 ? "s" : "", sizes);
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
