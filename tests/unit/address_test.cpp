// rlr::Address: the one address type of the public API.
#include <catch2/catch.hpp>

#include <string>

#include "rlr/address.h"

namespace rlr {
namespace {

TEST_CASE("Address::parse reads names, IPv4 and bracketed IPv6, and writes them back", "[address]") {
  for (const char* text : {"127.0.0.1:7001", "n1.venue.example:65535", "localhost:1", "[::1]:7001",
                           "[fd00::1:2]:9000"}) {
    INFO(text);
    auto a = Address::parse(text);
    REQUIRE(a.is_ok());
    CHECK(a.value().to_string() == text);
  }
  const auto v6 = Address::parse("[::1]:7001");
  REQUIRE(v6.is_ok());
  CHECK(v6.value().host == "::1");
  CHECK(v6.value().port == 7001);
  CHECK(Address{}.to_string().empty());
  CHECK(Address{}.empty());
}

TEST_CASE("Address::parse says what is wrong", "[address]") {
  const std::pair<const char*, const char*> bad[] = {
      {"localhost", "want HOST:PORT"},    {":7001", "want HOST:PORT"},
      {"h:", "want HOST:PORT"},           {"h:0", "not in 1..65535"},
      {"h:65536", "not in 1..65535"},     {"h:70a", "bad port"},
      {"h:123456", "bad port"},           {"::1:7001", "needs brackets"},
      {"[::1:7001", "want [IPv6]:PORT"},  {"[zz::1]:7001", "bad IPv6"},
      {"bad host:1", "bad host"},         {"1.2.3.999:1", "bad host"},
      {"-h:1", "bad host"},               {"h_1:1", "bad host"},
  };
  for (const auto& [text, why] : bad) {
    INFO(text);
    auto a = Address::parse(text);
    REQUIRE_FALSE(a.is_ok());
    CHECK(a.status().code() == ErrorCode::InvalidArgument);
    CHECK(a.status().message().find(why) != std::string::npos);
  }
}

TEST_CASE("Address::parse_list takes a command line's comma-separated list", "[address]") {
  auto l = Address::parse_list(" 127.0.0.1:7001, [::1]:7002,,n3:7003 ,");
  REQUIRE(l.is_ok());
  REQUIRE(l.value().size() == 3);
  CHECK(l.value()[1] == Address{"::1", 7002});
  CHECK(l.value()[2] == Address{"n3", 7003});
  CHECK_FALSE(Address::parse_list("").is_ok());
  CHECK_FALSE(Address::parse_list(" , ").is_ok());
  const auto bad = Address::parse_list("h1:1,h2");
  REQUIRE_FALSE(bad.is_ok());
  CHECK(bad.status().message().find("'h2'") != std::string::npos);
}

TEST_CASE("Result::value_or", "[address]") {
  CHECK(Address::parse("nope").value_or(Address{"fallback", 1}) == Address{"fallback", 1});
  CHECK(Address::parse("h:2").value_or(Address{}) == Address{"h", 2});
}

}  // namespace
}  // namespace rlr
