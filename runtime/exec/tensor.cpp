// Host tensors: 64-byte-aligned, zero-filled storage so kernels may assume vector-width
// alignment and a fresh tensor never exposes stale memory.
#include "runtime/exec/tensor.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>

namespace kiln::runtime {

void Tensor::Free::operator()(void* p) const {
  std::free(p);
}

Tensor::Tensor(ir::DType dtype, std::vector<std::int64_t> dims) : dtype_(dtype), dims_(std::move(dims)) {
  for (const std::int64_t d : dims_) {
    if (d < 0) throw std::invalid_argument(fmt::format("tensor dimension {} is negative in {}", d, to_string()));
  }
  // aligned_alloc wants a size that is a multiple of the alignment, and never 0.
  const std::size_t size = (bytes() + 63) / 64 * 64 + 64;
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
