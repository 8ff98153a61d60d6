// The LLVM CPU backend. A Program becomes one LLVM module: the kernels of kernels/cpu
// (embedded as bitcode) are linked in, every kernel call gets constant shapes and is
// inlined where LLVM finds it pays, chains of elementwise ops become one loop (or the
// epilogue of the matmul that feeds them: bias + relu), and the whole is optimised for
// the host CPU. The module is then run in process by the ORC JIT (JitProgram) or written
// as an object file (emit_object) for a deployable artifact.
//
// The generated entry point (C ABI):
//   void ENTRY(void* arena, void* const* slots, const kiln_run_state* state);
// `arena` holds arena_bytes (64-byte aligned) of working memory, temporaries and kernel
// scratch, owned by the caller and reused between calls; `slots` holds one pointer per
// Slot, in order: each input and variable (read), each assign target (the new value of a
// parameter or state is written there) and each output (written). Nothing is allocated.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "compiler/ir/program.h"

namespace kiln::codegen {

// What the generated code reads besides its buffers; layout shared with the C header of
// an artifact.
struct RunState {
  std::uint64_t seed = 0;
  std::uint64_t step = 0;
  std::uint64_t training = 0;  // if_training picks its first operand when non-zero
  void* profile = nullptr;     // with CodegenOptions::profile: handed to kiln_profile_mark
};

using EntryFn = void (*)(void* arena, void* const* slots, const RunState* state);

enum class SlotKind : std::uint8_t { kInput, kVariable, kAssign, kOutput };

struct Slot {
  SlotKind kind = SlotKind::kInput;
  std::string name;  // input, variable or output name; kAssign: the parameter or state written
  ir::DType dtype = ir::DType::kF32;
  std::vector<std::int64_t> dims;
  std::size_t bytes = 0;
};

struct CodegenOptions {
  int threads = 1;  // ways the kernels and large loops split their work (kiln_parallel_for)
  // Define kiln_parallel_for in the module as a serial loop (artifacts carry no runtime);
  // otherwise the host provides it.
  bool serial_parallel_for = false;
  // emit_object with threads > 1: the object calls the host's parallel-for under this name
  // (an artifact's runtime defines NAME_parallel_for, so two artifacts can share a program).
  // Empty: the object runs serially whatever `threads` says.
  std::string parallel_for_name;
  std::string cpu;       // target CPU; empty: the host's
  std::string features;  // target features; empty: the host's
  // Call kiln_profile_mark(state, instruction index) after every emitted instruction (and
  // with -1 at the entry), a host function that timestamps them: time per op for profiling.
  // JIT only.
  bool profile = false;
  // A matmul is chained to the elementwise loop that alone reads its result (fusion.h) only
  // when that result is at least this large: below it C stays in cache between the two and
  // chaining measured no better (fashion_mlp's 0.8 MB weight gradient: its Adam update took
  // 20 us longer chained; fashion_cnn's 12.8 MB one 0.6 ms shorter, docs/performance.md).
  std::size_t chain_min_bytes = std::size_t{4} << 20;
};

// What code generation did with one Program (for `kiln build` and compile-time reports).
struct CodegenReport {
  std::string entry;
  std::size_t arena_bytes = 0;    // program arena after fusion plus kernel scratch
  std::size_t scratch_bytes = 0;  // of which kernel scratch
  int instructions = 0;           // in the Program
  int fused = 0;                  // elementwise instructions folded into another's loop
  int epilogues = 0;  // ops folded into an epilogue (a matmul's bias and relu or a relu gradient, a relu gradient into
                      // a pool gradient)
  int loops = 0;      // generated elementwise loops
  int chains = 0;     // of which run inside the matmul whose result they alone read (kiln_k_matmul_chained)
  int kernel_calls = 0;
  std::string kernels;  // the kernel bitcode linked in: "avx512", "avx2" or "portable"
  std::vector<Slot> slots;
};

// Thrown when a Program holds an (op, dtype) the backend cannot compile: `node` is the graph
// node of the instruction, so a caller holding the sources can say where it came from.
struct UnsupportedOp : std::runtime_error {
  UnsupportedOp(const std::string& what, ir::ValueId at) : std::runtime_error(what), node(at) {}
  ir::ValueId node;
};

// Why the backend cannot compile `program` (the first op and dtype it lacks, with the
// instruction's label), or nullopt. The JIT's capability query, never a test blacklist.
std::optional<std::string> unsupported_reason(const ir::Program& program);

// One compiled Program in process.
class JitProgram {
 public:
  virtual ~JitProgram() = default;
  virtual EntryFn entry() const = 0;
  virtual const CodegenReport& report() const = 0;
  virtual double compile_seconds() const = 0;
};

// Compiles `program` with the ORC JIT. `parallel_for` is the host's kiln_parallel_for
// (ignored with options.serial_parallel_for). Throws std::runtime_error with the reason
// when the program holds something the backend cannot compile or LLVM fails.
std::unique_ptr<JitProgram> jit_compile(const ir::Program& program, const CodegenOptions& options, void* parallel_for,
                                        void* profile_mark = nullptr);

// One entry point of an object file.
struct ObjectEntry {
  const ir::Program* program = nullptr;
  std::string name;
};

// Writes every entry into one relocatable object file at `path` (serial kiln_parallel_for
// defined inside it, kernels internal, only the entry symbols exported). Returns a report
// per entry. Throws std::runtime_error on failure.
std::vector<CodegenReport> emit_object(const std::vector<ObjectEntry>& entries, const CodegenOptions& options,
                                       const std::string& path);

// "avx512", "avx2" or "portable": which kernel bitcode the host gets.
std::string host_kernel_flavour();

// The CPU code is generated for: options.cpu, or the host's when that is empty. Throws
// std::runtime_error for a name LLVM does not know, naming a few it does.
std::string target_cpu_name(const CodegenOptions& options);

// One x86 instruction set extension and where CPUID reports it: bit `bit` of register `reg`
// (0 eax, 1 ebx, 2 ecx, 3 edx) of leaf `leaf`, sub-leaf `subleaf`. `xcr0` is the mask of XCR0
// bits the OS must have enabled for its registers (0x6 for AVX's ymm state, 0xe6 for
// AVX-512's), else 0.
struct CpuCheck {
  std::string name;  // LLVM's feature name (avx2, avx512vnni, ...)
  unsigned leaf = 0, subleaf = 0;
  int reg = 0, bit = 0;
  unsigned xcr0 = 0;
};

// Of the x86 instruction set extensions generated code may use (SSE3 to the AVX-512 sets,
// AVX-VNNI, F16C, FMA, BMI, GFNI, VAES, ...), those the target CPU has: what an artifact checks
// with CPUID at start-up before it runs code that would fault without them. Empty off x86-64.
std::vector<CpuCheck> target_cpu_checks(const CodegenOptions& options);

}  // namespace kiln::codegen
