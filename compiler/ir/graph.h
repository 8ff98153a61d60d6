// The Graph IR: a typed dataflow graph of primitive ops with static shapes and one
// symbolic batch dimension. Sema lowers the AST to it; autodiff, folding and fusion
// (later issues) work on it. Values are single-output nodes in topological order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compiler/ir/ops.h"
#include "compiler/ir/types.h"
#include "compiler/syntax/source.h"

namespace kiln::ir {

using ValueId = std::uint32_t;

// One step of the chain of layer expansions that produced a node, outermost first:
// {"nn.dense", span of the call in the model}.
struct ExpansionFrame {
  std::string layer;
  Span call_site;
};

struct Node {
  OpId op = 0;
  std::vector<ValueId> operands;
  Attrs attrs;
  TensorType type;
  std::string name;  // binding or parameter path ("h1.w"); may be empty
  Span span;         // the source text that produced it
  std::vector<ExpansionFrame> expansion;
};

enum class ValueRole : std::uint8_t { kInput, kParameter, kState, kOutput };

struct NamedValue {
  std::string name;
  ValueId value = 0;
};

class Graph {
 public:
  explicit Graph(std::string name = {}) : name_(std::move(name)) {}

  const std::string& name() const { return name_; }
  ValueId add(Node node);
  const Node& node(ValueId id) const { return nodes_.at(id); }
  Node& node(ValueId id) { return nodes_.at(id); }
  const std::vector<Node>& nodes() const { return nodes_; }
  std::size_t size() const { return nodes_.size(); }

  // Registered roles, in declaration order. Inputs, parameters and states are nodes
  // of op input / parameter / state; outputs name any value.
  void add_input(std::string name, ValueId v) { inputs_.push_back({std::move(name), v}); }
  void add_parameter(std::string name, ValueId v) { parameters_.push_back({std::move(name), v}); }
  void add_state(std::string name, ValueId v) { states_.push_back({std::move(name), v}); }
  void add_output(std::string name, ValueId v) { outputs_.push_back({std::move(name), v}); }
  const std::vector<NamedValue>& inputs() const { return inputs_; }
  const std::vector<NamedValue>& parameters() const { return parameters_; }
  const std::vector<NamedValue>& states() const { return states_; }
  const std::vector<NamedValue>& outputs() const { return outputs_; }

 private:
  std::string name_;
  std::vector<Node> nodes_;
  std::vector<NamedValue> inputs_, parameters_, states_, outputs_;
};

// Structural checks: operands defined before use, operand counts and attributes as the
// op table declares them, every node's type equal to its shape rule's result, roles
// pointing at nodes of the right op, unique parameter names. Returns one message per
// problem; empty means valid.
std::vector<std::string> verify(const Graph& graph, const OpRegistry& ops = core_ops());

// Stable, diffable text form, one node per line:
//   %3 = matmul(%0, %2) {transpose_a=false, transpose_b=false} : f32[batch, 256]  # h1 @ model.kiln:7:9
// When `sources` is null, locations are left out.
std::string print_graph(const Graph& graph, const SourceManager* sources = nullptr, const OpRegistry& ops = core_ops());

// Graphviz DOT: one box per node labelled with op, name and type; inputs, parameters and
// outputs styled apart.
std::string graph_to_dot(const Graph& graph, const OpRegistry& ops = core_ops());

}  // namespace kiln::ir
