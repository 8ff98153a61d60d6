// What a resume refuses, through the CLI: a changed optimizer (unless --reset-optimizer), a
// changed model (every missing, unexpected and mis-shaped parameter at once), changed data;
// and --warm-start, kiln ckpt verify/strip/diff, kiln eval --checkpoint.
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>

namespace {

namespace fs = std::filesystem;

struct Result {
  int code;
  std::string out;
};

Result kiln(const std::string& args) {
  std::string command = "KILN_STDLIB=" + std::string(KILN_SOURCE_DIR) + "/stdlib " + KILN_BINARY + " " + args + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  std::string out;
  char buf[1024];
  while (std::fgets(buf, sizeof buf, pipe) != nullptr) out += buf;
  int status = ::pclose(pipe);
  return {WEXITSTATUS(status), out};
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("resume refuses a changed optimizer or model with precise messages; ckpt tools work", "[checkpoint]") {
  const fs::path root = fs::temp_directory_path() / "kiln_checkpoint" / "resume_checks";
  fs::remove_all(root);
  fs::create_directories(root);
  fs::create_directory_symlink(fs::path(KILN_SOURCE_DIR) / "models" / "data", root / "data");
  const std::string original = slurp(fs::path(KILN_SOURCE_DIR) / "models" / "credit_risk.kiln");
  const fs::path model = root / "credit.kiln";
  std::ofstream(model) << original;
  const std::string run = (root / "run").string();
  Result first = kiln("train " + model.string() + " --epochs 1 --max-steps 6 --checkpoint-every 2 --out " + run);
  INFO(first.out);
  REQUIRE(first.code == 0);

  // A different learning rate.
  std::ofstream(model) << std::regex_replace(original, std::regex("adam\\(lr: 1e-3\\)"), "adam(lr: 2e-3)");
  Result refused = kiln("train " + model.string() + " --epochs 2 --max-steps 6 --out " + run + " --resume latest");
  INFO(refused.out);
  CHECK(refused.code == 1);
  CHECK(refused.out.find("the optimizer changed") != std::string::npos);
  CHECK(refused.out.find("lr: the checkpoint has 0.001, the train block 0.002") != std::string::npos);
  Result reset =
      kiln("train " + model.string() + " --epochs 2 --max-steps 6 --out " + run + " --resume latest --reset-optimizer");
  INFO(reset.out);
  CHECK(reset.code == 0);

  // A changed model: a wider first layer and a renamed last one.
  std::string changed = std::regex_replace(original, std::regex("nn.dense\\(x, 64\\)"), "nn.dense(x, 48)");
  changed = std::regex_replace(changed, std::regex("output risk = nn.dense\\(d2, 2\\)"),
                               "out2 = nn.dense(d2, 2)\n  output risk = out2");
  std::ofstream(model) << changed;
  Result mismatch = kiln("train " + model.string() + " --epochs 3 --max-steps 6 --out " + run + " --resume latest");
  INFO(mismatch.out);
  CHECK(mismatch.code == 1);
  CHECK(mismatch.out.find("mis-shaped parameter") != std::string::npos);
  CHECK(mismatch.out.find("problems)") != std::string::npos);

  // Warm start from the weights of the original model's checkpoint.
  std::ofstream(model) << original;
  Result warm = kiln("train " + model.string() + " --epochs 1 --max-steps 4 --out " + (root / "warm").string() +
                     " --warm-start " + run);
  INFO(warm.out);
  CHECK(warm.code == 0);
  CHECK(warm.out.find("warm start: weights from") != std::string::npos);

  // The ckpt tools.
  Result verify = kiln("ckpt verify " + run);
  CHECK(verify.code == 0);
  Result strip = kiln("ckpt strip " + run + " -o " + (root / "stripped").string());
  INFO(strip.out);
  CHECK(strip.code == 0);
  CHECK_FALSE(fs::exists(root / "stripped" / "optimizer.safetensors"));
  CHECK(kiln("ckpt verify " + (root / "stripped").string()).code == 0);
  Result diff = kiln("ckpt diff " + run + " " + (root / "stripped").string());
  CHECK(diff.out.find("parameters identical") != std::string::npos);
  Result eval = kiln("eval " + model.string() + " --checkpoint " + (root / "stripped").string());
  INFO(eval.out);
  CHECK(eval.code == 0);
  CHECK(eval.out.find("\"auc\"") != std::string::npos);
  Result show = kiln("ckpt show " + run);
  CHECK(show.out.find("min") != std::string::npos);
  Result ls = kiln("ckpt ls " + run);
  CHECK(ls.out.find("<- latest") != std::string::npos);
  // A corrupted checkpoint: verify names the file and tensor and exits 1.
  const fs::path params = root / "stripped" / "params.safetensors";
  std::string bytes = slurp(params);
  bytes[bytes.size() - 3] ^= 0x01;
  std::ofstream(params, std::ios::binary | std::ios::trunc) << bytes;
  Result bad = kiln("ckpt verify " + (root / "stripped").string());
  INFO(bad.out);
  CHECK(bad.code == 1);
  CHECK(bad.out.find("params.safetensors: tensor '") != std::string::npos);
  CHECK(kiln("eval " + model.string() + " --checkpoint " + (root / "stripped").string()).code == 1);
}

TEST_CASE("resume refuses another seed, another batch size and changed data", "[checkpoint]") {
  const fs::path root = fs::temp_directory_path() / "kiln_checkpoint" / "resume_refusals";
  fs::remove_all(root);
  fs::create_directories(root / "data");
  // A copy of the data, so this test can change it.
  fs::copy_file(fs::path(KILN_SOURCE_DIR) / "models" / "data" / "credit_data.csv", root / "data" / "credit_data.csv");
  const std::string original = slurp(fs::path(KILN_SOURCE_DIR) / "models" / "credit_risk.kiln");
  const fs::path model = root / "credit.kiln";
  std::ofstream(model) << original;
  const std::string run = (root / "run").string();
  Result first = kiln("train " + model.string() + " --epochs 1 --max-steps 4 --checkpoint-every 2 --out " + run);
  INFO(first.out);
  REQUIRE(first.code == 0);

  Result seed =
      kiln("train " + model.string() + " --epochs 2 --max-steps 4 --out " + run + " --resume latest --seed 99");
  INFO(seed.out);
  CHECK(seed.code == 1);
  CHECK(seed.out.find("cannot resume with --seed 99: the checkpoint's run has seed 7") != std::string::npos);

  std::ofstream(model) << std::regex_replace(original, std::regex("batch = 128"), "batch = 64");
  Result batch = kiln("train " + model.string() + " --epochs 2 --max-steps 4 --out " + run + " --resume latest");
  INFO(batch.out);
  CHECK(batch.code == 1);
  CHECK(batch.out.find("cannot resume: the checkpoint's run has batch 128, the train block 64") != std::string::npos);

  std::ofstream(model) << original;
  {
    std::ofstream append(root / "data" / "credit_data.csv", std::ios::app);
    append << "good,9,rent,60,30,married,no,freelance,73,129,0,0,800,846\n";
  }
  Result data = kiln("train " + model.string() + " --epochs 2 --max-steps 4 --out " + run + " --resume latest");
  INFO(data.out);
  CHECK(data.code == 1);
  CHECK(data.out.find("cannot resume: the training data changed since the checkpoint") != std::string::npos);
  CHECK(data.out.find("--warm-start") != std::string::npos);
}
