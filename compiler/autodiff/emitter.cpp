// Node construction shared by the gradient rules and the optimizer update.
#include "compiler/autodiff/emitter.h"

#include <fmt/format.h>

#include <stdexcept>

namespace kiln::autodiff {

ir::Attrs make_attrs(std::initializer_list<std::pair<std::string_view, ir::AttrValue>> items) {
  ir::Attrs attrs;
  for (const auto& [name, value] : items) attrs.set(std::string(name), value);
  return attrs;
}

std::vector<std::int64_t> shape_ints(const ir::Shape& shape) {
  std::vector<std::int64_t> ints;
  ints.reserve(shape.rank());
  for (const ir::Dim& d : shape.dims) ints.push_back(d.size);  // Dim::kBatch is already -1
  return ints;
}

Emitter::Emitter(ir::Graph& graph, Span span, std::vector<ir::ExpansionFrame> expansion, const ir::OpRegistry& ops)
    : graph_(graph), span_(span), expansion_(std::move(expansion)), ops_(ops) {}

Emitter::Emitter(ir::Graph& graph, ir::ValueId located_like, const ir::OpRegistry& ops)
    : Emitter(graph, graph.node(located_like).span, graph.node(located_like).expansion, ops) {}

ir::ValueId Emitter::emit(std::string_view op_name, std::vector<ir::ValueId> operands, ir::Attrs attrs,
                          std::string name) {
  const ir::OpInfo& op = ops_.get(ops_.id_of(op_name));
  ir::fill_default_attrs(op, attrs);
  std::vector<ir::TensorType> types;
  types.reserve(operands.size());
  for (const ir::ValueId v : operands) types.push_back(graph_.node(v).type);
  const ir::ShapeResult result = op.shape_rule(types, attrs);
  if (!result.type) {
    std::string operand_types;
    for (const ir::TensorType& t : types) operand_types += (operand_types.empty() ? "" : ", ") + t.to_string();
    throw std::logic_error(fmt::format("autodiff built an ill-typed {}({}): {}", op_name, operand_types, result.error));
  }
  ir::Node node;
  node.op = op.id;
  node.operands = std::move(operands);
  node.attrs = std::move(attrs);
  node.type = *result.type;
  node.name = std::move(name);
  node.span = span_;
  node.expansion = expansion_;
  return graph_.add(std::move(node));
}

ir::ValueId Emitter::scalar(double value, ir::DType dtype) {
  return emit(
      "constant", {},
      make_attrs(
          {{"value", value}, {"dtype", std::string(ir::dtype_name(dtype))}, {"shape", std::vector<std::int64_t>{}}}));
}

ir::ValueId Emitter::filled(double value, const ir::TensorType& type) {
  if (type.shape.rank() == 0) return scalar(value, type.dtype);
  if (type.shape.has_batch()) {
    return emit("broadcast_to", {scalar(value, type.dtype)}, make_attrs({{"shape", shape_ints(type.shape)}}));
  }
  return emit(
      "full", {},
      make_attrs(
          {{"shape", shape_ints(type.shape)}, {"value", value}, {"dtype", std::string(ir::dtype_name(type.dtype))}}));
}

ir::ValueId Emitter::reshape(ir::ValueId v, const ir::Shape& shape) {
  if (type_of(v).shape == shape) return v;
  return emit("reshape", {v}, make_attrs({{"shape", shape_ints(shape)}}));
}

ir::ValueId Emitter::sum_to(ir::ValueId v, const ir::TensorType& target) {
  const ir::Shape from = type_of(v).shape;
  const ir::Shape& to = target.shape;
  if (from == to) return v;
  if (from.rank() < to.rank()) {
    throw std::logic_error(fmt::format("autodiff: cannot sum {} to {}", from.to_string(), to.to_string()));
  }
  const std::size_t lead = from.rank() - to.rank();
  std::vector<std::int64_t> axes;
  for (std::size_t i = 0; i < from.rank(); ++i) {
    if (i < lead || (to.dims[i - lead] == ir::Dim::of(1) && from.dims[i] != ir::Dim::of(1))) {
      axes.push_back(static_cast<std::int64_t>(i));
    }
  }
  ir::ValueId summed = v;
  if (!axes.empty()) summed = emit("reduce_sum", {v}, make_attrs({{"axes", axes}, {"keepdims", false}}));
  return reshape(summed, to);
}

ir::ValueId Emitter::batch_size(ir::DType dtype) {
  const ir::ValueId ones =
      emit("broadcast_to", {scalar(1, dtype)}, make_attrs({{"shape", std::vector<std::int64_t>{ir::Dim::kBatch}}}));
  return emit("reduce_sum", {ones}, make_attrs({{"axes", std::vector<std::int64_t>{}}, {"keepdims", false}}));
}

}  // namespace kiln::autodiff
