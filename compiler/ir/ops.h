// The op registry: every primitive op of the Graph IR is declared once, in one table
// (op_table.cpp), with its operands, attributes and shape rule. Printers, the verifier,
// sema's builtin calls and (later) autodiff, kernels and backend capability queries all
// read this table. Registration is an explicit call (register_core_ops), never a static
// initialiser.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "compiler/ir/types.h"

namespace kiln::ir {

using OpId = std::uint16_t;

// Attribute values. Integer lists hold shapes, axes and permutations; in a shape list
// Dim::kBatch (-1) stands for the symbolic batch dimension.
using AttrValue = std::variant<std::int64_t, double, bool, std::string, std::vector<std::int64_t>, std::vector<double>>;

enum class AttrKind : std::uint8_t { kInt, kFloat, kBool, kString, kInts, kFloats, kDType };

struct Attr {
  std::string name;
  AttrValue value;
};

// Attributes of one node, kept sorted by name so printing is stable.
class Attrs {
 public:
  void set(std::string name, AttrValue value);
  const AttrValue* find(std::string_view name) const;
  std::int64_t get_int(std::string_view name, std::int64_t fallback = 0) const;
  double get_float(std::string_view name, double fallback = 0) const;
  bool get_bool(std::string_view name, bool fallback = false) const;
  std::string get_string(std::string_view name, std::string fallback = {}) const;
  std::vector<std::int64_t> get_ints(std::string_view name) const;
  const std::vector<Attr>& items() const { return items_; }
  bool operator==(const Attrs& other) const;

 private:
  std::vector<Attr> items_;
};

std::string attr_value_to_string(const AttrValue& value);

struct AttrSpec {
  std::string_view name;
  AttrKind kind;
  bool required = false;
  std::optional<AttrValue> default_value;  // filled in by sema when the call omits it
};

// Result of a shape rule: the output type, or a message for the user
// ("matmul: inner dimensions differ: 784 vs 256").
struct ShapeResult {
  std::optional<TensorType> type;
  std::string error;

  static ShapeResult ok(TensorType t) { return {std::move(t), {}}; }
  static ShapeResult fail(std::string message) { return {std::nullopt, std::move(message)}; }
};

using ShapeRule = std::function<ShapeResult(std::span<const TensorType> operands, const Attrs& attrs)>;

enum OpFlags : std::uint32_t {
  kNoFlags = 0,
  kElementwise = 1u << 0,     // output[i] depends on operand[i] only (after broadcasting)
  kDifferentiable = 1u << 1,  // has (or will have) a gradient rule
  kSideEffect = 1u << 2,      // never removed by DCE (assign_state)
  kSource = 1u << 3,          // input, parameter, state, constant
  kRandom = 1u << 4,          // draws from the seeded counter-based RNG
  kSurface = 1u << 5,         // callable by name from `.kiln` source
};

struct OpInfo {
  OpId id = 0;
  std::string_view name;                   // "matmul"; also the `.kiln` builtin name when kSurface
  std::vector<std::string_view> operands;  // operand names, in order
  bool variadic = false;                   // last operand repeats (concat)
  std::vector<AttrSpec> attrs;
  std::uint32_t flags = kNoFlags;
  ShapeRule shape_rule;
  std::string_view onnx_name;  // "" when none
  std::string_view doc;        // one line, shown by `kiln ops`

  // The rest of an op lives beside its kind, each keyed by the op's name and each with a
  // test that reads this table and fails when an op lacks it: the gradient rule
  // (compiler/autodiff/gradient_rules*.cpp, for kDifferentiable ops) and the reference
  // kernel's adapter (runtime/exec/reference_adapters.cpp, for every op).

  bool has(OpFlags f) const { return (flags & f) != 0; }
};

class OpRegistry {
 public:
  // Adds an op; its id is its index. Throws std::logic_error on a duplicate name
  // (a programming error, found by the registry test).
  OpId add(OpInfo info);
  const OpInfo& get(OpId id) const { return ops_.at(id); }
  const OpInfo* find(std::string_view name) const;
  OpId id_of(std::string_view name) const;  // throws std::logic_error when unknown
  const std::vector<OpInfo>& all() const { return ops_; }

 private:
  std::vector<OpInfo> ops_;
};

// Registers Kiln's primitive ops (op_table.cpp).
void register_core_ops(OpRegistry& registry);

// The process-wide registry with the core ops, built on first use.
const OpRegistry& core_ops();

// Sets every attribute that `attrs` lacks and `op` declares a default for.
void fill_default_attrs(const OpInfo& op, Attrs& attrs);

// Shared shape helpers for rules, sema and tests.
// Numpy broadcasting of two shapes (batch only matches batch or 1).
std::optional<Shape> broadcast_shapes(const Shape& a, const Shape& b);

}  // namespace kiln::ir
