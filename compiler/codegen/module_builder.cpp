// Program -> LLVM IR. Each instruction becomes a kernel call with constant shapes, a
// generated loop (elementwise chains, fused), or nothing (sources are slots; folded
// instructions run inside another's code). See fusion.h for what folds.
#include "compiler/codegen/module_builder.h"

#include <fmt/format.h>
#include <llvm/ADT/StringMap.h>
#include <llvm/Analysis/LazyCallGraph.h>
#include <llvm/Analysis/LoopInfo.h>
#include <llvm/Bitcode/BitcodeReader.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/PassInstrumentation.h>
#include <llvm/IR/Verifier.h>
#include <llvm/MC/MCSubtargetInfo.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/FileSystem.h>
#include <llvm/Support/Host.h>
#include <llvm/Support/MemoryBuffer.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Transforms/IPO/GlobalDCE.h>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>

#include "compiler/codegen/fusion.h"
#include "kernels/cpu/kernels.h"
#include "kernels/reference/conv.h"
#include "kernels/reference/elementwise.h"
#include "kernels/reference/pooling.h"

extern "C" {
extern const char kiln_kernel_bitcode_avx512[];
extern const char kiln_kernel_bitcode_avx512_end[];
extern const char kiln_kernel_bitcode_avx2[];
extern const char kiln_kernel_bitcode_avx2_end[];
extern const char kiln_kernel_bitcode_portable[];
extern const char kiln_kernel_bitcode_portable_end[];
}

namespace kiln::codegen {
namespace detail {
namespace {

using ir::BufferId;
using ir::DType;

void init_llvm() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    llvm::InitializeNativeTargetAsmParser();
  });
}

std::string host_features() {
  llvm::StringMap<bool> features;
  std::string out;
  if (!llvm::sys::getHostCPUFeatures(features)) return out;
  for (const auto& f : features) {
    if (!out.empty()) out += ',';
    out += (f.second ? "+" : "-") + f.first().str();
  }
  return out;
}

// What a kernel bitcode flavour was compiled for (KILN_AVX512_FLAGS in CMakeLists.txt, and
// -mavx2 -mfma): a target CPU with all of them gets that flavour.
constexpr const char* kAvx512Features = "+avx2,+fma,+avx512f,+avx512vl,+avx512bw,+avx512dq";
constexpr const char* kAvx2Features = "+avx2,+fma";

bool has_feature(const std::string& features, const std::string& name) {
  return ("," + features + ",").find(",+" + name + ",") != std::string::npos;
}

std::string_view op_name(const ir::Instruction& inst) {
  return ir::core_ops().get(inst.op).name;
}

std::size_t align64(std::size_t n) {
  return (n + 63) / 64 * 64;
}

std::int64_t product(const std::vector<std::int64_t>& dims, std::size_t from = 0, std::size_t to = SIZE_MAX) {
  std::int64_t p = 1;
  for (std::size_t i = from; i < std::min(to, dims.size()); ++i) p *= dims[i];
  return p;
}

std::size_t axis_of(std::int64_t axis, std::size_t rank) {
  return static_cast<std::size_t>(axis < 0 ? axis + static_cast<std::int64_t>(rank) : axis);
}

// A fill value as the reference's convert() makes it: NaN -> 0, saturation for float ->
// integer (done with the reference's own templates, not through a double that cannot hold
// INT64_MAX), non-zero -> true for bool. Integers come back as int64 bits.
std::int64_t integer_constant(double v, DType to) {
  switch (to) {
    case DType::kBool: return kernels::ref::convert<bool>(v) ? 1 : 0;
    case DType::kI32: return kernels::ref::convert<std::int32_t>(v);
    case DType::kI64: return kernels::ref::convert<std::int64_t>(v);
    default: return 0;
  }
}

bool is_f(DType d) {
  return d == DType::kF32 || d == DType::kF64;
}

// ---- capability ---------------------------------------------------------------------------

std::optional<std::string> check_instruction(const ir::Program& p, const ir::Instruction& inst) {
  const std::string_view op = op_name(inst);
  const DType out = p.buffers[inst.result].dtype;
  const auto in = [&](std::size_t k) { return p.buffers[inst.operands.at(k)].dtype; };
  const auto no = [&](DType d) {
    return fmt::format("{}: the LLVM backend has no {} version of '{}' (run it with --backend reference)", inst.label,
                       ir::dtype_name(d), op);
  };
  const OpClass cls = op_class(op);
  if (cls == OpClass::kSource) return std::nullopt;
  if (cls == OpClass::kElementwise) {
    static const std::set<std::string_view> kFloatOnly = {"exp", "log", "sqrt", "tanh", "sigmoid", "pow"};
    if (kFloatOnly.contains(op) && !is_f(out)) return no(out);
    static const std::set<std::string_view> kNumeric = {"neg", "abs", "relu",    "add",    "sub",
                                                        "mul", "div", "maximum", "minimum"};
    if (kNumeric.contains(op) && out == DType::kBool) return no(out);
    return std::nullopt;
  }
  // Kernel ops by what they run on: float32 results only, or any element type (they move
  // bytes, or index with i32/i64).
  static const std::set<std::string_view> kF32Out = {"matmul",
                                                     "reduce_sum",
                                                     "reduce_mean",
                                                     "reduce_max",
                                                     "conv2d",
                                                     "conv2d_grad_input",
                                                     "conv2d_grad_filter",
                                                     "max_pool2d",
                                                     "avg_pool2d",
                                                     "max_pool2d_grad",
                                                     "avg_pool2d_grad",
                                                     "softmax",
                                                     "log_softmax",
                                                     "softmax_cross_entropy",
                                                     "sigmoid_cross_entropy",
                                                     "random_uniform",
                                                     "random_normal",
                                                     "random_uniform_like",
                                                     "sgd_update",
                                                     "adam_update",
                                                     "scatter_add",
                                                     "one_hot"};
  static const std::set<std::string_view> kAnyOut = {"reshape", "transpose", "slice",       "concat",
                                                     "gather",  "argmax",    "assign_state"};
  if (!kF32Out.contains(op) && !kAnyOut.contains(op))
    return fmt::format("{}: the LLVM backend has no code for op '{}' (run it with --backend reference)", inst.label,
                       op);
  if (kF32Out.contains(op) && out != DType::kF32) return no(out);
  if (op == "argmax" && in(0) != DType::kF32) return no(in(0));
  if ((op == "gather") && in(1) != DType::kI32 && in(1) != DType::kI64) return no(in(1));
  if ((op == "scatter_add" || op == "one_hot") && in(0) != DType::kI32 && in(0) != DType::kI64) return no(in(0));
  if (op == "softmax_cross_entropy" && in(1) != DType::kI32 && in(1) != DType::kI64) return no(in(1));
  if (op == "matmul") {
    const auto& a = p.buffers[inst.operands[0]].dims;
    const auto& b = p.buffers[inst.operands[1]].dims;
    const auto lead_ok = [&](const std::vector<std::int64_t>& d, const std::vector<std::int64_t>& o) {
      if (d.size() <= 2) return true;
      // Leading dims equal to the output's, or all ones (broadcast).
      const std::size_t lead = d.size() - 2;
      if (o.size() < lead + 2) return false;
      bool same = true, ones = true;
      for (std::size_t i = 0; i < lead; ++i) {
        same = same && d[i] == o[o.size() - 2 - lead + i];
        ones = ones && d[i] == 1;
      }
      return same || ones;
    };
    const auto& o = p.buffers[inst.result].dims;
    if (!lead_ok(a, o) || !lead_ok(b, o) || (a.size() > 2 && b.size() > 2 && a.size() != b.size()))
      return fmt::format("{}: the LLVM backend's matmul needs each operand's batch dims to match the output's or be 1",
                         inst.label);
  }
  return std::nullopt;
}

}  // namespace

std::unique_ptr<llvm::TargetMachine> make_target_machine(const CodegenOptions& options) {
  init_llvm();
  const std::string triple = llvm::sys::getProcessTriple();
  std::string error;
  const llvm::Target* target = llvm::TargetRegistry::lookupTarget(triple, error);
  if (target == nullptr) throw std::runtime_error("LLVM has no target for " + triple + ": " + error);
  const std::string cpu = target_cpu_name(options);
  const std::string features = options.features.empty() && options.cpu.empty() ? host_features() : options.features;
  llvm::TargetOptions to;
  std::unique_ptr<llvm::TargetMachine> tm(target->createTargetMachine(triple, cpu, features, to, llvm::Reloc::PIC_,
                                                                      std::nullopt, llvm::CodeGenOpt::Aggressive));
  if (!tm) throw std::runtime_error("LLVM could not create a target machine for " + triple + " / " + cpu);
  return tm;
}

namespace {

// A kernel function that optimise_module leaves as clang made it (see Impl::finish).
constexpr const char* kPreoptimised = "kiln-preoptimised";
// An elementwise loop is split over threads when it has at least kParallelLoopElements
// elements and either moves at least kParallelLoopBytes (its operands and results) or
// computes a transcendental function or random numbers per element; smaller or cheaper
// loops run on the calling thread. Below that the hand-off cost more than the second core
// gained (KILN_PROFILE of fashion_mlp's training step at batch 256 on 2 threads, split
// against serial: the relu-gradient select, 65,536 elements and 0.75 MiB, 50 against
// 19-22 us; the Adam update of h2.w, 0.9 MiB, 42 against 25 us; that of h1.w, 5.4 MiB, 81
// against 156 us).
constexpr std::int64_t kParallelLoopElements = std::int64_t{1} << 15;
constexpr std::int64_t kParallelLoopBytes = std::int64_t{1} << 20;

// LLVM's O2 pipeline for `tm` over `module`.
void optimise_module(llvm::Module& module, llvm::TargetMachine& tm) {
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  // Function, loop and call-graph passes skip the functions marked kPreoptimised (as LLVM's
  // own optnone handling skips optnone functions); module passes and code generation still
  // see them. About half of a training step's optimisation time went to them.
  const auto preoptimised = [](const llvm::Function* f) { return f != nullptr && f->hasFnAttribute(kPreoptimised); };
  llvm::PassInstrumentationCallbacks callbacks;
  callbacks.registerShouldRunOptionalPassCallback([&](llvm::StringRef, llvm::Any ir) {
    if (const auto* f = llvm::any_cast<const llvm::Function*>(&ir)) return !preoptimised(*f);
    if (const auto* l = llvm::any_cast<const llvm::Loop*>(&ir)) return !preoptimised((*l)->getHeader()->getParent());
    if (const auto* scc = llvm::any_cast<const llvm::LazyCallGraph::SCC*>(&ir)) {
      for (const llvm::LazyCallGraph::Node& node : **scc)
        if (!preoptimised(&node.getFunction())) return true;
      return false;
    }
    return true;
  });
  llvm::PassBuilder pb(&tm, llvm::PipelineTuningOptions(), std::nullopt, &callbacks);
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::ModulePassManager mpm = pb.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O2);
  mpm.run(module, mam);
}

}  // namespace

struct ModuleBuilder::Impl {
  llvm::LLVMContext& ctx;
  CodegenOptions options;
  llvm::TargetMachine& tm;
  std::unique_ptr<llvm::Module> module;
  std::vector<std::string> entries;
  int loop_counter = 0;
  std::string flavour;
  std::set<std::string> kernel_functions;  // defined by the kernel bitcode

  llvm::Type* ptr_t() { return llvm::PointerType::getUnqual(ctx); }
  llvm::Type* i64_t() { return llvm::Type::getInt64Ty(ctx); }
  llvm::Type* i32_t() { return llvm::Type::getInt32Ty(ctx); }
  llvm::Type* i8_t() { return llvm::Type::getInt8Ty(ctx); }
  llvm::Type* i1_t() { return llvm::Type::getInt1Ty(ctx); }
  llvm::Type* void_t() { return llvm::Type::getVoidTy(ctx); }
  llvm::Constant* i64c(std::int64_t v) { return llvm::ConstantInt::get(i64_t(), static_cast<std::uint64_t>(v), true); }
  llvm::Constant* i32c(std::int64_t v) { return llvm::ConstantInt::get(i32_t(), static_cast<std::uint64_t>(v), true); }
  llvm::Constant* i1c(bool v) { return llvm::ConstantInt::get(i1_t(), v ? 1 : 0); }
  llvm::Constant* f64c(double v) { return llvm::ConstantFP::get(llvm::Type::getDoubleTy(ctx), v); }

  llvm::Type* elem_t(DType d) {
    switch (d) {
      case DType::kF32: return llvm::Type::getFloatTy(ctx);
      case DType::kF64: return llvm::Type::getDoubleTy(ctx);
      case DType::kI32: return i32_t();
      case DType::kI64: return i64_t();
      case DType::kBool: return i8_t();
    }
    return i8_t();
  }

  llvm::FunctionType* entry_type() { return llvm::FunctionType::get(void_t(), {ptr_t(), ptr_t(), ptr_t()}, false); }

  Impl(llvm::LLVMContext& c, const CodegenOptions& o, llvm::TargetMachine& t) : ctx(c), options(o), tm(t) {
    // What the target CPU has, whether it came from the host's features or from a named CPU.
    const llvm::MCSubtargetInfo& cpu = *tm.getMCSubtargetInfo();
    const char* begin = kiln_kernel_bitcode_portable;
    const char* end = kiln_kernel_bitcode_portable_end;
    flavour = "portable";
    if (cpu.checkFeatures(kAvx512Features)) {
      flavour = "avx512", begin = kiln_kernel_bitcode_avx512, end = kiln_kernel_bitcode_avx512_end;
    } else if (cpu.checkFeatures(kAvx2Features)) {
      flavour = "avx2", begin = kiln_kernel_bitcode_avx2, end = kiln_kernel_bitcode_avx2_end;
    }
    llvm::MemoryBufferRef ref(llvm::StringRef(begin, static_cast<std::size_t>(end - begin)), "kiln_kernels");
    auto parsed = llvm::parseBitcodeFile(ref, ctx);
    if (!parsed) throw std::runtime_error("cannot read the embedded kernel bitcode: " + toString(parsed.takeError()));
    module = std::move(*parsed);
    for (const llvm::Function& fn : *module)
      if (!fn.isDeclaration()) kernel_functions.insert(fn.getName().str());
    module->setModuleIdentifier("kiln");
    module->setDataLayout(tm.createDataLayout());
    module->setTargetTriple(tm.getTargetTriple().str());
    if (options.serial_parallel_for) define_serial_parallel_for();
  }

  // kiln_parallel_for(count, fn, ctx) as a plain loop, for artifacts.
  void define_serial_parallel_for() {
    auto* fty = llvm::FunctionType::get(void_t(), {i64_t(), ptr_t(), ptr_t()}, false);
    llvm::Function* f = module->getFunction("kiln_parallel_for");
    if (f == nullptr) f = llvm::Function::Create(fty, llvm::Function::ExternalLinkage, "kiln_parallel_for", *module);
    f->setLinkage(llvm::Function::InternalLinkage);
    llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx, "entry", f));
    auto* task_ty = llvm::FunctionType::get(void_t(), {ptr_t(), i64_t()}, false);
    llvm::Value* count = f->getArg(0);
    emit_loop(b, i64c(0), count, [&](llvm::Value* i) { b.CreateCall(task_ty, f->getArg(1), {f->getArg(2), i}); });
    b.CreateRetVoid();
  }

  // for (i = lo; i < hi; ++i) body(i), leaving the builder after the loop.
  void emit_loop(llvm::IRBuilder<>& b, llvm::Value* lo, llvm::Value* hi,
                 const std::function<void(llvm::Value*)>& body) {
    llvm::Function* f = b.GetInsertBlock()->getParent();
    llvm::BasicBlock* pre = b.GetInsertBlock();
    llvm::BasicBlock* loop = llvm::BasicBlock::Create(ctx, "loop", f);
    llvm::BasicBlock* exit = llvm::BasicBlock::Create(ctx, "after", f);
    b.CreateCondBr(b.CreateICmpSLT(lo, hi), loop, exit);
    b.SetInsertPoint(loop);
    llvm::PHINode* i = b.CreatePHI(lo->getType(), 2, "i");
    i->addIncoming(lo, pre);
    body(i);
    llvm::Value* next = b.CreateAdd(i, llvm::ConstantInt::get(lo->getType(), 1), "i.next", true, true);
    i->addIncoming(next, b.GetInsertBlock());
    b.CreateCondBr(b.CreateICmpSLT(next, hi), loop, exit);
    b.SetInsertPoint(exit);
  }

  llvm::Function* kernel(const std::string& name) {
    llvm::Function* f = module->getFunction(name);
    if (f == nullptr || f->isDeclaration())
      throw std::runtime_error("the embedded kernel bitcode has no function '" + name + "'");
    return f;
  }

  llvm::GlobalVariable* i64_array(const std::vector<std::int64_t>& values) {
    std::vector<llvm::Constant*> cs;
    for (const std::int64_t v : values) cs.push_back(i64c(v));
    if (cs.empty()) cs.push_back(i64c(0));
    auto* ty = llvm::ArrayType::get(i64_t(), cs.size());
    return new llvm::GlobalVariable(*module, ty, true, llvm::GlobalValue::PrivateLinkage,
                                    llvm::ConstantArray::get(ty, cs), "shape");
  }
  llvm::GlobalVariable* u8_array(const std::vector<std::uint8_t>& values) {
    std::vector<llvm::Constant*> cs;
    for (const std::uint8_t v : values) cs.push_back(llvm::ConstantInt::get(i8_t(), v));
    if (cs.empty()) cs.push_back(llvm::ConstantInt::get(i8_t(), 0));
    auto* ty = llvm::ArrayType::get(i8_t(), cs.size());
    return new llvm::GlobalVariable(*module, ty, true, llvm::GlobalValue::PrivateLinkage,
                                    llvm::ConstantArray::get(ty, cs), "mask");
  }

  // ---- one Program --------------------------------------------------------------------------

  struct ProgramState {
    ir::Program p;
    FusionPlan plan;
    std::vector<int> slot_of;      // per buffer: its slot, or -1 (in the arena)
    std::vector<int> assign_slot;  // per instruction: the assign target's slot, or -1
    std::size_t scratch_offset = 0;
    std::string entry;
  };

  // A buffer's address inside function `f` whose first three args are (arena, slots, state).
  llvm::Value* address(llvm::IRBuilder<>& b, llvm::Function* f, const ProgramState& s, BufferId id) {
    const int slot = s.slot_of[id];
    if (slot >= 0) {
      llvm::Value* at = b.CreateConstInBoundsGEP1_64(ptr_t(), f->getArg(1), static_cast<std::uint64_t>(slot));
      return b.CreateLoad(ptr_t(), at, s.p.buffers[id].name);
    }
    return b.CreateConstInBoundsGEP1_64(i8_t(), f->getArg(0), s.p.buffers[id].offset, s.p.buffers[id].name);
  }
  llvm::Value* scratch(llvm::IRBuilder<>& b, llvm::Function* f, const ProgramState& s) {
    return b.CreateConstInBoundsGEP1_64(i8_t(), f->getArg(0), s.scratch_offset, "scratch");
  }
  llvm::Value* state_field(llvm::IRBuilder<>& b, llvm::Function* f, int index) {
    llvm::Value* at = b.CreateConstInBoundsGEP1_64(i64_t(), f->getArg(2), static_cast<std::uint64_t>(index));
    return b.CreateLoad(i64_t(), at);
  }

  CodegenReport add(const ir::Program& program, const std::string& entry) {
    for (const ir::Instruction& inst : program.instructions) {
      if (auto why = check_instruction(program, inst)) throw UnsupportedOp(*why, inst.node);
    }
    ProgramState s;
    s.p = program;
    s.entry = entry;
    s.plan = plan_fusion(s.p, options.chain_min_bytes);
    ir::Program& p = s.p;
    // KILN_DUMP_PROGRAM=FILE: every Program compiled, after fusion re-planned its arena.
    if (const char* path = std::getenv("KILN_DUMP_PROGRAM"); path != nullptr && *path != '\0') {
      std::error_code ec;
      llvm::raw_fd_ostream out(path, ec, llvm::sys::fs::OF_Append);
      if (!ec) out << "# entry " << entry << "\n" << ir::print_program(p) << "\n";
    }

    CodegenReport report;
    report.entry = entry;
    report.kernels = flavour;
    report.instructions = static_cast<int>(p.instructions.size());
    report.fused = s.plan.fused;

    // Slots: inputs and variables, assign targets, outputs.
    s.slot_of.assign(p.buffers.size(), -1);
    s.assign_slot.assign(p.instructions.size(), -1);
    const auto add_slot = [&](SlotKind kind, const std::string& name, const ir::Buffer& b) {
      report.slots.push_back({kind, name, b.dtype, b.dims, b.bytes});
      return static_cast<int>(report.slots.size() - 1);
    };
    for (std::size_t i = 0; i < p.instructions.size(); ++i) {
      const ir::Instruction& inst = p.instructions[i];
      const ir::Buffer& buf = p.buffers[inst.result];
      if (buf.role == ir::BufferRole::kInput) s.slot_of[inst.result] = add_slot(SlotKind::kInput, inst.variable, buf);
      if (buf.role == ir::BufferRole::kVariable)
        s.slot_of[inst.result] = add_slot(SlotKind::kVariable, inst.variable, buf);
    }
    for (std::size_t i = 0; i < p.instructions.size(); ++i) {
      const ir::Instruction& inst = p.instructions[i];
      if (op_name(inst) == "assign_state")
        s.assign_slot[i] = add_slot(SlotKind::kAssign, inst.variable, p.buffers[inst.operands[1]]);
    }
    for (const auto& [value, assign] : s.plan.assign_home) s.slot_of[value] = s.assign_slot[assign];
    std::vector<std::pair<int, BufferId>> copies_at_end;  // output slot <- buffer
    for (const ir::NamedBuffer& r : p.results) {
      const ir::Buffer& buf = p.buffers[r.buffer];
      const int slot = add_slot(SlotKind::kOutput, r.name, buf);
      if (buf.role == ir::BufferRole::kOutput && s.slot_of[r.buffer] < 0) {
        s.slot_of[r.buffer] = slot;
      } else {
        copies_at_end.emplace_back(slot, r.buffer);
      }
    }

    // Kernel scratch, after the planned arena.
    std::size_t scratch_bytes = 0;
    for (std::size_t i = 0; i < p.instructions.size(); ++i) {
      if (s.plan.inlined[i] || s.plan.absorbed[i]) continue;
      scratch_bytes = std::max(scratch_bytes, scratch_for(s, i));
    }
    s.scratch_offset = align64(p.arena_bytes);
    report.scratch_bytes = scratch_bytes;
    report.arena_bytes = s.scratch_offset + align64(scratch_bytes);

    llvm::Function* f = llvm::Function::Create(entry_type(), llvm::Function::ExternalLinkage, entry, *module);
    f->addFnAttr(llvm::Attribute::NoUnwind);
    llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx, "entry", f));
    llvm::FunctionCallee mark;
    if (options.profile) {
      mark = module->getOrInsertFunction("kiln_profile_mark",
                                         llvm::FunctionType::get(void_t(), {ptr_t(), i64_t()}, false));
      b.CreateCall(mark, {f->getArg(2), i64c(-1)});
    }
    std::map<std::size_t, std::size_t> chained_at;  // loop root -> the matmul that runs there
    for (const auto& [matmul, root] : s.plan.chain_root) chained_at[root] = matmul;
    for (std::size_t i = 0; i < p.instructions.size(); ++i) {
      if (s.plan.inlined[i] || s.plan.absorbed[i] || s.plan.chain_root.contains(i)) continue;
      const ir::Instruction& inst = p.instructions[i];
      const OpClass cls = op_class(op_name(inst));
      if (cls == OpClass::kSource) continue;
      if (const auto chained = chained_at.find(i); chained != chained_at.end()) {
        emit_kernel(b, f, s, chained->second, report);  // the matmul, calling this loop's code
        ++report.loops;
        ++report.chains;
      } else if (cls == OpClass::kElementwise) {
        emit_elementwise(b, f, s, i);
        ++report.loops;
      } else {
        emit_kernel(b, f, s, i, report);
      }
      if (options.profile) b.CreateCall(mark, {f->getArg(2), i64c(static_cast<std::int64_t>(i))});
    }
    for (const auto& [slot, buffer] : copies_at_end) {
      llvm::Value* at = b.CreateConstInBoundsGEP1_64(ptr_t(), f->getArg(1), static_cast<std::uint64_t>(slot));
      llvm::Value* dst = b.CreateLoad(ptr_t(), at);
      const llvm::MaybeAlign align(ir::dtype_size(p.buffers[buffer].dtype));  // a caller's array: any row
      b.CreateMemCpy(dst, align, address(b, f, s, buffer), align, p.buffers[buffer].bytes);
    }
    b.CreateRetVoid();
    report.epilogues = 0;
    for (const auto& [_, e] : s.plan.epilogues) report.epilogues += e.act == 0 ? 1 : 2;
    entries.push_back(entry);
    return report;
  }

  std::size_t scratch_for(const ProgramState& s, std::size_t i) {
    const ir::Instruction& inst = s.p.instructions[i];
    const std::string_view op = op_name(inst);
    const int threads = options.threads;
    if (op == "matmul") {
      const MatmulShape m = matmul_shape(s.p, inst);
      return s.plan.chain_root.contains(i) ? kiln_k_matmul_chained_scratch(m.m, m.n, m.k, threads)
                                           : kiln_k_matmul_scratch(m.m, m.n, m.k, threads);
    }
    if (op == "conv2d") {
      const auto g = conv_geometry(s.p, inst);
      return kiln_k_conv2d_scratch(&g, threads);
    }
    if (op == "conv2d_grad_input") {
      const auto g = conv_geometry(s.p, inst);
      return kiln_k_conv2d_grad_input_scratch(&g, threads);
    }
    if (op == "conv2d_grad_filter") {
      const auto g = conv_geometry(s.p, inst);
      return kiln_k_conv2d_grad_filter_scratch(&g, threads);
    }
    return 0;
  }

  // ---- elementwise loops --------------------------------------------------------------------

  // What a loop reads from memory (its leaves, through inlined producers) and the inlined
  // producers whose values it also stores (in their assign slots).
  struct LoopOperands {
    std::vector<BufferId> leaves;
    std::vector<std::size_t> stored;
  };
  static LoopOperands loop_operands(const ProgramState& s, std::size_t root) {
    const ir::Program& p = s.p;
    LoopOperands o;
    std::function<void(std::size_t)> collect = [&](std::size_t i) {
      for (const BufferId b : p.instructions[i].operands) {
        const std::int32_t prod = s.plan.producer[b];
        if (prod >= 0 && s.plan.inlined[static_cast<std::size_t>(prod)]) {
          const auto at = static_cast<std::size_t>(prod);
          if (s.plan.stores[at] && std::find(o.stored.begin(), o.stored.end(), at) == o.stored.end())
            o.stored.push_back(at);
          collect(at);
        } else if (std::find(o.leaves.begin(), o.leaves.end(), b) == o.leaves.end()) {
          o.leaves.push_back(b);
        }
      }
    };
    collect(root);
    return o;
  }

  // Strides (in elements) of a buffer of dims `from` broadcast to `to` (0 along broadcast dims).
  static std::vector<std::int64_t> broadcast_strides(const std::vector<std::int64_t>& from,
                                                     const std::vector<std::int64_t>& to) {
    const std::size_t rank = to.size();
    std::vector<std::int64_t> st(rank, 0);
    std::int64_t step = 1;
    for (std::size_t k = 0; k < from.size() && k < rank; ++k) {
      const std::size_t li = from.size() - 1 - k;
      const std::size_t oi = rank - 1 - k;
      st[oi] = from[li] == 1 && to[oi] != 1 ? 0 : step;
      step *= from[li];
    }
    return st;
  }

  // One element of loop `root`: evaluates it through its inlined producers (leaf_value(l)
  // loads leaf l) and stores the root's value at out_base[offset] and each stored producer's
  // at stored_bases[k][offset] (they all have the root's dims).
  void emit_element(llvm::IRBuilder<>& b, const ProgramState& s, std::size_t root, const LoopOperands& operands,
                    const std::function<llvm::Value*(std::size_t)>& leaf_value, llvm::Value* training,
                    llvm::Value* out_base, const std::vector<llvm::Value*>& stored_bases, llvm::Value* offset) {
    const ir::Program& p = s.p;
    std::map<std::size_t, llvm::Value*> loaded;  // leaf index -> value
    std::map<std::size_t, llvm::Value*> memo;
    std::function<llvm::Value*(std::size_t)> eval = [&](std::size_t i) -> llvm::Value* {
      if (auto it = memo.find(i); it != memo.end()) return it->second;
      const ir::Instruction& inst = p.instructions[i];
      std::vector<llvm::Value*> args;
      for (const BufferId o : inst.operands) {
        const std::int32_t prod = s.plan.producer[o];
        if (prod >= 0 && s.plan.inlined[static_cast<std::size_t>(prod)]) {
          args.push_back(eval(static_cast<std::size_t>(prod)));
          continue;
        }
        const auto l = static_cast<std::size_t>(std::find(operands.leaves.begin(), operands.leaves.end(), o) -
                                                operands.leaves.begin());
        auto it = loaded.find(l);
        if (it == loaded.end()) it = loaded.emplace(l, leaf_value(l)).first;
        args.push_back(it->second);
      }
      return memo[i] = scalar_op(b, p, inst, args, training);
    };
    llvm::Value* v = eval(root);
    const DType out_dt = p.buffers[p.instructions[root].result].dtype;
    b.CreateAlignedStore(v, b.CreateInBoundsGEP(elem_t(out_dt), out_base, offset), llvm::Align(ir::dtype_size(out_dt)));
    for (std::size_t k = 0; k < operands.stored.size(); ++k) {
      const DType dt = p.buffers[p.instructions[operands.stored[k]].result].dtype;
      llvm::Value* to = b.CreateInBoundsGEP(elem_t(dt), stored_bases[k], offset);
      b.CreateAlignedStore(memo.at(operands.stored[k]), to, llvm::Align(ir::dtype_size(dt)));
    }
  }

  // The chain of a matmul whose C (buffer `c`) loop `root` alone reads:
  // void chain(ctx = {arena, slots, state}, block, ld, r0, rows, c0, cols) runs the loop over
  // C's rows [r0, r0 + rows) and columns [c0, c0 + cols), taking C from block[i*ld + j]
  // (kiln_k_matmul_chained). The loop has C's dims [M, N]; every other leaf broadcasts to them.
  llvm::Function* emit_chain(const ProgramState& s, std::size_t root, BufferId c) {
    const ir::Program& p = s.p;
    const std::vector<std::int64_t>& dims = p.buffers[c].dims;
    const LoopOperands operands = loop_operands(s, root);
    // The body, with (arena, slots, state) first as address() wants, under a wrapper that
    // takes them from the context.
    auto* body_ty = llvm::FunctionType::get(
        void_t(), {ptr_t(), ptr_t(), ptr_t(), ptr_t(), i64_t(), i64_t(), i64_t(), i64_t(), i64_t()}, false);
    llvm::Function* f = llvm::Function::Create(body_ty, llvm::Function::InternalLinkage,
                                               fmt::format("{}.chain{}", s.entry, loop_counter++), *module);
    f->addFnAttr(llvm::Attribute::NoUnwind);
    {
      llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx, "entry", f));
      llvm::Value* block = f->getArg(3);
      llvm::Value* ld = f->getArg(4);
      llvm::Value* r0 = f->getArg(5);
      llvm::Value* c0 = f->getArg(7);
      std::vector<llvm::Value*> bases;
      std::vector<std::vector<std::int64_t>> strides;
      for (const BufferId leaf : operands.leaves) {
        bases.push_back(leaf == c ? nullptr : address(b, f, s, leaf));
        strides.push_back(broadcast_strides(p.buffers[leaf].dims, dims));
      }
      llvm::Value* out_base = address(b, f, s, p.instructions[root].result);
      std::vector<llvm::Value*> stored_bases;
      for (const std::size_t x : operands.stored) stored_bases.push_back(address(b, f, s, p.instructions[x].result));
      llvm::Value* training = uses_training(s, root) ? b.CreateICmpNE(state_field(b, f, 2), i64c(0)) : nullptr;
      emit_loop(b, i64c(0), f->getArg(6), [&](llvm::Value* i) {
        llvm::Value* row = b.CreateAdd(r0, i);
        llvm::Value* block_row = b.CreateGEP(elem_t(DType::kF32), block, b.CreateMul(i, ld));
        emit_loop(b, i64c(0), f->getArg(8), [&](llvm::Value* j) {
          llvm::Value* col = b.CreateAdd(c0, j);
          const auto offset = [&](const std::vector<std::int64_t>& st) {
            llvm::Value* row_part = st[0] == 0 ? i64c(0) : b.CreateMul(row, i64c(st[0]));
            return st[1] == 0 ? row_part : b.CreateAdd(row_part, st[1] == 1 ? col : b.CreateMul(col, i64c(st[1])));
          };
          const auto leaf_value = [&](std::size_t l) -> llvm::Value* {
            if (operands.leaves[l] == c)
              return b.CreateAlignedLoad(elem_t(DType::kF32), b.CreateInBoundsGEP(elem_t(DType::kF32), block_row, j),
                                         llvm::Align(4));
            const DType dt = p.buffers[operands.leaves[l]].dtype;
            llvm::Value* at = b.CreateInBoundsGEP(elem_t(dt), bases[l], offset(strides[l]));
            return b.CreateAlignedLoad(elem_t(dt), at, llvm::Align(ir::dtype_size(dt)));
          };
          emit_element(b, s, root, operands, leaf_value, training, out_base, stored_bases,
                       offset(broadcast_strides(dims, dims)));
        });
      });
      b.CreateRetVoid();
    }
    auto* chain_ty =
        llvm::FunctionType::get(void_t(), {ptr_t(), ptr_t(), i64_t(), i64_t(), i64_t(), i64_t(), i64_t()}, false);
    llvm::Function* chain =
        llvm::Function::Create(chain_ty, llvm::Function::InternalLinkage, f->getName() + ".entry", *module);
    chain->addFnAttr(llvm::Attribute::NoUnwind);
    llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx, "entry", chain));
    const auto [arena, slots, state] = unpack_context(b, chain->getArg(0));
    b.CreateCall(f, {arena, slots, state, chain->getArg(1), chain->getArg(2), chain->getArg(3), chain->getArg(4),
                     chain->getArg(5), chain->getArg(6)});
    b.CreateRetVoid();
    return chain;
  }

  void emit_elementwise(llvm::IRBuilder<>& main, llvm::Function* entry, const ProgramState& s, std::size_t root) {
    const ir::Program& p = s.p;
    const ir::Buffer& out = p.buffers[p.instructions[root].result];
    std::vector<std::int64_t> dims = out.dims.empty() ? std::vector<std::int64_t>{1} : out.dims;

    const LoopOperands operands = loop_operands(s, root);
    const std::vector<BufferId>& leaves = operands.leaves;
    const std::vector<std::size_t>& stored = operands.stored;
    // What the loop costs, for the decision to split it over threads: bytes moved, and
    // whether some element computes more than a few arithmetic instructions.
    std::int64_t bytes = static_cast<std::int64_t>(out.bytes);
    for (const BufferId leaf : leaves) bytes += static_cast<std::int64_t>(p.buffers[leaf].bytes);
    for (const std::size_t x : stored) bytes += static_cast<std::int64_t>(p.buffers[p.instructions[x].result].bytes);
    bool heavy = false;
    std::set<std::size_t> weighed;
    std::function<void(std::size_t)> weigh = [&](std::size_t i) {
      if (!weighed.insert(i).second) return;
      static constexpr std::string_view kHeavy[] = {
          "exp", "log", "pow", "tanh", "sigmoid", "random_normal", "random_uniform", "random_uniform_like"};
      heavy = heavy || std::find(std::begin(kHeavy), std::end(kHeavy), op_name(p.instructions[i])) != std::end(kHeavy);
      for (const BufferId b : p.instructions[i].operands) {
        const std::int32_t prod = s.plan.producer[b];
        if (prod >= 0 && s.plan.inlined[static_cast<std::size_t>(prod)]) weigh(static_cast<std::size_t>(prod));
      }
    };
    weigh(root);
    // Strides (in elements) of each leaf and the output against the output dims.
    std::vector<std::vector<std::int64_t>> strides;
    for (const BufferId leaf : leaves) strides.push_back(broadcast_strides(p.buffers[leaf].dims, dims));
    strides.push_back(broadcast_strides(dims, dims));
    // Merge adjacent dims where every stride pattern is contiguous across them.
    for (std::size_t d = dims.size() - 1; d-- > 0;) {
      bool ok = true;
      for (const auto& st : strides) ok = ok && st[d] == st[d + 1] * dims[d + 1];
      if (!ok) continue;
      dims[d] *= dims[d + 1];
      dims.erase(dims.begin() + static_cast<std::ptrdiff_t>(d) + 1);
      for (auto& st : strides) st.erase(st.begin() + static_cast<std::ptrdiff_t>(d));
    }
    // Drop size-1 dims (keeping one).
    for (std::size_t d = dims.size(); d-- > 0 && dims.size() > 1;) {
      if (dims[d] != 1) continue;
      dims.erase(dims.begin() + static_cast<std::ptrdiff_t>(d));
      for (auto& st : strides) st.erase(st.begin() + static_cast<std::ptrdiff_t>(d));
    }

    // The loop lives in its own function over a range of the outermost dim.
    auto* fty = llvm::FunctionType::get(void_t(), {ptr_t(), ptr_t(), ptr_t(), i64_t(), i64_t()}, false);
    llvm::Function* f = llvm::Function::Create(fty, llvm::Function::InternalLinkage,
                                               fmt::format("{}.loop{}", s.entry, loop_counter++), *module);
    f->addFnAttr(llvm::Attribute::NoUnwind);
    llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx, "entry", f));
    std::vector<llvm::Value*> bases;
    for (const BufferId leaf : leaves) bases.push_back(address(b, f, s, leaf));
    llvm::Value* out_base = address(b, f, s, p.instructions[root].result);
    std::vector<llvm::Value*> stored_bases;
    for (const std::size_t x : stored) stored_bases.push_back(address(b, f, s, p.instructions[x].result));
    llvm::Value* training = nullptr;
    if (uses_training(s, root)) training = b.CreateICmpNE(state_field(b, f, 2), i64c(0));

    std::vector<llvm::Value*> idx(dims.size());
    std::function<void(std::size_t)> nest = [&](std::size_t d) {
      llvm::Value* lo = d == 0 ? static_cast<llvm::Value*>(f->getArg(3)) : i64c(0);
      llvm::Value* hi = d == 0 ? static_cast<llvm::Value*>(f->getArg(4)) : i64c(dims[d]);
      emit_loop(b, lo, hi, [&](llvm::Value* i) {
        idx[d] = i;
        if (d + 1 < dims.size()) return nest(d + 1);
        const auto offset = [&](const std::vector<std::int64_t>& st) {
          llvm::Value* off = i64c(0);
          for (std::size_t k = 0; k < dims.size(); ++k) {
            if (st[k] == 0) continue;
            off = b.CreateAdd(off, st[k] == 1 ? idx[k] : b.CreateMul(idx[k], i64c(st[k])));
          }
          return off;
        };
        const auto leaf_value = [&](std::size_t l) -> llvm::Value* {
          const DType dt = p.buffers[leaves[l]].dtype;
          llvm::Value* at = b.CreateInBoundsGEP(elem_t(dt), bases[l], offset(strides[l]));
          return b.CreateAlignedLoad(elem_t(dt), at, llvm::Align(ir::dtype_size(dt)));
        };
        emit_element(b, s, root, operands, leaf_value, training, out_base, stored_bases, offset(strides.back()));
      });
    };
    nest(0);
    b.CreateRetVoid();

    // Call it: split over threads when large enough to pay for the hand-off.
    const std::int64_t total = product(dims);
    const std::int64_t chunks = std::min<std::int64_t>(options.threads, dims[0]);
    if (chunks > 1 && total >= kParallelLoopElements && (bytes >= kParallelLoopBytes || heavy)) {
      llvm::Function* task = outline_task(f, chunks, dims[0]);
      call_parallel(main, entry, task, chunks);
    } else {
      main.CreateCall(f, {entry->getArg(0), entry->getArg(1), entry->getArg(2), i64c(0), i64c(dims[0])});
    }
  }

  bool uses_training(const ProgramState& s, std::size_t root) {
    bool found = false;
    std::function<void(std::size_t)> walk = [&](std::size_t i) {
      if (op_name(s.p.instructions[i]) == "if_training") found = true;
      for (const BufferId b : s.p.instructions[i].operands) {
        const std::int32_t prod = s.plan.producer[b];
        if (prod >= 0 && s.plan.inlined[static_cast<std::size_t>(prod)]) walk(static_cast<std::size_t>(prod));
      }
    };
    walk(root);
    return found;
  }

  // void task(ctx = {arena, slots, state}, index): runs chunk `index` of `chunks` of [0, n).
  llvm::Function* outline_task(llvm::Function* loop, std::int64_t chunks, std::int64_t n) {
    auto* fty = llvm::FunctionType::get(void_t(), {ptr_t(), i64_t()}, false);
    llvm::Function* f =
        llvm::Function::Create(fty, llvm::Function::InternalLinkage, loop->getName() + ".task", *module);
    f->addFnAttr(llvm::Attribute::NoUnwind);
    llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx, "entry", f));
    const auto [arena, slots, state] = unpack_context(b, f->getArg(0));
    llvm::Value* index = f->getArg(1);
    llvm::Value* begin = b.CreateSDiv(b.CreateMul(index, i64c(n)), i64c(chunks));
    llvm::Value* end = b.CreateSDiv(b.CreateMul(b.CreateAdd(index, i64c(1)), i64c(n)), i64c(chunks));
    b.CreateCall(loop, {arena, slots, state, begin, end});
    b.CreateRetVoid();
    return f;
  }

  void call_parallel(llvm::IRBuilder<>& b, llvm::Function* entry, llvm::Function* task, std::int64_t count) {
    b.CreateCall(parallel_for(), {i64c(count), task, task_context(b, entry)});
  }

  // {arena, slots, state} from a context that task_context made.
  std::array<llvm::Value*, 3> unpack_context(llvm::IRBuilder<>& b, llvm::Value* ctxp) {
    return {b.CreateLoad(ptr_t(), ctxp), b.CreateLoad(ptr_t(), b.CreateConstInBoundsGEP1_64(ptr_t(), ctxp, 1)),
            b.CreateLoad(ptr_t(), b.CreateConstInBoundsGEP1_64(ptr_t(), ctxp, 2))};
  }

  // The entry's {arena, slots, state}, as tasks and chains receive them.
  llvm::Value* task_context(llvm::IRBuilder<>& b, llvm::Function* entry) {
    llvm::IRBuilder<> top(&entry->getEntryBlock(), entry->getEntryBlock().begin());
    auto* ctx_ty = llvm::ArrayType::get(ptr_t(), 3);
    llvm::Value* ctxp = top.CreateAlloca(ctx_ty, nullptr, "task.ctx");
    b.CreateStore(entry->getArg(0), ctxp);
    b.CreateStore(entry->getArg(1), b.CreateConstInBoundsGEP1_64(ptr_t(), ctxp, 1));
    b.CreateStore(entry->getArg(2), b.CreateConstInBoundsGEP1_64(ptr_t(), ctxp, 2));
    return ctxp;
  }

  llvm::FunctionCallee parallel_for() {
    auto* fty = llvm::FunctionType::get(void_t(), {i64_t(), ptr_t(), ptr_t()}, false);
    return module->getOrInsertFunction("kiln_parallel_for", fty);
  }

  llvm::Value* to_bool8(llvm::IRBuilder<>& b, llvm::Value* i1) { return b.CreateZExt(i1, i8_t()); }

  llvm::Value* fconst(DType d, double v) { return llvm::ConstantFP::get(elem_t(d), v); }

  llvm::Value* unary_intrinsic(llvm::IRBuilder<>& b, llvm::Intrinsic::ID id, llvm::Value* v) {
    return b.CreateUnaryIntrinsic(id, v);
  }

  llvm::Value* libm(llvm::IRBuilder<>& b, const char* f32_name, const char* f64_name, llvm::Value* v) {
    const bool f32 = v->getType()->isFloatTy();
    auto* fty = llvm::FunctionType::get(v->getType(), {v->getType()}, false);
    llvm::FunctionCallee fn = module->getOrInsertFunction(f32 ? f32_name : f64_name, fty);
    return b.CreateCall(fn, {v});
  }

  llvm::Value* cast_value(llvm::IRBuilder<>& b, llvm::Value* v, DType from, DType to) {
    if (from == to) return v;
    llvm::Type* tt = elem_t(to);
    if (to == DType::kBool) {
      llvm::Value* nz = is_f(from) ? b.CreateFCmpUNE(v, llvm::ConstantFP::get(v->getType(), 0))
                                   : b.CreateICmpNE(v, llvm::ConstantInt::get(v->getType(), 0));
      return to_bool8(b, nz);
    }
    if (from == DType::kBool) return is_f(to) ? b.CreateUIToFP(v, tt) : b.CreateZExt(v, tt);
    if (is_f(from) && is_f(to)) return b.CreateFPCast(v, tt);
    if (!is_f(from) && !is_f(to)) return b.CreateSExtOrTrunc(v, tt);
    if (!is_f(from)) return b.CreateSIToFP(v, tt);
    // float -> integer: NaN -> 0, saturating.
    const bool i32 = to == DType::kI32;
    const double lo =
        i32 ? double(std::numeric_limits<std::int32_t>::lowest()) : double(std::numeric_limits<std::int64_t>::lowest());
    const double hi =
        i32 ? double(std::numeric_limits<std::int32_t>::max()) : double(std::numeric_limits<std::int64_t>::max());
    llvm::Type* ft = v->getType();
    llvm::Value* conv = b.CreateFPToSI(v, tt);
    llvm::Value* lo_i = llvm::ConstantInt::get(tt,
                                               i32 ? std::uint64_t(std::numeric_limits<std::int32_t>::lowest())
                                                   : std::uint64_t(std::numeric_limits<std::int64_t>::lowest()),
                                               true);
    llvm::Value* hi_i = llvm::ConstantInt::get(tt,
                                               i32 ? std::uint64_t(std::numeric_limits<std::int32_t>::max())
                                                   : std::uint64_t(std::numeric_limits<std::int64_t>::max()),
                                               true);
    llvm::Value* r = b.CreateSelect(b.CreateFCmpOGE(v, llvm::ConstantFP::get(ft, hi)), hi_i, conv);
    r = b.CreateSelect(b.CreateFCmpOLE(v, llvm::ConstantFP::get(ft, lo)), lo_i, r);
    return b.CreateSelect(b.CreateFCmpUNO(v, v), llvm::ConstantInt::get(tt, 0), r);
  }

  llvm::Value* scalar_op(llvm::IRBuilder<>& b, const ir::Program& p, const ir::Instruction& inst,
                         const std::vector<llvm::Value*>& a, llvm::Value* training) {
    const std::string_view op = op_name(inst);
    const DType out = p.buffers[inst.result].dtype;
    const DType in0 = inst.operands.empty() ? out : p.buffers[inst.operands[0]].dtype;
    const bool fl = is_f(in0);
    if (op == "constant" || op == "full") {
      const double v = inst.attrs.get_float("value", 0);
      if (is_f(out)) return fconst(out, v);
      return llvm::ConstantInt::get(elem_t(out), static_cast<std::uint64_t>(integer_constant(v, out)), true);
    }
    if (op == "broadcast_to") return a[0];
    if (op == "if_training") return b.CreateSelect(training, a[0], a[1]);
    if (op == "cast") return cast_value(b, a[0], in0, out);
    if (op == "select") return b.CreateSelect(b.CreateICmpNE(a[0], llvm::ConstantInt::get(i8_t(), 0)), a[1], a[2]);
    if (op == "neg") return fl ? b.CreateFNeg(a[0]) : b.CreateNeg(a[0]);
    if (op == "abs") {
      if (fl) return unary_intrinsic(b, llvm::Intrinsic::fabs, a[0]);
      return b.CreateSelect(b.CreateICmpSLT(a[0], llvm::ConstantInt::get(a[0]->getType(), 0)), b.CreateNeg(a[0]), a[0]);
    }
    if (op == "relu") {
      llvm::Value* zero = fl ? fconst(in0, 0) : llvm::ConstantInt::get(a[0]->getType(), 0);
      llvm::Value* pos = fl ? b.CreateFCmpOGT(a[0], zero) : b.CreateICmpSGT(a[0], zero);
      return b.CreateSelect(pos, a[0], zero);
    }
    if (op == "exp") return unary_intrinsic(b, llvm::Intrinsic::exp, a[0]);
    if (op == "log") return unary_intrinsic(b, llvm::Intrinsic::log, a[0]);
    if (op == "sqrt") return unary_intrinsic(b, llvm::Intrinsic::sqrt, a[0]);
    if (op == "tanh") return libm(b, "tanhf", "tanh", a[0]);
    if (op == "sigmoid") {
      llvm::Value* e =
          unary_intrinsic(b, llvm::Intrinsic::exp, b.CreateFNeg(unary_intrinsic(b, llvm::Intrinsic::fabs, a[0])));
      llvm::Value* one = fconst(in0, 1);
      llvm::Value* denom = b.CreateFAdd(one, e);
      return b.CreateSelect(b.CreateFCmpOGE(a[0], fconst(in0, 0)), b.CreateFDiv(one, denom), b.CreateFDiv(e, denom));
    }
    if (op == "add") return fl ? b.CreateFAdd(a[0], a[1]) : b.CreateAdd(a[0], a[1]);
    if (op == "sub") return fl ? b.CreateFSub(a[0], a[1]) : b.CreateSub(a[0], a[1]);
    if (op == "mul") return fl ? b.CreateFMul(a[0], a[1]) : b.CreateMul(a[0], a[1]);
    if (op == "div") {
      if (fl) return b.CreateFDiv(a[0], a[1]);
      llvm::Type* t = a[0]->getType();
      llvm::Value* zero = llvm::ConstantInt::get(t, 0);
      llvm::Value* minus1 = llvm::ConstantInt::get(t, static_cast<std::uint64_t>(-1), true);
      llvm::Value* lowest =
          llvm::ConstantInt::get(t,
                                 in0 == DType::kI32 ? std::uint64_t(std::numeric_limits<std::int32_t>::lowest())
                                                    : std::uint64_t(std::numeric_limits<std::int64_t>::lowest()),
                                 true);
      llvm::Value* bz = b.CreateICmpEQ(a[1], zero);
      llvm::Value* ovf = b.CreateAnd(b.CreateICmpEQ(a[1], minus1), b.CreateICmpEQ(a[0], lowest));
      // Divide by a safe divisor, then pick the special results.
      llvm::Value* safe = b.CreateSelect(b.CreateOr(bz, ovf), llvm::ConstantInt::get(t, 1), a[1]);
      llvm::Value* q = b.CreateSDiv(a[0], safe);
      return b.CreateSelect(bz, zero, b.CreateSelect(ovf, a[0], q));
    }
    if (op == "pow") return b.CreateBinaryIntrinsic(llvm::Intrinsic::pow, a[0], a[1]);
    if (op == "maximum" || op == "minimum") {
      const bool mx = op == "maximum";
      if (!fl) return b.CreateSelect(mx ? b.CreateICmpSLT(a[0], a[1]) : b.CreateICmpSLT(a[1], a[0]), a[1], a[0]);
      // std::max(a, b) = a < b ? b : a; std::min(a, b) = b < a ? b : a; NaN in either -> NaN.
      llvm::Value* pick = b.CreateSelect(mx ? b.CreateFCmpOLT(a[0], a[1]) : b.CreateFCmpOLT(a[1], a[0]), a[1], a[0]);
      llvm::Value* nan = b.CreateFCmpUNO(a[0], a[1]);
      return b.CreateSelect(nan, llvm::ConstantFP::getNaN(a[0]->getType()), pick);
    }
    // Comparisons -> bool.
    const bool sgn = in0 != DType::kBool;
    llvm::Value* c = nullptr;
    if (op == "less")
      c = fl ? b.CreateFCmpOLT(a[0], a[1]) : sgn ? b.CreateICmpSLT(a[0], a[1]) : b.CreateICmpULT(a[0], a[1]);
    if (op == "less_equal")
      c = fl ? b.CreateFCmpOLE(a[0], a[1]) : sgn ? b.CreateICmpSLE(a[0], a[1]) : b.CreateICmpULE(a[0], a[1]);
    if (op == "greater")
      c = fl ? b.CreateFCmpOGT(a[0], a[1]) : sgn ? b.CreateICmpSGT(a[0], a[1]) : b.CreateICmpUGT(a[0], a[1]);
    if (op == "greater_equal")
      c = fl ? b.CreateFCmpOGE(a[0], a[1]) : sgn ? b.CreateICmpSGE(a[0], a[1]) : b.CreateICmpUGE(a[0], a[1]);
    if (op == "equal") c = fl ? b.CreateFCmpOEQ(a[0], a[1]) : b.CreateICmpEQ(a[0], a[1]);
    if (op == "not_equal") c = fl ? b.CreateFCmpUNE(a[0], a[1]) : b.CreateICmpNE(a[0], a[1]);
    if (c == nullptr) throw std::runtime_error(fmt::format("{}: no scalar code for '{}'", inst.label, op));
    return to_bool8(b, c);
  }

  // ---- kernel calls -------------------------------------------------------------------------

  struct MatmulShape {
    std::int64_t batch = 1, m = 1, n = 1, k = 1, a_stride = 0, b_stride = 0;
    bool ta = false, tb = false;
  };

  static MatmulShape matmul_shape(const ir::Program& p, const ir::Instruction& inst) {
    const auto& a = p.buffers[inst.operands[0]].dims;
    const auto& b = p.buffers[inst.operands[1]].dims;
    const auto& o = p.buffers[inst.result].dims;
    MatmulShape s;
    s.ta = a.size() >= 2 && inst.attrs.get_bool("transpose_a", false);
    s.tb = b.size() >= 2 && inst.attrs.get_bool("transpose_b", false);
    if (a.size() == 1) {
      s.m = 1;
      s.k = a[0];
    } else {
      s.m = s.ta ? a[a.size() - 1] : a[a.size() - 2];
      s.k = s.ta ? a[a.size() - 2] : a[a.size() - 1];
    }
    if (b.size() == 1) {
      s.n = 1;
    } else {
      s.n = s.tb ? b[b.size() - 2] : b[b.size() - 1];
    }
    s.batch = product(o) / std::max<std::int64_t>(1, s.m * s.n);
    const auto has_batch = [](const std::vector<std::int64_t>& d) {
      return d.size() > 2 && product(d, 0, d.size() - 2) > 1;
    };
    s.a_stride = has_batch(a) ? s.m * s.k : 0;
    s.b_stride = has_batch(b) ? s.k * s.n : 0;
    return s;
  }

  static kiln_conv_geometry conv_geometry(const ir::Program& p, const ir::Instruction& inst) {
    const std::string_view op = op_name(inst);
    // conv2d: (x, w) -> y; grad_input: (dy, w) -> dx; grad_filter: (x, dy) -> dw.
    const auto& x = op == "conv2d_grad_input" ? p.buffers[inst.result].dims : p.buffers[inst.operands[0]].dims;
    const auto& w = op == "conv2d_grad_filter" ? p.buffers[inst.result].dims : p.buffers[inst.operands[1]].dims;
    const auto g = kernels::ref::conv2d_geometry(x[0], x[1], x[2], x[3], w[0], w[1], w[3],
                                                 inst.attrs.get_int("stride", 1), inst.attrs.get_int("dilation", 1),
                                                 inst.attrs.get_string("padding", "valid") == "same");
    return {g.n, g.h, g.w, g.c, g.kh, g.kw, g.f, g.oh, g.ow, g.stride, g.dilation, g.pad_top, g.pad_left};
  }

  static kiln_pool_geometry pool_geometry(const ir::Program& p, const ir::Instruction& inst) {
    const std::string_view op = op_name(inst);
    const auto& x = op == "avg_pool2d_grad" ? p.buffers[inst.result].dims : p.buffers[inst.operands[0]].dims;
    const auto g = kernels::ref::pool_geometry(x[0], x[1], x[2], x[3], inst.attrs.get_int("size", 2),
                                               inst.attrs.get_int("stride", 0),
                                               inst.attrs.get_string("padding", "valid") == "same");
    return {g.n, g.h, g.w, g.c, g.size, g.stride, g.oh, g.ow, g.pad_top, g.pad_left};
  }

  void emit_kernel(llvm::IRBuilder<>& b, llvm::Function* f, const ProgramState& s, std::size_t i,
                   CodegenReport& report) {
    const ir::Program& p = s.p;
    const ir::Instruction& inst = p.instructions[i];
    const std::string_view op = op_name(inst);
    const auto in = [&](std::size_t k) { return address(b, f, s, inst.operands.at(k)); };
    const auto in_buf = [&](std::size_t k) -> const ir::Buffer& { return p.buffers[inst.operands.at(k)]; };
    const ir::Buffer& out_buf = p.buffers[inst.result];
    const auto out = [&] { return address(b, f, s, inst.result); };
    const auto call = [&](const std::string& name, std::vector<llvm::Value*> args) {
      llvm::Function* k = kernel(name);
      ++report.kernel_calls;
      b.CreateCall(k, args);
    };
    // Element alignment only: a slot may point into a caller's array at any row (an
    // artifact's NAME_predict hands each entry row offsets of the user's input and output).
    const auto memcpy_to = [&](llvm::Value* dst, llvm::Value* src, std::size_t bytes) {
      const llvm::MaybeAlign align(ir::dtype_size(out_buf.dtype));
      if (bytes > 0) b.CreateMemCpy(dst, align, src, align, bytes);
    };
    const auto elements = [&](const ir::Buffer& buf) { return product(buf.dims); };
    const auto axis_split = [&](const std::vector<std::int64_t>& dims, std::int64_t axis_attr) {
      const std::size_t axis = axis_of(axis_attr, dims.size());
      return std::array<std::int64_t, 3>{product(dims, 0, axis), dims[axis], product(dims, axis + 1)};
    };
    const int threads = options.threads;

    if (op == "assign_state") {
      if (s.slot_of[inst.operands[1]] != s.assign_slot[i]) {  // else the value was made in the slot
        llvm::Value* at =
            b.CreateConstInBoundsGEP1_64(ptr_t(), f->getArg(1), static_cast<std::uint64_t>(s.assign_slot[i]));
        memcpy_to(b.CreateLoad(ptr_t(), at), in(1), in_buf(1).bytes);
      }
      // The result (the old value) only when someone reads it.
      if (out_buf.bytes > 0 && (out_buf.last > i || out_buf.pinned())) memcpy_to(out(), in(0), out_buf.bytes);
      return;
    }
    if (op == "reshape") {
      if (s.plan.views.contains(inst.result)) return;  // the result is its operand's bytes
      return memcpy_to(out(), in(0), out_buf.bytes);
    }
    if (op == "matmul") {
      const MatmulShape m = matmul_shape(p, inst);
      llvm::Value* bias = llvm::ConstantPointerNull::get(llvm::PointerType::getUnqual(ctx));
      llvm::Value* gate = bias;
      llvm::Value* c = out();
      int act = 0;
      BufferId target = inst.result;
      if (auto it = s.plan.epilogues.find(i); it != s.plan.epilogues.end()) {
        const Epilogue& e = it->second;
        if (e.bias) bias = address(b, f, s, *e.bias);
        target = e.target;
        act = e.act == 3 ? 2 : e.act;  // the kernel's code for a relu gradient is 2
        if (e.act == 3) gate = address(b, f, s, e.gate);
      }
      if (auto it = s.plan.chain_root.find(i); it != s.plan.chain_root.end()) {
        llvm::Function* chain = emit_chain(s, it->second, target);
        return call("kiln_k_matmul_chained",
                    {i64c(m.batch), i64c(m.m), i64c(m.n), i64c(m.k), i1c(m.ta), i1c(m.tb), in(0), i64c(m.a_stride),
                     in(1), i64c(m.b_stride), llvm::ConstantPointerNull::get(llvm::PointerType::getUnqual(ctx)), bias,
                     i32c(act), gate, chain, task_context(b, f), scratch(b, f, s), i32c(threads)});
      }
      c = address(b, f, s, target);
      return call("kiln_k_matmul",
                  {i64c(m.batch), i64c(m.m), i64c(m.n), i64c(m.k), i1c(m.ta), i1c(m.tb), in(0), i64c(m.a_stride), in(1),
                   i64c(m.b_stride), c, bias, i32c(act), gate, scratch(b, f, s), i32c(threads)});
    }
    if (op == "reduce_sum" || op == "reduce_mean" || op == "reduce_max") {
      const auto& dims = in_buf(0).dims;
      const std::vector<std::int64_t> axes = inst.attrs.get_ints("axes");
      std::vector<std::uint8_t> reduced(dims.size(), axes.empty() ? 1 : 0);
      for (const std::int64_t a : axes) reduced[axis_of(a, dims.size())] = 1;
      const int code = op == "reduce_sum" ? 0 : op == "reduce_mean" ? 1 : 2;
      if (dims.empty()) return memcpy_to(out(), in(0), out_buf.bytes);
      return call("kiln_k_reduce", {i32c(code), in(0), i32c(static_cast<std::int64_t>(dims.size())), i64_array(dims),
                                    u8_array(reduced), out()});
    }
    if (op == "transpose") {
      const auto& dims = in_buf(0).dims;
      std::vector<std::int64_t> perm;
      if (inst.attrs.find("perm") != nullptr) {
        for (const std::int64_t v : inst.attrs.get_ints("perm"))
          perm.push_back(static_cast<std::int64_t>(axis_of(v, dims.size())));
      } else {
        for (std::size_t a = dims.size(); a-- > 0;) perm.push_back(static_cast<std::int64_t>(a));
      }
      return call("kiln_k_transpose",
                  {i64c(static_cast<std::int64_t>(ir::dtype_size(out_buf.dtype))), in(0),
                   i32c(static_cast<std::int64_t>(dims.size())), i64_array(dims), i64_array(perm), out()});
    }
    if (op == "slice") {
      const auto& dims = in_buf(0).dims;
      const auto sp = axis_split(dims, inst.attrs.get_int("axis"));
      const std::int64_t start = inst.attrs.get_int("start"), end = inst.attrs.get_int("end");
      const std::int64_t elem = static_cast<std::int64_t>(ir::dtype_size(out_buf.dtype));
      llvm::Value* src = b.CreateConstInBoundsGEP1_64(i8_t(), in(0), static_cast<std::uint64_t>(start * sp[2] * elem));
      return call("kiln_k_copy2d", {i64c(elem), src, i64c(sp[1] * sp[2]), out(), i64c((end - start) * sp[2]),
                                    i64c(sp[0]), i64c((end - start) * sp[2])});
    }
    if (op == "concat") {
      const auto& dims = out_buf.dims;
      const auto sp = axis_split(dims, inst.attrs.get_int("axis", -1));
      const std::size_t axis = axis_of(inst.attrs.get_int("axis", -1), dims.size());
      const std::int64_t elem = static_cast<std::int64_t>(ir::dtype_size(out_buf.dtype));
      std::int64_t at = 0;
      llvm::Value* dst_base = out();
      for (std::size_t k = 0; k < inst.operands.size(); ++k) {
        const std::int64_t len = in_buf(k).dims[axis];
        llvm::Value* dst =
            b.CreateConstInBoundsGEP1_64(i8_t(), dst_base, static_cast<std::uint64_t>(at * sp[2] * elem));
        call("kiln_k_copy2d",
             {i64c(elem), in(k), i64c(len * sp[2]), dst, i64c(sp[1] * sp[2]), i64c(sp[0]), i64c(len * sp[2])});
        at += len;
      }
      return;
    }
    if (op == "gather") {
      const auto& t = in_buf(0);
      const std::int64_t row_bytes = product(t.dims, 1) * static_cast<std::int64_t>(ir::dtype_size(t.dtype));
      return call(in_buf(1).dtype == DType::kI32 ? "kiln_k_gather_i32" : "kiln_k_gather_i64",
                  {in(0), i64c(t.dims[0]), i64c(row_bytes), in(1), i64c(elements(in_buf(1))), out()});
    }
    if (op == "scatter_add") {
      return call(
          in_buf(0).dtype == DType::kI32 ? "kiln_k_scatter_add_i32" : "kiln_k_scatter_add_i64",
          {in(0), i64c(elements(in_buf(0))), in(1), i64c(product(out_buf.dims, 1)), i64c(out_buf.dims[0]), out()});
    }
    if (op == "one_hot") {
      return call(in_buf(0).dtype == DType::kI32 ? "kiln_k_one_hot_i32" : "kiln_k_one_hot_i64",
                  {in(0), i64c(elements(in_buf(0))), i64c(out_buf.dims.back()), out()});
    }
    if (op == "argmax") {
      const auto sp = axis_split(in_buf(0).dims, inst.attrs.get_int("axis", -1));
      return call("kiln_k_argmax", {in(0), i64c(sp[0]), i64c(sp[1]), i64c(sp[2]), out()});
    }
    if (op == "softmax" || op == "log_softmax") {
      const auto sp = axis_split(in_buf(0).dims, inst.attrs.get_int("axis", -1));
      return call(op == "softmax" ? "kiln_k_softmax" : "kiln_k_log_softmax",
                  {in(0), i64c(sp[0]), i64c(sp[1]), i64c(sp[2]), out()});
    }
    if (op == "softmax_cross_entropy") {
      return call(in_buf(1).dtype == DType::kI32 ? "kiln_k_softmax_xent_i32" : "kiln_k_softmax_xent_i64",
                  {in(0), in(1), i64c(elements(out_buf)), i64c(in_buf(0).dims.back()), out()});
    }
    if (op == "sigmoid_cross_entropy")
      return call("kiln_k_sigmoid_xent", {in(0), in(1), out(), i64c(elements(out_buf))});
    if (op == "random_uniform" || op == "random_uniform_like" || op == "random_normal") {
      const bool normal = op == "random_normal";
      const double a = normal ? inst.attrs.get_float("mean", 0) : inst.attrs.get_float("low", 0);
      const double z = normal ? inst.attrs.get_float("stddev", 1) : inst.attrs.get_float("high", 1);
      return call(normal ? "kiln_k_random_normal" : "kiln_k_random_uniform",
                  {state_field(b, f, 0), i64c(inst.attrs.get_int("stream", 0)), state_field(b, f, 1), f64c(a), f64c(z),
                   out(), i64c(elements(out_buf))});
    }
    if (op == "conv2d" || op == "conv2d_grad_input" || op == "conv2d_grad_filter") {
      const kiln_conv_geometry g = conv_geometry(p, inst);
      llvm::Value* geo =
          i64_array({g.n, g.h, g.w, g.c, g.kh, g.kw, g.f, g.oh, g.ow, g.stride, g.dilation, g.pad_top, g.pad_left});
      if (auto it = s.plan.epilogues.find(i); it != s.plan.epilogues.end()) {  // conv2d + bias (+ relu)
        const Epilogue& e = it->second;
        llvm::Value* bias =
            e.bias ? address(b, f, s, *e.bias) : llvm::ConstantPointerNull::get(llvm::PointerType::getUnqual(ctx));
        return call("kiln_k_conv2d_bias_relu", {geo, in(0), in(1), bias, i32c(e.act), address(b, f, s, e.target),
                                                scratch(b, f, s), i32c(threads)});
      }
      return call(std::string("kiln_k_") + std::string(op),
                  {geo, in(0), in(1), out(), scratch(b, f, s), i32c(threads)});
    }
    if (op == "max_pool2d" || op == "avg_pool2d" || op == "max_pool2d_grad" || op == "avg_pool2d_grad") {
      const kiln_pool_geometry g = pool_geometry(p, inst);
      llvm::Value* geo = i64_array({g.n, g.h, g.w, g.c, g.size, g.stride, g.oh, g.ow, g.pad_top, g.pad_left});
      std::vector<llvm::Value*> args{geo};
      for (std::size_t k = 0; k < inst.operands.size(); ++k) args.push_back(in(k));
      if (op == "max_pool2d_grad") {
        // A folded relu gradient (see fusion.h) writes the select's result.
        const auto it = s.plan.epilogues.find(i);
        args.push_back(it != s.plan.epilogues.end() ? address(b, f, s, it->second.target) : out());
        args.push_back(i32c(it != s.plan.epilogues.end() ? 1 : 0));
      } else {
        args.push_back(out());
      }
      args.push_back(i32c(threads));
      return call(std::string("kiln_k_") + std::string(op), args);
    }
    if (op == "sgd_update") {
      const auto& a = inst.attrs;
      return call("kiln_k_sgd_update",
                  {f64c(a.get_float("lr", 0)), f64c(a.get_float("momentum", 0)), i1c(a.get_bool("nesterov", false)),
                   f64c(a.get_float("weight_decay", 0)), in(0), in(1), in(2), out(), i64c(elements(out_buf))});
    }
    if (op == "adam_update") {
      const auto& a = inst.attrs;
      llvm::Value* t = b.CreateAdd(state_field(b, f, 1), i64c(1));
      return call("kiln_k_adam_update",
                  {f64c(a.get_float("lr", 1e-3)), f64c(a.get_float("beta1", 0.9)), f64c(a.get_float("beta2", 0.999)),
                   f64c(a.get_float("eps", 1e-8)), f64c(a.get_float("weight_decay", 0)),
                   i1c(a.get_bool("decoupled", false)), t, in(0), in(1), in(2), in(3), out(), i64c(elements(out_buf))});
    }
    throw std::runtime_error(fmt::format("{}: the LLVM backend has no code for op '{}'", inst.label, op));
  }

  std::unique_ptr<llvm::Module> finish() {
    const std::set<std::string> keep(entries.begin(), entries.end());
    const std::string cpu = tm.getTargetCPU().str();
    const std::string features = tm.getTargetFeatureString().str();
    for (llvm::Function& fn : *module) {
      if (fn.isDeclaration()) continue;
      if (!keep.contains(fn.getName().str())) fn.setLinkage(llvm::GlobalValue::InternalLinkage);
      fn.removeFnAttr("target-cpu");
      fn.removeFnAttr("target-features");
      fn.removeFnAttr("tune-cpu");
      fn.addFnAttr("target-cpu", cpu);
      if (!features.empty()) fn.addFnAttr("target-features", features);
      // optnone + noinline is what an unoptimised build puts on everything; a noinline of
      // its own (a kernel's large, shape-generic body) is kept: inlining and specialising it
      // at every call site would only add compile time.
      if (fn.hasFnAttribute(llvm::Attribute::OptimizeNone)) {
        fn.removeFnAttr(llvm::Attribute::OptimizeNone);
        fn.removeFnAttr(llvm::Attribute::NoInline);
      }
    }
    for (llvm::GlobalVariable& g : module->globals()) {
      if (!g.isDeclaration() && !g.getName().startswith("llvm.")) g.setLinkage(llvm::GlobalValue::InternalLinkage);
    }
    // Kernels no entry uses go now, before O2's first function passes would tidy them.
    {
      llvm::ModuleAnalysisManager mam;
      llvm::GlobalDCEPass().run(*module, mam);
    }
    // The kernels' task functions (only ever called through kiln_parallel_for's pointer) and
    // their noinline bodies never see a constant shape: clang optimised them at -O2 when it
    // made the bitcode, and O2 here would only do that again (see optimise_module).
    for (llvm::Function& fn : *module) {
      if (fn.isDeclaration() || !kernel_functions.contains(fn.getName().str())) continue;
      bool through_pointer = false;
      for (const llvm::Use& use : fn.uses()) {
        const auto* call = llvm::dyn_cast<llvm::CallBase>(use.getUser());
        through_pointer |= call == nullptr || !call->isCallee(&use);
      }
      if (through_pointer || fn.hasFnAttribute(llvm::Attribute::NoInline)) fn.addFnAttr(kPreoptimised);
    }
    // So are the kernel functions that only such functions call (the GEMM under a matmul
    // task), and so on.
    for (bool grew = true; grew;) {
      grew = false;
      for (llvm::Function& fn : *module) {
        if (fn.isDeclaration() || fn.hasFnAttribute(kPreoptimised) || !kernel_functions.contains(fn.getName().str()) ||
            fn.use_empty())
          continue;
        bool only_from_preoptimised = true;
        for (const llvm::User* user : fn.users()) {
          const auto* call = llvm::dyn_cast<llvm::CallBase>(user);
          only_from_preoptimised &= call != nullptr && call->getFunction()->hasFnAttribute(kPreoptimised);
        }
        if (only_from_preoptimised) fn.addFnAttr(kPreoptimised), grew = true;
      }
    }
    std::string err;
    llvm::raw_string_ostream os(err);
    if (llvm::verifyModule(*module, &os)) throw std::runtime_error("generated LLVM IR is invalid: " + os.str());
    optimise_module(*module, tm);
    // KILN_DUMP_LLVM=FILE: the optimised module as text, for reading what the backend made.
    if (const char* path = std::getenv("KILN_DUMP_LLVM"); path != nullptr && *path != '\0') {
      std::error_code ec;
      llvm::raw_fd_ostream out(path, ec);
      if (!ec) module->print(out, nullptr);
    }
    return std::move(module);
  }
};

ModuleBuilder::ModuleBuilder(llvm::LLVMContext& context, const CodegenOptions& options, llvm::TargetMachine& target)
    : impl_(std::make_unique<Impl>(context, options, target)) {}
ModuleBuilder::~ModuleBuilder() = default;
CodegenReport ModuleBuilder::add_program(const ir::Program& program, const std::string& entry) {
  return impl_->add(program, entry);
}
std::unique_ptr<llvm::Module> ModuleBuilder::finish() {
  return impl_->finish();
}

}  // namespace detail

std::optional<std::string> unsupported_reason(const ir::Program& program) {
  for (const ir::Instruction& inst : program.instructions) {
    if (auto why = detail::check_instruction(program, inst)) return why;
  }
  return std::nullopt;
}

std::string target_cpu_name(const CodegenOptions& options) {
  if (options.cpu.empty()) return llvm::sys::getHostCPUName().str();
  detail::init_llvm();
  const std::string triple = llvm::sys::getProcessTriple();
  std::string error;
  const llvm::Target* target = llvm::TargetRegistry::lookupTarget(triple, error);
  if (target == nullptr) throw std::runtime_error("LLVM has no target for " + triple + ": " + error);
  std::unique_ptr<llvm::MCSubtargetInfo> info(target->createMCSubtargetInfo(triple, "", ""));
  if (info == nullptr || !info->isCPUStringValid(options.cpu)) {
    throw std::runtime_error("'" + options.cpu +
                             "' is not a CPU LLVM knows (for example x86-64, x86-64-v3, znver3, skylake-avx512; "
                             "`llc-16 -mcpu=help` lists them all)");
  }
  return options.cpu;
}

std::vector<CpuCheck> target_cpu_checks(const CodegenOptions& options) {
  constexpr unsigned kAvxState = 0x6, kAvx512State = 0xe6;
  constexpr int kEax = 0, kEbx = 1, kEcx = 2, kEdx = 3;
  // The Intel SDM's CPUID feature flags for every extension LLVM's x86 back end can emit
  // (leaf 1, leaf 7 sub-leaves 0 and 1, leaf 0x80000001).
  static const CpuCheck kKnown[] = {
      {"sse3", 1, 0, kEcx, 0},
      {"pclmul", 1, 0, kEcx, 1},
      {"ssse3", 1, 0, kEcx, 9},
      {"fma", 1, 0, kEcx, 12, kAvxState},
      {"cx16", 1, 0, kEcx, 13},
      {"sse4.1", 1, 0, kEcx, 19},
      {"sse4.2", 1, 0, kEcx, 20},
      {"movbe", 1, 0, kEcx, 22},
      {"popcnt", 1, 0, kEcx, 23},
      {"aes", 1, 0, kEcx, 25},
      {"avx", 1, 0, kEcx, 28, kAvxState},
      {"f16c", 1, 0, kEcx, 29, kAvxState},
      {"bmi", 7, 0, kEbx, 3},
      {"avx2", 7, 0, kEbx, 5, kAvxState},
      {"bmi2", 7, 0, kEbx, 8},
      {"avx512f", 7, 0, kEbx, 16, kAvx512State},
      {"avx512dq", 7, 0, kEbx, 17, kAvx512State},
      {"adx", 7, 0, kEbx, 19},
      {"avx512ifma", 7, 0, kEbx, 21, kAvx512State},
      {"avx512pf", 7, 0, kEbx, 26, kAvx512State},
      {"avx512er", 7, 0, kEbx, 27, kAvx512State},
      {"avx512cd", 7, 0, kEbx, 28, kAvx512State},
      {"sha", 7, 0, kEbx, 29},
      {"avx512bw", 7, 0, kEbx, 30, kAvx512State},
      {"avx512vl", 7, 0, kEbx, 31, kAvx512State},
      {"avx512vbmi", 7, 0, kEcx, 1, kAvx512State},
      {"avx512vbmi2", 7, 0, kEcx, 6, kAvx512State},
      {"gfni", 7, 0, kEcx, 8},
      {"vaes", 7, 0, kEcx, 9, kAvxState},
      {"vpclmulqdq", 7, 0, kEcx, 10, kAvxState},
      {"avx512vnni", 7, 0, kEcx, 11, kAvx512State},
      {"avx512bitalg", 7, 0, kEcx, 12, kAvx512State},
      {"avx512vpopcntdq", 7, 0, kEcx, 14, kAvx512State},
      {"avx512vp2intersect", 7, 0, kEdx, 8, kAvx512State},
      {"avx512fp16", 7, 0, kEdx, 23, kAvx512State},
      {"avxvnni", 7, 1, kEax, 4, kAvxState},
      {"avx512bf16", 7, 1, kEax, 5, kAvx512State},
      {"lzcnt", 0x80000001u, 0, kEcx, 5},
      {"sse4a", 0x80000001u, 0, kEcx, 6},
      {"prfchw", 0x80000001u, 0, kEcx, 8},
      {"xop", 0x80000001u, 0, kEcx, 11, kAvxState},
      {"fma4", 0x80000001u, 0, kEcx, 16, kAvxState},
  };
  std::vector<CpuCheck> out;
  const std::string triple = llvm::sys::getProcessTriple();
  if (triple.rfind("x86_64", 0) != 0) return out;
  const auto tm = detail::make_target_machine(options);
  for (const CpuCheck& c : kKnown)
    if (tm->getMCSubtargetInfo()->checkFeatures("+" + c.name)) out.push_back(c);
  return out;
}

std::string host_kernel_flavour() {
  detail::init_llvm();
  const std::string f = detail::host_features();
  const auto has_all = [&](std::initializer_list<const char*> names) {
    for (const char* n : names)
      if (!detail::has_feature(f, n)) return false;
    return true;
  };
  if (has_all({"avx2", "fma", "avx512f", "avx512vl", "avx512bw", "avx512dq"})) return "avx512";
  return has_all({"avx2", "fma"}) ? "avx2" : "portable";
}

}  // namespace kiln::codegen
