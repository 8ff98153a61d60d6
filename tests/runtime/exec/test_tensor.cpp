// Host tensor storage: zero-filled and 64-byte aligned at every size; from 2 MiB up a mapping
// of its own (2 MiB-aligned, advised for transparent huge pages), unmapped with the tensor.
#include <sys/mman.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "runtime/exec/tensor.h"

namespace {

using kiln::runtime::Tensor;

std::uintptr_t address(const Tensor& t) {
  return reinterpret_cast<std::uintptr_t>(t.raw());
}

// The smaps lines of the mapping that holds `p` (/proc/self/smaps), empty if none does.
std::vector<std::string> smaps_of(const void* p) {
  std::ifstream smaps("/proc/self/smaps");
  const auto at = reinterpret_cast<std::uintptr_t>(p);
  std::vector<std::string> lines;
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    unsigned long long lo = 0, hi = 0;
    char dash = 0;
    if (std::sscanf(line.c_str(), "%llx%c%llx", &lo, &dash, &hi) == 3 && dash == '-') {
      if (inside) break;
      inside = lo <= at && at < hi;
    }
    if (inside) lines.push_back(line);
  }
  return lines;
}

std::string field(const std::vector<std::string>& lines, const std::string& name) {
  for (const std::string& line : lines)
    if (line.rfind(name + ":", 0) == 0) return line.substr(name.size() + 1);
  return "";
}

// Whether the page at `p` is mapped: msync fails with ENOMEM on an unmapped range.
bool mapped(const void* p) {
  const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  void* start = reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(p) / page * page);
  return msync(start, page, MS_ASYNC) == 0 || errno != ENOMEM;
}

}  // namespace

TEST_CASE("tensors are zero-filled and aligned at every size", "[tensor]") {
  // 524256 floats is the largest tensor under 2 MiB with its 64 bytes of slack (malloc);
  // 524257 the smallest at 2 MiB (a mapping of its own).
  for (std::int64_t n : {std::int64_t{0}, std::int64_t{1}, std::int64_t{1000}, std::int64_t{524256},
                         std::int64_t{524257}, std::int64_t{3} << 20}) {
    INFO("elements " << n);
    Tensor t(kiln::ir::DType::kF32, {n});
    CHECK(address(t) % 64 == 0);
    CHECK((address(t) % (std::uintptr_t{2} << 20) == 0) == (n >= 524257));
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
  const std::vector<std::string> smaps = smaps_of(big.raw());
  REQUIRE(!smaps.empty());
  // Its mapping holds the tensor and its slack in whole pages, no more than a page beyond.
  unsigned long long lo = 0, hi = 0;
  REQUIRE(std::sscanf(smaps[0].c_str(), "%llx-%llx", &lo, &hi) == 2);
  CHECK(lo == address(big));
  CHECK(hi - lo >= big.bytes() + 64);
  CHECK(hi - lo < big.bytes() + 64 + static_cast<unsigned long long>(sysconf(_SC_PAGESIZE)));
#ifdef MADV_HUGEPAGE
  // Advised for huge pages ("hg" in VmFlags) wherever the kernel has transparent huge pages,
  // whether or not they are switched on.
  if (std::ifstream("/sys/kernel/mm/transparent_hugepage/enabled").good()) {
    INFO("VmFlags:" << field(smaps, "VmFlags"));
    CHECK(field(smaps, "VmFlags").find(" hg") != std::string::npos);
  } else {
    WARN("this kernel has no transparent huge pages: the huge-page advice is not checked");
  }
#endif
  long huge_kb = -1;
  std::sscanf(field(smaps, "AnonHugePages").c_str(), "%ld", &huge_kb);
  if (huge_kb <= 0)
    WARN("no transparent huge pages under this tensor (AnonHugePages " << huge_kb
                                                                       << " kB): THP off or out of huge pages here; "
                                                                          "the tensor works on small pages");
  // Moves hand the mapping over; the tensor that holds it last unmaps it.
  const void* block = big.raw();
  Tensor moved = std::move(big);
  CHECK(moved.raw() == block);
  CHECK(moved.data<float>()[997 * 3] == 2991.0f);
  for (int round = 0; round < 20; ++round) {
    Tensor t(kiln::ir::DType::kF32, {1 << 20});
    CHECK(t.data<float>()[(1 << 20) - 1] == 0.0f);  // a fresh block: zero again
    t.data<float>()[(1 << 20) - 1] = 1.0f;
  }
  CHECK(mapped(block));
  moved = Tensor(kiln::ir::DType::kF32, {4});  // the 12.8 MB block is unmapped here
  CHECK(!mapped(block));
  CHECK(address(moved) % 64 == 0);
}
