// CRC32C (Castagnoli, reflected polynomial 0x82F63B78): the checksum a checkpoint keeps for
// every tensor, every file and its own manifest. Table-driven (slicing by 8), no hardware
// dependency, so every platform computes the same value; crc32c("123456789") = 0xE3069283.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kiln::checkpoint {

// Extends `crc` (the value of the bytes so far; 0 for none) with `size` more bytes.
std::uint32_t crc32c_extend(std::uint32_t crc, const void* data, std::size_t size);

inline std::uint32_t crc32c(const void* data, std::size_t size) {
  return crc32c_extend(0, data, size);
}
inline std::uint32_t crc32c(std::string_view bytes) {
  return crc32c(bytes.data(), bytes.size());
}

// "e3069283": how checksums are written in manifests and messages.
std::string crc_hex(std::uint32_t crc);

}  // namespace kiln::checkpoint
