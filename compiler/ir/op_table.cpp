// The table of Kiln's primitive ops: one entry per op with its operands, attributes,
// flags, shape rule, ONNX name and doc line. Adding an op is one entry here (plus its
// rule in shape_rules_*.cpp and, later, its gradient and kernels).
#include "compiler/ir/ops.h"
#include "compiler/ir/shape_rules.h"

namespace kiln::ir {
namespace {

// Attribute specs: required, optional with a default, optional without one.
AttrSpec req(std::string_view name, AttrKind kind) {
  return {name, kind, true, std::nullopt};
}
AttrSpec opt(std::string_view name, AttrKind kind, AttrValue value) {
  return {name, kind, false, std::move(value)};
}
AttrSpec opt(std::string_view name, AttrKind kind) {
  return {name, kind, false, std::nullopt};
}

AttrValue int_v(std::int64_t v) {
  return v;
}
AttrValue float_v(double v) {
  return v;
}
AttrValue bool_v(bool v) {
  return v;
}
AttrValue str_v(std::string v) {
  return v;
}
AttrValue ints_v(std::vector<std::int64_t> v) {
  return v;
}

constexpr auto kInt = AttrKind::kInt;
constexpr auto kFloat = AttrKind::kFloat;
constexpr auto kBool = AttrKind::kBool;
constexpr auto kString = AttrKind::kString;
constexpr auto kInts = AttrKind::kInts;
constexpr auto kDTypeAttr = AttrKind::kDType;

constexpr std::uint32_t kUnary = kElementwise | kDifferentiable | kSurface;

struct Entry {
  std::string_view name;
  std::vector<std::string_view> operands;
  std::vector<AttrSpec> attrs;
  std::uint32_t flags;
  ShapeRule rule;
  std::string_view onnx;
  std::string_view doc;
  bool variadic = false;
};

void add(OpRegistry& registry, Entry e) {
  OpInfo info;
  info.name = e.name;
  info.operands = std::move(e.operands);
  info.variadic = e.variadic;
  info.attrs = std::move(e.attrs);
  info.flags = e.flags;
  info.shape_rule = std::move(e.rule);
  info.onnx_name = e.onnx;
  info.doc = e.doc;
  registry.add(std::move(info));
}

void register_sources(OpRegistry& r) {
  add(r, {"input",
          {},
          {req("name", kString), opt("dtype", kDTypeAttr, str_v("f32")), req("shape", kInts),
           opt("label", kBool, bool_v(false))},
          kSource,
          rules::input_rule(),
          "",
          "a model input fed at run time (label=true: a training label); shape -1 is the batch dimension"});
  add(r, {"parameter",
          {"init"},
          {req("name", kString)},
          kSource,
          rules::init_rule("parameter"),
          "",
          "a trainable weight, initialised from `init` and saved in checkpoints"});
  add(r, {"state",
          {"init"},
          {req("name", kString)},
          kSource,
          rules::init_rule("state"),
          "",
          "non-trained state kept across steps (optimizer moments, running statistics)"});
  add(r, {"constant",
          {},
          {req("value", kFloat), opt("dtype", kDTypeAttr, str_v("f32")), opt("shape", kInts, ints_v({}))},
          kSource,
          rules::constant_rule(),
          "Constant",
          "a tensor filled with one scalar value"});
  add(r, {"assign_state",
          {"state", "value"},
          {},
          kSideEffect,
          rules::assign_state_rule(),
          "",
          "writes `value` into a state, or a parameter (the optimizer update), for the next step; yields the target"});
}

void register_random(OpRegistry& r) {
  const std::uint32_t random = kRandom | kSurface;
  add(r, {"random_uniform",
          {},
          {req("shape", kInts), opt("low", kFloat, float_v(0)), opt("high", kFloat, float_v(1)),
           opt("dtype", kDTypeAttr, str_v("f32")), opt("stream", kInt, int_v(0))},
          random,
          rules::random_rule("random_uniform"),
          "RandomUniform",
          "uniform samples in [low, high)"});
  add(r, {"random_normal",
          {},
          {req("shape", kInts), opt("mean", kFloat, float_v(0)), opt("stddev", kFloat, float_v(1)),
           opt("dtype", kDTypeAttr, str_v("f32")), opt("stream", kInt, int_v(0))},
          random,
          rules::random_rule("random_normal"),
          "RandomNormal",
          "normal samples with mean and stddev"});
  add(r, {"random_uniform_like",
          {"x"},
          {opt("low", kFloat, float_v(0)), opt("high", kFloat, float_v(1)), opt("stream", kInt, int_v(0))},
          random,
          rules::random_like_rule(),
          "RandomUniformLike",
          "uniform samples in [low, high) shaped like x, of its float type (f32 for integer x): dropout masks"});
  add(r, {"full",
          {},
          {req("shape", kInts), opt("value", kFloat, float_v(0)), opt("dtype", kDTypeAttr, str_v("f32"))},
          kSurface,
          rules::random_rule("full"),
          "ConstantOfShape",
          "a tensor of the given shape filled with value"});
}

void register_elementwise(OpRegistry& r) {
  add(r, {"neg", {"x"}, {}, kUnary, rules::unary_rule("neg", true), "Neg", "-x"});
  add(r, {"abs", {"x"}, {}, kUnary, rules::unary_rule("abs", true), "Abs", "|x|"});
  add(r, {"exp", {"x"}, {}, kUnary, rules::unary_rule("exp", false), "Exp", "e^x"});
  add(r, {"log", {"x"}, {}, kUnary, rules::unary_rule("log", false), "Log", "natural logarithm"});
  add(r, {"sqrt", {"x"}, {}, kUnary, rules::unary_rule("sqrt", false), "Sqrt", "square root"});
  add(r, {"tanh", {"x"}, {}, kUnary, rules::unary_rule("tanh", false), "Tanh", "hyperbolic tangent"});
  add(r, {"sigmoid", {"x"}, {}, kUnary, rules::unary_rule("sigmoid", false), "Sigmoid", "1 / (1 + e^-x)"});
  add(r, {"relu", {"x"}, {}, kUnary, rules::unary_rule("relu", false), "Relu", "max(x, 0)"});
  add(r,
      {"cast", {"x"}, {req("dtype", kDTypeAttr)}, kUnary, rules::cast_rule(), "Cast", "converts x to another dtype"});

  const std::uint32_t binary = kElementwise | kDifferentiable | kSurface;
  add(r, {"add", {"a", "b"}, {}, binary, rules::binary_rule("add"), "Add", "a + b, broadcasting"});
  add(r, {"sub", {"a", "b"}, {}, binary, rules::binary_rule("sub"), "Sub", "a - b, broadcasting"});
  add(r, {"mul", {"a", "b"}, {}, binary, rules::binary_rule("mul"), "Mul", "a * b, broadcasting"});
  add(r, {"div", {"a", "b"}, {}, binary, rules::binary_rule("div"), "Div", "a / b, broadcasting"});
  add(r, {"pow", {"a", "b"}, {}, binary, rules::binary_rule("pow"), "Pow", "a ^ b, broadcasting"});
  add(r, {"maximum", {"a", "b"}, {}, binary, rules::binary_rule("maximum"), "Max", "elementwise max, broadcasting"});
  add(r, {"minimum", {"a", "b"}, {}, binary, rules::binary_rule("minimum"), "Min", "elementwise min, broadcasting"});

  const std::uint32_t compare = kElementwise | kSurface;
  add(r, {"less", {"a", "b"}, {}, compare, rules::compare_rule("less"), "Less", "a < b as bool"});
  add(r, {"less_equal", {"a", "b"}, {}, compare, rules::compare_rule("less_equal"), "LessOrEqual", "a <= b as bool"});
  add(r, {"greater", {"a", "b"}, {}, compare, rules::compare_rule("greater"), "Greater", "a > b as bool"});
  add(r, {"greater_equal",
          {"a", "b"},
          {},
          compare,
          rules::compare_rule("greater_equal"),
          "GreaterOrEqual",
          "a >= b as bool"});
  add(r, {"equal", {"a", "b"}, {}, compare, rules::compare_rule("equal"), "Equal", "a == b as bool"});
  add(r, {"not_equal", {"a", "b"}, {}, compare, rules::compare_rule("not_equal"), "", "a != b as bool"});

  add(r, {"select",
          {"cond", "a", "b"},
          {},
          kElementwise | kDifferentiable | kSurface,
          rules::select_rule(),
          "Where",
          "a where cond is true, else b, broadcasting"});
}

void register_reductions_and_layout(OpRegistry& r) {
  const std::uint32_t diff = kDifferentiable | kSurface;
  const auto reduce_attrs = [] {
    return std::vector<AttrSpec>{opt("axes", kInts, ints_v({})), opt("keepdims", kBool, bool_v(false))};
  };
  add(r, {"reduce_sum",
          {"x"},
          reduce_attrs(),
          diff,
          rules::reduce_rule("reduce_sum", false),
          "ReduceSum",
          "sum over axes (all when empty)"});
  add(r, {"reduce_mean",
          {"x"},
          reduce_attrs(),
          diff,
          rules::reduce_rule("reduce_mean", true),
          "ReduceMean",
          "mean over axes (all when empty)"});
  add(r, {"reduce_max",
          {"x"},
          reduce_attrs(),
          diff,
          rules::reduce_rule("reduce_max", false),
          "ReduceMax",
          "maximum over axes (all when empty)"});
  add(r, {"matmul",
          {"a", "b"},
          {opt("transpose_a", kBool, bool_v(false)), opt("transpose_b", kBool, bool_v(false))},
          diff,
          rules::matmul_rule(),
          "MatMul",
          "batched matrix product [..., m, k] @ [..., k, n]"});
  add(r, {"reshape",
          {"x"},
          {req("shape", kInts)},
          diff,
          rules::reshape_rule(),
          "Reshape",
          "same elements, new shape (-1 = batch)"});
  add(r, {"transpose",
          {"x"},
          {opt("perm", kInts)},
          diff,
          rules::transpose_rule(),
          "Transpose",
          "permutes axes (reverses them by default)"});
  add(r, {"broadcast_to",
          {"x"},
          {req("shape", kInts)},
          diff,
          rules::broadcast_to_rule(),
          "Expand",
          "broadcasts x to a shape (-1 = batch)"});
  add(r, {"slice",
          {"x"},
          {req("axis", kInt), req("start", kInt), req("end", kInt)},
          diff,
          rules::slice_rule(),
          "Slice",
          "elements [start, end) along one static axis"});
  add(r, {"concat",
          {"xs"},
          {opt("axis", kInt, int_v(-1))},
          diff,
          rules::concat_rule(),
          "Concat",
          "joins tensors along an axis",
          true});
}

void register_indexing(OpRegistry& r) {
  add(r, {"gather",
          {"table", "indices"},
          {},
          kDifferentiable | kSurface,
          rules::gather_rule(),
          "Gather",
          "rows of table picked by integer indices (embedding lookup)"});
  add(r, {"scatter_add",
          {"indices", "updates"},
          {req("rows", kInt)},
          kDifferentiable,
          rules::scatter_add_rule(),
          "ScatterElements",
          "sums updates into `rows` rows at indices (gather's gradient)"});
  add(r, {"one_hot",
          {"indices"},
          {req("depth", kInt), opt("dtype", kDTypeAttr, str_v("f32"))},
          kSurface,
          rules::one_hot_rule(),
          "OneHot",
          "one-hot vectors of length depth"});
  add(r, {"argmax",
          {"x"},
          {opt("axis", kInt, int_v(-1))},
          kSurface,
          rules::argmax_rule(),
          "ArgMax",
          "i32 index of the maximum along an axis"});
}

void register_nn(OpRegistry& r) {
  const std::uint32_t diff = kDifferentiable | kSurface;
  const auto conv_attrs = [](std::vector<AttrSpec> first) {
    first.push_back(opt("stride", kInt, int_v(1)));
    first.push_back(opt("padding", kString, str_v("valid")));
    first.push_back(opt("dilation", kInt, int_v(1)));
    return first;
  };
  const auto pool_attrs = [](std::vector<AttrSpec> first) {
    first.push_back(opt("size", kInt, int_v(2)));
    first.push_back(opt("stride", kInt, int_v(0)));
    first.push_back(opt("padding", kString, str_v("valid")));
    return first;
  };
  add(r, {"conv2d",
          {"x", "w"},
          conv_attrs({}),
          diff,
          rules::conv2d_rule(),
          "Conv",
          "2-D convolution of NHWC x with [KH, KW, C, F] filters"});
  add(r, {"conv2d_grad_input",
          {"dy", "w"},
          conv_attrs({req("input_shape", kInts)}),
          kNoFlags,
          rules::conv2d_grad_input_rule(),
          "",
          "conv2d's gradient with respect to its input"});
  add(r, {"conv2d_grad_filter",
          {"x", "dy"},
          conv_attrs({req("filter_shape", kInts)}),
          kNoFlags,
          rules::conv2d_grad_filter_rule(),
          "",
          "conv2d's gradient with respect to its filters"});
  add(r, {"max_pool2d",
          {"x"},
          pool_attrs({}),
          diff,
          rules::pool_rule("max_pool2d"),
          "MaxPool",
          "maximum over size x size windows of NHWC x (stride 0 = size)"});
  add(r, {"avg_pool2d",
          {"x"},
          pool_attrs({}),
          diff,
          rules::pool_rule("avg_pool2d"),
          "AveragePool",
          "mean over size x size windows of NHWC x (stride 0 = size)"});
  add(r, {"max_pool2d_grad",
          {"x", "dy"},
          pool_attrs({}),
          kNoFlags,
          rules::max_pool_grad_rule(),
          "",
          "max_pool2d's gradient: dy routed to each window's maximum"});
  add(r, {"avg_pool2d_grad",
          {"dy"},
          pool_attrs({req("input_shape", kInts)}),
          kNoFlags,
          rules::avg_pool_grad_rule(),
          "",
          "avg_pool2d's gradient: dy spread evenly over each window"});
  add(r, {"softmax",
          {"x"},
          {opt("axis", kInt, int_v(-1))},
          diff,
          rules::softmax_rule("softmax"),
          "Softmax",
          "exp(x) normalised to sum to 1 along an axis"});
  add(r, {"log_softmax",
          {"x"},
          {opt("axis", kInt, int_v(-1))},
          diff,
          rules::softmax_rule("log_softmax"),
          "LogSoftmax",
          "log(softmax(x)), computed stably"});
  add(r, {"softmax_cross_entropy",
          {"logits", "labels"},
          {},
          diff,
          rules::softmax_cross_entropy_rule(),
          "SoftmaxCrossEntropyLoss",
          "per-example loss of logits [..., C] against integer labels [...]"});
  add(r, {"sigmoid_cross_entropy",
          {"logits", "targets"},
          {},
          diff,
          rules::sigmoid_cross_entropy_rule(),
          "",
          "elementwise binary cross-entropy of logits against targets in [0, 1]"});
}

void register_training(OpRegistry& r) {
  add(r, {"sgd_update",
          {"param", "grad", "velocity"},
          {req("lr", kFloat), opt("momentum", kFloat, float_v(0)), opt("nesterov", kBool, bool_v(false)),
           opt("weight_decay", kFloat, float_v(0))},
          kSideEffect,
          rules::optimizer_rule("sgd_update", {"param", "grad", "velocity"}),
          "",
          "one SGD step (with momentum); yields the new param"});
  add(r, {"adam_update",
          {"param", "grad", "m", "v"},
          {req("lr", kFloat), opt("beta1", kFloat, float_v(0.9)), opt("beta2", kFloat, float_v(0.999)),
           opt("eps", kFloat, float_v(1e-8)), opt("weight_decay", kFloat, float_v(0)),
           opt("decoupled", kBool, bool_v(false))},
          kSideEffect,
          rules::optimizer_rule("adam_update", {"param", "grad", "m", "v"}),
          "",
          "one Adam (or AdamW when decoupled) step; yields the new param"});
  add(r, {"if_training",
          {"a", "b"},
          {},
          kDifferentiable | kSurface,
          rules::if_training_rule(),
          "",
          "a in the training graph, b in the inference graph"});
}

}  // namespace

void register_core_ops(OpRegistry& registry) {
  register_sources(registry);
  register_random(registry);
  register_elementwise(registry);
  register_reductions_and_layout(registry);
  register_indexing(registry);
  register_nn(registry);
  register_training(registry);
}

}  // namespace kiln::ir
