// What an expression evaluates to during lowering: a tensor in the graph being built, or a
// compile-time constant (attributes, shape symbols, folded arithmetic). kError poisons a
// value after a reported error, so one mistake is reported once, not at every use.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compiler/ir/graph.h"
#include "compiler/syntax/source.h"

namespace kiln::sema {

struct Value {
  enum class Kind : std::uint8_t { kError, kTensor, kInt, kFloat, kBool, kString, kList, kBatch, kTuple };
  Kind kind = Kind::kError;
  ir::ValueId tensor = 0;
  std::int64_t i = 0;
  double f = 0;
  bool b = false;
  std::string s;
  std::vector<Value> items;  // kList, kTuple
  Span span;

  static Value error() { return Value{}; }
  static Value of_tensor(ir::ValueId id, Span span) {
    Value v;
    v.kind = Kind::kTensor;
    v.tensor = id;
    v.span = span;
    return v;
  }
  static Value of_int(std::int64_t n, Span span = {}) {
    Value v;
    v.kind = Kind::kInt;
    v.i = n;
    v.f = static_cast<double>(n);
    v.span = span;
    return v;
  }
  static Value of_float(double x, Span span = {}) {
    Value v;
    v.kind = Kind::kFloat;
    v.f = x;
    v.span = span;
    return v;
  }
  static Value of_bool(bool x, Span span = {}) {
    Value v;
    v.kind = Kind::kBool;
    v.b = x;
    v.span = span;
    return v;
  }
  static Value of_string(std::string x, Span span = {}) {
    Value v;
    v.kind = Kind::kString;
    v.s = std::move(x);
    v.span = span;
    return v;
  }
  static Value of_batch(Span span = {}) {
    Value v;
    v.kind = Kind::kBatch;
    v.span = span;
    return v;
  }

  bool is_error() const { return kind == Kind::kError; }
  bool is_tensor() const { return kind == Kind::kTensor; }
  bool is_number() const { return kind == Kind::kInt || kind == Kind::kFloat; }
  bool is_constant() const { return !is_error() && !is_tensor() && kind != Kind::kTuple; }
};

// "a tensor f32[batch, 10]", "an int (3)", "a float (0.5)", ... for messages.
std::string describe_value(const Value& v, const ir::Graph& graph);
// A number as a person would write it: 0.5, 1e-06, 3.
std::string format_number(double x);

}  // namespace kiln::sema
