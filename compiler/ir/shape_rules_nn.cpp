// Shape rules of the indexing ops, matmul, the fused NN kernels (convolution, pooling,
// softmax, losses) and the optimizer update steps. Spatial sizes of convolution and
// pooling are computed once here and reused by their gradient ops' consistency checks.
#include <fmt/format.h>

#include "compiler/ir/shape_rules.h"

namespace kiln::ir::rules {
namespace {

std::string dtype_str(DType d) {
  return std::string(dtype_name(d));
}

ShapeResult gather(Types t, const Attrs&) {
  if (auto bad = check_arity("gather", t, 2)) return *bad;
  const TensorType& table = t[0];
  const TensorType& indices = t[1];
  if (table.shape.rank() == 0) return fail("gather", "table must have rank >= 1, got a scalar");
  if (!is_integer(indices.dtype)) {
    return fail("gather", fmt::format("indices must be integer, got {}", indices.to_string()));
  }
  Shape out = indices.shape;
  out.dims.insert(out.dims.end(), table.shape.dims.begin() + 1, table.shape.dims.end());
  return ShapeResult::ok({table.dtype, out});
}

ShapeResult scatter_add(Types t, const Attrs& attrs) {
  if (auto bad = check_arity("scatter_add", t, 2)) return *bad;
  const TensorType& indices = t[0];
  const TensorType& updates = t[1];
  const auto rows = int_attr(attrs, "rows");
  if (!rows) return ShapeResult::fail(missing_attr("scatter_add", "rows", "int"));
  if (*rows < Dim::kBatch)
    return fail("scatter_add", fmt::format("rows must be >= 0 (or -1 for batch), got {}", *rows));
  if (!is_integer(indices.dtype)) {
    return fail("scatter_add", fmt::format("indices must be integer, got {}", indices.to_string()));
  }
  if (updates.dtype == DType::kBool) return fail("scatter_add", "updates must be numeric, got bool");
  const std::size_t r = indices.shape.rank();
  if (updates.shape.rank() < r ||
      !std::equal(indices.shape.dims.begin(), indices.shape.dims.end(), updates.shape.dims.begin())) {
    return fail("scatter_add", fmt::format("updates {} must start with the indices' shape {}",
                                           updates.shape.to_string(), indices.shape.to_string()));
  }
  Shape out{Dim::of(*rows)};
  out.dims.insert(out.dims.end(), updates.shape.dims.begin() + static_cast<std::ptrdiff_t>(r),
                  updates.shape.dims.end());
  return ShapeResult::ok({updates.dtype, out});
}

std::optional<DType> read_dtype(const Attrs& attrs) {
  return dtype_attr(attrs, "dtype", "f32");
}

ShapeResult one_hot(Types t, const Attrs& attrs) {
  if (auto bad = check_arity("one_hot", t, 1)) return *bad;
  if (!is_integer(t[0].dtype)) return fail("one_hot", fmt::format("indices must be integer, got {}", t[0].to_string()));
  const auto depth = int_attr(attrs, "depth");
  if (!depth) return ShapeResult::fail(missing_attr("one_hot", "depth", "int"));
  if (*depth < 1) return fail("one_hot", fmt::format("depth must be >= 1, got {}", *depth));
  const auto dtype = read_dtype(attrs);
  if (!dtype) return fail("one_hot", fmt::format("unknown dtype '{}'", attrs.get_string("dtype")));
  Shape out = t[0].shape;
  out.dims.push_back(Dim::of(*depth));
  return ShapeResult::ok({*dtype, out});
}

ShapeResult argmax(Types t, const Attrs& attrs) {
  if (auto bad = check_arity("argmax", t, 1)) return *bad;
  const Shape& x = t[0].shape;
  if (t[0].dtype == DType::kBool) return fail("argmax", "operand must be numeric, got bool");
  const std::int64_t axis = attrs.get_int("axis", -1);
  const auto a = normalize_axis(axis, x.rank());
  if (!a) return ShapeResult::fail(axis_error("argmax", axis, x));
  if (x.dims[*a].size == 0) return fail("argmax", fmt::format("axis {} of {} is empty", axis, x.to_string()));
  Shape out = x;
  out.dims.erase(out.dims.begin() + static_cast<std::ptrdiff_t>(*a));
  return ShapeResult::ok({DType::kI32, out});
}

ShapeResult matmul(Types t, const Attrs& attrs) {
  if (auto bad = check_arity("matmul", t, 2)) return *bad;
  const TensorType& a = t[0];
  const TensorType& b = t[1];
  if (a.dtype != b.dtype) {
    return fail("matmul", fmt::format("operand dtypes differ ({} vs {})", dtype_str(a.dtype), dtype_str(b.dtype)));
  }
  if (a.dtype == DType::kBool) return fail("matmul", "operands must be numeric, got bool");
  if (a.shape.rank() == 0 || b.shape.rank() == 0) {
    return fail("matmul",
                fmt::format("operands must have rank >= 1, got {} and {}", a.shape.to_string(), b.shape.to_string()));
  }
  // Numpy: a vector on the left is a row [1, k], on the right a column [k, 1]; the unit
  // dimension is dropped from the result. Transposing a vector changes nothing.
  const bool a_vector = a.shape.rank() == 1;
  const bool b_vector = b.shape.rank() == 1;
  Shape sa = a.shape;
  Shape sb = b.shape;
  if (a_vector) sa.dims.insert(sa.dims.begin(), Dim::of(1));
  if (b_vector) sb.dims.push_back(Dim::of(1));
  const auto swap_last_two = [](Shape& s) { std::swap(s.dims[s.rank() - 1], s.dims[s.rank() - 2]); };
  if (attrs.get_bool("transpose_a", false) && !a_vector) swap_last_two(sa);
  if (attrs.get_bool("transpose_b", false) && !b_vector) swap_last_two(sb);
  const Dim m = sa.dims[sa.rank() - 2];
  const Dim ka = sa.dims[sa.rank() - 1];
  const Dim kb = sb.dims[sb.rank() - 2];
  const Dim n = sb.dims[sb.rank() - 1];
  const std::string operands = fmt::format("{} @ {}", a.shape.to_string(), b.shape.to_string());
  if (ka.is_batch() != kb.is_batch()) {
    return fail("matmul", fmt::format("cannot contract the batch dimension with a static one ({} vs {}) in {}",
                                      dim_to_string(ka), dim_to_string(kb), operands));
  }
  if (ka != kb) {
    return fail("matmul", fmt::format("inner dimensions differ ({} vs {}) in {}", ka.size, kb.size, operands));
  }
  const Shape lead_a(std::vector<Dim>(sa.dims.begin(), sa.dims.end() - 2));
  const Shape lead_b(std::vector<Dim>(sb.dims.begin(), sb.dims.end() - 2));
  auto out = broadcast_shapes(lead_a, lead_b);
  if (!out) {
    return fail("matmul", fmt::format("leading dimensions {} and {} do not broadcast in {}", lead_a.to_string(),
                                      lead_b.to_string(), operands));
  }
  if (!a_vector) out->dims.push_back(m);
  if (!b_vector) out->dims.push_back(n);
  return ShapeResult::ok({a.dtype, *out});
}

// Convolution and pooling attributes, validated once.
struct Window {
  std::int64_t stride = 1;
  std::int64_t dilation = 1;
  bool same = false;
};

std::optional<Window> read_window(std::string_view op, const Attrs& attrs, std::int64_t default_stride,
                                  std::string& error) {
  Window w;
  w.stride = attrs.get_int("stride", default_stride);
  w.dilation = attrs.get_int("dilation", 1);
  const std::string padding = attrs.get_string("padding", "valid");
  if (w.stride < (default_stride == 0 ? 0 : 1)) error = fmt::format("{}: stride must be >= 1, got {}", op, w.stride);
  if (w.dilation < 1) error = fmt::format("{}: dilation must be >= 1, got {}", op, w.dilation);
  if (padding != "valid" && padding != "same") {
    error = fmt::format("{}: padding must be \"valid\" or \"same\", got \"{}\"", op, padding);
  }
  w.same = padding == "same";
  return error.empty() ? std::optional<Window>(w) : std::nullopt;
}

// Output size of one spatial dimension, or nullopt when the window does not fit.
std::optional<std::int64_t> window_out(std::int64_t in, std::int64_t k, const Window& w) {
  if (w.same) return (in - 1) / w.stride + 1;  // ceil(in / stride) for in >= 1
  std::int64_t span = 0;
  if (__builtin_mul_overflow(k - 1, w.dilation, &span) || span >= in) return std::nullopt;
  return (in - span - 1) / w.stride + 1;
}

bool static_positive(const Shape& s, std::size_t from, std::size_t to) {
  for (std::size_t i = from; i < to; ++i) {
    if (s.dims[i].is_batch() || s.dims[i].size < 1) return false;
  }
  return true;
}

// Output shape of conv2d over x [N, H, W, C] with filter [KH, KW, C, F].
ShapeResult conv_shape(std::string_view op, const Shape& x, const Shape& w, const Attrs& attrs) {
  if (x.rank() != 4) return fail(op, fmt::format("input must be NHWC (rank 4), got {}", x.to_string()));
  if (w.rank() != 4) return fail(op, fmt::format("filter must be [KH, KW, C, F] (rank 4), got {}", w.to_string()));
  if (!static_positive(x, 1, 4)) {
    return fail(op, fmt::format("input height, width and channels must be static and positive, got {}", x.to_string()));
  }
  if (!static_positive(w, 0, 4))
    return fail(op, fmt::format("filter sizes must be static and positive, got {}", w.to_string()));
  if (x.dims[3] != w.dims[2]) {
    return fail(op, fmt::format("input has {} channels but the filter expects {} (input {}, filter {})", x.dims[3].size,
                                w.dims[2].size, x.to_string(), w.to_string()));
  }
  std::string error;
  const auto window = read_window(op, attrs, 1, error);
  if (!window) return ShapeResult::fail(error);
  const auto ho = window_out(x.dims[1].size, w.dims[0].size, *window);
  const auto wo = window_out(x.dims[2].size, w.dims[1].size, *window);
  if (!ho || !wo) {
    return fail(op, fmt::format("filter {}x{} (dilation {}) does not fit the {}x{} input with valid padding",
                                w.dims[0].size, w.dims[1].size, window->dilation, x.dims[1].size, x.dims[2].size));
  }
  return ShapeResult::ok({DType::kF32, Shape{x.dims[0], Dim::of(*ho), Dim::of(*wo), w.dims[3]}});
}

ShapeResult check_float_pair(std::string_view op, const TensorType& a, const TensorType& b) {
  if (!is_float(a.dtype) || a.dtype != b.dtype) {
    return fail(op, fmt::format("operands must share a float dtype, got {} and {}", a.to_string(), b.to_string()));
  }
  return ShapeResult::ok(a);
}

ShapeResult conv2d(Types t, const Attrs& attrs) {
  if (auto bad = check_arity("conv2d", t, 2)) return *bad;
  if (auto r = check_float_pair("conv2d", t[0], t[1]); !r.type) return r;
  ShapeResult r = conv_shape("conv2d", t[0].shape, t[1].shape, attrs);
  if (r.type) r.type->dtype = t[0].dtype;
  return r;
}

// Shape of an ints attribute that must be a fully static shape of the given rank.
std::optional<Shape> static_shape_attr(std::string_view op, const Attrs& attrs, std::string_view name,
                                       std::string& error) {
  const auto ints = ints_attr(attrs, name);
  if (!ints) {
    error = missing_attr(op, name, "int list");
    return std::nullopt;
  }
  auto shape = shape_from_ints(*ints);
  if (!shape) error = fmt::format("{}: invalid {} {}", op, name, ints_to_string(*ints));
  return shape;
}

// The gradient ops recompute the forward shape and insist it matches dy's.
ShapeResult check_forward(std::string_view op, const ShapeResult& forward, const TensorType& dy, TensorType result) {
  if (!forward.type) return ShapeResult::fail(fmt::format("{}: {}", op, forward.error));
  if (forward.type->shape != dy.shape) {
    return fail(op, fmt::format("dy {} does not match the forward output shape {}", dy.shape.to_string(),
                                forward.type->shape.to_string()));
  }
  return ShapeResult::ok(std::move(result));
}

ShapeResult conv2d_grad_input(Types t, const Attrs& attrs) {
  if (auto bad = check_arity("conv2d_grad_input", t, 2)) return *bad;
  if (auto r = check_float_pair("conv2d_grad_input", t[0], t[1]); !r.type) return r;
  std::string error;
  const auto input = static_shape_attr("conv2d_grad_input", attrs, "input_shape", error);
  if (!input) return ShapeResult::fail(error);
  return check_forward("conv2d_grad_input", conv_shape("conv2d", *input, t[1].shape, attrs), t[0],
                       {t[0].dtype, *input});
}

ShapeResult conv2d_grad_filter(Types t, const Attrs& attrs) {
  if (auto bad = check_arity("conv2d_grad_filter", t, 2)) return *bad;
  if (auto r = check_float_pair("conv2d_grad_filter", t[0], t[1]); !r.type) return r;
  std::string error;
  const auto filter = static_shape_attr("conv2d_grad_filter", attrs, "filter_shape", error);
  if (!filter) return ShapeResult::fail(error);
  return check_forward("conv2d_grad_filter", conv_shape("conv2d", t[0].shape, *filter, attrs), t[1],
                       {t[0].dtype, *filter});
}

// Output shape of a pooling window over x [N, H, W, C].
ShapeResult pool_shape(std::string_view op, const Shape& x, const Attrs& attrs) {
  if (x.rank() != 4) return fail(op, fmt::format("input must be NHWC (rank 4), got {}", x.to_string()));
  if (!static_positive(x, 1, 3)) {
    return fail(op, fmt::format("input height and width must be static and positive, got {}", x.to_string()));
  }
  const std::int64_t size = attrs.get_int("size", 2);
  if (size < 1) return fail(op, fmt::format("size must be >= 1, got {}", size));
  const std::int64_t stride = attrs.get_int("stride", 0);
  if (stride < 0) return fail(op, fmt::format("stride must be >= 1 (or 0 for the window size), got {}", stride));
  std::string error;
  auto window = read_window(op, attrs, 0, error);
  if (!window) return ShapeResult::fail(error);
  if (window->stride == 0) window->stride = size;
  window->dilation = 1;
  const auto ho = window_out(x.dims[1].size, size, *window);
  const auto wo = window_out(x.dims[2].size, size, *window);
  if (!ho || !wo) {
    return fail(op, fmt::format("window {}x{} does not fit the {}x{} input with valid padding", size, size,
                                x.dims[1].size, x.dims[2].size));
  }
  return ShapeResult::ok({DType::kF32, Shape{x.dims[0], Dim::of(*ho), Dim::of(*wo), x.dims[3]}});
}

ShapeResult max_pool_grad(Types t, const Attrs& attrs) {
  if (auto bad = check_arity("max_pool2d_grad", t, 2)) return *bad;
  if (auto r = check_float_pair("max_pool2d_grad", t[0], t[1]); !r.type) return r;
  return check_forward("max_pool2d_grad", pool_shape("max_pool2d", t[0].shape, attrs), t[1], t[0]);
}

ShapeResult avg_pool_grad(Types t, const Attrs& attrs) {
  if (auto bad = check_arity("avg_pool2d_grad", t, 1)) return *bad;
  if (!is_float(t[0].dtype)) return fail("avg_pool2d_grad", fmt::format("dy must be float, got {}", t[0].to_string()));
  std::string error;
  const auto input = static_shape_attr("avg_pool2d_grad", attrs, "input_shape", error);
  if (!input) return ShapeResult::fail(error);
  return check_forward("avg_pool2d_grad", pool_shape("avg_pool2d", *input, attrs), t[0], {t[0].dtype, *input});
}

ShapeResult softmax_cross_entropy(Types t, const Attrs&) {
  if (auto bad = check_arity("softmax_cross_entropy", t, 2)) return *bad;
  const TensorType& logits = t[0];
  const TensorType& labels = t[1];
  if (!is_float(logits.dtype) || logits.shape.rank() == 0) {
    return fail("softmax_cross_entropy",
                fmt::format("logits must be float [..., classes], got {}", logits.to_string()));
  }
  if (!is_integer(labels.dtype)) {
    return fail("softmax_cross_entropy", fmt::format("labels must be integer class ids, got {}", labels.to_string()));
  }
  const Dim classes = logits.shape.dims.back();
  if (classes.is_batch() || classes.size < 1) {
    return fail("softmax_cross_entropy",
                fmt::format("the class dimension of logits {} must be static and positive", logits.shape.to_string()));
  }
  Shape expected = logits.shape;
  expected.dims.pop_back();
  if (labels.shape != expected) {
    return fail("softmax_cross_entropy",
                fmt::format("labels {} must have the logits' shape {} without its class "
                            "dimension, i.e. {}",
                            labels.shape.to_string(), logits.shape.to_string(), expected.to_string()));
  }
  return ShapeResult::ok({logits.dtype, expected});
}

ShapeResult sigmoid_cross_entropy(Types t, const Attrs&) {
  if (auto bad = check_arity("sigmoid_cross_entropy", t, 2)) return *bad;
  if (!is_float(t[0].dtype) || t[0] != t[1]) {
    return fail("sigmoid_cross_entropy", fmt::format("logits and targets must have the same float type, got {} and {}",
                                                     t[0].to_string(), t[1].to_string()));
  }
  return ShapeResult::ok(t[0]);
}

ShapeResult if_training(Types t, const Attrs&) {
  if (auto bad = check_arity("if_training", t, 2)) return *bad;
  if (t[0] != t[1]) {
    return fail("if_training", fmt::format("both branches must have the same type, got {} and {}", t[0].to_string(),
                                           t[1].to_string()));
  }
  return ShapeResult::ok(t[0]);
}

}  // namespace

ShapeRule gather_rule() {
  return gather;
}
ShapeRule scatter_add_rule() {
  return scatter_add;
}
ShapeRule one_hot_rule() {
  return one_hot;
}
ShapeRule argmax_rule() {
  return argmax;
}
ShapeRule matmul_rule() {
  return matmul;
}
ShapeRule conv2d_rule() {
  return conv2d;
}
ShapeRule conv2d_grad_input_rule() {
  return conv2d_grad_input;
}
ShapeRule conv2d_grad_filter_rule() {
  return conv2d_grad_filter;
}

ShapeRule pool_rule(std::string_view op) {
  return [op](Types t, const Attrs& attrs) -> ShapeResult {
    if (auto bad = check_arity(op, t, 1)) return *bad;
    if (!is_float(t[0].dtype)) return fail(op, fmt::format("expects a float operand, got {}", t[0].to_string()));
    ShapeResult r = pool_shape(op, t[0].shape, attrs);
    if (r.type) r.type->dtype = t[0].dtype;
    return r;
  };
}

ShapeRule max_pool_grad_rule() {
  return max_pool_grad;
}
ShapeRule avg_pool_grad_rule() {
  return avg_pool_grad;
}

ShapeRule softmax_rule(std::string_view op) {
  return [op](Types t, const Attrs& attrs) -> ShapeResult {
    if (auto bad = check_arity(op, t, 1)) return *bad;
    if (!is_float(t[0].dtype)) return fail(op, fmt::format("expects a float operand, got {}", t[0].to_string()));
    const std::int64_t axis = attrs.get_int("axis", -1);
    if (!normalize_axis(axis, t[0].shape.rank())) return ShapeResult::fail(axis_error(op, axis, t[0].shape));
    return ShapeResult::ok(t[0]);
  };
}

ShapeRule softmax_cross_entropy_rule() {
  return softmax_cross_entropy;
}
ShapeRule sigmoid_cross_entropy_rule() {
  return sigmoid_cross_entropy;
}

ShapeRule optimizer_rule(std::string_view op, std::vector<std::string_view> operand_names) {
  return [op, operand_names](Types t, const Attrs& attrs) -> ShapeResult {
    if (auto bad = check_arity(op, t, operand_names.size())) return *bad;
    if (!is_float(t[0].dtype)) return fail(op, fmt::format("param must be float, got {}", t[0].to_string()));
    for (std::size_t i = 1; i < t.size(); ++i) {
      if (t[i] != t[0]) {
        return fail(
            op, fmt::format("{} has type {} but param has {}", operand_names[i], t[i].to_string(), t[0].to_string()));
      }
    }
    const AttrValue* lr = attrs.find("lr");
    if (lr == nullptr || !std::holds_alternative<double>(*lr))
      return ShapeResult::fail(missing_attr(op, "lr", "float"));
    return ShapeResult::ok(t[0]);
  };
}

ShapeRule if_training_rule() {
  return if_training;
}

}  // namespace kiln::ir::rules
