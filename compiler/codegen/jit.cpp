// The ORC JIT: one LLJIT per compiled Program. The module comes out of ModuleBuilder
// already optimised for the host; LLJIT only generates machine code and resolves the two
// kinds of outside symbol: kiln_parallel_for (the runtime's thread pool, passed in) and
// libm (from the process). Machine code generation, about half the compile time, runs on
// two threads: the optimised module is split into partitions (llvm::SplitModule, each
// moved into a context of its own through bitcode, since a context is single-threaded)
// whose code is generated concurrently.
#include <llvm/Bitcode/BitcodeReader.h>
#include <llvm/Bitcode/BitcodeWriter.h>
#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/ExecutionEngine/Orc/ThreadSafeModule.h>
#include <llvm/Support/Error.h>
#include <llvm/Support/MemoryBuffer.h>
#include <llvm/Transforms/Utils/SplitModule.h>

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

// Code-generation partitions for a module of at least kSplitMinFunctions definitions (fewer
// are not worth the bitcode round trips; fashion_mlp's and credit_risk's training steps, with
// 8-23, compile in 0.30-0.40 s split against 0.40-0.44 s whole), and the threads that
// compile them: four parts on two threads even out parts of unequal cost (fashion_cnn's
// step: 0.35 s of code generation with two parts, 0.30-0.32 s with four).
constexpr unsigned kCodegenParts = 4;
constexpr unsigned kCodegenThreads = 2;
constexpr std::size_t kSplitMinFunctions = 8;

// One partition of the optimised module, moved into its own context, and the name of a
// function it defines (looked up to start its code generation).
struct Part {
  llvm::orc::ThreadSafeModule module;
  std::string symbol;
};

std::vector<Part> split_for_codegen(std::unique_ptr<llvm::Module> module, std::unique_ptr<llvm::LLVMContext> context) {
  std::size_t functions = 0;
  for (const llvm::Function& f : *module) functions += f.isDeclaration() ? 0 : 1;
  std::vector<Part> parts;
  if (functions < kSplitMinFunctions) {
    parts.push_back({llvm::orc::ThreadSafeModule(std::move(module), std::move(context)), ""});
    return parts;
  }
  std::string failure;
  llvm::SplitModule(
      *module, kCodegenParts,
      [&](std::unique_ptr<llvm::Module> part) {
        llvm::SmallVector<char, 0> bytes;
        llvm::raw_svector_ostream out(bytes);
        llvm::WriteBitcodeToFile(*part, out);
        auto own = std::make_unique<llvm::LLVMContext>();
        auto parsed = llvm::parseBitcodeFile(
            llvm::MemoryBufferRef(llvm::StringRef(bytes.data(), bytes.size()), "kiln_part"), *own);
        if (!parsed) {
          failure = message(parsed.takeError());
          return;
        }
        // SplitModule makes what one partition needs of another external but hidden, and
        // ORC does not resolve hidden symbols across modules.
        for (llvm::GlobalValue& gv : (*parsed)->global_values())
          if (!gv.isDeclaration() && !gv.hasLocalLinkage() && gv.hasHiddenVisibility())
            gv.setVisibility(llvm::GlobalValue::DefaultVisibility);
        std::string symbol;
        for (const llvm::Function& f : **parsed)
          if (!f.isDeclaration() && !f.hasLocalLinkage()) {
            symbol = f.getName().str();
            break;
          }
        parts.push_back({llvm::orc::ThreadSafeModule(std::move(*parsed), std::move(own)), symbol});
      },
      /*PreserveLocals=*/false);
  module.reset();  // before its context
  context.reset();
  if (!failure.empty()) throw std::runtime_error("cannot split the module for code generation: " + failure);
  return parts;
}

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
  std::vector<Part> parts = split_for_codegen(std::move(module), std::move(context));
  auto jit = llvm::orc::LLJITBuilder()
                 .setJITTargetMachineBuilder(std::move(jtmb))
                 .setNumCompileThreads(parts.size() > 1 ? kCodegenThreads : 0)
                 .create();
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
  llvm::orc::SymbolLookupSet wanted;
  for (Part& part : parts) {
    if (!part.symbol.empty() && part.symbol != entry) wanted.add((*jit)->mangleAndIntern(part.symbol));
    if (auto err = (*jit)->addIRModule(std::move(part.module)))
      throw std::runtime_error("the JIT rejected the module: " + message(std::move(err)));
  }
  // One lookup naming a function of every partition starts their code generation together.
  if (!wanted.empty()) {
    wanted.add((*jit)->mangleAndIntern(entry));
    auto all = (*jit)->getExecutionSession().lookup(llvm::orc::makeJITDylibSearchOrder(&dylib), std::move(wanted));
    if (!all) throw std::runtime_error("the JIT could not compile the program: " + message(all.takeError()));
  }
  auto address = (*jit)->lookup(entry);
  if (!address) throw std::runtime_error("the JIT could not compile the program: " + message(address.takeError()));
  const auto fn = address->toPtr<EntryFn>();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return std::make_unique<LlvmJitProgram>(std::move(*jit), fn, std::move(report), seconds);
}

}  // namespace kiln::codegen
