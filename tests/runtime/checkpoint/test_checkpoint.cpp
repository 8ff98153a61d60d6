// Checkpoint format and commit protocol, in process: the CRC32C test vector, a round trip,
// every corruption the issue names detected with file and tensor, a full disk (injected
// write failure) that leaves the previous checkpoint and `latest` intact, retention, stale
// temporaries, and an independent Python reader of the published layout.
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "runtime/checkpoint/checkpoint.h"
#include "runtime/checkpoint/checkpoint_dir.h"
#include "runtime/checkpoint/crc32c.h"
#include "runtime/checkpoint/durable_io.h"

namespace {

namespace fs = std::filesystem;
using namespace kiln;
using nlohmann::json;

fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / "kiln_checkpoint" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

struct Fixture {
  runtime::Tensor w{ir::DType::kF32, {3, 4}};
  runtime::Tensor b{ir::DType::kF32, {4}};
  runtime::Tensor m{ir::DType::kF32, {3, 4}};
  runtime::Tensor step{ir::DType::kF32, {}};
  Fixture() {
    for (int i = 0; i < 12; ++i) w.data<float>()[i] = 0.25f * static_cast<float>(i) - 1.0f;
    for (int i = 0; i < 4; ++i) b.data<float>()[i] = 1e-3f * static_cast<float>(i + 1);
    for (int i = 0; i < 12; ++i) m.data<float>()[i] = static_cast<float>(i) / 7.0f;
    step.data<float>()[0] = 5;
  }
  checkpoint::CheckpointContents contents(std::int64_t at, double auc = 0.5) {
    checkpoint::CheckpointContents c;
    c.step = at;
    c.manifest = {{"model", "tiny"}, {"training", {{"epoch_holdout", {{"auc", auc}}}}}, {"metrics", json::array()}};
    c.params = {{"dense.w", &w}, {"dense.b", &b}};
    c.optimizer = {{"opt.m.dense.w", &m}, {"opt.step", &step}};
    c.pipeline = {{"columns", json::array()}};
    return c;
  }
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void spit(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
}

std::string problems_text(const fs::path& ckpt) {
  std::string all;
  for (const std::string& p : checkpoint::verify_checkpoint(ckpt)) all += p + "\n";
  return all;
}

// Offset of a tensor's data in a safetensors file.
std::size_t data_offset(const std::string& bytes, const std::string& name) {
  std::uint64_t size = 0;
  for (int i = 0; i < 8; ++i) size |= static_cast<std::uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  json header = json::parse(bytes.substr(8, size));
  return 8 + size + header[name]["data_offsets"][0].get<std::size_t>();
}

}  // namespace

TEST_CASE("crc32c matches the standard test vector", "[checkpoint]") {
  CHECK(checkpoint::crc32c(std::string_view("123456789")) == 0xE3069283u);
  CHECK(checkpoint::crc32c(std::string_view("")) == 0u);
  std::string long_text(1000, 'x');
  std::uint32_t split =
      checkpoint::crc32c_extend(checkpoint::crc32c(long_text.data(), 333), long_text.data() + 333, 667);
  CHECK(split == checkpoint::crc32c(long_text));
  CHECK(checkpoint::crc_hex(0xE3069283u) == "e3069283");
}

TEST_CASE("a checkpoint round-trips and every corruption is named with file and tensor", "[checkpoint]") {
  Fixture f;
  fs::path dir = fresh_dir("corrupt");
  fs::path ckpt = checkpoint::save_checkpoint(dir, f.contents(7));
  REQUIRE(ckpt == dir / "ckpt-7");
  REQUIRE(checkpoint::read_latest(dir) == ckpt);
  REQUIRE(checkpoint::verify_checkpoint(ckpt).empty());
  checkpoint::Checkpoint loaded = checkpoint::load_checkpoint(ckpt);
  REQUIRE(loaded.params.at("dense.w").dims() == std::vector<std::int64_t>{3, 4});
  CHECK(loaded.params.at("dense.w").data<float>()[5] == f.w.data<float>()[5]);
  CHECK(loaded.optimizer.at("opt.step").data<float>()[0] == 5);
  CHECK(loaded.manifest["step"] == 7);

  const fs::path params = ckpt / "params.safetensors";
  const std::string good = slurp(params);
  auto expect = [&](const std::string& bytes, const std::vector<std::string>& needles) {
    spit(params, bytes);
    std::string text = problems_text(ckpt);
    INFO(text);
    for (const std::string& n : needles) CHECK(text.find(n) != std::string::npos);
    CHECK_THROWS_AS(checkpoint::load_checkpoint(ckpt), checkpoint::CheckpointError);
    spit(params, good);
  };
  SECTION("a flipped byte in a tensor") {
    std::string bad = good;
    bad[data_offset(good, "dense.b") + 2] ^= 0x10;
    expect(bad, {params.string() + ": tensor 'dense.b': checksum mismatch", "file checksum mismatch"});
  }
  SECTION("a truncated file") {
    expect(good.substr(0, good.size() - 6), {"(truncated)", "tensor '"});
  }
  SECTION("a wrong magic") {
    std::string bad = good;
    bad[8] = 'X';
    expect(bad, {"wrong magic", "'dense.w'"});
  }
  SECTION("a header claiming more bytes than the file has") {
    std::string bad = good;
    bad[0] = static_cast<char>(0xF0);
    bad[1] = static_cast<char>(0xFF);
    bad[2] = static_cast<char>(0x0F);
    expect(bad, {"header claims", "'dense.b'"});
  }
  SECTION("a header over the size limit") {
    std::string bad = good;
    bad[7] = 0x01;  // 2^56 bytes
    expect(bad, {"over the limit", "'dense.w'"});
  }
  SECTION("a flipped byte in the manifest") {
    const fs::path manifest = ckpt / "manifest.json";
    std::string text = slurp(manifest);
    std::size_t at = text.find("\"tiny\"");
    text[at + 2] ^= 0x01;
    spit(manifest, text);
    std::string problems = problems_text(ckpt);
    INFO(problems);
    CHECK(problems.find(manifest.string() + ": manifest checksum mismatch") != std::string::npos);
    CHECK_THROWS_WITH(checkpoint::load_checkpoint(ckpt), Catch::Contains("nothing was loaded"));
  }
  SECTION("a flipped byte in the optimizer part") {
    const fs::path opt = ckpt / "optimizer.safetensors";
    std::string bad = slurp(opt);
    bad[data_offset(bad, "opt.m.dense.w")] ^= 0x40;
    spit(opt, bad);
    CHECK(problems_text(ckpt).find(opt.string() + ": tensor 'opt.m.dense.w': checksum mismatch") != std::string::npos);
  }
}

TEST_CASE("a full disk fails the save clearly and leaves the previous checkpoint and latest intact", "[checkpoint]") {
  Fixture f;
  fs::path dir = fresh_dir("disk_full");
  checkpoint::save_checkpoint(dir, f.contents(3));
  for (std::uint64_t budget : {0u, 10u, 100u, 500u}) {
    checkpoint::set_write_budget_for_testing(budget);
    f.w.data<float>()[0] += 1;
    try {
      checkpoint::save_checkpoint(dir, f.contents(6));
      FAIL("the save should have failed");
    } catch (const checkpoint::CheckpointIoError& e) {
      CHECK(std::string(e.what()).find("No space left on device") != std::string::npos);
    }
    checkpoint::set_write_budget_for_testing(std::nullopt);
    REQUIRE(checkpoint::read_latest(dir) == dir / "ckpt-3");
    CHECK(checkpoint::verify_checkpoint(dir / "ckpt-3").empty());
    CHECK_FALSE(fs::exists(dir / "ckpt-6"));
    for (const auto& e : fs::directory_iterator(dir)) CHECK(e.path().filename().string().rfind(".tmp-", 0) != 0);
  }
  // A failure while replacing `latest` itself (the checkpoint folder is already committed).
  std::string text = slurp(dir / "ckpt-3" / "params.safetensors");
  checkpoint::set_write_budget_for_testing(text.size() + 40000);  // enough for the folder, not for `latest`
  try {
    checkpoint::save_checkpoint(dir, f.contents(9));
  } catch (const checkpoint::CheckpointIoError&) {
  }
  checkpoint::set_write_budget_for_testing(std::nullopt);
  std::optional<fs::path> latest = checkpoint::read_latest(dir);
  REQUIRE(latest);
  CHECK(checkpoint::verify_checkpoint(*latest).empty());
}

TEST_CASE("retention keeps the latest N, every K-th and the best N; stale temporaries are removed", "[checkpoint]") {
  Fixture f;
  fs::path dir = fresh_dir("retention");
  const double aucs[] = {0.6, 0.9, 0.7, 0.65, 0.8, 0.5, 0.55, 0.52};
  for (int i = 1; i <= 8; ++i) checkpoint::save_checkpoint(dir, f.contents(i * 10, aucs[i - 1]));
  checkpoint::RetentionPolicy policy;
  policy.keep_last = 2;
  policy.keep_every = 40;
  policy.keep_best = 2;
  policy.best_metric = "auc";
  checkpoint::apply_retention(dir, policy);
  std::vector<std::int64_t> kept;
  for (const auto& e : checkpoint::list_checkpoints(dir)) kept.push_back(e.step);
  CHECK(kept == std::vector<std::int64_t>{20, 40, 50, 70, 80});  // best: 20 (0.9), 50 (0.8); every 40: 40, 80
  fs::create_directories(dir / ".tmp-ckpt-90-12345");
  spit(dir / ".tmp-latest-12345", "ckpt-90\n");
  auto removed = checkpoint::remove_stale_temporaries(dir);
  CHECK(removed == std::vector<std::string>{".tmp-ckpt-90-12345", ".tmp-latest-12345"});
  CHECK(checkpoint::lower_is_better("rmse"));
  CHECK_FALSE(checkpoint::lower_is_better("auc"));
}

TEST_CASE("retention keeps one checkpoint every K minutes", "[checkpoint]") {
  Fixture f;
  fs::path dir = fresh_dir("retention_minutes");
  const double minutes[] = {0, 2, 4, 6, 9.5, 10.5, 14, 21};  // save times since the first
  for (int i = 0; i < 8; ++i) {
    auto contents = f.contents((i + 1) * 10);
    contents.manifest["saved_at_unix"] = 1.7e9 + minutes[i] * 60;
    checkpoint::save_checkpoint(dir, contents);
  }
  checkpoint::RetentionPolicy policy;
  policy.keep_last = 1;
  policy.keep_every_minutes = 5;
  checkpoint::apply_retention(dir, policy);
  std::vector<std::int64_t> kept;
  for (const auto& e : checkpoint::list_checkpoints(dir)) kept.push_back(e.step);
  // windows [0,5): 10; [5,10): 40; [10,15): 60; [20,25): 80 (also the latest)
  CHECK(kept == std::vector<std::int64_t>{10, 40, 60, 80});
}

TEST_CASE("an independent Python reader reads a checkpoint's weights: names, shapes, values", "[checkpoint]") {
  Fixture f;
  fs::path dir = fresh_dir("interop");
  fs::path ckpt = checkpoint::save_checkpoint(dir, f.contents(1));
  std::string command = "python3 " +
                        (fs::path(KILN_SOURCE_DIR) / "tests/runtime/checkpoint/read_safetensors.py").string() + " " +
                        (ckpt / "params.safetensors").string();
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, pipe) != nullptr) out += buf;
  REQUIRE(::pclose(pipe) == 0);
  auto line = [](const std::string& name, const std::string& shape, int count, const float* v, int n) {
    std::string s = name + " F32 " + shape + " " + std::to_string(count);
    for (int i = 0; i < n; ++i) {
      char num[64];
      std::snprintf(num, sizeof num, " %.9g", static_cast<double>(v[i]));
      s += num;
    }
    return s + "\n";
  };
  std::string expected =
      line("dense.b", "4", 4, f.b.data<float>(), 3) + line("dense.w", "3x4", 12, f.w.data<float>(), 3);
  CHECK(out == expected);
}

// A manifest whose checksum holds but whose fields are of the wrong type (hand-edited with
// the checksum recomputed, or written by another program) is refused with the field's path,
// not passed on to code that would stop on the JSON library's type error.
TEST_CASE("a manifest with a field of the wrong type is refused by its path", "[checkpoint]") {
  Fixture f;
  fs::path dir = fresh_dir("schema");
  fs::path ckpt = checkpoint::save_checkpoint(dir, f.contents(3));
  const fs::path manifest = ckpt / "manifest.json";
  const std::string good = slurp(manifest);
  auto rewrite = [&](const std::function<void(json&)>& edit) {
    json m = json::parse(good);
    m.erase("manifest_crc32c");
    edit(m);
    const std::string text = m.dump(2) + "\n";
    spit(manifest,
         "{\n  \"manifest_crc32c\": \"" + checkpoint::crc_hex(checkpoint::crc32c(text)) + "\"," + text.substr(1));
  };
  auto problem = [&] {
    const std::vector<std::string> problems = checkpoint::verify_checkpoint(ckpt);
    return problems.empty() ? std::string("none") : problems.front();
  };
  const std::string prefix = manifest.string() + ": malformed manifest: ";

  rewrite([](json& m) { m["extra"] = {{"anything", 1}}; });
  CHECK(problem() == "none");  // the checksum recomputed, and fields Kiln does not read are free
  rewrite([](json& m) { m["training"]["seed"] = "x"; });
  CHECK(problem() == prefix + "training.seed is string; expected a non-negative integer");
  CHECK_THROWS_AS(checkpoint::load_checkpoint(ckpt), checkpoint::CheckpointError);
  rewrite([](json& m) { m["files"] = 5; });
  CHECK(problem() == prefix + "files is number; expected an object");
  rewrite([](json& m) { m["files"]["params.safetensors"].erase("bytes"); });
  CHECK(problem() == prefix + "files.params.safetensors.bytes is missing");
  rewrite([](json& m) { m["metrics"] = {{{"epoch", 1}, {"holdout", {{"auc", "high"}}}}}; });
  CHECK(problem() == prefix + "metrics[0].holdout.auc is string; expected a number");
  rewrite([](json& m) { m["checkpoint_format"] = "1"; });
  CHECK(problem() == prefix + "checkpoint_format is string; expected an integer");
  // `kiln ckpt ls` lists such a checkpoint as unreadable, with the reason.
  const std::vector<checkpoint::CheckpointEntry> all = checkpoint::list_checkpoints(dir);
  REQUIRE(all.size() == 1);
  CHECK_FALSE(all[0].manifest.is_object());
  CHECK(all[0].problem == prefix + "checkpoint_format is string; expected an integer");
}
