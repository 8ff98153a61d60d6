// Tests of the op table: every op's shape rule on a valid case, many failure cases with
// their messages, table-wide invariants (docs, operand names, defaults), and a sweep of
// odd inputs that no rule may crash or throw on.
#include <map>
#include <set>

#include "tests/compiler/ir/helpers.h"

using namespace kiln::ir;
using namespace kiln::ir::test;

namespace {

constexpr std::int64_t b = -1;  // batch

struct Case {
  const char* op;
  std::vector<TensorType> operands;
  Attrs attrs;
  TensorType expected;
};

struct FailCase {
  const char* op;
  std::vector<TensorType> operands;
  Attrs attrs;
  std::string message;  // a part of the expected message
};

ShapeResult infer(const std::string& op, const std::vector<TensorType>& operands, const Attrs& attrs) {
  const OpInfo* info = core_ops().find(op);
  REQUIRE(info != nullptr);
  return info->shape_rule(operands, attrs);
}

std::vector<Case> valid_cases() {
  const Attrs none;
  return {
      {"input", {}, A({{"name", S("x")}, {"dtype", S("f32")}, {"shape", Is({b, 784})}}), F32({b, 784})},
      {"input", {}, A({{"name", S("ids")}, {"dtype", S("i32")}, {"shape", Is({b, 20})}}), I32({b, 20})},
      {"parameter", {F32({784, 256})}, A({{"name", S("h1.w")}}), F32({784, 256})},
      {"state", {F32({10})}, A({{"name", S("opt.m")}}), F32({10})},
      {"constant", {}, A({{"value", F(0.5)}}), F32({})},
      {"constant", {}, A({{"value", F(1)}, {"dtype", S("i64")}, {"shape", Is({2, 3})}}), T(DType::kI64, {2, 3})},
      {"assign_state", {F32({3}), F32({3})}, none, F32({3})},
      {"random_uniform", {}, A({{"shape", Is({b, 10})}}), F32({b, 10})},
      {"random_normal",
       {},
       A({{"shape", Is({3, 4})}, {"dtype", S("f64")}, {"stddev", F(0.1)}}),
       T(DType::kF64, {3, 4})},
      {"random_uniform_like", {T(DType::kF64, {b, 3})}, none, T(DType::kF64, {b, 3})},
      {"random_uniform_like", {T(DType::kI32, {b, 3})}, none, F32({b, 3})},
      {"full", {}, A({{"shape", Is({2})}, {"value", F(1)}, {"dtype", S("i32")}}), I32({2})},
      {"neg", {I32({b, 3})}, none, I32({b, 3})},
      {"abs", {I32({4})}, none, I32({4})},
      {"exp", {F32({b, 10})}, none, F32({b, 10})},
      {"log", {F32({b, 10})}, none, F32({b, 10})},
      {"sqrt", {T(DType::kF64, {2})}, none, T(DType::kF64, {2})},
      {"tanh", {F32({})}, none, F32({})},
      {"sigmoid", {F32({b, 1})}, none, F32({b, 1})},
      {"relu", {F32({b, 256})}, none, F32({b, 256})},
      {"cast", {F32({b, 3})}, A({{"dtype", S("i32")}}), I32({b, 3})},
      {"add", {F32({b, 10}), F32({10})}, none, F32({b, 10})},
      {"sub", {F32({1, 3}), F32({b, 1})}, none, F32({b, 3})},
      {"mul", {F32({}), F32({2, 3})}, none, F32({2, 3})},
      {"div", {F32({b, 10}), F32({b, 1})}, none, F32({b, 10})},
      {"pow", {F32({4, 1, 3}), F32({5, 1})}, none, F32({4, 5, 3})},
      {"maximum", {I32({b}), I32({})}, none, I32({b})},
      {"minimum", {F32({b, 2}), F32({b, 2})}, none, F32({b, 2})},
      {"less", {F32({b, 10}), F32({})}, none, T(DType::kBool, {b, 10})},
      {"less_equal", {I32({3}), I32({3})}, none, T(DType::kBool, {3})},
      {"greater", {F32({b, 1}), F32({4})}, none, T(DType::kBool, {b, 4})},
      {"greater_equal", {F32({2}), F32({2})}, none, T(DType::kBool, {2})},
      {"equal", {I32({b}), I32({b})}, none, T(DType::kBool, {b})},
      {"not_equal", {T(DType::kBool, {2}), T(DType::kBool, {1})}, none, T(DType::kBool, {2})},
      {"select", {T(DType::kBool, {b, 1}), F32({b, 10}), F32({})}, none, F32({b, 10})},
      {"reduce_sum", {F32({b, 10})}, none, F32({})},
      {"reduce_sum", {F32({b, 10})}, A({{"axes", Is({-1})}}), F32({b})},
      {"reduce_sum", {F32({b, 10})}, A({{"axes", Is({1})}, {"keepdims", B(true)}}), F32({b, 1})},
      {"reduce_mean", {F32({b, 10})}, A({{"axes", Is({0})}}), F32({10})},
      {"reduce_max", {F32({2, 3})}, A({{"axes", Is({0, 1})}, {"keepdims", B(true)}}), F32({1, 1})},
      {"matmul", {F32({b, 784}), F32({784, 256})}, none, F32({b, 256})},
      {"matmul", {F32({b, 784}), F32({b, 256})}, A({{"transpose_a", B(true)}}), F32({784, 256})},
      {"matmul", {F32({b, 256}), F32({784, 256})}, A({{"transpose_b", B(true)}}), F32({b, 784})},
      {"matmul", {F32({2, 3, 4}), F32({4, 5})}, none, F32({2, 3, 5})},
      {"matmul", {F32({b, 1, 3, 4}), F32({5, 4, 2})}, none, F32({b, 5, 3, 2})},
      {"matmul", {F32({4}), F32({4, 5})}, none, F32({5})},
      {"matmul", {F32({3, 4}), F32({4})}, none, F32({3})},
      {"matmul", {F32({4}), F32({4})}, none, F32({})},
      {"reshape", {F32({b, 28, 28})}, A({{"shape", Is({b, 784})}}), F32({b, 784})},
      {"reshape", {F32({2, 3})}, A({{"shape", Is({6})}}), F32({6})},
      {"transpose", {F32({2, 3, 4})}, none, F32({4, 3, 2})},
      {"transpose", {F32({b, 3, 4})}, A({{"perm", Is({0, 2, 1})}}), F32({b, 4, 3})},
      {"transpose", {F32({2, 3, 4})}, A({{"perm", Is({-1, 0, 1})}}), F32({4, 2, 3})},
      {"broadcast_to", {F32({1, 10})}, A({{"shape", Is({b, 10})}}), F32({b, 10})},
      {"broadcast_to", {F32({})}, A({{"shape", Is({3})}}), F32({3})},
      {"slice", {F32({b, 10})}, A({{"axis", I(-1)}, {"start", I(2)}, {"end", I(5)}}), F32({b, 3})},
      {"slice", {F32({4, 10})}, A({{"axis", I(0)}, {"start", I(4)}, {"end", I(4)}}), F32({0, 10})},
      {"concat", {F32({b, 3}), F32({b, 5})}, none, F32({b, 8})},
      {"concat", {F32({2, 3}), F32({1, 3}), F32({4, 3})}, A({{"axis", I(0)}}), F32({7, 3})},
      {"concat", {F32({b, 3})}, A({{"axis", I(0)}}), F32({b, 3})},
      {"gather", {F32({1000, 64}), I32({b, 20})}, none, F32({b, 20, 64})},
      {"gather", {F32({10}), T(DType::kI64, {b})}, none, F32({b})},
      {"scatter_add", {I32({b, 20}), F32({b, 20, 64})}, A({{"rows", I(1000)}}), F32({1000, 64})},
      {"one_hot", {I32({b})}, A({{"depth", I(10)}}), F32({b, 10})},
      {"argmax", {F32({b, 10})}, none, I32({b})},
      {"argmax", {F32({b, 10})}, A({{"axis", I(0)}}), I32({10})},
      {"conv2d", {F32({b, 28, 28, 1}), F32({3, 3, 1, 32})}, none, F32({b, 26, 26, 32})},
      {"conv2d",
       {F32({b, 28, 28, 1}), F32({3, 3, 1, 32})},
       A({{"stride", I(2)}, {"padding", S("same")}}),
       F32({b, 14, 14, 32})},
      {"conv2d", {F32({b, 28, 28, 3}), F32({3, 3, 3, 8})}, A({{"dilation", I(2)}}), F32({b, 24, 24, 8})},
      {"conv2d", {F32({b, 7, 7, 3}), F32({3, 3, 3, 8})}, A({{"stride", I(2)}}), F32({b, 3, 3, 8})},
      {"conv2d_grad_input",
       {F32({b, 26, 26, 32}), F32({3, 3, 1, 32})},
       A({{"input_shape", Is({b, 28, 28, 1})}}),
       F32({b, 28, 28, 1})},
      {"conv2d_grad_filter",
       {F32({b, 28, 28, 1}), F32({b, 26, 26, 32})},
       A({{"filter_shape", Is({3, 3, 1, 32})}}),
       F32({3, 3, 1, 32})},
      {"max_pool2d", {F32({b, 26, 26, 32})}, none, F32({b, 13, 13, 32})},
      {"max_pool2d", {F32({b, 27, 27, 4})}, A({{"padding", S("same")}}), F32({b, 14, 14, 4})},
      {"avg_pool2d", {F32({b, 26, 26, 32})}, A({{"size", I(3)}, {"stride", I(1)}}), F32({b, 24, 24, 32})},
      {"max_pool2d_grad", {F32({b, 26, 26, 32}), F32({b, 13, 13, 32})}, none, F32({b, 26, 26, 32})},
      {"avg_pool2d_grad", {F32({b, 13, 13, 32})}, A({{"input_shape", Is({b, 26, 26, 32})}}), F32({b, 26, 26, 32})},
      {"softmax", {F32({b, 10})}, none, F32({b, 10})},
      {"log_softmax", {F32({b, 10})}, A({{"axis", I(0)}}), F32({b, 10})},
      {"softmax_cross_entropy", {F32({b, 10}), I32({b})}, none, F32({b})},
      {"softmax_cross_entropy", {F32({b, 5, 10}), T(DType::kI64, {b, 5})}, none, F32({b, 5})},
      {"sigmoid_cross_entropy", {F32({b, 1}), F32({b, 1})}, none, F32({b, 1})},
      {"sgd_update", {F32({784, 256}), F32({784, 256}), F32({784, 256})}, A({{"lr", F(0.1)}}), F32({784, 256})},
      {"adam_update", {F32({10}), F32({10}), F32({10}), F32({10})}, A({{"lr", F(1e-3)}}), F32({10})},
      {"if_training", {F32({b, 10}), F32({b, 10})}, none, F32({b, 10})},
  };
}

std::vector<FailCase> failure_cases() {
  const Attrs none;
  return {
      {"matmul", {F32({b, 784}), F32({256, 10})}, none, "matmul: inner dimensions differ (784 vs 256)"},
      {"matmul", {F32({b, 784}), F32({b, 10})}, none, "cannot contract the batch dimension"},
      {"matmul", {F32({b, 784}), F32({b, 10})}, A({{"transpose_b", B(true)}}), "inner dimensions differ (784 vs 10)"},
      {"matmul", {F32({3, 4}), I32({4, 5})}, none, "matmul: operand dtypes differ (f32 vs i32)"},
      {"matmul", {F32({}), F32({4, 5})}, none, "rank >= 1"},
      {"matmul", {F32({2, 3, 4}), F32({3, 4, 5})}, none, "leading dimensions [2] and [3] do not broadcast"},
      {"matmul", {F32({3, 4})}, none, "matmul: expects 2 operands, got 1"},
      {"matmul", {T(DType::kBool, {2, 2}), T(DType::kBool, {2, 2})}, none, "numeric"},
      {"add", {F32({b, 10}), F32({3})}, none, "add: shapes [batch, 10] and [3] do not broadcast"},
      {"add", {F32({b}), F32({5})}, none, "do not broadcast"},
      {"add", {F32({3}), I32({3})}, none, "add: operand dtypes differ (f32 vs i32)"},
      {"mul", {T(DType::kBool, {3}), T(DType::kBool, {3})}, none, "mul: operands must be numeric"},
      {"sub", {F32({3}), F32({3}), F32({3})}, none, "sub: expects 2 operands, got 3"},
      {"exp", {I32({3})}, none, "exp: expects a float operand, got i32[3]"},
      {"neg", {T(DType::kBool, {3})}, none, "neg: expects a numeric operand"},
      {"relu", {}, none, "relu: expects 1 operand, got 0"},
      {"cast", {F32({3})}, none, "cast: missing dtype attribute 'dtype'"},
      {"cast", {F32({3})}, A({{"dtype", S("f16")}}), "cast: unknown dtype 'f16'"},
      {"less", {F32({3}), I32({3})}, none, "less: operand dtypes differ"},
      {"equal", {F32({2}), F32({3})}, none, "equal: shapes [2] and [3] do not broadcast"},
      {"select", {F32({3}), F32({3}), F32({3})}, none, "select: condition must be bool, got f32"},
      {"select", {T(DType::kBool, {3}), F32({3}), I32({3})}, none, "select: branch dtypes differ (f32 vs i32)"},
      {"select", {T(DType::kBool, {2}), F32({3}), F32({3})}, none, "select: shapes [2] and [3] do not broadcast"},
      {"reduce_sum", {F32({b, 10})}, A({{"axes", Is({2})}}), "reduce_sum: axis 2 is out of range for rank 2"},
      {"reduce_sum", {F32({b, 10})}, A({{"axes", Is({-3})}}), "axis -3 is out of range"},
      {"reduce_sum", {F32({b, 10})}, A({{"axes", Is({0, -2})}}), "appears twice"},
      {"reduce_mean", {I32({3})}, none, "reduce_mean: expects a float operand"},
      {"reduce_max", {T(DType::kBool, {3})}, none, "reduce_max: expects a numeric operand"},
      {"conv2d",
       {F32({b, 28, 28, 3}), F32({3, 3, 16, 32})},
       none,
       "conv2d: input has 3 channels but the filter expects 16"},
      {"conv2d", {F32({b, 28, 28}), F32({3, 3, 1, 32})}, none, "input must be NHWC (rank 4)"},
      {"conv2d", {F32({b, 28, 28, 1}), F32({3, 3, 1})}, none, "filter must be [KH, KW, C, F]"},
      {"conv2d", {F32({b, 2, 2, 1}), F32({3, 3, 1, 1})}, none, "does not fit the 2x2 input"},
      {"conv2d", {F32({b, 5, 5, 1}), F32({3, 3, 1, 1})}, A({{"dilation", I(3)}}), "does not fit"},
      {"conv2d", {F32({b, 28, 28, 1}), F32({3, 3, 1, 1})}, A({{"padding", S("full")}}), "padding must be"},
      {"conv2d", {F32({b, 28, 28, 1}), F32({3, 3, 1, 1})}, A({{"stride", I(0)}}), "stride must be >= 1"},
      {"conv2d", {F32({b, 28, 28, 1}), F32({3, 3, 1, 1})}, A({{"dilation", I(-2)}}), "dilation must be >= 1"},
      {"conv2d", {F32({2, b, 28, 1}), F32({3, 3, 1, 1})}, none, "must be static"},
      {"conv2d", {F32({b, 0, 28, 1}), F32({3, 3, 1, 1})}, none, "static and positive"},
      {"conv2d", {F32({b, 28, 28, 1}), F32({0, 3, 1, 1})}, none, "filter sizes must be static and positive"},
      {"conv2d", {F32({b, 28, 28, 1}), T(DType::kF64, {3, 3, 1, 1})}, none, "share a float dtype"},
      {"conv2d_grad_input",
       {F32({b, 25, 25, 32}), F32({3, 3, 1, 32})},
       A({{"input_shape", Is({b, 28, 28, 1})}}),
       "dy [batch, 25, 25, 32] does not match the forward output shape [batch, 26, 26, 32]"},
      {"conv2d_grad_input",
       {F32({b, 26, 26, 32}), F32({3, 3, 1, 32})},
       none,
       "missing int list attribute 'input_shape'"},
      {"conv2d_grad_filter",
       {F32({b, 28, 28, 1}), F32({b, 26, 26, 16})},
       A({{"filter_shape", Is({3, 3, 1, 32})}}),
       "does not match the forward output shape"},
      {"conv2d_grad_filter",
       {F32({b, 28, 28, 1}), F32({b, 26, 26, 16})},
       A({{"filter_shape", Is({3, 3, 2, 16})}}),
       "input has 1 channels but the filter expects 2"},
      {"max_pool2d", {F32({b, 28, 28, 1})}, A({{"size", I(0)}}), "max_pool2d: size must be >= 1"},
      {"max_pool2d", {F32({b, 1, 1, 3})}, none, "window 2x2 does not fit the 1x1 input"},
      {"avg_pool2d", {F32({b, 28})}, none, "avg_pool2d: input must be NHWC"},
      {"avg_pool2d", {F32({b, 4, 4, 1})}, A({{"stride", I(-1)}}), "stride must be >= 1 (or 0"},
      {"avg_pool2d", {I32({b, 4, 4, 1})}, none, "expects a float operand"},
      {"max_pool2d_grad", {F32({b, 26, 26, 32}), F32({b, 26, 26, 32})}, none, "does not match the forward output"},
      {"avg_pool2d_grad", {F32({b, 13, 13, 32})}, none, "missing int list attribute 'input_shape'"},
      {"reshape",
       {F32({b, 784})},
       A({{"shape", Is({b, 100})}}),
       "reshape: cannot reshape [batch, 784] (batch x 784 elements) to [batch, 100] (batch x 100 elements)"},
      {"reshape", {F32({b, 10})}, A({{"shape", Is({10})}}), "cannot reshape"},
      {"reshape", {F32({10})}, A({{"shape", Is({b, 10})}}), "cannot reshape"},
      {"reshape", {F32({b, 10})}, A({{"shape", Is({b, b, 10})}}), "at most one dimension may be batch"},
      {"reshape", {F32({10})}, A({{"shape", Is({-3, 10})}}), "reshape: invalid shape [-3, 10]"},
      {"reshape", {F32({10})}, none, "reshape: missing int list attribute 'shape'"},
      {"transpose", {F32({2, 3})}, A({{"perm", Is({0})}}), "has 1 entries but the operand [2, 3] has rank 2"},
      {"transpose", {F32({2, 3})}, A({{"perm", Is({0, 0})}}), "is not a permutation"},
      {"transpose", {F32({2, 3})}, A({{"perm", Is({0, 5})}}), "is not a permutation"},
      {"broadcast_to", {F32({3})}, A({{"shape", Is({4})}}), "broadcast_to: [3] cannot broadcast to [4]"},
      {"broadcast_to", {F32({b, 3})}, A({{"shape", Is({5, 3})}}), "cannot broadcast to [5, 3]"},
      {"broadcast_to", {F32({2, 3})}, A({{"shape", Is({3})}}), "cannot broadcast"},
      {"slice",
       {F32({b, 10})},
       A({{"axis", I(0)}, {"start", I(0)}, {"end", I(1)}}),
       "slice: cannot slice the batch axis of [batch, 10]"},
      {"slice",
       {F32({b, 10})},
       A({{"axis", I(1)}, {"start", I(2)}, {"end", I(11)}}),
       "range [2, 11) is out of bounds for axis 1 of size 10"},
      {"slice", {F32({b, 10})}, A({{"axis", I(1)}, {"start", I(5)}, {"end", I(4)}}), "out of bounds"},
      {"slice", {F32({b, 10})}, A({{"axis", I(1)}, {"start", I(-1)}, {"end", I(4)}}), "out of bounds"},
      {"slice", {F32({b, 10})}, A({{"axis", I(5)}, {"start", I(0)}, {"end", I(4)}}), "axis 5 is out of range"},
      {"slice", {F32({b, 10})}, A({{"axis", I(1)}, {"start", I(0)}}), "missing int attribute 'end'"},
      {"concat", {F32({b, 3}), F32({b, 3})}, A({{"axis", I(0)}}), "concat: cannot concatenate along the batch axis"},
      {"concat", {F32({2, 3}), F32({4, 5})}, A({{"axis", I(0)}}), "differs from operand 0 [2, 3] in dimension 1"},
      {"concat", {F32({2, 3}), I32({2, 3})}, none, "operand 1 has dtype i32 but operand 0 has f32"},
      {"concat", {F32({2, 3}), F32({2, 3, 1})}, none, "has rank 3"},
      {"concat", {}, none, "concat: expects at least one operand"},
      {"concat", {F32({})}, none, "axis -1 is out of range for rank 0"},
      {"gather", {F32({10, 4}), F32({b})}, none, "gather: indices must be integer, got f32[batch]"},
      {"gather", {F32({}), I32({b})}, none, "table must have rank >= 1"},
      {"scatter_add", {I32({b, 20}), F32({b, 21, 64})}, A({{"rows", I(100)}}), "must start with the indices' shape"},
      {"scatter_add", {I32({b, 20}), F32({b})}, A({{"rows", I(100)}}), "must start with"},
      {"scatter_add", {I32({b}), F32({b, 4})}, none, "missing int attribute 'rows'"},
      {"scatter_add", {F32({b}), F32({b, 4})}, A({{"rows", I(3)}}), "indices must be integer"},
      {"one_hot", {F32({b})}, A({{"depth", I(3)}}), "one_hot: indices must be integer"},
      {"one_hot", {I32({b})}, A({{"depth", I(0)}}), "depth must be >= 1, got 0"},
      {"one_hot", {I32({b})}, none, "missing int attribute 'depth'"},
      {"argmax", {F32({b, 10})}, A({{"axis", I(2)}}), "argmax: axis 2 is out of range for rank 2"},
      {"argmax", {F32({})}, none, "out of range for rank 0"},
      {"argmax", {F32({b, 0})}, none, "is empty"},
      {"softmax", {F32({b, 10})}, A({{"axis", I(2)}}), "softmax: axis 2 is out of range"},
      {"log_softmax", {I32({3})}, none, "expects a float operand"},
      {"softmax_cross_entropy",
       {F32({b, 10}), I32({b, 1})},
       none,
       "labels [batch, 1] must have the logits' shape [batch, 10] without its class dimension, i.e. [batch]"},
      {"softmax_cross_entropy", {F32({b, 10}), F32({b})}, none, "labels must be integer class ids"},
      {"softmax_cross_entropy", {F32({}), I32({})}, none, "logits must be float [..., classes]"},
      {"softmax_cross_entropy", {F32({10, b}), I32({10})}, none, "must be static and positive"},
      {"sigmoid_cross_entropy", {F32({b, 1}), F32({b, 2})}, none, "same float type"},
      {"sgd_update", {F32({3}), F32({3}), F32({4})}, A({{"lr", F(0.1)}}), "sgd_update: velocity has type f32[4]"},
      {"sgd_update", {F32({3}), F32({3}), F32({3})}, none, "missing float attribute 'lr'"},
      {"adam_update", {F32({3}), F32({3}), T(DType::kF64, {3}), F32({3})}, A({{"lr", F(0.1)}}), "m has type f64[3]"},
      {"adam_update", {I32({3}), I32({3}), I32({3}), I32({3})}, A({{"lr", F(0.1)}}), "param must be float"},
      {"if_training", {F32({b, 10}), F32({b, 11})}, none, "if_training: both branches must have the same type"},
      {"assign_state", {F32({3}), F32({4})}, none, "assign_state: value of type f32[4] does not match state"},
      {"input", {}, A({{"shape", Is({b, 3})}}), "input: missing string attribute 'name'"},
      {"input", {}, A({{"name", S("x")}}), "input: missing int list attribute 'shape'"},
      {"input", {}, A({{"name", S("x")}, {"shape", Is({3})}, {"dtype", S("float")}}), "unknown dtype 'float'"},
      {"input", {}, A({{"name", S("x")}, {"shape", Is({-2})}}), "invalid shape [-2]"},
      {"constant", {}, none, "constant: missing float attribute 'value'"},
      {"random_uniform", {}, none, "random_uniform: missing int list attribute 'shape'"},
      {"random_uniform", {}, A({{"shape", Is({3})}, {"dtype", S("i32")}}), "dtype must be f32 or f64"},
      {"random_uniform", {}, A({{"shape", Is({3})}, {"low", F(2)}, {"high", F(1)}}), "high must not be below low"},
      {"random_normal", {}, A({{"shape", Is({3})}, {"stddev", F(-1)}}), "stddev must not be negative"},
      {"full", {F32({3})}, A({{"shape", Is({3})}}), "full: expects 0 operands, got 1"},
      {"parameter", {}, A({{"name", S("w")}}), "parameter: expects 1 operand, got 0"},
      {"state", {F32({3})}, none, "state: missing string attribute 'name'"},
  };
}

}  // namespace

TEST_CASE("every op infers the expected type on a valid case", "[ir][ops]") {
  std::set<std::string> covered;
  for (const Case& c : valid_cases()) {
    INFO("op " << c.op << " expecting " << c.expected.to_string());
    const ShapeResult result = infer(c.op, c.operands, c.attrs);
    INFO("error: " << result.error);
    REQUIRE(result.type.has_value());
    CHECK(result.type->to_string() == c.expected.to_string());
    CHECK(result.error.empty());
    // The rule's own fallbacks agree with the table's declared defaults.
    Attrs filled = c.attrs;
    fill_default_attrs(*core_ops().find(c.op), filled);
    const ShapeResult again = infer(c.op, c.operands, filled);
    REQUIRE(again.type.has_value());
    CHECK(*again.type == *result.type);
    covered.insert(c.op);
  }
  for (const OpInfo& op : core_ops().all()) {
    INFO("op without a valid shape case: " << op.name);
    CHECK(covered.count(std::string(op.name)) == 1);
  }
}

TEST_CASE("shape rules reject bad operands with a clear message", "[ir][ops]") {
  for (const FailCase& c : failure_cases()) {
    INFO("op " << c.op << ", expecting a message containing: " << c.message);
    const ShapeResult result = infer(c.op, c.operands, c.attrs);
    CHECK_FALSE(result.type.has_value());
    INFO("got: " << result.error);
    CHECK(contains(result.error, c.message));
    CHECK(result.error.rfind(std::string(c.op) + ": ", 0) == 0);
  }
}

TEST_CASE("no shape rule crashes or throws on odd inputs", "[ir][ops]") {
  const std::vector<TensorType> types = {
      F32({}),
      F32({0}),
      F32({b}),
      F32({b, b}),
      I32({b, 3}),
      T(DType::kBool, {1}),
      F32({1, 1, 1, 1}),
      F32({b, 0, 0, 0}),
      F32({3, 3, 0, 2}),
      T(DType::kI64, {}),
      F32({INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX}),
  };
  const std::vector<Attrs> attr_sets = {
      Attrs{},
      A({{"axis", I(-100)}, {"axes", Is({100, -100})}, {"perm", Is({9, -9})}, {"shape", Is({-5})}}),
      A({{"axis", I(0)}, {"start", I(0)}, {"end", I(0)}, {"shape", Is({b, b})}, {"rows", I(-7)}, {"depth", I(-1)}}),
      A({{"stride", I(0)},
         {"size", I(0)},
         {"dilation", I(0)},
         {"padding", S("")},
         {"input_shape", Is({})},
         {"filter_shape", Is({b, b, b, b})}}),
      A({{"stride", I(INT64_MAX)},
         {"size", I(INT64_MAX)},
         {"dilation", I(INT64_MAX)},
         {"padding", S("same")},
         {"input_shape", Is({1, 1, 1, 1})},
         {"filter_shape", Is({1, 1, 1, 1})}}),
      A({{"name", I(3)},
         {"dtype", I(1)},
         {"value", S("x")},
         {"lr", B(true)},
         {"shape", S("[]")},
         {"axes", F(1)},
         {"transpose_a", I(1)}}),
  };
  std::size_t calls = 0;
  for (const OpInfo& op : core_ops().all()) {
    for (const Attrs& attrs : attr_sets) {
      for (std::size_t n = 0; n <= 4; ++n) {
        // A few operand lists of length n drawn from `types` in a fixed pattern.
        for (std::size_t start = 0; start < types.size(); ++start) {
          std::vector<TensorType> operands;
          for (std::size_t i = 0; i < n; ++i) operands.push_back(types[(start + i * 3) % types.size()]);
          INFO("op " << op.name << " with " << n << " operands from " << start);
          ShapeResult result;
          REQUIRE_NOTHROW(result = op.shape_rule(operands, attrs));
          if (!result.type) CHECK(result.error.rfind(std::string(op.name) + ": ", 0) == 0);
          ++calls;
        }
      }
    }
  }
  CHECK(calls > 1000);
}

TEST_CASE("the table is complete and consistent", "[ir][ops]") {
  const std::set<std::string> not_surface = {"input",
                                             "parameter",
                                             "state",
                                             "constant",
                                             "assign_state",
                                             "conv2d_grad_input",
                                             "conv2d_grad_filter",
                                             "max_pool2d_grad",
                                             "avg_pool2d_grad",
                                             "scatter_add",
                                             "sgd_update",
                                             "adam_update"};
  const auto& ops = core_ops().all();
  CHECK(ops.size() == 59);
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const OpInfo& op = ops[i];
    INFO("op " << op.name);
    CHECK(op.id == i);
    CHECK(core_ops().id_of(op.name) == op.id);
    CHECK_FALSE(op.doc.empty());
    CHECK(static_cast<bool>(op.shape_rule));
    CHECK(op.has(kSurface) == (not_surface.count(std::string(op.name)) == 0));
    std::set<std::string_view> names;
    for (const std::string_view operand : op.operands) {
      CHECK_FALSE(operand.empty());
      CHECK(names.insert(operand).second);
    }
    for (const AttrSpec& spec : op.attrs) {
      INFO("attribute " << spec.name);
      CHECK(names.insert(spec.name).second);  // operand and attribute names share `.kiln` keywords
      CHECK_FALSE((spec.required && spec.default_value.has_value()));
      if (spec.default_value) {
        const AttrValue& v = *spec.default_value;
        switch (spec.kind) {
          case AttrKind::kInt: CHECK(std::holds_alternative<std::int64_t>(v)); break;
          case AttrKind::kFloat: CHECK(std::holds_alternative<double>(v)); break;
          case AttrKind::kBool: CHECK(std::holds_alternative<bool>(v)); break;
          case AttrKind::kString: CHECK(std::holds_alternative<std::string>(v)); break;
          case AttrKind::kInts: CHECK(std::holds_alternative<std::vector<std::int64_t>>(v)); break;
          case AttrKind::kFloats: CHECK(std::holds_alternative<std::vector<double>>(v)); break;
          case AttrKind::kDType: CHECK(parse_dtype(std::get<std::string>(v)).has_value()); break;
        }
      }
    }
  }
  CHECK(core_ops().find("concat")->variadic);
  CHECK(core_ops().find("matmul")->operands == std::vector<std::string_view>{"a", "b"});
  CHECK(core_ops().find("softmax_cross_entropy")->onnx_name == "SoftmaxCrossEntropyLoss");
  CHECK(core_ops().find("assign_state")->has(kSideEffect));
  CHECK(core_ops().find("random_normal")->has(kRandom));
  CHECK(core_ops().find("add")->has(kElementwise));
  CHECK(core_ops().find("parameter")->has(kSource));
}

TEST_CASE("the registry rejects duplicates and unknown names", "[ir][ops]") {
  OpRegistry registry;
  OpInfo first;
  first.name = "twice";
  first.doc = "test op";
  CHECK(registry.add(first) == 0);
  OpInfo other;
  other.name = "other";
  CHECK(registry.add(other) == 1);
  CHECK(registry.get(1).id == 1);
  CHECK_THROWS_AS(registry.add(first), std::logic_error);
  CHECK(registry.all().size() == 2);
  CHECK(registry.find("twice") == &registry.get(0));
  CHECK(registry.find("nope") == nullptr);
  CHECK_THROWS_AS(registry.id_of("nope"), std::logic_error);
  // Registering the core ops twice into one registry is a programming error too.
  OpRegistry core;
  register_core_ops(core);
  CHECK_THROWS_AS(register_core_ops(core), std::logic_error);
  CHECK(&core_ops() == &core_ops());
}
