// A host tensor: element type, concrete dimensions (the batch dimension is a real size
// here), and 64-byte-aligned row-major storage (from 2 MiB up, a block of its own pages,
// transparent huge pages where the kernel gives them). What executors take in and give back.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "compiler/ir/types.h"

namespace kiln::runtime {

class Tensor {
 public:
  Tensor() = default;
  Tensor(ir::DType dtype, std::vector<std::int64_t> dims);  // zero-filled

  ir::DType dtype() const { return dtype_; }
  const std::vector<std::int64_t>& dims() const { return dims_; }
  std::int64_t elements() const;
  std::size_t bytes() const;
  void* raw() { return data_.get(); }
  const void* raw() const { return data_.get(); }
  template <typename T>
  T* data() {
    return static_cast<T*>(raw());
  }
  template <typename T>
  const T* data() const {
    return static_cast<const T*>(raw());
  }
  std::string to_string() const;  // "f32[2, 3]"

 private:
  struct Free {
    Free() noexcept : mapped(0) {}
    explicit Free(std::size_t bytes) noexcept : mapped(bytes) {}
    void operator()(void* p) const;
    std::size_t mapped;  // bytes of a block of its own pages (mmap), or 0: from aligned_alloc
  };
  ir::DType dtype_ = ir::DType::kF32;
  std::vector<std::int64_t> dims_;
  std::unique_ptr<void, Free> data_;
};

using ir::dtype_size;  // bytes per element

}  // namespace kiln::runtime
