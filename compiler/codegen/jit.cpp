// The ORC JIT: one LLJIT per compiled Program. The module comes out of ModuleBuilder
// already optimised for the host; LLJIT only generates machine code and resolves the two
// kinds of outside symbol: kiln_parallel_for (the runtime's thread pool, passed in) and
// libm (from the process).
#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/ExecutionEngine/Orc/ThreadSafeModule.h>
#include <llvm/Support/Error.h>

#include <chrono>
#include <stdexcept>

#include "compiler/codegen/codegen.h"
#include "compiler/codegen/module_builder.h"

namespace kiln::codegen {
namespace {

std::string message(llvm::Error error) {
  return llvm::toString(std::move(error));
}

class LlvmJitProgram final : public JitProgram {
 public:
  LlvmJitProgram(std::unique_ptr<llvm::orc::LLJIT> jit, EntryFn entry, CodegenReport report, double seconds)
      : jit_(std::move(jit)), entry_(entry), report_(std::move(report)), seconds_(seconds) {}
  EntryFn entry() const override { return entry_; }
  const CodegenReport& report() const override { return report_; }
  double compile_seconds() const override { return seconds_; }

 private:
  std::unique_ptr<llvm::orc::LLJIT> jit_;
  EntryFn entry_;
  CodegenReport report_;
  double seconds_;
};

}  // namespace

std::unique_ptr<JitProgram> jit_compile(const ir::Program& program, const CodegenOptions& options, void* parallel_for,
                                        void* profile_mark) {
  const auto start = std::chrono::steady_clock::now();
  auto tm = detail::make_target_machine(options);
  auto context = std::make_unique<llvm::LLVMContext>();
  const std::string entry = "kiln_entry";
  detail::ModuleBuilder builder(*context, options, *tm);
  CodegenReport report = builder.add_program(program, entry);
  std::unique_ptr<llvm::Module> module = builder.finish();

  llvm::orc::JITTargetMachineBuilder jtmb(tm->getTargetTriple());
  jtmb.setCPU(tm->getTargetCPU().str());
  jtmb.addFeatures(std::vector<std::string>{});
  {
    llvm::SubtargetFeatures features(tm->getTargetFeatureString());
    jtmb.getFeatures() = features;
  }
  jtmb.setCodeGenOptLevel(llvm::CodeGenOpt::Aggressive);
  auto jit = llvm::orc::LLJITBuilder().setJITTargetMachineBuilder(std::move(jtmb)).create();
  if (!jit) throw std::runtime_error("cannot start the LLVM JIT: " + message(jit.takeError()));
  llvm::orc::JITDylib& dylib = (*jit)->getMainJITDylib();
  auto process =
      llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess((*jit)->getDataLayout().getGlobalPrefix());
  if (!process) throw std::runtime_error("cannot search the process for symbols: " + message(process.takeError()));
  dylib.addGenerator(std::move(*process));
  if (!options.serial_parallel_for) {
    llvm::orc::SymbolMap symbols;
    symbols[(*jit)->mangleAndIntern("kiln_parallel_for")] =
        llvm::JITEvaluatedSymbol(llvm::pointerToJITTargetAddress(parallel_for), llvm::JITSymbolFlags::Exported);
    if (options.profile && profile_mark != nullptr) {
      symbols[(*jit)->mangleAndIntern("kiln_profile_mark")] =
          llvm::JITEvaluatedSymbol(llvm::pointerToJITTargetAddress(profile_mark), llvm::JITSymbolFlags::Exported);
    }
    if (auto err = dylib.define(llvm::orc::absoluteSymbols(std::move(symbols))))
      throw std::runtime_error("cannot define kiln_parallel_for: " + message(std::move(err)));
  }
  if (auto err = (*jit)->addIRModule(llvm::orc::ThreadSafeModule(std::move(module), std::move(context))))
    throw std::runtime_error("the JIT rejected the module: " + message(std::move(err)));
  auto address = (*jit)->lookup(entry);
  if (!address) throw std::runtime_error("the JIT could not compile the program: " + message(address.takeError()));
  const auto fn = address->toPtr<EntryFn>();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return std::make_unique<LlvmJitProgram>(std::move(*jit), fn, std::move(report), seconds);
}

}  // namespace kiln::codegen
