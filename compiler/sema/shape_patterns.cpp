// Matching shape patterns (`f32[..., n]`) against tensor types, binding shape symbols.
// This is where most shape errors of a model are caught: at the layer call, with the
// argument and the dimension named.
#include <cstdio>
#include <string>

#include "compiler/sema/sema_internal.h"

namespace kiln::sema::detail {
namespace {

std::string dim_text(const ir::Dim& d) {
  return d.is_batch() ? "batch" : std::to_string(d.size);
}

std::string dims_text(const std::vector<ir::Dim>& dims) {
  std::string s = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + dim_text(dims[i]);
  return s + "]";
}

bool match_dim(const ast::DimPattern& p, const ir::Dim& actual, std::size_t index,
               const std::map<std::string, Value>& known, PatternBindings& b, std::string& why) {
  auto fail = [&](const std::string& expected) {
    why = "dimension " + std::to_string(index) + " is " + dim_text(actual) + ", expected " + expected;
    return false;
  };
  switch (p.kind) {
    case ast::DimPattern::Kind::kInt:
      if (actual.is_batch() || actual.size != p.value) return fail(std::to_string(p.value));
      return true;
    case ast::DimPattern::Kind::kEllipsis: return true;
    case ast::DimPattern::Kind::kSymbol: break;
  }
  if (auto it = b.symbols.find(p.name); it != b.symbols.end()) {
    if (!(it->second == actual)) return fail(p.name + " = " + dim_text(it->second));
    return true;
  }
  if (auto it = known.find(p.name); it != known.end()) {
    const Value& v = it->second;
    if (v.kind == Value::Kind::kInt) {
      if (actual.is_batch() || actual.size != v.i) return fail(p.name + " = " + std::to_string(v.i));
      return true;
    }
    if (v.kind == Value::Kind::kBatch) {
      if (!actual.is_batch()) return fail(p.name + " = batch");
      return true;
    }
  }
  if (p.name == "batch") {
    if (!actual.is_batch()) return fail("the batch dimension");
    return true;
  }
  b.symbols[p.name] = actual;
  return true;
}

}  // namespace

bool match_tensor_pattern(const ast::TypeExpr& pattern, const ir::TensorType& actual,
                          const std::map<std::string, Value>& known, PatternBindings& b, std::string& why) {
  if (std::string(ir::dtype_name(actual.dtype)) != pattern.dtype) {
    why = "element type is " + std::string(ir::dtype_name(actual.dtype)) + ", expected " + pattern.dtype;
    return false;
  }
  const auto& dims = actual.shape.dims;
  std::size_t ellipsis = pattern.dims.size();
  for (std::size_t i = 0; i < pattern.dims.size(); ++i) {
    if (pattern.dims[i].kind == ast::DimPattern::Kind::kEllipsis) ellipsis = i;
  }
  if (ellipsis == pattern.dims.size()) {
    if (dims.size() != pattern.dims.size()) {
      why = "rank is " + std::to_string(dims.size()) + ", expected " + std::to_string(pattern.dims.size());
      return false;
    }
    for (std::size_t i = 0; i < dims.size(); ++i) {
      if (!match_dim(pattern.dims[i], dims[i], i, known, b, why)) return false;
    }
    return true;
  }
  std::size_t fixed = pattern.dims.size() - 1;
  if (dims.size() < fixed) {
    why = "rank is " + std::to_string(dims.size()) + ", expected at least " + std::to_string(fixed);
    return false;
  }
  std::size_t tail = pattern.dims.size() - ellipsis - 1;
  for (std::size_t i = 0; i < ellipsis; ++i) {
    if (!match_dim(pattern.dims[i], dims[i], i, known, b, why)) return false;
  }
  for (std::size_t k = 0; k < tail; ++k) {
    std::size_t at = dims.size() - tail + k;
    if (!match_dim(pattern.dims[ellipsis + 1 + k], dims[at], at, known, b, why)) return false;
  }
  std::vector<ir::Dim> middle(dims.begin() + static_cast<std::ptrdiff_t>(ellipsis),
                              dims.end() - static_cast<std::ptrdiff_t>(tail));
  if (b.ellipsis && *b.ellipsis != middle) {
    why = "leading dimensions " + dims_text(middle) + " differ from '...' = " + dims_text(*b.ellipsis) +
          " bound by an earlier argument";
    return false;
  }
  b.ellipsis = middle;
  return true;
}

bool is_attribute_type(const std::string& name) {
  return name == "int" || name == "float" || name == "bool" || name == "string" || name == "shape";
}

std::int64_t stable_hash(const std::string& text) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return static_cast<std::int64_t>(h >> 1);  // non-negative
}

}  // namespace kiln::sema::detail

namespace kiln::sema {

std::string format_number(double x) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.15g", x);
  std::string s = buffer;
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s;
}

std::string describe_value(const Value& v, const ir::Graph& graph) {
  switch (v.kind) {
    case Value::Kind::kError: return "an invalid value";
    case Value::Kind::kTensor: return "a tensor " + graph.node(v.tensor).type.to_string();
    case Value::Kind::kInt: return "an int (" + std::to_string(v.i) + ")";
    case Value::Kind::kFloat: return "a float (" + format_number(v.f) + ")";
    case Value::Kind::kBool: return std::string("a bool (") + (v.b ? "true" : "false") + ")";
    case Value::Kind::kString: return "a string";
    case Value::Kind::kList: return "a list";
    case Value::Kind::kBatch: return "the batch dimension";
    case Value::Kind::kTuple: return std::to_string(v.items.size()) + " values";
  }
  return "a value";
}

}  // namespace kiln::sema
