// What ties a checkpoint to a training run, shared by the trainer and `kiln ckpt`: the
// manifest's source hashes and optimizer record, the differences that make a resume
// unsafe, and loading tensors into an executor with every mismatch reported at once.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "compiler/sema/sema.h"
#include "runtime/exec/executor.h"

namespace kiln::checkpoint {

// {"model": {path, fnv1a64}, "modules": [{name, path, fnv1a64}, ...]}: the root file and every
// module the compilation loaded (stdlib included), hashed from the texts sema compiled.
nlohmann::json source_hashes(const sema::Compilation& c);

// The optimizer and its hyperparameters (kind, lr, momentum, nesterov, betas, eps, weight
// decay, clip_grad), as the manifest records them.
nlohmann::json optimizer_record(const sema::TrainSpec& spec);

// "lr: the checkpoint has 0.001, the train block 0.01" for each field that differs.
std::vector<std::string> optimizer_differences(const nlohmann::json& saved, const nlohmann::json& now);

// Copies `tensors` into the executor's variables named `names`. Every name missing from
// `tensors`, every tensor not among `names` (when `strict`), and every dtype/shape mismatch
// is returned (what = "parameter", "optimizer state"); nothing is copied unless all match.
std::vector<std::string> load_variables(runtime::Executor& exec, const std::vector<std::string>& names,
                                        const std::map<std::string, runtime::Tensor>& tensors, const std::string& what,
                                        bool strict = true);

}  // namespace kiln::checkpoint
