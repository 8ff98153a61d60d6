// Appends new nodes to a Graph on behalf of one source location. Autodiff and the
// optimizer update build hundreds of nodes; each must carry the span and layer-expansion
// chain of what it was derived from (so a NaN or a shape bug in the backward pass still
// points at a `.kiln` line), and its type must come from the op's own shape rule, never
// be guessed by the caller. A rule that builds an ill-typed node is a bug in Kiln, so
// emit throws std::logic_error rather than returning a user diagnostic.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "compiler/ir/graph.h"

namespace kiln::autodiff {

// Attributes from name/value pairs: make_attrs({{"axes", ints}, {"keepdims", true}}).
ir::Attrs make_attrs(std::initializer_list<std::pair<std::string_view, ir::AttrValue>> items);

// A shape as the int list that shape attributes take (-1 = the batch dimension).
std::vector<std::int64_t> shape_ints(const ir::Shape& shape);

class Emitter {
 public:
  Emitter(ir::Graph& graph, Span span, std::vector<ir::ExpansionFrame> expansion,
          const ir::OpRegistry& ops = ir::core_ops());
  // Takes the location of an existing node.
  Emitter(ir::Graph& graph, ir::ValueId located_like, const ir::OpRegistry& ops = ir::core_ops());

  ir::Graph& graph() { return graph_; }
  // By value: a reference into the graph would dangle once a node is appended.
  ir::TensorType type_of(ir::ValueId v) const { return graph_.node(v).type; }

  // Appends `op` with default attributes filled in and the type its shape rule gives.
  ir::ValueId emit(std::string_view op, std::vector<ir::ValueId> operands, ir::Attrs attrs = {}, std::string name = {});

  // A scalar constant.
  ir::ValueId scalar(double value, ir::DType dtype);
  // A tensor of `type` filled with `value`: `full` for static shapes, a broadcast scalar when
  // the shape holds the batch dimension (whose size only the executor knows).
  ir::ValueId filled(double value, const ir::TensorType& type);
  // Reshapes `v` to `shape` (no node when it already has that shape).
  ir::ValueId reshape(ir::ValueId v, const ir::Shape& shape);
  // Sums a broadcast result back to the shape of the operand that was broadcast: over the
  // leading axes the operand lacks and the axes where it has size 1.
  ir::ValueId sum_to(ir::ValueId v, const ir::TensorType& target);
  // The batch size at run time as a scalar of `dtype` (a sum of ones over the batch axis).
  ir::ValueId batch_size(ir::DType dtype);

 private:
  ir::Graph& graph_;
  Span span_;
  std::vector<ir::ExpansionFrame> expansion_;
  const ir::OpRegistry& ops_;
};

}  // namespace kiln::autodiff
