// The reference executor's op table: one adapter per op name that turns an instruction's
// attributes and buffers into a call of a kernel in kernels/reference. Kept apart from
// the executor so tests can check that every op of the registry has one.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "compiler/ir/program.h"
#include "runtime/exec/executor.h"
#include "runtime/exec/tensor.h"

namespace kiln::runtime {

// The Program (compiler/ir/program.h) is the IR level every executor runs.
using ir::Buffer;
using ir::BufferId;
using ir::BufferRole;
using ir::Instruction;
using ir::kBufferAlignment;
using ir::lower_to_program;
using ir::NamedBuffer;
using ir::print_program;
using ir::Program;
using ir::ProgramKind;

// A buffer of the arena as a kernel sees it.
struct BufferView {
  void* data = nullptr;
  ir::DType dtype = ir::DType::kF32;
  std::span<const std::int64_t> dims;

  std::int64_t elements() const;
  std::size_t bytes() const;
  template <typename T>
  T* as() const {
    return static_cast<T*>(data);
  }
};

// What the source ops and the random ops read besides their buffers.
struct RunContext {
  const std::map<std::string, Tensor>* feeds = nullptr;
  std::map<std::string, Tensor>* variables = nullptr;
  // assign_state writes here; the executor applies it after the whole step.
  std::map<std::string, Tensor>* assignments = nullptr;
  StepOptions options;
  std::int64_t batch = 1;
};

struct OpCall {
  const Instruction& instruction;
  std::string_view label;  // "matmul %5 (h1)": for messages
  std::vector<BufferView> in;
  BufferView out;
  RunContext& context;
};

using Adapter = std::function<void(const OpCall&)>;

// Op name -> adapter, built once. Ops the reference cannot run would be listed in
// reference_unsupported_ops(); there are none.
const std::map<std::string, Adapter, std::less<>>& reference_adapters();
std::span<const std::string_view> reference_unsupported_ops();

// variables.at(name), or std::invalid_argument listing the names there are (executors'
// variable()).
Tensor& find_variable(std::map<std::string, Tensor>& variables, const std::string& name);

// "f32[4, 784]".
std::string describe_type(ir::DType dtype, std::span<const std::int64_t> dims);

}  // namespace kiln::runtime
