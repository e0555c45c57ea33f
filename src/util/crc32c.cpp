#include "util/crc32c.h"

#include <array>
#include <cstring>

namespace rlr::util {
namespace {

constexpr std::uint32_t kPoly = 0x82F63B78U;  // reflected Castagnoli polynomial

constexpr std::array<std::uint32_t, 256> make_table() {
  std::array<std::uint32_t, 256> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1U) ? (c >> 1) ^ kPoly : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr auto kTable = make_table();

std::uint32_t crc_table(std::uint32_t crc, const std::uint8_t* p, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) crc = kTable[(crc ^ p[i]) & 0xFFU] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
/// One stream of the crc32 instruction over n bytes, on the raw register (no inversion).
__attribute__((target("sse4.2"))) std::uint32_t crc_hw_serial(std::uint32_t crc, const std::uint8_t* p,
                                                               std::size_t n) noexcept {
  std::uint64_t c = crc;
  while (n >= 8) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    c = __builtin_ia32_crc32di(c, v);
    p += 8;
    n -= 8;
  }
  auto c32 = static_cast<std::uint32_t>(c);
  while (n > 0) {
    c32 = __builtin_ia32_crc32qi(c32, *p);
    ++p;
    --n;
  }
  return c32;
}

// The crc32 instruction takes 3 cycles and can start every cycle, so one stream of it
// runs at a third of its speed. Long inputs are therefore cut into rounds of three
// lanes of kLane bytes, each lane a stream of its own, and the three lane values are
// joined. The register update is linear over GF(2): the register after lanes a, b, c
// from register r is  Z(Z(A) ^ B) ^ C,  where A = crc(r, a), B = crc(0, b), C = crc(0, c)
// and Z(x) = crc(x, kLane zero bytes), itself linear in x, so a table of its value on
// every byte of x computes it in four lookups. The table is built by running the
// instruction itself over zeros, once.
constexpr std::size_t kLane = 512;

struct ZeroShift {
  std::array<std::array<std::uint32_t, 256>, 4> t{};
  ZeroShift() noexcept {
    static constexpr std::array<std::uint8_t, kLane> kZeros{};
    std::array<std::uint32_t, 32> column{};
    for (int bit = 0; bit < 32; ++bit) column[bit] = crc_hw_serial(1U << bit, kZeros.data(), kLane);
    for (int k = 0; k < 4; ++k) {
      for (std::uint32_t v = 0; v < 256; ++v) {
        std::uint32_t x = 0;
        for (int bit = 0; bit < 8; ++bit) {
          if ((v >> bit) & 1U) x ^= column[8 * k + bit];
        }
        t[k][v] = x;
      }
    }
  }
  [[nodiscard]] std::uint32_t operator()(std::uint32_t x) const noexcept {
    return t[0][x & 0xFFU] ^ t[1][(x >> 8) & 0xFFU] ^ t[2][(x >> 16) & 0xFFU] ^ t[3][x >> 24];
  }
};

__attribute__((target("sse4.2"))) std::uint32_t crc_hw(std::uint32_t crc, const std::uint8_t* p,
                                                        std::size_t n) noexcept {
  if (n >= 3 * kLane) {
    static const ZeroShift shift;
    while (n >= 3 * kLane) {
      std::uint64_t a = crc;
      std::uint64_t b = 0;
      std::uint64_t c = 0;
      for (std::size_t i = 0; i < kLane; i += 8) {
        std::uint64_t va;
        std::uint64_t vb;
        std::uint64_t vc;
        std::memcpy(&va, p + i, 8);
        std::memcpy(&vb, p + kLane + i, 8);
        std::memcpy(&vc, p + 2 * kLane + i, 8);
        a = __builtin_ia32_crc32di(a, va);
        b = __builtin_ia32_crc32di(b, vb);
        c = __builtin_ia32_crc32di(c, vc);
      }
      crc = shift(shift(static_cast<std::uint32_t>(a)) ^ static_cast<std::uint32_t>(b)) ^
            static_cast<std::uint32_t>(c);
      p += 3 * kLane;
      n -= 3 * kLane;
    }
  }
  return crc_hw_serial(crc, p, n);
}
const bool kHaveHw = __builtin_cpu_supports("sse4.2");
#endif

}  // namespace

std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t size) noexcept {
  const auto* p = static_cast<const std::uint8_t*>(data);
  crc = ~crc;
#if defined(__x86_64__)
  if (kHaveHw) return ~crc_hw(crc, p, size);
#endif
  return ~crc_table(crc, p, size);
}

std::uint32_t crc32c_portable(std::uint32_t crc, const void* data, std::size_t size) noexcept {
  return ~crc_table(~crc, static_cast<const std::uint8_t*>(data), size);
}

}  // namespace rlr::util
