// `kiln ckpt` (see ckpt_command.h).
#include "tools/kiln/ckpt_command.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "runtime/checkpoint/checkpoint.h"
#include "runtime/checkpoint/checkpoint_dir.h"

namespace kiln::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int kOk = 0;
constexpr int kProblem = 1;

// A checkpoints folder: the folder itself, or RUN/checkpoints.
fs::path checkpoints_folder(const fs::path& dir) {
  std::error_code ec;
  if (fs::is_directory(dir / "checkpoints", ec)) return dir / "checkpoints";
  return dir;
}

double as_double(const runtime::Tensor& t, std::int64_t i) {
  switch (t.dtype()) {
    case ir::DType::kF32: return t.data<float>()[i];
    case ir::DType::kF64: return t.data<double>()[i];
    case ir::DType::kI32: return t.data<std::int32_t>()[i];
    case ir::DType::kI64: return static_cast<double>(t.data<std::int64_t>()[i]);
    case ir::DType::kBool: return t.data<std::uint8_t>()[i];
  }
  return 0;
}

void summarize(const std::string& name, const runtime::Tensor& t) {
  double lo = INFINITY, hi = -INFINITY, sum = 0;
  for (std::int64_t i = 0; i < t.elements(); ++i) {
    double v = as_double(t, i);
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    sum += v;
  }
  double mean = t.elements() > 0 ? sum / static_cast<double>(t.elements()) : 0;
  std::printf("  %-40s %-16s min %-12.6g max %-12.6g mean %.6g\n", name.c_str(), t.to_string().c_str(), lo, hi, mean);
}

int run_ls(const fs::path& given) {
  const fs::path dir = checkpoints_folder(given);
  for (const std::string& name : checkpoint::remove_stale_temporaries(dir)) {
    std::cerr << "removed " << (dir / name).string() << " (left by an interrupted save)\n";
  }
  std::optional<fs::path> latest;
  try {
    latest = checkpoint::read_latest(dir);
  } catch (const checkpoint::CheckpointError& e) {
    std::cerr << "kiln ckpt ls: warning: " << e.what() << "\n";
  }
  std::vector<checkpoint::CheckpointEntry> all = checkpoint::list_checkpoints(dir);
  if (all.empty()) {
    std::cerr << "kiln ckpt ls: no checkpoints in " << dir.string() << "\n";
    return kProblem;
  }
  for (const checkpoint::CheckpointEntry& e : all) {
    std::string line = e.path.filename().string();
    if (!e.manifest.is_object()) {
      std::printf("%-16s  UNREADABLE: %s\n", line.c_str(), e.problem.c_str());
      continue;
    }
    // Fields are typed when the manifest is read (checkpoint.cpp), not all there.
    const json tr = e.manifest.value("training", json::object());
    std::printf("%-16s step %-8lld epoch %-4lld batch %-6lld", line.c_str(),
                static_cast<long long>(e.manifest.value("step", 0)), static_cast<long long>(tr.value("epoch", 0)),
                static_cast<long long>(tr.value("batch_in_epoch", 0)));
    const json metrics = e.manifest.value("metrics", json::array());
    if (!metrics.empty()) {
      const json holdout = metrics.back().value("holdout", json::object());
      for (auto it = holdout.begin(); it != holdout.end(); ++it) {
        std::printf(" %s %.4f", it.key().c_str(), it->get<double>());
      }
    }
    if (e.manifest.value("stripped", false)) std::printf("  (stripped)");
    if (latest && fs::equivalent(*latest, e.path)) std::printf("  <- latest");
    std::printf("\n");
  }
  return kOk;
}

std::optional<checkpoint::Checkpoint> load_or_report(const fs::path& what, const char* command) {
  try {
    return checkpoint::load_checkpoint(checkpoint::resolve_checkpoint(what));
  } catch (const checkpoint::CheckpointError& e) {
    std::cerr << "kiln ckpt " << command << ": error: " << e.what() << "\n";
    return std::nullopt;
  }
}

int run_show(const fs::path& what) {
  std::optional<checkpoint::Checkpoint> ck = load_or_report(what, "show");
  if (!ck) return kProblem;
  json manifest = ck->manifest;
  std::cout << "checkpoint " << ck->path.string() << "\n" << manifest.dump(2) << "\n";
  std::cout << "parameters and model states (" << checkpoint::kParamsFile << "):\n";
  for (const auto& [name, t] : ck->params) summarize(name, t);
  if (!ck->optimizer.empty()) {
    std::cout << "optimizer state (" << checkpoint::kOptimizerFile << "):\n";
    for (const auto& [name, t] : ck->optimizer) summarize(name, t);
  }
  return kOk;
}

int run_verify(const fs::path& what) {
  fs::path ckpt;
  try {
    ckpt = checkpoint::resolve_checkpoint(what);
  } catch (const checkpoint::CheckpointError& e) {
    std::cerr << "kiln ckpt verify: error: " << e.what() << "\n";
    return kProblem;
  }
  std::vector<std::string> problems = checkpoint::verify_checkpoint(ckpt);
  for (const std::string& p : problems) std::cerr << "kiln ckpt verify: error: " << p << "\n";
  if (!problems.empty()) {
    std::cerr << ckpt.string() << ": " << problems.size() << " problem" << (problems.size() == 1 ? "" : "s") << "\n";
    return kProblem;
  }
  std::cout << ckpt.string() << ": ok (manifest, every file and every tensor checksum verified)\n";
  return kOk;
}

int run_diff(const fs::path& a, const fs::path& b) {
  std::optional<checkpoint::Checkpoint> x = load_or_report(a, "diff");
  std::optional<checkpoint::Checkpoint> y = load_or_report(b, "diff");
  if (!x || !y) return kProblem;
  bool same = true;
  for (const auto& [name, t] : x->params) {
    auto it = y->params.find(name);
    if (it == y->params.end()) {
      std::printf("  %-40s only in %s\n", name.c_str(), x->path.string().c_str());
      same = false;
      continue;
    }
    if (it->second.dims() != t.dims() || it->second.dtype() != t.dtype()) {
      std::printf("  %-40s %s vs %s\n", name.c_str(), t.to_string().c_str(), it->second.to_string().c_str());
      same = false;
      continue;
    }
    double most = 0;
    for (std::int64_t i = 0; i < t.elements(); ++i)
      most = std::max(most, std::fabs(as_double(t, i) - as_double(it->second, i)));
    std::printf("  %-40s max abs diff %.6g\n", name.c_str(), most);
    if (most != 0) same = false;
  }
  for (const auto& [name, t] : y->params) {
    if (!x->params.count(name)) {
      std::printf("  %-40s only in %s\n", name.c_str(), y->path.string().c_str());
      same = false;
    }
  }
  std::printf("%s\n", same ? "parameters identical" : "parameters differ");
  return kOk;
}

int run_strip(const fs::path& what, const fs::path& out) {
  std::optional<checkpoint::Checkpoint> ck = load_or_report(what, "strip");
  if (!ck) return kProblem;
  std::error_code ec;
  if (fs::exists(out, ec)) {
    std::cerr << "kiln ckpt strip: error: " << out.string() << " exists (choose a new folder)\n";
    return kProblem;
  }
  checkpoint::CheckpointContents contents;
  contents.step = ck->manifest.value("step", 0);
  contents.manifest = ck->manifest;
  for (const char* k : {"manifest_crc32c", "files", "parameters", "optimizer_state", "stripped"})
    contents.manifest.erase(k);
  contents.manifest["stripped_from"] = ck->path.string();
  for (const auto& [name, t] : ck->params) contents.params.emplace_back(name, &t);
  contents.pipeline = ck->pipeline;
  try {
    checkpoint::write_checkpoint_folder(fs::absolute(out), contents);
  } catch (const std::exception& e) {
    std::cerr << "kiln ckpt strip: error: " << e.what() << "\n";
    return kProblem;
  }
  std::cout << "wrote " << out.string() << " (parameters, model states and pipeline; no optimizer state)\n";
  return kOk;
}

}  // namespace

CLI::App* add_ckpt_command(CLI::App& app, CkptArgs& args) {
  CLI::App* ckpt = app.add_subcommand("ckpt", "Inspect checkpoints: ls, show, verify, diff, strip");
  ckpt->require_subcommand(1);
  args.ls =
      ckpt->add_subcommand("ls", "List the checkpoints of a run or checkpoints folder (step, epoch, metrics, latest)");
  args.ls->add_option("DIR", args.dir, "A run folder or its checkpoints folder")->required();
  args.show = ckpt->add_subcommand("show", "Print the manifest and a per-tensor summary (shape, dtype, min/max/mean)");
  args.show->add_option("CKPT", args.dir, "A checkpoint (or a run/checkpoints folder: its latest)")->required();
  args.verify =
      ckpt->add_subcommand("verify", "Recompute every checksum; exit 1 naming each file and tensor that fails");
  args.verify->add_option("CKPT", args.dir, "A checkpoint (or a run/checkpoints folder: its latest)")->required();
  args.diff = ckpt->add_subcommand("diff", "Compare two checkpoints' parameters (max abs difference per tensor)");
  args.diff->add_option("A", args.dir, "A checkpoint")->required();
  args.diff->add_option("B", args.other, "Another checkpoint")->required();
  args.strip = ckpt->add_subcommand("strip", "Write a copy without optimizer state (for deployment)");
  args.strip->add_option("CKPT", args.dir, "A checkpoint")->required();
  args.strip->add_option("-o,--output", args.out, "The new checkpoint folder")->required();
  return ckpt;
}

int run_ckpt(const CkptArgs& args) {
  if (args.ls->parsed()) return run_ls(args.dir);
  if (args.show->parsed()) return run_show(args.dir);
  if (args.verify->parsed()) return run_verify(args.dir);
  if (args.diff->parsed()) return run_diff(args.dir, args.other);
  if (args.strip->parsed()) return run_strip(args.dir, args.out);
  return kProblem;
}

}  // namespace kiln::cli
