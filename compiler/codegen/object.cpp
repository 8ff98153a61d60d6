// Object files for deployable artifacts: the same module the JIT would run, written by the
// TargetMachine's code generator. kiln_parallel_for is a serial loop inside the object, or,
// for a threaded artifact, the artifact runtime's function under options.parallel_for_name.
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/Support/FileSystem.h>
#include <llvm/Support/raw_ostream.h>

#include <stdexcept>

#include "compiler/codegen/codegen.h"
#include "compiler/codegen/module_builder.h"

namespace kiln::codegen {

std::vector<CodegenReport> emit_object(const std::vector<ObjectEntry>& entries, const CodegenOptions& options,
                                       const std::string& path) {
  CodegenOptions opts = options;
  const bool threaded = opts.threads > 1 && !opts.parallel_for_name.empty();
  opts.serial_parallel_for = !threaded;
  if (!threaded) opts.threads = 1;
  opts.profile = false;  // the profiling hook lives in the JIT's host
  auto tm = detail::make_target_machine(opts);
  llvm::LLVMContext context;
  detail::ModuleBuilder builder(context, opts, *tm);
  std::vector<CodegenReport> reports;
  for (const ObjectEntry& e : entries) reports.push_back(builder.add_program(*e.program, e.name));
  std::unique_ptr<llvm::Module> module = builder.finish();
  if (threaded) {
    if (llvm::Function* pf = module->getFunction("kiln_parallel_for")) pf->setName(opts.parallel_for_name);
  }

  std::error_code ec;
  llvm::raw_fd_ostream out(path, ec, llvm::sys::fs::OF_None);
  if (ec) throw std::runtime_error("cannot write " + path + ": " + ec.message());
  llvm::legacy::PassManager pm;
  if (tm->addPassesToEmitFile(pm, out, nullptr, llvm::CGFT_ObjectFile))
    throw std::runtime_error("LLVM cannot emit an object file for this target");
  pm.run(*module);
  out.flush();
  if (out.has_error()) throw std::runtime_error("cannot write " + path + ": " + out.error().message());
  return reports;
}

}  // namespace kiln::codegen
