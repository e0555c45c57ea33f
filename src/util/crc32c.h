// CRC32C (Castagnoli), as used for every stored entry and metadata record.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace rlr::util {

/// Extends `crc` (0 to start) over `data`. Uses the SSE4.2 instruction when the CPU has
/// it, a table otherwise; both give the same result.
[[nodiscard]] std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t size) noexcept;
[[nodiscard]] inline std::uint32_t crc32c(std::uint32_t crc,
                                          std::span<const std::uint8_t> data) noexcept {
  return crc32c(crc, data.data(), data.size());
}

}  // namespace rlr::util
