// The Program: Kiln's second IR level. A Graph lowered at one concrete batch size into a
// list of instructions over buffers that live at byte offsets in one arena, planned by
// liveness so a buffer's bytes are reused once its last reader has run. Every backend
// runs the same Program; print_program shows it as stable text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "compiler/ir/graph.h"

namespace kiln::ir {

using BufferId = std::uint32_t;

// Every buffer starts at a multiple of this, so kernels may use aligned vector loads.
inline constexpr std::size_t kBufferAlignment = 64;

enum class BufferRole : std::uint8_t {
  kTemporary,  // an intermediate: its bytes are reused after its last use
  kInput,      // fed by the caller
  kVariable,   // a parameter or state, copied from the executor's variables
  kOutput,     // returned by name after the run
};

struct Buffer {
  ValueId value = 0;  // the graph node whose result it holds
  std::string name;   // the node's name, or "%<value>" when it has none
  DType dtype = DType::kF32;
  std::vector<std::int64_t> dims;  // concrete: the batch dimension filled in
  std::size_t bytes = 0;
  std::size_t offset = 0;  // into the arena
  BufferRole role = BufferRole::kTemporary;
  // Lifetime in instruction indices: written by `first`, last read by `last`. Pinned
  // buffers (every role but kTemporary) are live for the whole program.
  std::uint32_t first = 0, last = 0;
  bool pinned() const { return role != BufferRole::kTemporary; }
};

struct Instruction {
  OpId op = 0;
  std::vector<BufferId> operands;  // read
  BufferId result = 0;             // written
  Attrs attrs;                     // the node's attributes, as the graph has them
  ValueId node = 0;                // for messages: which graph node this runs
  // input / parameter / state: the name it is fed or stored under; assign_state: the
  // name of the parameter or state it writes.
  std::string variable;
  std::string label;  // "matmul %5 (h1)": for kernel messages, made once at lowering
};

struct NamedBuffer {
  std::string name;
  BufferId buffer = 0;
};

enum class ProgramKind : std::uint8_t {
  kStep,        // one run: reads inputs and variables, yields outputs and assignments
  kInitialize,  // runs every parameter's and state's initialiser; `results` are the variables
};

struct Program {
  std::string graph_name;
  ProgramKind kind = ProgramKind::kStep;
  std::int64_t batch = 1;
  std::vector<Buffer> buffers;
  std::vector<Instruction> instructions;
  // kStep: the graph's outputs by name. kInitialize: every parameter and state by name.
  std::vector<NamedBuffer> results;
  std::size_t arena_bytes = 0;   // what the planner needs
  std::size_t pinned_bytes = 0;  // of which never reused (inputs, variables, outputs)

  std::size_t buffer_bytes_total() const;  // every buffer's size, as if none shared
};

// Lowers `graph` at a concrete batch size (>= 1). A step program holds the nodes that the
// outputs and the side effects (assign_state, the optimizer updates) need, reading
// parameters and states as they are; the initialisers under them are left to the
// initialize program, which holds just those. Throws std::invalid_argument for a batch
// below 1 and std::logic_error for a malformed graph (an operand used before it is
// defined, an assign_state whose target is not a parameter or state).
Program lower_to_program(const Graph& graph, std::int64_t batch, ProgramKind kind = ProgramKind::kStep,
                         const OpRegistry& ops = core_ops());

// Places every buffer in the arena from its lifetime ([first, last]) and role, and sets
// arena_bytes and pinned_bytes. lower_to_program calls it; a backend that changes lifetimes
// (fusion keeps a fused producer's operands alive until its consumer runs) calls it again.
void plan_arena(Program& program);

// Stable text: a header line, one instruction per line (result and operand buffers with
// their arena offsets), one line per buffer (type, size, offset, lifetime, role), the
// results, and a memory summary:
//   i3: b3@953344 = matmul(b0@0, b1@12544) {transpose_a=false, transpose_b=false} : f32[4, 256]  # y
//   memory: arena 961536 bytes (953344 pinned), buffers 971880 bytes in all, reuse saves 10344 bytes
std::string print_program(const Program& program, const OpRegistry& ops = core_ops());

}  // namespace kiln::ir
