// The optimizer update, written with primitive ops. Conventions follow PyTorch so results
// can be compared with it: SGD momentum v = mu v + g (no dampening), Nesterov steps along
// g + mu v; Adam bias-corrects with the step counter; AdamW decays the weights by
// (1 - lr wd) before the Adam step, while SGD and Adam add wd p to the gradient (L2). Weight
// decay applies to every parameter, biases included, as torch.optim does by default.
// Gradient clipping scales all gradients together by min(1, clip / global norm).
#include "compiler/autodiff/optimizer.h"

#include <fmt/format.h>

#include <set>
#include <stdexcept>

#include "compiler/autodiff/autodiff.h"
#include "compiler/autodiff/emitter.h"

namespace kiln::autodiff {
namespace {

using ir::DType;
using ir::ValueId;

struct ParamGrad {
  std::string name;
  ValueId param = 0;
  ValueId grad = 0;
  ir::TensorType type;
};

class StepBuilder {
 public:
  StepBuilder(ir::Graph& graph, const sema::TrainSpec& spec)
      : graph_(graph), spec_(spec), opt_(spec.optimizer), emit_(graph, spec.optimizer.span, {}) {}

  void run(std::vector<ParamGrad> params) {
    lr_ = emit_.emit("input", {},
                     make_attrs({{"name", std::string(kLearningRateInput)},
                                 {"dtype", std::string("f32")},
                                 {"shape", std::vector<std::int64_t>{}},
                                 {"label", false}}),
                     std::string(kLearningRateInput));
    graph_.add_input(std::string(kLearningRateInput), lr_);
    if (spec_.clip_grad > 0) clip(params);
    if (opt_.kind == "sgd") {
      for (const ParamGrad& p : params) sgd(p);
    } else if (opt_.kind == "adam" || opt_.kind == "adamw") {
      adam(params, opt_.kind == "adamw");
    } else {
      throw std::logic_error(fmt::format("optimizer: unknown kind '{}'", opt_.kind));
    }
  }

 private:
  ValueId op(std::string_view name, std::vector<ValueId> operands) { return emit_.emit(name, std::move(operands)); }
  ValueId konst(double value, DType dtype) { return emit_.scalar(value, dtype); }
  ValueId as(ValueId v, DType dtype) {
    if (emit_.type_of(v).dtype == dtype) return v;
    return emit_.emit("cast", {v}, make_attrs({{"dtype", std::string(ir::dtype_name(dtype))}}));
  }
  ValueId lr(DType dtype) { return as(lr_, dtype); }

  // A new optimizer state of `type`, initialised with zeros.
  ValueId state(const std::string& name, const ir::TensorType& type) {
    const ValueId zeros = emit_.emit(
        "full", {},
        make_attrs(
            {{"shape", shape_ints(type.shape)}, {"value", 0.0}, {"dtype", std::string(ir::dtype_name(type.dtype))}}));
    const ValueId s = emit_.emit("state", {zeros}, make_attrs({{"name", name}}), name);
    graph_.add_state(name, s);
    return s;
  }

  void assign(ValueId target, ValueId value, const std::string& name) {
    emit_.emit("assign_state", {target, value}, {}, name);
  }

  // L2 regularisation for SGD and Adam: wd * p joins the gradient.
  ValueId with_l2(const ParamGrad& p) {
    if (opt_.weight_decay == 0) return p.grad;
    return op("add", {p.grad, op("mul", {p.param, konst(opt_.weight_decay, p.type.dtype)})});
  }

  // Scales every gradient by clip / max(norm, clip), where norm is the global L2 norm over
  // all parameters: the direction of the step is kept, only its length is capped. The sum of
  // squares is taken in f32 whatever the parameters' dtypes.
  void clip(std::vector<ParamGrad>& params) {
    if (params.empty()) return;
    Emitter at_train(graph_, spec_.span, {});
    std::optional<ValueId> total;
    for (const ParamGrad& p : params) {
      const ValueId squares = at_train.emit("reduce_sum", {at_train.emit("mul", {p.grad, p.grad})});
      const ValueId sum = as(squares, DType::kF32);
      total = total ? at_train.emit("add", {*total, sum}) : sum;
    }
    const ValueId norm = at_train.emit("sqrt", {*total});
    const ValueId limit = at_train.scalar(spec_.clip_grad, DType::kF32);
    const ValueId scale = at_train.emit("div", {limit, at_train.emit("maximum", {norm, limit})});
    for (ParamGrad& p : params) p.grad = at_train.emit("mul", {p.grad, as(scale, p.type.dtype)});
  }

  void sgd(const ParamGrad& p) {
    const DType dt = p.type.dtype;
    ValueId direction = with_l2(p);
    if (opt_.momentum != 0) {
      const std::string name = velocity_state_name(p.name);
      const ValueId v = state(name, p.type);
      const ValueId mu = konst(opt_.momentum, dt);
      const ValueId v_new = op("add", {op("mul", {v, mu}), direction});
      assign(v, v_new, name);
      direction = opt_.nesterov ? op("add", {direction, op("mul", {v_new, mu})}) : v_new;
    }
    assign(p.param, op("sub", {p.param, op("mul", {direction, lr(dt)})}), p.name);
  }

  // Scalars shared by every parameter are computed once, in f32: the step counter, the
  // bias corrections, lr / (1 - beta1^t) and 1 / sqrt(1 - beta2^t).
  void adam(const std::vector<ParamGrad>& params, bool decoupled) {
    const ValueId step = state(std::string(kStepState), {DType::kF32, {}});
    const ValueId t = op("add", {step, konst(1, DType::kF32)});
    assign(step, t, std::string(kStepState));
    const ValueId one = konst(1, DType::kF32);
    const ValueId bc1 = op("sub", {one, op("pow", {konst(opt_.beta1, DType::kF32), t})});
    const ValueId bc2 = op("sub", {one, op("pow", {konst(opt_.beta2, DType::kF32), t})});
    const ValueId step_size = op("div", {lr_, bc1});
    const ValueId inv_sqrt_bc2 = op("div", {one, op("sqrt", {bc2})});
    std::optional<ValueId> keep;  // AdamW: 1 - lr * wd
    if (decoupled && opt_.weight_decay != 0) {
      keep = op("sub", {one, op("mul", {lr_, konst(opt_.weight_decay, DType::kF32)})});
    }

    for (const ParamGrad& p : params) {
      const DType dt = p.type.dtype;
      const ValueId g = decoupled ? p.grad : with_l2(p);
      const std::string m_name = first_moment_state_name(p.name);
      const std::string v_name = second_moment_state_name(p.name);
      const ValueId m = state(m_name, p.type);
      const ValueId v = state(v_name, p.type);
      const ValueId m_new =
          op("add", {op("mul", {m, konst(opt_.beta1, dt)}), op("mul", {g, konst(1 - opt_.beta1, dt)})});
      const ValueId v_new =
          op("add", {op("mul", {v, konst(opt_.beta2, dt)}), op("mul", {op("mul", {g, g}), konst(1 - opt_.beta2, dt)})});
      assign(m, m_new, m_name);
      assign(v, v_new, v_name);
      const ValueId denom = op("add", {op("mul", {op("sqrt", {v_new}), as(inv_sqrt_bc2, dt)}), konst(opt_.eps, dt)});
      const ValueId update = op("mul", {op("div", {m_new, denom}), as(step_size, dt)});
      const ValueId base = keep ? op("mul", {p.param, as(*keep, dt)}) : p.param;
      assign(p.param, op("sub", {base, update}), p.name);
    }
  }

  ir::Graph& graph_;
  const sema::TrainSpec& spec_;
  const sema::OptimizerSpec& opt_;
  Emitter emit_;
  ValueId lr_ = 0;
};

// Names the step will register that the graph already uses, as error diagnostics.
std::vector<Diagnostic> name_clashes(const ir::Graph& graph, const sema::TrainSpec& spec) {
  std::set<std::string> taken;
  for (const auto* role : {&graph.inputs(), &graph.parameters(), &graph.states()}) {
    for (const ir::NamedValue& nv : *role) taken.insert(nv.name);
  }
  std::vector<std::string> wanted{std::string(kLearningRateInput)};
  const bool adam = spec.optimizer.kind != "sgd";
  if (adam) wanted.emplace_back(kStepState);
  for (const ir::NamedValue& p : graph.parameters()) {
    if (adam) {
      wanted.push_back(first_moment_state_name(p.name));
      wanted.push_back(second_moment_state_name(p.name));
    } else if (spec.optimizer.momentum != 0) {
      wanted.push_back(velocity_state_name(p.name));
    }
  }
  std::vector<Diagnostic> errors;
  for (const std::string& name : wanted) {
    if (taken.count(name) == 0) continue;
    Diagnostic d;
    d.span = spec.span;
    d.message = fmt::format("the training step needs the name '{}', but the model already uses it", name);
    d.hint =
        "rename that input, label column or layer binding; the trainer feeds 'lr' and keeps optimizer state "
        "under 'opt.'";
    errors.push_back(std::move(d));
  }
  return errors;
}

}  // namespace

std::string velocity_state_name(std::string_view parameter) {
  return fmt::format("opt.velocity.{}", parameter);
}
std::string first_moment_state_name(std::string_view parameter) {
  return fmt::format("opt.m.{}", parameter);
}
std::string second_moment_state_name(std::string_view parameter) {
  return fmt::format("opt.v.{}", parameter);
}

bool TrainingStep::ok() const {
  for (const Diagnostic& d : diagnostics) {
    if (d.severity == Severity::kError) return false;
  }
  return true;
}

TrainingStep add_training_step(ir::Graph graph, const sema::TrainSpec& spec) {
  std::optional<ValueId> loss;
  for (const ir::NamedValue& out : graph.outputs()) {
    if (out.name == "loss") loss = out.value;
  }
  if (!loss) throw std::logic_error(fmt::format("training step: graph '{}' has no 'loss' output", graph.name()));

  TrainingStep step;
  step.diagnostics = name_clashes(graph, spec);
  if (!step.ok()) {
    step.graph = std::move(graph);
    return step;
  }
  ParameterGradients grads = build_gradients(graph, *loss);
  step.gradients = grads.gradients;
  step.diagnostics = std::move(grads.warnings);

  std::vector<ParamGrad> params;
  for (const ir::NamedValue& p : graph.parameters()) {
    params.push_back({p.name, p.value, grads.gradients.at(p.name), graph.node(p.value).type});
  }
  StepBuilder(graph, spec).run(std::move(params));
  step.graph = std::move(graph);
  return step;
}

TrainingStep build_training_step(const sema::LoweredTrain& train) {
  return add_training_step(train.graph, train.spec);
}

}  // namespace kiln::autodiff
