// Host tensors: 64-byte-aligned, zero-filled storage so kernels may assume vector-width
// alignment and a fresh tensor never exposes stale memory.
//
// From 2 MiB up a tensor gets its own anonymous mapping, aligned to 2 MiB and marked
// MADV_HUGEPAGE (this Debian's transparent huge pages are in `madvise` mode): the JIT's
// arena, the CNN's dense weights and their optimizer state then take one TLB entry per
// 2 MiB rather than per 4 KiB. fashion_cnn's training step touches some 290 MB, far past the
// reach of the 4 KiB TLB entries, and ran about 4% faster so (docs/performance.md). Taken
// from malloc, such blocks come from memory the process has already touched in small pages
// (glibc's heap, once its mmap threshold has grown), which gets no huge pages.
#include "runtime/exec/tensor.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>

namespace kiln::runtime {

namespace {

constexpr std::size_t kHugePage = std::size_t{2} << 20;

// A zero-filled block of at least `size` bytes, 2 MiB-aligned, in its own mapping marked for
// huge pages; `mapped` receives its length. Null if the mapping fails or `size` is absurd.
void* map_huge(std::size_t size, std::size_t& mapped) {
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  if (page == 0 || page > kHugePage || size > SIZE_MAX - 2 * kHugePage) return nullptr;
  // Whole small pages: a last stretch shorter than 2 MiB stays on small pages (its range is
  // not a whole huge page of the mapping), so a tensor just over a multiple of 2 MiB does
  // not fault in a whole huge page for its last bytes.
  const std::size_t length = (size + page - 1) / page * page, reserved = length + kHugePage;
  void* block = mmap(nullptr, reserved, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (block == MAP_FAILED) return nullptr;
  // Keep `length` bytes from the first 2 MiB boundary and give back the rest on either side.
  const auto first = reinterpret_cast<std::uintptr_t>(block);
  const std::uintptr_t start = (first + kHugePage - 1) / kHugePage * kHugePage;
  const std::size_t head = start - first, tail = reserved - head - length;
  if (head > 0) munmap(block, head);
  if (tail > 0) munmap(reinterpret_cast<void*>(start + length), tail);
#ifdef MADV_HUGEPAGE
  madvise(reinterpret_cast<void*>(start), length, MADV_HUGEPAGE);  // advice: small pages if refused
#endif
  mapped = length;
  return reinterpret_cast<void*>(start);
}

}  // namespace

void Tensor::Free::operator()(void* p) const {
  if (mapped > 0) {
    munmap(p, mapped);
  } else {
    std::free(p);
  }
}

Tensor::Tensor(ir::DType dtype, std::vector<std::int64_t> dims) : dtype_(dtype), dims_(std::move(dims)) {
  for (const std::int64_t d : dims_) {
    if (d < 0) throw std::invalid_argument(fmt::format("tensor dimension {} is negative in {}", d, to_string()));
  }
  // aligned_alloc wants a size that is a multiple of the alignment, and never 0.
  const std::size_t size = (bytes() + 63) / 64 * 64 + 64;
  if (size >= kHugePage) {
    std::size_t mapped = 0;
    if (void* p = map_huge(size, mapped)) {  // anonymous pages are zero already
      data_ = std::unique_ptr<void, Free>(p, Free{mapped});
      return;
    }
  }
  void* p = std::aligned_alloc(64, size);
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, size);
  data_.reset(p);
}

std::int64_t Tensor::elements() const {
  std::int64_t n = 1;
  for (const std::int64_t d : dims_) n *= d;
  return n;
}

std::size_t Tensor::bytes() const {
  return static_cast<std::size_t>(elements()) * dtype_size(dtype_);
}

std::string Tensor::to_string() const {
  return fmt::format("{}[{}]", ir::dtype_name(dtype_), fmt::join(dims_, ", "));
}

}  // namespace kiln::runtime
