// safetensors: round trip, the exact byte layout, and bad files rejected with a message
// naming the file and the tensor.
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "runtime/train/safetensors.h"

namespace {
namespace fs = std::filesystem;
using namespace kiln;
using namespace kiln::runtime;

fs::path temp_file(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / "kiln_safetensors";
  fs::create_directories(dir);
  return dir / name;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void spit(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary) << bytes;
}

}  // namespace

TEST_CASE("safetensors round trip keeps names, dtypes, shapes, values and metadata", "[safetensors]") {
  Tensor w(ir::DType::kF32, {2, 3});
  for (int i = 0; i < 6; ++i) w.data<float>()[i] = 0.5f * static_cast<float>(i) - 1;
  Tensor ids(ir::DType::kI32, {4});
  for (int i = 0; i < 4; ++i) ids.data<std::int32_t>()[i] = i * i;
  fs::path path = temp_file("round.safetensors");
  write_safetensors(path, {{"h1.w", &w}, {"ids", &ids}}, {{"model", "m"}});
  SafetensorsFile back = read_safetensors(path);
  REQUIRE(back.tensors.size() == 2);
  const Tensor& w2 = back.tensors.at("h1.w");
  CHECK(w2.dtype() == ir::DType::kF32);
  CHECK(w2.dims() == std::vector<std::int64_t>{2, 3});
  CHECK(std::memcmp(w2.raw(), w.raw(), w.bytes()) == 0);
  CHECK(back.tensors.at("ids").data<std::int32_t>()[3] == 9);
  CHECK(back.metadata.at("model") == "m");
  CHECK_FALSE(fs::exists(path.string() + ".tmp"));

  // The layout: 8-byte little-endian header size, JSON, then the data back to back.
  std::string bytes = slurp(path);
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<std::uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  CHECK(n % 8 == 0);
  CHECK(bytes.size() == 8 + n + w.bytes() + ids.bytes());
  CHECK(bytes[8] == '{');
}

TEST_CASE("bad safetensors files are rejected with the file and tensor named", "[safetensors]") {
  Tensor w(ir::DType::kF32, {2, 2});
  fs::path good = temp_file("good.safetensors");
  write_safetensors(good, {{"w", &w}});
  std::string bytes = slurp(good);

  fs::path bad = temp_file("bad.safetensors");
  spit(bad, bytes.substr(0, bytes.size() - 3));
  CHECK_THROWS_WITH(read_safetensors(bad), Catch::Contains("tensor 'w'") && Catch::Contains("do not fit"));

  std::string huge = bytes;
  huge[7] = 0x7f;  // a header size far past the file
  spit(bad, huge);
  CHECK_THROWS_WITH(read_safetensors(bad), Catch::Contains("over the limit"));

  std::string claims = bytes;
  claims[0] = static_cast<char>(0xff);
  claims[1] = static_cast<char>(0xff);
  claims[2] = 0x0f;
  spit(bad, claims);
  CHECK_THROWS_WITH(read_safetensors(bad), Catch::Contains("header claims"));

  spit(bad, "abc");
  CHECK_THROWS_WITH(read_safetensors(bad), Catch::Contains("too short"));

  std::string garbled = bytes;
  garbled[8] = 'x';
  spit(bad, garbled);
  CHECK_THROWS_WITH(read_safetensors(bad), Catch::Contains("not a JSON object"));
  CHECK_THROWS_WITH(read_safetensors(temp_file("missing.safetensors")), Catch::Contains("cannot open"));
}

TEST_CASE("non_finite_weight names the first infinity or NaN and where it is", "[safetensors]") {
  Tensor w(ir::DType::kF32, {3, 4});
  for (std::int64_t i = 0; i < w.elements(); ++i) w.data<float>()[i] = static_cast<float>(i) - 5.0f;
  CHECK(!non_finite_weight("p.safetensors", "h.w", w));
  w.data<float>()[2 * 4 + 1] = -std::numeric_limits<float>::infinity();
  w.data<float>()[2 * 4 + 3] = std::numeric_limits<float>::quiet_NaN();  // after the first
  const auto why = non_finite_weight("p.safetensors", "h.w", w);
  REQUIRE(why);
  CHECK_THAT(*why, Catch::StartsWith("p.safetensors: tensor 'h.w' holds -inf at [2, 1]; Kiln's trainer never writes"));
  Tensor d(ir::DType::kF64, {5});
  d.data<double>()[4] = std::numeric_limits<double>::infinity();
  CHECK_THAT(non_finite_weight("q", "b", d).value_or(""), Catch::Contains("tensor 'b' holds +inf at [4]"));
  Tensor n(ir::DType::kF32, {2, 2});
  n.data<float>()[0] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THAT(non_finite_weight("q", "c", n).value_or(""), Catch::Contains("holds a NaN at [0, 0]"));
}
