// The op registry: lookup by name and id over the one table of primitive ops, and the
// process-wide registry of core ops, built by an explicit call on first use (never by a
// static initialiser, which static linking can silently drop).
#include <stdexcept>
#include <string>

#include "compiler/ir/ops.h"

namespace kiln::ir {

OpId OpRegistry::add(OpInfo info) {
  if (find(info.name) != nullptr) {
    throw std::logic_error("op registry: duplicate op '" + std::string(info.name) + "'");
  }
  if (ops_.size() > static_cast<std::size_t>(static_cast<OpId>(~OpId{0}))) {
    throw std::logic_error("op registry: too many ops");
  }
  info.id = static_cast<OpId>(ops_.size());
  ops_.push_back(std::move(info));
  return ops_.back().id;
}

const OpInfo* OpRegistry::find(std::string_view name) const {
  for (const OpInfo& op : ops_) {
    if (op.name == name) return &op;
  }
  return nullptr;
}

OpId OpRegistry::id_of(std::string_view name) const {
  const OpInfo* op = find(name);
  if (op == nullptr) throw std::logic_error("op registry: unknown op '" + std::string(name) + "'");
  return op->id;
}

const OpRegistry& core_ops() {
  static const OpRegistry registry = [] {
    OpRegistry r;
    register_core_ops(r);
    return r;
  }();
  return registry;
}

void fill_default_attrs(const OpInfo& op, Attrs& attrs) {
  for (const AttrSpec& spec : op.attrs) {
    if (spec.default_value && attrs.find(spec.name) == nullptr) attrs.set(std::string(spec.name), *spec.default_value);
  }
}

}  // namespace kiln::ir
