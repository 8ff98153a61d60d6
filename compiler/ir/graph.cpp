// The Graph container's out-of-line members. Nodes are appended in topological order;
// a node's ValueId is its index, so operands always name earlier nodes (checked by verify).
#include "compiler/ir/graph.h"

namespace kiln::ir {

ValueId Graph::add(Node node) {
  nodes_.push_back(std::move(node));
  return static_cast<ValueId>(nodes_.size() - 1);
}

}  // namespace kiln::ir
