// Lowering: evaluates model bodies into the Graph IR. Layer calls are instantiated in
// place (their parameters named by call site), builtin calls become op-table nodes whose
// shape rules infer every type, and constant arithmetic is folded. Errors found inside a
// layer carry the chain of calls that led there.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "compiler/sema/sema_internal.h"

namespace kiln::sema::detail {

class Lowerer {
 public:
  Lowerer(Compilation& c, ir::Graph& graph, const std::set<const ast::LayerDecl*>& broken,
          const std::set<std::string>& broken_features);

  // What a lowered model exposes to its train block.
  struct ModelResult {
    bool ok = false;
    std::map<std::string, Value> outputs;
    std::map<std::string, Value> inputs;
    std::map<std::string, std::string> input_features;  // input name -> features block
  };

  ModelResult lower_model(const Module& module, const ast::ModelDecl& model);

  // Adds each label column of `data` as an input and lowers `loss` over the model's
  // outputs, inputs and those labels. Returns false after reporting an error.
  bool lower_loss(const Module& module, const ModelResult& model, const FeatureSet& data, ast::ExprId loss,
                  Span loss_span);

 private:
  // Parameter paths are resolved lazily: a call's scope takes its name (h1, h1_2, ...)
  // only when something inside it needs one, so calls without params use up no names.
  struct NameFrame {
    NameFrame* parent = nullptr;
    std::string base;
    std::string resolved;
    std::map<std::string, int> used;  // names taken by child frames
    int random_counter = 0;
  };

  struct Scope {
    const Module* module = nullptr;
    const ast::LayerDecl* layer = nullptr;  // null at model level
    NameFrame* frame = nullptr;
    std::map<std::string, Value> env;
    std::set<std::string> states;
    std::string stmt_base;                         // the binding being evaluated (names layer calls inside it)
    const std::vector<ast::Stmt>* body = nullptr;  // for "used before it is defined"
    std::string unknown_name_hint;                 // what names exist here, for the loss
    bool returned = false;
    std::vector<Value> results;
  };

  struct InitContext {
    Value shape;
    std::int64_t fan_in = 1;
    std::int64_t fan_out = 1;
  };

  struct Arg {
    std::string name;  // empty when positional
    Span span;
    Value value;
  };

  Diagnostic& error(Span span, std::string message, std::string hint = {});
  std::string path_of(NameFrame* frame);
  std::string layer_display_name(const Module& module, const ast::LayerDecl& layer) const;

  void run_statement(const ast::Stmt& st, Scope& s);
  Value eval(ast::ExprId id, Scope& s);
  Value eval_call(const ast::Expr& call, Scope& s);
  Value eval_unary(const ast::Expr& e, Scope& s);
  Value eval_binary(const ast::Expr& e, Scope& s);
  Value call_layer(const Module& module, const ast::LayerDecl& layer, const ast::Expr& call, std::vector<Arg> args,
                   Scope& caller);
  Value call_builtin(const ir::OpInfo& op, const ast::Expr& call, std::vector<Arg> args, Scope& s);
  Value emit(const std::string& op, std::vector<ir::ValueId> operands, ir::Attrs attrs, Span span,
             std::string name = {});
  Value constant_like(const Value& scalar, ir::DType dtype, Span span);
  bool declare_param(const ast::Stmt& st, Scope& s, bool is_state);
  std::optional<ir::TensorType> static_type(const ast::TypeExpr& type, Scope& s, bool allow_batch);
  std::optional<ir::TensorType> input_type(const ast::Stmt& st, Scope& s, std::string& features);
  bool to_attr(const ir::AttrSpec& spec, const Value& v, ir::AttrValue& out, std::string& why);

  Compilation& c_;
  ir::Graph& graph_;
  const std::set<const ast::LayerDecl*>& broken_;
  const std::set<std::string>& broken_features_;
  std::vector<ExpansionStep> expansion_;  // outermost first
  std::vector<const ast::LayerDecl*> layer_stack_;
  std::vector<std::unique_ptr<NameFrame>> frames_;
  std::optional<InitContext> init_;  // set while a param initialiser is evaluated
  std::set<std::string> param_paths_;
};

}  // namespace kiln::sema::detail
