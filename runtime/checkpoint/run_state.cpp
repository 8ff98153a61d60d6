// Checkpoint <-> training run (see run_state.h).
#include "runtime/checkpoint/run_state.h"

#include <cstdio>
#include <cstring>
#include <set>

namespace kiln::checkpoint {
namespace {

using nlohmann::json;

std::string fnv1a64(const std::string& text) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char ch : text) {
    h ^= ch;
    h *= 0x100000001b3ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace

json source_hashes(const sema::Compilation& c) {
  json out = {{"model", json::object()}, {"modules", json::array()}};
  for (const auto& m : c.modules) {
    if (m->file == kNoFile) continue;
    const SourceFile& f = c.sources.file(m->file);
    json entry = {{"name", m->name}, {"path", f.path()}, {"fnv1a64", fnv1a64(f.text())}};
    if (m.get() == c.root)
      out["model"] = entry;
    else
      out["modules"].push_back(entry);
  }
  return out;
}

json optimizer_record(const sema::TrainSpec& spec) {
  const sema::OptimizerSpec& o = spec.optimizer;
  return {{"kind", o.kind},
          {"lr", o.lr},
          {"momentum", o.momentum},
          {"nesterov", o.nesterov},
          {"beta1", o.beta1},
          {"beta2", o.beta2},
          {"eps", o.eps},
          {"weight_decay", o.weight_decay},
          {"clip_grad", spec.clip_grad}};
}

std::vector<std::string> optimizer_differences(const json& saved, const json& now) {
  std::vector<std::string> out;
  for (auto it = now.begin(); it != now.end(); ++it) {
    json before = saved.is_object() && saved.contains(it.key()) ? saved[it.key()] : json();
    if (before != *it) {
      out.push_back(it.key() + ": the checkpoint has " + before.dump() + ", the train block " + it->dump());
    }
  }
  return out;
}

std::vector<std::string> load_variables(runtime::Executor& exec, const std::vector<std::string>& names,
                                        const std::map<std::string, runtime::Tensor>& tensors, const std::string& what,
                                        bool strict) {
  std::vector<std::string> problems;
  std::set<std::string> wanted(names.begin(), names.end());
  for (const std::string& name : names) {
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      problems.push_back("missing " + what + " '" + name + "' (the model has it, the checkpoint does not)");
      continue;
    }
    runtime::Tensor& dst = exec.variable(name);
    if (dst.dims() != it->second.dims() || dst.dtype() != it->second.dtype()) {
      problems.push_back("mis-shaped " + what + " '" + name + "': the checkpoint has " + it->second.to_string() +
                         ", the model " + dst.to_string());
    }
  }
  if (strict) {
    for (const auto& [name, t] : tensors) {
      if (!wanted.count(name)) {
        problems.push_back("unexpected " + what + " '" + name + "' " + t.to_string() +
                           " (in the checkpoint, not in the model)");
      }
    }
  }
  if (!problems.empty()) return problems;
  for (const std::string& name : names) {
    const runtime::Tensor& src = tensors.at(name);
    if (src.bytes() > 0) std::memcpy(exec.variable(name).raw(), src.raw(), src.bytes());
  }
  return problems;
}

}  // namespace kiln::checkpoint
