// The training step: a train block's graph (model + labels + scalar "loss") becomes one
// graph that computes the loss, its gradients (autodiff.h) and the optimizer update, so
// every backend compiles a whole step and the trainer only feeds batches and the learning
// rate. The update is written with primitive ops (not the fused sgd_update/adam_update),
// so the graph passes (folding, fusion) see through it, and ends in assign_state nodes on
// parameters and optimizer states; the executor applies every assign after the step, so
// all reads within a step see the old values.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "compiler/ir/graph.h"
#include "compiler/sema/sema.h"
#include "compiler/syntax/diagnostics.h"

namespace kiln::autodiff {

// Names the step adds: the trainer feeds kLearningRateInput (f32[], the schedule's rate for
// this step) and checkpoints hold the opt.* states in their separable optimizer part.
inline constexpr std::string_view kLearningRateInput = "lr";
inline constexpr std::string_view kStepState = "opt.step";         // f32[]: Adam's completed steps
std::string velocity_state_name(std::string_view parameter);       // "opt.velocity.<parameter>"
std::string first_moment_state_name(std::string_view parameter);   // "opt.m.<parameter>"
std::string second_moment_state_name(std::string_view parameter);  // "opt.v.<parameter>"

struct TrainingStep {
  ir::Graph graph;
  // Parameter name -> d loss / d parameter as autodiff built it (before clipping and decay).
  std::map<std::string, ir::ValueId> gradients;
  // Warnings (a parameter the loss ignores) and errors (a name the step needs is taken).
  std::vector<Diagnostic> diagnostics;

  bool ok() const;  // no errors among the diagnostics
};

// Copies the train block's graph and adds the step to it.
TrainingStep build_training_step(const sema::LoweredTrain& train);

// The same in place, on any graph with a scalar float output named "loss" (hand-built
// graphs in tests). On error the diagnostics say why and the graph is left without an update.
// Throws std::logic_error when there is no "loss" output or the optimizer kind is unknown
// (sema guarantees both).
TrainingStep add_training_step(ir::Graph graph, const sema::TrainSpec& spec);

}  // namespace kiln::autodiff
