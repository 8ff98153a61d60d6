// The crash test: a child `kiln train` is killed with SIGKILL at random moments (many of
// them inside a save: a save is ~40% of this short run) and resumed with --resume latest
// each time; after every kill `latest` must name a checkpoint that verifies, and the final
// parameters must be bit-identical to an uninterrupted run with the same seed.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "runtime/checkpoint/checkpoint.h"
#include "runtime/checkpoint/checkpoint_dir.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using namespace kiln;

pid_t start_train(const fs::path& run_dir, bool checkpoints) {
  std::vector<std::string> args = {KILN_BINARY,     "train", std::string(KILN_SOURCE_DIR) + "/models/credit_risk.kiln",
                                   "--epochs",      "3",     "--out",
                                   run_dir.string()};
  if (checkpoints) {
    for (const char* a : {"--checkpoint-every", "3", "--keep", "2", "--resume", "latest"}) args.emplace_back(a);
  } else {
    args.emplace_back("--no-checkpoints");
  }
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  ::setenv("KILN_STDLIB", (std::string(KILN_SOURCE_DIR) + "/stdlib").c_str(), 1);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, KILN_BINARY, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  REQUIRE(rc == 0);
  return pid;
}

int wait_exit(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("kill -9 at random moments, resume each time: bit-identical parameters, latest always verifies",
          "[checkpoint][crash]") {
  const fs::path root = fs::temp_directory_path() / "kiln_checkpoint" / "crash";
  fs::remove_all(root);
  const fs::path reference = root / "reference", run = root / "killed";

  auto started = std::chrono::steady_clock::now();
  REQUIRE(wait_exit(start_train(reference, false)) == 0);
  // The checkpointing run is longer than the reference; kills land anywhere in it.
  const double typical = 1.6 * std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  std::mt19937_64 rng(20261124);
  std::uniform_real_distribution<double> when(0.0, typical);
  int kills = 0, kills_mid_save = 0, completions = 0;
  for (int round = 0; kills < 14 && round < 60; ++round) {
    pid_t pid = start_train(run, true);
    std::this_thread::sleep_for(std::chrono::duration<double>(when(rng)));
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      // Finished before the kill: start the run over so later kills still land mid-run.
      REQUIRE(WIFEXITED(status));
      REQUIRE(WEXITSTATUS(status) == 0);
      ++completions;
      REQUIRE(slurp(run / "params.safetensors") == slurp(reference / "params.safetensors"));
      fs::remove_all(run);
      continue;
    }
    ::kill(pid, SIGKILL);
    int code = wait_exit(pid);
    if (code != -SIGKILL) {  // it finished between the check and the kill
      REQUIRE(code == 0);
      continue;
    }
    ++kills;
    const fs::path ckpts = run / "checkpoints";
    std::error_code ec;
    if (fs::is_directory(ckpts, ec)) {
      for (const auto& e : fs::directory_iterator(ckpts)) {
        if (e.path().filename().string().rfind(".tmp-", 0) == 0) {
          ++kills_mid_save;
          break;
        }
      }
    }
    std::optional<fs::path> latest;
    REQUIRE_NOTHROW(latest = checkpoint::read_latest(ckpts));
    if (latest) {
      std::vector<std::string> problems = checkpoint::verify_checkpoint(*latest);
      INFO("after kill " << kills << ": " << (problems.empty() ? "" : problems.front()));
      REQUIRE(problems.empty());
    }
  }
  // Finish the interrupted run.
  REQUIRE(wait_exit(start_train(run, true)) == 0);
  INFO(kills << " kills (" << kills_mid_save << " during a save), " << completions << " runs completed between kills");
  CHECK(kills >= 10);
  REQUIRE(fs::exists(run / "params.safetensors"));
  CHECK(slurp(run / "params.safetensors") == slurp(reference / "params.safetensors"));
  WARN(kills << " kills (" << kills_mid_save << " left a save's temporary behind), " << completions << " completions");
}
