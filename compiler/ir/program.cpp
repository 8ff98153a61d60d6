// Lowering a Graph to a Program: pick the nodes a step (or the initialisation) needs,
// give each a buffer with concrete dims, compute lifetimes, and plan the arena. Pinned
// buffers come first and never move; temporaries go first-fit into freed space above.
#include "compiler/ir/program.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <iterator>
#include <map>
#include <stdexcept>

namespace kiln::ir {
namespace {

std::size_t align_up(std::size_t n) {
  return (n + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
}

// First-fit allocator over [0, top): freed blocks are kept sorted and coalesced.
class ArenaPlanner {
 public:
  std::size_t allocate(std::size_t bytes) {
    const std::size_t size = align_up(bytes);
    for (auto it = free_.begin(); it != free_.end(); ++it) {
      if (it->second - it->first < size) continue;
      const std::size_t offset = it->first;
      it->first += size;
      if (it->first == it->second) free_.erase(it);
      return offset;
    }
    // Grow: a free block that ends at the top is extended rather than skipped.
    if (!free_.empty() && free_.back().second == top_) {
      const std::size_t offset = free_.back().first;
      free_.pop_back();
      top_ = offset + size;
      return offset;
    }
    const std::size_t offset = top_;
    top_ += size;
    return offset;
  }

  void release(std::size_t offset, std::size_t bytes) {
    const std::size_t size = align_up(bytes);
    if (size == 0) return;
    auto it = std::lower_bound(free_.begin(), free_.end(), std::pair{offset, offset});
    it = free_.insert(it, {offset, offset + size});
    if (std::next(it) != free_.end() && it->second == std::next(it)->first) {
      it->second = std::next(it)->second;
      free_.erase(std::next(it));
    }
    if (it != free_.begin() && std::prev(it)->second == it->first) {
      std::prev(it)->second = it->second;
      free_.erase(it);
    }
  }

  std::size_t top() const { return top_; }

 private:
  std::vector<std::pair<std::size_t, std::size_t>> free_;  // [begin, end), sorted
  std::size_t top_ = 0;
};

bool is_variable_op(std::string_view op) {
  return op == "parameter" || op == "state";
}

// Which nodes the program runs: everything the roots reach, except that a step reads
// parameters and states as stored and so does not run their initialisers.
std::vector<bool> needed_nodes(const Graph& graph, ProgramKind kind, const OpRegistry& ops) {
  std::vector<bool> needed(graph.size(), false);
  if (kind == ProgramKind::kStep) {
    for (const auto& out : graph.outputs()) needed.at(out.value) = true;
    for (ValueId id = 0; id < graph.size(); ++id) {
      if (ops.get(graph.node(id).op).has(ir::kSideEffect)) needed[id] = true;
    }
  } else {
    for (const auto& p : graph.parameters()) needed.at(p.value) = true;
    for (const auto& s : graph.states()) needed.at(s.value) = true;
  }
  for (ValueId id = static_cast<ValueId>(graph.size()); id-- > 0;) {
    if (!needed[id]) continue;
    const ir::Node& node = graph.node(id);
    if (kind == ProgramKind::kStep && is_variable_op(ops.get(node.op).name)) continue;
    for (const ValueId operand : node.operands) {
      if (operand >= id) {
        throw std::logic_error(
            fmt::format("lower_to_program: node %{} of graph '{}' uses %{}, which is not defined "
                        "before it",
                        id, graph.name(), operand));
      }
      needed[operand] = true;
    }
  }
  return needed;
}

std::vector<std::int64_t> concrete_dims(const ir::Shape& shape, std::int64_t batch) {
  std::vector<std::int64_t> dims;
  for (const ir::Dim d : shape.dims) dims.push_back(d.is_batch() ? batch : d.size);
  return dims;
}

}  // namespace

std::size_t Program::buffer_bytes_total() const {
  std::size_t total = 0;
  for (const Buffer& b : buffers) total += b.bytes;
  return total;
}

void plan_arena(Program& program) {
  // Pinned buffers side by side at the bottom, then temporaries by liveness. A buffer is
  // placed before the buffers that die at its first instruction are freed, so no kernel
  // writes over its own input.
  std::size_t pinned = 0;
  for (Buffer& b : program.buffers) {
    if (!b.pinned()) continue;
    b.offset = pinned;
    pinned += align_up(b.bytes);
  }
  std::vector<std::vector<BufferId>> born_at(program.instructions.size());
  std::vector<std::vector<BufferId>> dies_after(program.instructions.size());
  for (BufferId b = 0; b < program.buffers.size(); ++b) {
    const Buffer& buffer = program.buffers[b];
    if (buffer.pinned() || buffer.first >= program.instructions.size()) continue;
    born_at[buffer.first].push_back(b);
    dies_after[std::max(buffer.first, buffer.last)].push_back(b);
  }
  ArenaPlanner planner;
  for (std::size_t i = 0; i < program.instructions.size(); ++i) {
    for (const BufferId b : born_at[i]) program.buffers[b].offset = pinned + planner.allocate(program.buffers[b].bytes);
    for (const BufferId b : dies_after[i])
      planner.release(program.buffers[b].offset - pinned, program.buffers[b].bytes);
  }
  program.pinned_bytes = pinned;
  program.arena_bytes = pinned + planner.top();
}

Program lower_to_program(const Graph& graph, std::int64_t batch, ProgramKind kind, const OpRegistry& ops) {
  if (batch < 1) throw std::invalid_argument(fmt::format("batch size must be at least 1, got {}", batch));
  Program program;
  program.graph_name = graph.name();
  program.kind = kind;
  program.batch = batch;
  const std::vector<bool> needed = needed_nodes(graph, kind, ops);

  std::map<ValueId, BufferId> buffer_of;
  for (ValueId id = 0; id < graph.size(); ++id) {
    if (!needed[id]) continue;
    const ir::Node& node = graph.node(id);
    const std::string_view op = ops.get(node.op).name;
    Buffer buffer;
    buffer.value = id;
    buffer.name = node.name.empty() ? fmt::format("%{}", id) : node.name;
    buffer.dtype = node.type.dtype;
    buffer.dims = concrete_dims(node.type.shape, batch);
    std::size_t elements = 1;
    for (const std::int64_t d : buffer.dims) elements *= static_cast<std::size_t>(d);
    buffer.bytes = elements * dtype_size(buffer.dtype);
    if (op == "input") buffer.role = BufferRole::kInput;
    if (is_variable_op(op)) buffer.role = BufferRole::kVariable;
    buffer.first = buffer.last = static_cast<std::uint32_t>(program.instructions.size());

    Instruction inst;
    inst.op = node.op;
    inst.attrs = node.attrs;
    inst.node = id;
    inst.result = static_cast<BufferId>(program.buffers.size());
    if (op == "input" || is_variable_op(op)) inst.variable = node.attrs.get_string("name", node.name);
    if (op == "assign_state") {
      const ir::Node& target = graph.node(node.operands.at(0));
      if (!is_variable_op(ops.get(target.op).name)) {
        throw std::logic_error(
            fmt::format("lower_to_program: assign_state %{} writes %{}, which is not a parameter "
                        "or state",
                        id, node.operands[0]));
      }
      inst.variable = target.attrs.get_string("name", target.name);
    }
    if (!(kind == ProgramKind::kStep && is_variable_op(op))) {
      for (const ValueId operand : node.operands) {
        const BufferId b = buffer_of.at(operand);
        inst.operands.push_back(b);
        program.buffers[b].last = static_cast<std::uint32_t>(program.instructions.size());
      }
    }
    buffer_of[id] = inst.result;
    program.buffers.push_back(std::move(buffer));
    inst.label = fmt::format("{} %{} ({})", op, id, program.buffers[inst.result].name);
    program.instructions.push_back(std::move(inst));
  }

  // Results: outputs (a step) or every variable (initialisation) are pinned.
  const auto add_result = [&](const std::string& name, ValueId value) {
    const BufferId b = buffer_of.at(value);
    if (program.buffers[b].role == BufferRole::kTemporary) program.buffers[b].role = BufferRole::kOutput;
    program.results.push_back({name, b});
  };
  if (kind == ProgramKind::kStep) {
    for (const auto& out : graph.outputs()) add_result(out.name, out.value);
  } else {
    for (const auto& p : graph.parameters()) add_result(p.name, p.value);
    for (const auto& s : graph.states()) add_result(s.name, s.value);
  }

  plan_arena(program);
  return program;
}

namespace {

std::string_view role_name(BufferRole role) {
  switch (role) {
    case BufferRole::kTemporary: return "temporary";
    case BufferRole::kInput: return "input";
    case BufferRole::kVariable: return "variable";
    case BufferRole::kOutput: return "output";
  }
  return "?";
}

std::string type_string(const Buffer& b) {
  return fmt::format("{}[{}]", dtype_name(b.dtype), fmt::join(b.dims, ", "));
}

}  // namespace

std::string print_program(const Program& program, const OpRegistry& ops) {
  std::string out = fmt::format("program {} ({}, batch {}): {} instructions, {} buffers\n", program.graph_name,
                                program.kind == ProgramKind::kStep ? "step" : "initialize", program.batch,
                                program.instructions.size(), program.buffers.size());
  for (std::size_t i = 0; i < program.instructions.size(); ++i) {
    const Instruction& inst = program.instructions[i];
    const Buffer& result = program.buffers[inst.result];
    std::vector<std::string> operands;
    for (const BufferId b : inst.operands) operands.push_back(fmt::format("b{}@{}", b, program.buffers[b].offset));
    std::vector<std::string> attrs;
    for (const ir::Attr& a : inst.attrs.items())
      attrs.push_back(fmt::format("{}={}", a.name, ir::attr_value_to_string(a.value)));
    out += fmt::format("  i{}: b{}@{} = {}({})", i, inst.result, result.offset, ops.get(inst.op).name,
                       fmt::join(operands, ", "));
    if (!attrs.empty()) out += fmt::format(" {{{}}}", fmt::join(attrs, ", "));
    out += fmt::format(" : {}  # {}", type_string(result), result.name);
    if (!inst.variable.empty() && inst.variable != result.name) out += fmt::format(" -> {}", inst.variable);
    out += '\n';
  }
  for (BufferId b = 0; b < program.buffers.size(); ++b) {
    const Buffer& buf = program.buffers[b];
    const std::string node = fmt::format("%{}", buf.value);
    out += fmt::format("  b{}: {} {} bytes @{} live [i{}, i{}] {} ({}{}{})\n", b, type_string(buf), buf.bytes,
                       buf.offset, buf.first, buf.last, role_name(buf.role), node, buf.name == node ? "" : " ",
                       buf.name == node ? "" : buf.name);
  }
  for (const NamedBuffer& r : program.results) out += fmt::format("  result {} = b{}\n", r.name, r.buffer);
  const std::size_t total = program.buffer_bytes_total();
  out += fmt::format("  memory: arena {} bytes ({} pinned), buffers {} bytes in all, reuse saves {} bytes\n",
                     program.arena_bytes, program.pinned_bytes, total,
                     total > program.arena_bytes ? total - program.arena_bytes : 0);
  return out;
}

}  // namespace kiln::ir
