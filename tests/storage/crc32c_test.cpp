// CRC32C: the fast forms (one stream of the crc32 instruction, three interleaved lanes
// for long inputs) against the table-driven reference and published check values.

#include <catch2/catch.hpp>
#include <rapidcheck.h>
#include <rapidcheck/catch.h>

#include <cstdint>
#include <random>
#include <string_view>
#include <vector>

#include "util/crc32c.h"

namespace rlr::util {
namespace {

std::vector<std::uint8_t> random_bytes(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::uint8_t> out(n);
  for (auto& b : out) b = static_cast<std::uint8_t>(rng());
  return out;
}

TEST_CASE("crc32c: published check values", "[crc]") {
  constexpr std::string_view kCheck = "123456789";
  CHECK(crc32c(0, kCheck.data(), kCheck.size()) == 0xE3069283U);
  CHECK(crc32c_portable(0, kCheck.data(), kCheck.size()) == 0xE3069283U);
  // RFC 3720 (iSCSI) B.4: 32 bytes of zeros, of 0xFF, and ascending 0..31.
  std::vector<std::uint8_t> v(32, 0);
  CHECK(crc32c(0, v.data(), v.size()) == 0x8A9136AAU);
  v.assign(32, 0xFF);
  CHECK(crc32c(0, v.data(), v.size()) == 0x62A8AB43U);
  for (std::size_t i = 0; i < 32; ++i) v[i] = static_cast<std::uint8_t>(i);
  CHECK(crc32c(0, v.data(), v.size()) == 0x46DD794EU);
  CHECK(crc32c(0, nullptr, 0) == 0);
}

TEST_CASE("crc32c: every length around the three-lane rounds matches the reference", "[crc]") {
  // Rounds are 3 x 512 bytes: cover below, at and past one and two rounds, at every
  // misalignment of the start, so both the lanes and the tails are exercised.
  const auto data = random_bytes(3 * 3 * 512 + 64, 7);
  for (std::size_t offset = 0; offset < 8; ++offset) {
    for (std::size_t n : {0UL, 1UL, 7UL, 8UL, 511UL, 1535UL, 1536UL, 1537UL, 1543UL, 3071UL, 3072UL,
                          3073UL, 4608UL, 4615UL}) {
      if (offset + n > data.size()) continue;
      INFO("offset " << offset << " length " << n);
      CHECK(crc32c(0, data.data() + offset, n) == crc32c_portable(0, data.data() + offset, n));
      CHECK(crc32c(0x12345678U, data.data() + offset, n) ==
            crc32c_portable(0x12345678U, data.data() + offset, n));
    }
  }
}

TEST_CASE("crc32c: extending in pieces equals one pass", "[crc]") {
  rc::prop("any split of any input", [] {
    const auto size = *rc::gen::inRange<std::size_t>(0, 20000);
    const auto data = random_bytes(size, *rc::gen::arbitrary<std::uint64_t>());
    const auto cut = *rc::gen::inRange<std::size_t>(0, size + 1);
    const std::uint32_t whole = crc32c(0, data.data(), data.size());
    RC_ASSERT(whole == crc32c_portable(0, data.data(), data.size()));
    RC_ASSERT(crc32c(crc32c(0, data.data(), cut), data.data() + cut, size - cut) == whole);
  });
}

}  // namespace
}  // namespace rlr::util
