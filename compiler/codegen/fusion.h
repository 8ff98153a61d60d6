// Internal to compiler/codegen: which instructions of a Program are folded into another's
// code. Two kinds: an elementwise instruction whose only reader is another elementwise
// instruction of the same shape is computed inside that reader's loop ("inlined"); an
// add of a row bias after a 2-D matmul (of a per-filter bias after a conv2d), and a relu
// after that, become the matmul's (convolution's) epilogue, and a relu gradient after a max-pool gradient (select(x >
// 0, g, 0) where x is the pool's input) becomes the pool gradient's ("absorbed"); a matmul whose result only one
// elementwise loop reads hands that loop its result block by block ("chained"). Planning extends the lifetimes of what
// a folded instruction reads to where it now runs and re-plans the arena.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "compiler/codegen/codegen.h"
#include "compiler/ir/program.h"

namespace kiln::codegen::detail {

enum class OpClass : std::uint8_t {
  kSource,       // input, parameter, state: the buffer is a slot
  kElementwise,  // generated as a loop (unary, binary, compare, select, cast, fills, broadcast_to, if_training)
  kKernel,       // a call into kernels/cpu (or a copy)
};

OpClass op_class(std::string_view op);

struct Epilogue {
  std::optional<ir::BufferId> bias;  // matmul, conv2d: a bias along C's last dim added to C
  // 0 none; 1 relu (matmul, conv2d); 2 keep only where the pool's maximum is > 0 (max_pool2d_grad);
  // 3 a relu's gradient: keep C only where `gate` (the relu's output) is > 0 (matmul).
  int act = 0;
  ir::BufferId target = 0;
  ir::BufferId gate = 0;
};

struct FusionPlan {
  std::vector<bool> inlined;                  // per instruction: computed inside its reader's loop
  std::vector<bool> absorbed;                 // per instruction: part of a matmul epilogue
  std::vector<std::int32_t> producer;         // per buffer: the instruction that writes it
  std::map<std::size_t, Epilogue> epilogues;  // matmul instruction -> its epilogue
  // New values of parameters and states that live in their assign's slot rather than the
  // arena: whatever makes the value writes it there, every reader reads it there, and the
  // assign copies nothing (value buffer -> assign instruction).
  std::map<ir::BufferId, std::size_t> assign_home;
  // Per inlined instruction: the reader whose loop computes it. When its value is also a new
  // parameter or state value (homed in an assign slot), that loop stores it there as well:
  // Adam's new moments are made and stored in the loop that updates the weight.
  std::map<std::size_t, std::size_t> consumer;
  // A matmul whose C (its epilogue's result, if it has one) is read by one elementwise loop
  // of C's shape alone, and is large enough, runs at that loop's place and calls the loop's code on each block of C
  // as it is made (kiln_k_matmul_chained): C is not stored. Matmul -> the loop's root.
  std::map<std::size_t, std::size_t> chain_root;
  // A reshape's result that shares its operand's bytes in the arena (no copy): result ->
  // the buffer whose bytes it uses.
  std::map<ir::BufferId, ir::BufferId> views;
  std::vector<bool> stores;   // per instruction: inlined, and its value stored by the consumer's loop
  std::vector<bool> outside;  // per buffer: not in the arena (folded away, or reached through a slot)
  int fused = 0;
};

// Decides the folding for `program`, updates its lifetimes and re-plans its arena. Matmuls
// are chained only where C has at least `chain_min_bytes` (CodegenOptions).
FusionPlan plan_fusion(ir::Program& program, std::size_t chain_min_bytes = CodegenOptions{}.chain_min_bytes);

}  // namespace kiln::codegen::detail
