#include "compiler/codegen/fusion.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace kiln::codegen::detail {

OpClass op_class(std::string_view op) {
  static const std::set<std::string_view> kSources = {"input", "parameter", "state"};
  static const std::set<std::string_view> kElementwise = {
      "constant",      "full",    "neg",       "abs",     "exp",          "log",        "sqrt",
      "tanh",          "sigmoid", "relu",      "cast",    "add",          "sub",        "mul",
      "div",           "pow",     "maximum",   "minimum", "less",         "less_equal", "greater",
      "greater_equal", "equal",   "not_equal", "select",  "broadcast_to", "if_training"};
  if (kSources.contains(op)) return OpClass::kSource;
  if (kElementwise.contains(op)) return OpClass::kElementwise;
  return OpClass::kKernel;
}

namespace {

std::string_view op_name(const ir::Instruction& inst) {
  return ir::core_ops().get(inst.op).name;
}

}  // namespace

FusionPlan plan_fusion(ir::Program& p, std::size_t chain_min_bytes) {
  const std::size_t n = p.instructions.size();
  FusionPlan plan;
  plan.inlined.assign(n, false);
  plan.absorbed.assign(n, false);
  plan.producer.assign(p.buffers.size(), -1);
  std::vector<std::vector<std::size_t>> readers(p.buffers.size());
  for (std::size_t i = 0; i < n; ++i) {
    const ir::Instruction& inst = p.instructions[i];
    plan.producer[inst.result] = static_cast<std::int32_t>(i);
    std::vector<ir::BufferId> ops = inst.operands;
    std::sort(ops.begin(), ops.end());
    ops.erase(std::unique(ops.begin(), ops.end()), ops.end());
    for (const ir::BufferId b : ops) readers[b].push_back(i);
  }
  // A buffer some result names must exist as itself.
  std::vector<bool> is_result(p.buffers.size(), false);
  for (const ir::NamedBuffer& r : p.results) is_result[r.buffer] = true;
  const auto private_to = [&](ir::BufferId b) -> std::optional<std::size_t> {
    if (p.buffers[b].pinned() || is_result[b] || readers[b].size() != 1) return std::nullopt;
    return readers[b].front();
  };
  std::vector<ir::BufferId> dead;  // results nobody materialises any more

  // A matmul that kiln_k_matmul's epilogue can finish: one 2-D f32 product of 2-D operands.
  const auto plain_matmul = [&](std::size_t m) {
    const ir::Instruction& mm = p.instructions[m];
    if (op_name(mm) != "matmul") return false;
    const ir::Buffer& c = p.buffers[mm.result];
    return c.dtype == ir::DType::kF32 && c.dims.size() == 2 && p.buffers[mm.operands[0]].dims.size() == 2 &&
           p.buffers[mm.operands[1]].dims.size() == 2;
  };

  // Matmul and convolution epilogues: C = A·B (or conv2d(x, w), NHWC), then add(C, bias)
  // with a bias along C's last dim (columns, filters), then relu (a relu's gradient: below).
  for (std::size_t m = 0; m < n; ++m) {
    const bool conv =
        op_name(p.instructions[m]) == "conv2d" && p.buffers[p.instructions[m].result].dtype == ir::DType::kF32;
    if (!plain_matmul(m) && !conv) continue;
    const ir::Instruction& mm = p.instructions[m];
    const ir::Buffer& c = p.buffers[mm.result];
    const auto j = private_to(mm.result);
    if (!j || op_name(p.instructions[*j]) != "add") continue;
    const ir::Instruction& add = p.instructions[*j];
    if (add.operands[0] == add.operands[1]) continue;
    const ir::BufferId bias = add.operands[0] == mm.result ? add.operands[1] : add.operands[0];
    const ir::Buffer& bb = p.buffers[bias];
    const std::int64_t cols = c.dims.back();
    bool row_bias = !bb.dims.empty() && bb.dims.size() <= c.dims.size() && bb.dims.back() == cols;
    for (std::size_t d = 0; d + 1 < bb.dims.size(); ++d) row_bias = row_bias && bb.dims[d] == 1;
    if (!row_bias || bb.dtype != ir::DType::kF32 || p.buffers[add.result].dims != c.dims) continue;
    // The bias must be ready when the product runs: made before it, or a slot (input, parameter).
    const std::int32_t made = plan.producer[bias];
    if (made < 0 || (static_cast<std::size_t>(made) >= m &&
                     op_class(op_name(p.instructions[static_cast<std::size_t>(made)])) != OpClass::kSource))
      continue;
    Epilogue e{bias, 0, add.result};
    plan.absorbed[*j] = true;
    dead.push_back(mm.result);
    if (const auto k = private_to(add.result);
        k && op_name(p.instructions[*k]) == "relu" && p.buffers[p.instructions[*k].result].dims == c.dims) {
      plan.absorbed[*k] = true;
      dead.push_back(add.result);
      e.act = 1;
      e.target = p.instructions[*k].result;
    }
    p.buffers[e.target].first = static_cast<std::uint32_t>(m);
    plan.epilogues[m] = e;
  }

  // The gradient of a relu that feeds a max pool: select(greater(x, 0), max_pool2d_grad(x, dy),
  // 0), with x the pool's input (relu's output), becomes the pool gradient's epilogue.
  const auto zero_constant = [&](ir::BufferId b) {
    const std::int32_t prod = plan.producer[b];
    if (prod < 0) return false;
    const ir::Instruction& c = p.instructions[static_cast<std::size_t>(prod)];
    const double value = c.attrs.get_float("value", 1.0);
    return op_name(c) == "constant" && p.buffers[b].dims.empty() && value == 0.0 && !std::signbit(value);
  };
  for (std::size_t m = 0; m < n; ++m) {
    const ir::Instruction& pg = p.instructions[m];
    if (op_name(pg) != "max_pool2d_grad" || p.buffers[pg.result].dtype != ir::DType::kF32) continue;
    const auto j = private_to(pg.result);
    if (!j || op_name(p.instructions[*j]) != "select") continue;
    const ir::Instruction& sel = p.instructions[*j];
    if (sel.operands[1] != pg.result || !zero_constant(sel.operands[2])) continue;
    if (p.buffers[sel.result].dims != p.buffers[pg.result].dims) continue;
    const auto k = private_to(sel.operands[0]);
    const std::int32_t cmp = plan.producer[sel.operands[0]];
    if (!k || *k != *j || cmp < 0) continue;
    const ir::Instruction& gt = p.instructions[static_cast<std::size_t>(cmp)];
    if (op_name(gt) != "greater" || gt.operands[0] != pg.operands[0] || !zero_constant(gt.operands[1])) continue;
    plan.absorbed[*j] = true;
    plan.absorbed[static_cast<std::size_t>(cmp)] = true;
    dead.push_back(pg.result);
    dead.push_back(gt.result);
    p.buffers[sel.result].first = static_cast<std::uint32_t>(m);
    plan.epilogues[m] = Epilogue{std::nullopt, 2, sel.result};
  }

  // The gradient of a relu after a matmul: select(greater(x, 0), A·B, 0), with x (the
  // relu's output) of C's shape, becomes the matmul's epilogue, which keeps C where x > 0.
  for (std::size_t m = 0; m < n; ++m) {
    if (!plain_matmul(m) || plan.epilogues.contains(m)) continue;
    const ir::Instruction& mm = p.instructions[m];
    const ir::Buffer& c = p.buffers[mm.result];
    const auto j = private_to(mm.result);
    if (!j || op_name(p.instructions[*j]) != "select") continue;
    const ir::Instruction& sel = p.instructions[*j];
    if (sel.operands[1] != mm.result || sel.operands[0] == mm.result || !zero_constant(sel.operands[2])) continue;
    if (p.buffers[sel.result].dims != c.dims) continue;
    const auto k = private_to(sel.operands[0]);
    const std::int32_t cmp = plan.producer[sel.operands[0]];
    if (!k || *k != *j || cmp < 0) continue;
    const ir::Instruction& gt = p.instructions[static_cast<std::size_t>(cmp)];
    if (op_name(gt) != "greater" || !zero_constant(gt.operands[1])) continue;
    const ir::BufferId x = gt.operands[0];
    if (x == mm.result || p.buffers[x].dtype != ir::DType::kF32 || p.buffers[x].dims != c.dims) continue;
    if (plan.producer[x] < 0 || static_cast<std::size_t>(plan.producer[x]) >= m) continue;  // ready before C
    plan.absorbed[*j] = true;
    plan.absorbed[static_cast<std::size_t>(cmp)] = true;
    dead.push_back(mm.result);
    dead.push_back(gt.result);
    p.buffers[sel.result].first = static_cast<std::uint32_t>(m);
    p.buffers[x].last = std::max<std::uint32_t>(p.buffers[x].last, static_cast<std::uint32_t>(m));
    plan.epilogues[m] = Epilogue{std::nullopt, 3, sel.result, x};
  }

  // A new parameter or state value lives in its assign's slot.
  for (std::size_t i = 0; i < n; ++i) {
    const ir::Instruction& inst = p.instructions[i];
    if (op_name(inst) != "assign_state") continue;
    const ir::BufferId value = inst.operands[1];
    const std::int32_t prod = plan.producer[value];
    if (prod < 0 || plan.absorbed[static_cast<std::size_t>(prod)]) continue;
    if (op_class(op_name(p.instructions[static_cast<std::size_t>(prod)])) == OpClass::kSource) continue;
    if (p.buffers[value].pinned() || is_result[value] || inst.operands[0] == value) continue;
    // Exactly one assign reads it (two assigns of one value would need two copies).
    int assigns = 0;
    for (const std::size_t r : readers[value]) assigns += op_name(p.instructions[r]) == "assign_state" ? 1 : 0;
    if (assigns != 1 || plan.assign_home.contains(value)) continue;
    plan.assign_home[value] = i;
    dead.push_back(value);
  }
  // Elementwise chains: a producer read by one same-shaped elementwise instruction and
  // otherwise only by the assign its value is homed in (then the loop stores it too).
  plan.stores.assign(n, false);
  for (std::size_t i = 0; i < n; ++i) {
    const ir::Instruction& inst = p.instructions[i];
    if (plan.absorbed[i] || op_class(op_name(inst)) != OpClass::kElementwise) continue;
    std::optional<std::size_t> j = private_to(inst.result);
    bool store = false;
    if (!j) {
      const auto home = plan.assign_home.find(inst.result);
      if (home == plan.assign_home.end() || readers[inst.result].size() != 2) continue;
      for (const std::size_t r : readers[inst.result])
        if (r != home->second) j = r;
      store = true;
    }
    if (!j || plan.absorbed[*j] || op_class(op_name(p.instructions[*j])) != OpClass::kElementwise) continue;
    if (p.buffers[p.instructions[*j].result].dims != p.buffers[inst.result].dims) continue;
    plan.inlined[i] = true;
    plan.stores[i] = store;
    plan.consumer[i] = *j;
    ++plan.fused;
  }
  // Where each inlined instruction now runs: at the first reader that is not inlined.
  std::vector<std::size_t> root(n);
  for (std::size_t i = n; i-- > 0;) {
    root[i] = plan.inlined[i] ? root[plan.consumer.at(i)] : i;
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (!plan.inlined[i]) continue;
    dead.push_back(p.instructions[i].result);  // (a stored one lives in its assign slot)
    for (const ir::BufferId b : p.instructions[i].operands) {
      ir::Buffer& buffer = p.buffers[b];
      buffer.last = std::max<std::uint32_t>(buffer.last, static_cast<std::uint32_t>(root[i]));
    }
  }
  // Chains: a 2-D matmul whose C (after its epilogue, if it has one) only one elementwise loop
  // of C's shape reads moves to where that loop runs and hands it C block by block
  // (kiln_k_matmul_chained), so C is never stored: a large weight gradient goes straight into
  // the optimizer's update instead of to memory and back. What the matmul reads must then
  // live until the loop's place.
  std::set<std::size_t> chained_loops;  // a loop takes one matmul's blocks
  for (std::size_t m = 0; m < n; ++m) {
    if (!plain_matmul(m)) continue;
    const ir::Instruction& mm = p.instructions[m];
    const auto e = plan.epilogues.find(m);
    const ir::BufferId c = e != plan.epilogues.end() ? e->second.target : mm.result;
    if (p.buffers[c].pinned() || is_result[c] || readers[c].empty() || p.buffers[c].bytes < chain_min_bytes) continue;
    std::optional<std::size_t> loop;
    bool one_loop = true;
    for (const std::size_t r : readers[c]) {
      const bool elementwise = op_class(op_name(p.instructions[r])) == OpClass::kElementwise && !plan.absorbed[r];
      one_loop = one_loop && elementwise && (!loop || *loop == root[r]);
      loop = root[r];
    }
    if (!one_loop || chained_loops.contains(*loop)) continue;
    if (p.buffers[p.instructions[*loop].result].dims != p.buffers[c].dims) continue;
    plan.chain_root[m] = *loop;
    chained_loops.insert(*loop);
    dead.push_back(c);
    std::vector<ir::BufferId> reads = mm.operands;
    if (e != plan.epilogues.end()) {
      if (e->second.bias) reads.push_back(*e->second.bias);
      if (e->second.act == 3) reads.push_back(e->second.gate);
    }
    for (const ir::BufferId b : reads)
      p.buffers[b].last = std::max<std::uint32_t>(p.buffers[b].last, static_cast<std::uint32_t>(*loop));
  }
  // A reshape of a buffer in the arena is a view: its result takes the operand's bytes
  // (the operand then lives as long as the result is read) and nothing is copied. Not when
  // either side is reached through a slot or the result is a program result, nor below
  // kMinViewBytes, where the copy costs next to nothing: a view moves the arena's later
  // buffers, and on this VM that alone moved fashion_mlp's batch-64 step by 2-3% (its two
  // reshapes of 4 and 256 bytes; docs/performance.md).
  constexpr std::size_t kMinViewBytes = std::size_t{64} << 10;
  std::vector<bool> folded(p.buffers.size(), false);
  for (const ir::BufferId b : dead) folded[b] = true;
  for (std::size_t i = 0; i < n; ++i) {
    const ir::Instruction& inst = p.instructions[i];
    if (op_name(inst) != "reshape" || plan.inlined[i] || plan.absorbed[i]) continue;
    ir::BufferId from = inst.operands[0];
    if (const auto v = plan.views.find(from); v != plan.views.end()) from = v->second;  // a view of a view
    const ir::BufferId to = inst.result;
    const ir::Buffer& src = p.buffers[from];
    const ir::Buffer& dst = p.buffers[to];
    if (folded[from] || folded[to] || src.pinned() || dst.pinned() || is_result[to] || src.bytes != dst.bytes ||
        dst.bytes < kMinViewBytes || plan.assign_home.contains(to) || plan.assign_home.contains(from))
      continue;
    plan.views[to] = from;
    p.buffers[from].last = std::max(src.last, dst.last);
    dead.push_back(to);
  }
  // Plan the arena without the buffers that do not live in it: folded results nobody
  // materialises, values homed in assign slots, and every pinned buffer (inputs, variables,
  // outputs are reached through slots). Their sizes are restored afterwards: copies and
  // slot descriptions still need them, and none of them is addressed in the arena.
  std::vector<bool> outside(p.buffers.size(), false);
  for (const ir::BufferId b : dead) outside[b] = true;
  for (ir::BufferId b = 0; b < p.buffers.size(); ++b) outside[b] = outside[b] || p.buffers[b].pinned();
  std::vector<std::size_t> bytes(p.buffers.size());
  for (ir::BufferId b = 0; b < p.buffers.size(); ++b) {
    bytes[b] = p.buffers[b].bytes;
    if (outside[b]) p.buffers[b].bytes = 0;
  }
  ir::plan_arena(p);
  for (ir::BufferId b = 0; b < p.buffers.size(); ++b) p.buffers[b].bytes = bytes[b];
  for (const auto& [view, of] : plan.views) p.buffers[view].offset = p.buffers[of].offset;
  plan.outside = std::move(outside);
  return plan;
}

}  // namespace kiln::codegen::detail
