// One adapter per op: reads the instruction's attributes, resolves defaults the shape
// rules also resolve (stride 0 = window size, negative axes), picks the kernel's element
// type from the buffers' dtypes, and calls kernels/reference. Shapes come from the
// buffers, which already hold the concrete batch size, so `shape` attributes with -1 are
// never re-read here.
#include "runtime/exec/reference_adapters.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <memory>
#include <stdexcept>

#include "kernels/reference/conv.h"
#include "kernels/reference/elementwise.h"
#include "kernels/reference/indexing.h"
#include "kernels/reference/layout.h"
#include "kernels/reference/matmul.h"
#include "kernels/reference/optimizers.h"
#include "kernels/reference/pooling.h"
#include "kernels/reference/random.h"
#include "kernels/reference/reduce.h"
#include "kernels/reference/softmax.h"

namespace kiln::runtime {

namespace ref = kernels::ref;
using ir::DType;

std::int64_t BufferView::elements() const {
  return ref::element_count(dims);
}
std::size_t BufferView::bytes() const {
  return static_cast<std::size_t>(elements()) * dtype_size(dtype);
}

Tensor& find_variable(std::map<std::string, Tensor>& variables, const std::string& name) {
  const auto it = variables.find(name);
  if (it == variables.end()) {
    std::string known;
    for (const auto& [n, _] : variables) known += (known.empty() ? "" : ", ") + n;
    throw std::invalid_argument(
        fmt::format("no parameter or state named '{}' (the graph has: {})", name, known.empty() ? "none" : known));
  }
  return it->second;
}

std::string describe_type(ir::DType dtype, std::span<const std::int64_t> dims) {
  return fmt::format("{}[{}]", ir::dtype_name(dtype), fmt::join(dims, ", "));
}

namespace {

[[noreturn]] void unsupported(const OpCall& c, DType d) {
  throw std::invalid_argument(fmt::format("{}: the reference kernels have no {} version", c.label, ir::dtype_name(d)));
}

// Calls f.template operator()<T>() for the C++ type of `d`, among the types a kernel has.
template <typename F>
void on_float(const OpCall& c, DType d, F&& f) {
  if (d == DType::kF32) return f.template operator()<float>();
  if (d == DType::kF64) return f.template operator()<double>();
  unsupported(c, d);
}
template <typename F>
void on_numeric(const OpCall& c, DType d, F&& f) {
  if (d == DType::kI32) return f.template operator()<std::int32_t>();
  if (d == DType::kI64) return f.template operator()<std::int64_t>();
  on_float(c, d, f);
}
template <typename F>
void on_any(const OpCall& c, DType d, F&& f) {
  if (d == DType::kBool) return f.template operator()<bool>();
  on_numeric(c, d, f);
}
template <typename F>
void on_index(const OpCall& c, DType d, F&& f) {
  if (d == DType::kI32) return f.template operator()<std::int32_t>();
  if (d == DType::kI64) return f.template operator()<std::int64_t>();
  unsupported(c, d);
}

std::size_t axis_of(const OpCall& c, std::int64_t axis, std::size_t rank) {
  const auto r = static_cast<std::int64_t>(rank);
  if (axis < -r || axis >= r)
    throw std::invalid_argument(fmt::format("{}: axis {} out of range for rank {}", c.label, axis, rank));
  return static_cast<std::size_t>(axis < 0 ? axis + r : axis);
}

// x viewed as [outer, dims[axis], inner].
struct AxisSplit {
  std::int64_t outer = 1, axis = 1, inner = 1;
};
AxisSplit split_at(std::span<const std::int64_t> dims, std::size_t axis) {
  return {ref::element_count(dims.first(axis)), dims[axis], ref::element_count(dims.subspan(axis + 1))};
}

void copy_view(const BufferView& from, const BufferView& to) {
  ref::copy_elements(from.data, to.bytes(), to.data);
}

Tensor to_tensor(const BufferView& v) {
  Tensor t(v.dtype, std::vector<std::int64_t>(v.dims.begin(), v.dims.end()));
  ref::copy_elements(v.data, v.bytes(), t.raw());
  return t;
}

void check_tensor(const OpCall& c, std::string_view what, const std::string& name, const Tensor& t) {
  if (t.dtype() == c.out.dtype && std::equal(t.dims().begin(), t.dims().end(), c.out.dims.begin(), c.out.dims.end()))
    return;
  throw std::invalid_argument(fmt::format("{} '{}' expects {} (batch {}), got {}", what, name,
                                          describe_type(c.out.dtype, c.out.dims), c.context.batch, t.to_string()));
}

// --- sources, state and control -------------------------------------------------------

void run_input(const OpCall& c) {
  const std::string& name = c.instruction.variable;
  const auto it = c.context.feeds->find(name);
  if (it == c.context.feeds->end()) {
    throw std::invalid_argument(fmt::format("missing feed for input '{}' (expected {}, batch {})", name,
                                            describe_type(c.out.dtype, c.out.dims), c.context.batch));
  }
  check_tensor(c, "input", name, it->second);
  ref::copy_elements(it->second.raw(), c.out.bytes(), c.out.data);
}

// In the initialize program a parameter copies its initialiser; in a step it reads the
// executor's variable.
void run_variable(const OpCall& c) {
  if (!c.in.empty()) return copy_view(c.in[0], c.out);
  const std::string& name = c.instruction.variable;
  const auto it = c.context.variables->find(name);
  if (it == c.context.variables->end()) throw std::invalid_argument(fmt::format("{}: no variable '{}'", c.label, name));
  check_tensor(c, "variable", name, it->second);
  ref::copy_elements(it->second.raw(), c.out.bytes(), c.out.data);
}

// Yields the value the target had at the start of the step; the new value waits.
void run_assign(const OpCall& c) {
  (*c.context.assignments)[c.instruction.variable] = to_tensor(c.in[1]);
  copy_view(c.in[0], c.out);
}

void run_fill(const OpCall& c) {
  const double value = c.instruction.attrs.get_float("value", 0);
  on_any(c, c.out.dtype, [&]<typename T>() { ref::fill(ref::convert<T>(value), c.out.as<T>(), c.out.elements()); });
}

ref::RandomKey random_key(const OpCall& c) {
  return {c.context.options.seed, static_cast<std::uint64_t>(c.instruction.attrs.get_int("stream", 0)),
          c.context.options.step};
}

void run_random_uniform(const OpCall& c) {
  const auto& a = c.instruction.attrs;
  on_float(c, c.out.dtype, [&]<typename T>() {
    ref::random_uniform(random_key(c), a.get_float("low", 0), a.get_float("high", 1), c.out.as<T>(), c.out.elements());
  });
}

void run_random_normal(const OpCall& c) {
  const auto& a = c.instruction.attrs;
  on_float(c, c.out.dtype, [&]<typename T>() {
    ref::random_normal(random_key(c), a.get_float("mean", 0), a.get_float("stddev", 1), c.out.as<T>(),
                       c.out.elements());
  });
}

void run_if_training(const OpCall& c) {
  copy_view(c.in[c.context.options.training ? 0 : 1], c.out);
}

// --- elementwise ----------------------------------------------------------------------

Adapter unary(ref::UnaryOp op) {
  return [op](const OpCall& c) {
    on_numeric(c, c.out.dtype, [&]<typename T>() { ref::unary(op, c.in[0].as<T>(), c.out.as<T>(), c.out.elements()); });
  };
}

Adapter binary(ref::BinaryOp op) {
  return [op](const OpCall& c) {
    on_numeric(c, c.out.dtype, [&]<typename T>() {
      ref::binary(op, c.in[0].as<T>(), c.in[0].dims, c.in[1].as<T>(), c.in[1].dims, c.out.as<T>(), c.out.dims);
    });
  };
}

Adapter compare(ref::CompareOp op) {
  return [op](const OpCall& c) {
    on_any(c, c.in[0].dtype, [&]<typename T>() {
      ref::compare(op, c.in[0].as<T>(), c.in[0].dims, c.in[1].as<T>(), c.in[1].dims, c.out.as<bool>(), c.out.dims);
    });
  };
}

void run_select(const OpCall& c) {
  on_any(c, c.out.dtype, [&]<typename T>() {
    ref::select(c.in[0].as<bool>(), c.in[0].dims, c.in[1].as<T>(), c.in[1].dims, c.in[2].as<T>(), c.in[2].dims,
                c.out.as<T>(), c.out.dims);
  });
}

void run_cast(const OpCall& c) {
  on_any(c, c.in[0].dtype, [&]<typename From>() {
    on_any(c, c.out.dtype, [&]<typename To>() { ref::cast(c.in[0].as<From>(), c.out.as<To>(), c.out.elements()); });
  });
}

// --- reductions, matmul, layout -------------------------------------------------------

Adapter reduce(ref::ReduceOp op) {
  return [op](const OpCall& c) {
    const auto& dims = c.in[0].dims;
    const std::vector<std::int64_t> axes = c.instruction.attrs.get_ints("axes");
    // std::vector<bool> has no data(); a plain array of bools does.
    std::unique_ptr<bool[]> reduced(new bool[dims.size() + 1]);
    for (std::size_t a = 0; a < dims.size(); ++a) reduced[a] = axes.empty();
    for (const std::int64_t axis : axes) reduced[axis_of(c, axis, dims.size())] = true;
    on_numeric(c, c.out.dtype, [&]<typename T>() {
      ref::reduce(op, c.in[0].as<T>(), dims, std::span<const bool>(reduced.get(), dims.size()), c.out.as<T>());
    });
  };
}

void run_matmul(const OpCall& c) {
  const bool ta = c.instruction.attrs.get_bool("transpose_a", false);
  const bool tb = c.instruction.attrs.get_bool("transpose_b", false);
  on_numeric(c, c.out.dtype, [&]<typename T>() {
    ref::matmul(c.in[0].as<T>(), c.in[0].dims, c.in[1].as<T>(), c.in[1].dims, ta, tb, c.out.as<T>(), c.out.dims);
  });
}

void run_reshape(const OpCall& c) {
  copy_view(c.in[0], c.out);
}

void run_transpose(const OpCall& c) {
  const std::size_t rank = c.in[0].dims.size();
  std::vector<std::int64_t> perm;
  if (c.instruction.attrs.find("perm") != nullptr) {
    for (const std::int64_t p : c.instruction.attrs.get_ints("perm"))
      perm.push_back(static_cast<std::int64_t>(axis_of(c, p, rank)));
  } else {
    for (std::size_t a = rank; a-- > 0;) perm.push_back(static_cast<std::int64_t>(a));
  }
  ref::transpose(dtype_size(c.out.dtype), c.in[0].data, c.in[0].dims, perm, c.out.data);
}

void run_broadcast_to(const OpCall& c) {
  ref::broadcast_to(dtype_size(c.out.dtype), c.in[0].data, c.in[0].dims, c.out.data, c.out.dims);
}

void run_slice(const OpCall& c) {
  const auto& a = c.instruction.attrs;
  ref::slice(dtype_size(c.out.dtype), c.in[0].data, c.in[0].dims, axis_of(c, a.get_int("axis"), c.in[0].dims.size()),
             a.get_int("start"), a.get_int("end"), c.out.data);
}

void run_concat(const OpCall& c) {
  const std::size_t axis = axis_of(c, c.instruction.attrs.get_int("axis", -1), c.out.dims.size());
  const AxisSplit split = split_at(c.out.dims, axis);
  std::vector<const void*> parts;
  std::vector<std::int64_t> lengths;
  for (const BufferView& part : c.in) {
    parts.push_back(part.data);
    lengths.push_back(part.dims[axis]);
  }
  ref::concat(dtype_size(c.out.dtype), parts, lengths, split.outer, split.inner, c.out.data);
}

// --- indexing -------------------------------------------------------------------------

void run_gather(const OpCall& c) {
  const BufferView& table = c.in[0];
  const std::int64_t rows = table.dims[0];
  const std::size_t row_bytes =
      static_cast<std::size_t>(ref::element_count(table.dims.subspan(1))) * dtype_size(table.dtype);
  on_index(c, c.in[1].dtype, [&]<typename I>() {
    ref::gather(table.data, rows, row_bytes, c.in[1].as<I>(), c.in[1].elements(), c.out.data);
  });
}

void run_scatter_add(const OpCall& c) {
  const std::int64_t rows = c.out.dims[0];
  const std::int64_t row = ref::element_count(c.out.dims.subspan(1));
  on_numeric(c, c.out.dtype, [&]<typename T>() {
    on_index(c, c.in[0].dtype, [&]<typename I>() {
      ref::scatter_add(c.in[0].as<I>(), c.in[0].elements(), c.in[1].as<T>(), row, rows, c.out.as<T>());
    });
  });
}

void run_one_hot(const OpCall& c) {
  on_any(c, c.out.dtype, [&]<typename T>() {
    on_index(c, c.in[0].dtype, [&]<typename I>() {
      ref::one_hot(c.in[0].as<I>(), c.in[0].elements(), c.out.dims.back(), c.out.as<T>());
    });
  });
}

void run_argmax(const OpCall& c) {
  const AxisSplit s = split_at(c.in[0].dims, axis_of(c, c.instruction.attrs.get_int("axis", -1), c.in[0].dims.size()));
  on_numeric(c, c.in[0].dtype,
             [&]<typename T>() { ref::argmax(c.in[0].as<T>(), s.outer, s.axis, s.inner, c.out.as<std::int32_t>()); });
}

// --- convolution and pooling ------------------------------------------------------------

// x: NHWC, w: [KH, KW, C, F].
ref::Conv2dGeometry conv_geometry(const OpCall& c, std::span<const std::int64_t> x, std::span<const std::int64_t> w) {
  const auto& a = c.instruction.attrs;
  return ref::conv2d_geometry(x[0], x[1], x[2], x[3], w[0], w[1], w[3], a.get_int("stride", 1),
                              a.get_int("dilation", 1), a.get_string("padding", "valid") == "same");
}

void run_conv2d(const OpCall& c) {
  const auto g = conv_geometry(c, c.in[0].dims, c.in[1].dims);
  on_float(c, c.out.dtype, [&]<typename T>() { ref::conv2d(g, c.in[0].as<T>(), c.in[1].as<T>(), c.out.as<T>()); });
}

void run_conv2d_grad_input(const OpCall& c) {  // (dy, w) -> dx shaped like the input
  const auto g = conv_geometry(c, c.out.dims, c.in[1].dims);
  on_float(c, c.out.dtype,
           [&]<typename T>() { ref::conv2d_grad_input(g, c.in[0].as<T>(), c.in[1].as<T>(), c.out.as<T>()); });
}

void run_conv2d_grad_filter(const OpCall& c) {  // (x, dy) -> dw shaped like the filter
  const auto g = conv_geometry(c, c.in[0].dims, c.out.dims);
  on_float(c, c.out.dtype,
           [&]<typename T>() { ref::conv2d_grad_filter(g, c.in[0].as<T>(), c.in[1].as<T>(), c.out.as<T>()); });
}

ref::PoolGeometry pool_geometry(const OpCall& c, std::span<const std::int64_t> x) {
  const auto& a = c.instruction.attrs;
  return ref::pool_geometry(x[0], x[1], x[2], x[3], a.get_int("size", 2), a.get_int("stride", 0),
                            a.get_string("padding", "valid") == "same");
}

void run_max_pool(const OpCall& c) {
  const auto g = pool_geometry(c, c.in[0].dims);
  on_float(c, c.out.dtype, [&]<typename T>() { ref::max_pool2d(g, c.in[0].as<T>(), c.out.as<T>()); });
}

void run_avg_pool(const OpCall& c) {
  const auto g = pool_geometry(c, c.in[0].dims);
  on_float(c, c.out.dtype, [&]<typename T>() { ref::avg_pool2d(g, c.in[0].as<T>(), c.out.as<T>()); });
}

void run_max_pool_grad(const OpCall& c) {  // (x, dy) -> dx
  const auto g = pool_geometry(c, c.in[0].dims);
  on_float(c, c.out.dtype,
           [&]<typename T>() { ref::max_pool2d_grad(g, c.in[0].as<T>(), c.in[1].as<T>(), c.out.as<T>()); });
}

void run_avg_pool_grad(const OpCall& c) {  // (dy) -> dx shaped like input_shape
  const auto g = pool_geometry(c, c.out.dims);
  on_float(c, c.out.dtype, [&]<typename T>() { ref::avg_pool2d_grad(g, c.in[0].as<T>(), c.out.as<T>()); });
}

// --- softmax and losses ---------------------------------------------------------------

template <bool kLog>
void run_softmax(const OpCall& c) {
  const AxisSplit s = split_at(c.in[0].dims, axis_of(c, c.instruction.attrs.get_int("axis", -1), c.in[0].dims.size()));
  on_float(c, c.out.dtype, [&]<typename T>() {
    if constexpr (kLog) {
      ref::log_softmax(c.in[0].as<T>(), s.outer, s.axis, s.inner, c.out.as<T>());
    } else {
      ref::softmax(c.in[0].as<T>(), s.outer, s.axis, s.inner, c.out.as<T>());
    }
  });
}

void run_softmax_cross_entropy(const OpCall& c) {
  const std::int64_t classes = c.in[0].dims.back();
  on_float(c, c.out.dtype, [&]<typename T>() {
    on_index(c, c.in[1].dtype, [&]<typename L>() {
      ref::softmax_cross_entropy(c.in[0].as<T>(), c.in[1].as<L>(), c.out.elements(), classes, c.out.as<T>());
    });
  });
}

void run_sigmoid_cross_entropy(const OpCall& c) {
  on_float(c, c.out.dtype, [&]<typename T>() {
    ref::sigmoid_cross_entropy(c.in[0].as<T>(), c.in[1].as<T>(), c.out.as<T>(), c.out.elements());
  });
}

// --- optimizer steps ------------------------------------------------------------------

void run_sgd_update(const OpCall& c) {  // (param, grad, velocity) -> new param
  const auto& a = c.instruction.attrs;
  const ref::SgdHyper h{a.get_float("lr", 0), a.get_float("momentum", 0), a.get_bool("nesterov", false),
                        a.get_float("weight_decay", 0)};
  on_float(c, c.out.dtype, [&]<typename T>() {
    ref::sgd_update(h, c.in[0].as<T>(), c.in[1].as<T>(), c.in[2].as<T>(), c.out.as<T>(), static_cast<T*>(nullptr),
                    c.out.elements());
  });
}

// The op has no step operand, so the bias correction counts steps from StepOptions:
// step 0 is Adam's t = 1.
void run_adam_update(const OpCall& c) {  // (param, grad, m, v) -> new param
  const auto& a = c.instruction.attrs;
  ref::AdamHyper h;
  h.lr = a.get_float("lr", 1e-3);
  h.beta1 = a.get_float("beta1", 0.9);
  h.beta2 = a.get_float("beta2", 0.999);
  h.eps = a.get_float("eps", 1e-8);
  h.weight_decay = a.get_float("weight_decay", 0);
  h.decoupled = a.get_bool("decoupled", false);
  h.t = c.context.options.step + 1;
  on_float(c, c.out.dtype, [&]<typename T>() {
    ref::adam_update(h, c.in[0].as<T>(), c.in[1].as<T>(), c.in[2].as<T>(), c.in[3].as<T>(), c.out.as<T>(),
                     static_cast<T*>(nullptr), static_cast<T*>(nullptr), c.out.elements());
  });
}

std::map<std::string, Adapter, std::less<>> build_adapters() {
  using U = ref::UnaryOp;
  using B = ref::BinaryOp;
  using C = ref::CompareOp;
  using R = ref::ReduceOp;
  return {
      {"input", run_input},
      {"parameter", run_variable},
      {"state", run_variable},
      {"constant", run_fill},
      {"assign_state", run_assign},

      {"random_uniform", run_random_uniform},
      {"random_normal", run_random_normal},
      {"random_uniform_like", run_random_uniform},
      {"full", run_fill},

      {"neg", unary(U::kNeg)},
      {"abs", unary(U::kAbs)},
      {"exp", unary(U::kExp)},
      {"log", unary(U::kLog)},
      {"sqrt", unary(U::kSqrt)},
      {"tanh", unary(U::kTanh)},
      {"sigmoid", unary(U::kSigmoid)},
      {"relu", unary(U::kRelu)},
      {"cast", run_cast},

      {"add", binary(B::kAdd)},
      {"sub", binary(B::kSub)},
      {"mul", binary(B::kMul)},
      {"div", binary(B::kDiv)},
      {"pow", binary(B::kPow)},
      {"maximum", binary(B::kMaximum)},
      {"minimum", binary(B::kMinimum)},

      {"less", compare(C::kLess)},
      {"less_equal", compare(C::kLessEqual)},
      {"greater", compare(C::kGreater)},
      {"greater_equal", compare(C::kGreaterEqual)},
      {"equal", compare(C::kEqual)},
      {"not_equal", compare(C::kNotEqual)},
      {"select", run_select},

      {"reduce_sum", reduce(R::kSum)},
      {"reduce_mean", reduce(R::kMean)},
      {"reduce_max", reduce(R::kMax)},
      {"matmul", run_matmul},
      {"reshape", run_reshape},
      {"transpose", run_transpose},
      {"broadcast_to", run_broadcast_to},
      {"slice", run_slice},
      {"concat", run_concat},

      {"gather", run_gather},
      {"scatter_add", run_scatter_add},
      {"one_hot", run_one_hot},
      {"argmax", run_argmax},

      {"conv2d", run_conv2d},
      {"conv2d_grad_input", run_conv2d_grad_input},
      {"conv2d_grad_filter", run_conv2d_grad_filter},
      {"max_pool2d", run_max_pool},
      {"avg_pool2d", run_avg_pool},
      {"max_pool2d_grad", run_max_pool_grad},
      {"avg_pool2d_grad", run_avg_pool_grad},
      {"softmax", run_softmax<false>},
      {"log_softmax", run_softmax<true>},
      {"softmax_cross_entropy", run_softmax_cross_entropy},
      {"sigmoid_cross_entropy", run_sigmoid_cross_entropy},

      {"sgd_update", run_sgd_update},
      {"adam_update", run_adam_update},
      {"if_training", run_if_training},
  };
}

}  // namespace

const std::map<std::string, Adapter, std::less<>>& reference_adapters() {
  static const std::map<std::string, Adapter, std::less<>> table = build_adapters();
  return table;
}

std::span<const std::string_view> reference_unsupported_ops() {
  return {};
}

}  // namespace kiln::runtime
