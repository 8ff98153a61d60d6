// Host tensor storage: zero-filled and 64-byte aligned at every size; from 2 MiB up a block of
// its own pages (2 MiB-aligned, advised for transparent huge pages), freed with the tensor.
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <utility>

#include "runtime/exec/tensor.h"

namespace {

using kiln::runtime::Tensor;

std::uintptr_t address(const Tensor& t) {
  return reinterpret_cast<std::uintptr_t>(t.raw());
}

// kB of transparent huge pages in the mapping that holds `p` (/proc/self/smaps), or -1 if the
// file or the mapping is not found.
long huge_kb_at(const void* p) {
  std::ifstream smaps("/proc/self/smaps");
  const auto at = reinterpret_cast<std::uintptr_t>(p);
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    unsigned long long lo = 0, hi = 0;
    char dash = 0;
    if (std::sscanf(line.c_str(), "%llx%c%llx", &lo, &dash, &hi) == 3 && dash == '-') {
      inside = lo <= at && at < hi;
      continue;
    }
    long kb = 0;
    if (inside && std::sscanf(line.c_str(), "AnonHugePages: %ld kB", &kb) == 1) return kb;
  }
  return -1;
}

}  // namespace

TEST_CASE("tensors are zero-filled and aligned at every size", "[tensor]") {
  for (std::int64_t n : {std::int64_t{0}, std::int64_t{1}, std::int64_t{1000}, std::int64_t{524287},
                         std::int64_t{524288}, std::int64_t{3} << 20}) {
    INFO("elements " << n);
    Tensor t(kiln::ir::DType::kF32, {n});
    CHECK(address(t) % 64 == 0);
    const float* v = t.data<float>();
    std::int64_t nonzero = 0;
    for (std::int64_t i = 0; i < n; ++i) nonzero += v[i] != 0.0f;
    CHECK(nonzero == 0);
    // Every byte is writable, the 64 bytes of slack past the end included.
    std::memset(t.raw(), 0x5a, t.bytes() + 64);
    CHECK(t.data<unsigned char>()[t.bytes() + 63] == 0x5a);
  }
}

TEST_CASE("a tensor of 2 MiB or more has its own 2 MiB-aligned pages, freed with it", "[tensor]") {
  // 12.8 MB: the CNN dense layer's weights.
  Tensor big(kiln::ir::DType::kF32, {3136, 1024});
  CHECK(address(big) % (std::uintptr_t{2} << 20) == 0);
  float* w = big.data<float>();
  for (std::int64_t i = 0; i < big.elements(); i += 997) w[i] = static_cast<float>(i);
  CHECK(w[997 * 3] == 2991.0f);
  const long huge = huge_kb_at(big.raw());
  if (huge <= 0)
    WARN("no transparent huge pages under this tensor (AnonHugePages " << huge
                                                                       << " kB): THP off or out of huge pages here; "
                                                                          "the tensor works on small pages");
  // Moves hand the block over; the moved-to tensor frees it (a double unmap or a free() of a
  // mapping would crash here).
  Tensor moved = std::move(big);
  CHECK(moved.data<float>()[997 * 3] == 2991.0f);
  for (int round = 0; round < 20; ++round) {
    Tensor t(kiln::ir::DType::kF32, {1 << 20});
    CHECK(t.data<float>()[(1 << 20) - 1] == 0.0f);  // a fresh block: zero again
    t.data<float>()[(1 << 20) - 1] = 1.0f;
  }
  moved = Tensor(kiln::ir::DType::kF32, {4});  // the 12.8 MB block is unmapped here
  CHECK(address(moved) % 64 == 0);
}
