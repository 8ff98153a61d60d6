// The per-op sample graphs of op_samples.h.
#include "tests/compiler/autodiff/op_samples.h"

#include <algorithm>
#include <numeric>

namespace kiln::autodiff::test {
namespace {

using ir::ValueId;
using Ints = std::vector<std::int64_t>;

SampleMaker unary(std::string name, Domain domain) {
  return [name, domain](SampleBuilder& b) {
    Ints dims;
    const std::int64_t rank = b.pick({0, 1, 2, 3});
    for (std::int64_t i = 0; i < rank; ++i) dims.push_back(i == 0 ? b.lead() : b.dim());
    ir::Attrs attrs;
    if (name == "cast") attrs = make_attrs({{"dtype", std::string(ir::dtype_name(b.dtype()))}});
    return b.finish(b.op(name, {b.input(dims, domain)}, attrs));
  };
}

// Two shapes that broadcast: each dimension of a full [d0, d1, d2] may become 1, and the
// second operand may drop leading dimensions; which operand is which is random.
std::pair<Ints, Ints> broadcast_pair(SampleBuilder& b) {
  const Ints full{b.lead(), b.dim(), b.dim()};
  Ints x = full;
  Ints y(full.begin() + b.pick({0, 1, 2}), full.end());
  for (auto& d : x) d = b.coin() && b.coin() ? 1 : d;
  for (auto& d : y) d = b.coin() && b.coin() ? 1 : d;
  if (b.coin()) std::swap(x, y);
  return {x, y};
}

SampleMaker binary(std::string name, Domain a_domain, Domain b_domain) {
  return [name, a_domain, b_domain](SampleBuilder& b) {
    const auto [x, y] = broadcast_pair(b);
    const ValueId lhs = b.input(x, a_domain);
    return b.finish(b.op(name, {lhs, b.input(y, b_domain)}));
  };
}

SampleMaker reduce(std::string name) {
  return [name](SampleBuilder& b) {
    const Ints dims{b.lead(), b.dim(), b.dim()};
    Ints axes;
    for (std::int64_t a = 0; a < 3; ++a) {
      if (b.coin()) axes.push_back(a == 2 && b.coin() ? -1 : a);
    }
    const ValueId x = b.input(dims);
    return b.finish(b.op(name, {x}, make_attrs({{"axes", axes}, {"keepdims", b.coin()}})));
  };
}

OpSample matmul(SampleBuilder& b) {
  const std::int64_t m = b.dim(), k = b.dim(), n = b.dim(), batch = b.lead();
  const std::int64_t rank_a = b.pick({1, 2, 2, 3}), rank_b = b.pick({1, 2, 2, 3});
  const bool ta = b.coin(), tb = b.coin();
  Ints a = rank_a == 1 ? Ints{k} : ta ? Ints{k, m} : Ints{m, k};
  Ints c = rank_b == 1 ? Ints{k} : tb ? Ints{n, k} : Ints{k, n};
  if (rank_a == 3) a.insert(a.begin(), batch);
  if (rank_b == 3) c.insert(c.begin(), rank_a == 3 && b.coin() ? 1 : batch);
  const ValueId lhs = b.input(a);
  return b.finish(b.op("matmul", {lhs, b.input(c)}, make_attrs({{"transpose_a", ta}, {"transpose_b", tb}})));
}

OpSample select(SampleBuilder& b) {
  const std::int64_t d0 = b.lead(), d1 = b.dim();
  const ValueId cond = b.input({d0, d1}, Domain::kBool);
  const ValueId x = b.input({d0, d1});
  return b.finish(b.op("select", {cond, x, b.input({b.coin() ? d1 : 1})}));
}

OpSample if_training(SampleBuilder& b) {
  const Ints dims{b.lead(), b.dim()};
  const ValueId x = b.input(dims);
  return b.finish(b.op("if_training", {x, b.input(dims)}));
}

OpSample reshape(SampleBuilder& b) {
  const std::int64_t d0 = b.lead(), d1 = b.dim(), d2 = b.dim();
  const Ints target = b.coin() ? Ints{d0, d1 * d2} : Ints{d0, d2, 1, d1};
  return b.finish(b.op("reshape", {b.input({d0, d1, d2})}, make_attrs({{"shape", target}})));
}

OpSample transpose(SampleBuilder& b) {
  Ints perm{0, 1, 2};
  while (b.coin()) std::next_permutation(perm.begin(), perm.end());
  ir::Attrs attrs;
  if (b.coin()) attrs = make_attrs({{"perm", perm}});  // else the default: reversed axes
  return b.finish(b.op("transpose", {b.input({b.lead(), b.dim(), b.dim()})}, attrs));
}

OpSample broadcast_to(SampleBuilder& b) {
  const Ints target{b.lead(), b.dim(), b.dim()};
  const Ints x = b.coin() ? Ints{1, target[2]} : Ints{target[1], 1};
  return b.finish(b.op("broadcast_to", {b.input(x)}, make_attrs({{"shape", target}})));
}

OpSample slice(SampleBuilder& b) {
  const Ints dims{b.lead(), b.dim(), b.dim() + 1};
  const std::int64_t axis = b.pick({1, 2, -1});
  const std::int64_t size = dims[static_cast<std::size_t>(axis < 0 ? axis + 3 : axis)];
  const std::int64_t start = b.pick({0, size / 2, size - 1});
  const std::int64_t end = b.coin() ? size : start + 1;
  return b.finish(b.op("slice", {b.input(dims)}, make_attrs({{"axis", axis}, {"start", start}, {"end", end}})));
}

OpSample concat(SampleBuilder& b) {
  const std::int64_t d0 = b.lead(), d1 = b.dim();
  std::vector<ValueId> parts;
  const std::int64_t count = b.pick({1, 2, 3});
  for (std::int64_t i = 0; i < count; ++i) parts.push_back(b.input({d0, b.dim(), d1}));
  return b.finish(b.op("concat", parts, make_attrs({{"axis", b.coin() ? std::int64_t{1} : std::int64_t{-2}}})));
}

OpSample gather(SampleBuilder& b) {
  const std::int64_t rows = b.pick({1, 2, 5, 7});
  const ValueId table = b.input({rows, b.dim()});
  const Ints ids = b.coin() ? Ints{b.lead()} : Ints{b.lead(), b.dim()};
  return b.finish(b.op("gather", {table, b.input(ids, Domain::kIndex, rows)}));
}

OpSample scatter_add(SampleBuilder& b) {
  const std::int64_t rows = b.pick({1, 3, 5}), n = b.lead();
  const ValueId ids = b.input({n}, Domain::kIndex, rows);
  return b.finish(b.op("scatter_add", {ids, b.input({n, b.dim()})}, make_attrs({{"rows", rows}})));
}

OpSample conv2d(SampleBuilder& b) {
  const std::int64_t kernel = b.pick({1, 2, 3}), dilation = b.pick({1, 1, 2}), channels = b.pick({1, 2, 3});
  const std::int64_t reach = (kernel - 1) * dilation + 1;
  const ValueId x = b.input({b.lead(), reach + b.pick({0, 1, 3}), reach + b.pick({0, 2}), channels});
  const ValueId w = b.input({kernel, kernel, channels, b.pick({1, 2})});
  const std::string padding = b.coin() ? "same" : "valid";
  return b.finish(
      b.op("conv2d", {x, w}, make_attrs({{"stride", b.pick({1, 2})}, {"padding", padding}, {"dilation", dilation}})));
}

// Both pools over windows that may overlap (stride < size), skip elements (stride > size)
// or run past the edge ("same").
SampleMaker pool(std::string name) {
  return [name](SampleBuilder& b) {
    const std::int64_t size = b.pick({1, 2, 3});
    const ValueId x = b.input({b.lead(), size + b.pick({0, 1, 4}), size + b.pick({0, 3}), b.pick({1, 2})});
    const std::string padding = b.coin() ? "same" : "valid";
    return b.finish(b.op(name, {x}, make_attrs({{"size", size}, {"stride", b.pick({0, 1, 2})}, {"padding", padding}})));
  };
}

SampleMaker softmax(std::string name) {
  return [name](SampleBuilder& b) {
    const ValueId x = b.input({b.lead(), b.dim(), b.pick({2, 3, 5})});
    return b.finish(b.op(name, {x}, make_attrs({{"axis", b.pick({-1, 1, 0})}})));
  };
}

OpSample softmax_cross_entropy(SampleBuilder& b) {
  const std::int64_t n = b.lead(), classes = b.pick({1, 2, 3, 7});
  const ValueId logits = b.input({n, classes});
  return b.finish(b.op("softmax_cross_entropy", {logits, b.input({n}, Domain::kIndex, classes)}));
}

OpSample sigmoid_cross_entropy(SampleBuilder& b) {
  const Ints dims{b.lead(), b.dim()};
  const ValueId logits = b.input(dims);
  return b.finish(b.op("sigmoid_cross_entropy", {logits, b.input(dims, Domain::kUnit)}));
}

}  // namespace

const std::map<std::string, SampleMaker, std::less<>>& op_samples() {
  static const std::map<std::string, SampleMaker, std::less<>> samples = [] {
    std::map<std::string, SampleMaker, std::less<>> m;
    for (const char* name : {"neg", "abs", "exp", "tanh", "sigmoid", "relu", "cast"})
      m[name] = unary(name, Domain::kAny);
    m["log"] = unary("log", Domain::kPositive);
    m["sqrt"] = unary("sqrt", Domain::kPositive);
    for (const char* name : {"add", "sub", "mul", "maximum", "minimum"})
      m[name] = binary(name, Domain::kAny, Domain::kAny);
    m["div"] = binary("div", Domain::kAny, Domain::kAwayFromZero);
    m["pow"] = binary("pow", Domain::kPositive, Domain::kAny);
    for (const char* name : {"reduce_sum", "reduce_mean", "reduce_max"}) m[name] = reduce(name);
    m["matmul"] = matmul;
    m["select"] = select;
    m["if_training"] = if_training;
    m["reshape"] = reshape;
    m["transpose"] = transpose;
    m["broadcast_to"] = broadcast_to;
    m["slice"] = slice;
    m["concat"] = concat;
    m["gather"] = gather;
    m["scatter_add"] = scatter_add;
    m["conv2d"] = conv2d;
    m["max_pool2d"] = pool("max_pool2d");
    m["avg_pool2d"] = pool("avg_pool2d");
    m["softmax"] = softmax("softmax");
    m["log_softmax"] = softmax("log_softmax");
    m["softmax_cross_entropy"] = softmax_cross_entropy;
    m["sigmoid_cross_entropy"] = sigmoid_cross_entropy;
    return m;
  }();
  return samples;
}

}  // namespace kiln::autodiff::test
