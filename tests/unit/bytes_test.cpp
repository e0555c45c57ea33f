// Bytes::copy_of, which makes the payload of most proposals.

#include <catch2/catch.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "rlr/types.h"

namespace rlr {
namespace {

TEST_CASE("Bytes::copy_of: an owned copy, equal to its source", "[bytes]") {
  std::string s = "order 42: buy 100 @ 17.25";
  const Bytes b = Bytes::copy_of(s);
  s[0] = 'X';  // the copy does not see later changes
  CHECK(b.as_string_view() == "order 42: buy 100 @ 17.25");
  CHECK(b == Bytes::copy_of(std::string_view("order 42: buy 100 @ 17.25")));
  const std::vector<std::uint8_t> raw{0, 1, 2, 255};
  const Bytes r = Bytes::copy_of(std::span<const std::uint8_t>(raw));
  REQUIRE(r.size() == 4);
  CHECK(r.data() != raw.data());
  CHECK(r.data()[3] == 255);
  const Bytes copy = r;  // copies share the buffer
  CHECK(copy.data() == r.data());
  CHECK(Bytes::copy_of(std::string_view{}).empty());
  CHECK(Bytes::copy_of(std::string_view{}) == Bytes{});
}

TEST_CASE("Bytes::slice: a view into the same buffer that keeps it alive", "[bytes]") {
  Bytes part;
  const std::uint8_t* base = nullptr;
  {
    const Bytes whole = Bytes::copy_of(std::string_view("headerXXcommand"));
    base = whole.data();
    part = whole.slice(8, 7);
  }
  CHECK(part.data() == base + 8);  // no copy
  CHECK(part.as_string_view() == "command");
  CHECK(Bytes::copy_of(std::string_view("abc")).slice(3, 0).empty());
}

}  // namespace
}  // namespace rlr
