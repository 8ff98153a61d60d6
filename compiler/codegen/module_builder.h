// Internal to compiler/codegen: builds one LLVM module from Programs (the kernels'
// bitcode linked in, one entry function per Program) and optimises it for a target.
#pragma once

#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/Target/TargetMachine.h>

#include <memory>
#include <string>
#include <vector>

#include "compiler/codegen/codegen.h"

namespace kiln::codegen::detail {

// The TargetMachine for options.cpu/features (the host's when empty), optimising hard.
std::unique_ptr<llvm::TargetMachine> make_target_machine(const CodegenOptions& options);

class ModuleBuilder {
 public:
  // Parses the embedded kernel bitcode of the flavour the target supports into a new
  // module of `context`.
  ModuleBuilder(llvm::LLVMContext& context, const CodegenOptions& options, llvm::TargetMachine& target);
  ~ModuleBuilder();

  // Emits `program` as the function `entry`. Throws std::runtime_error when an op or dtype
  // is not supported.
  CodegenReport add_program(const ir::Program& program, const std::string& entry);

  // Internalises everything but the entries, gives every function the target's CPU and
  // features, runs the O2 pipeline (skipping what clang already optimised), and hands the
  // module over.
  std::unique_ptr<llvm::Module> finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::codegen::detail
