// CRC32C (Castagnoli), as used for every stored entry and metadata record.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace rlr::util {

/// Extends `crc` (0 to start) over `data`. Uses the SSE4.2 instruction when the CPU has
/// it (three streams at once on long inputs), a table otherwise; all give the same result.
[[nodiscard]] std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t size) noexcept;
[[nodiscard]] inline std::uint32_t crc32c(std::uint32_t crc,
                                          std::span<const std::uint8_t> data) noexcept {
  return crc32c(crc, data.data(), data.size());
}

/// The table-driven form on its own, whatever the CPU (the reference the tests hold the
/// fast forms to).
[[nodiscard]] std::uint32_t crc32c_portable(std::uint32_t crc, const void* data, std::size_t size) noexcept;

}  // namespace rlr::util
