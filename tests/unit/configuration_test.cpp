// Configuration codec and validation: encode/decode round trip, a decoder that survives
// arbitrary bytes, and validate() rejecting illegal sets.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <rapidcheck.h>
#include <rapidcheck/catch.h>

#include "test_cluster.h"

namespace rlr::test {
namespace {

bool sorted_unique(const std::vector<NodeId>& v) {
  return std::adjacent_find(v.begin(), v.end(),
                            [](NodeId a, NodeId b) { return !(a < b); }) == v.end();
}

bool disjoint(const std::vector<NodeId>& a, const std::vector<NodeId>& b) {
  return std::none_of(a.begin(), a.end(),
                      [&](NodeId x) { return std::find(b.begin(), b.end(), x) != b.end(); });
}

/// A valid configuration: voters non-empty, outgoing optional and possibly overlapping
/// the voters (C_old,new), learners disjoint from both; ids may be large.
Configuration gen_valid_config() {
  Configuration c;
  const int n = *rc::gen::inRange(1, 12);
  for (int k = 0; k < n; ++k) {
    const std::uint64_t id = *rc::gen::oneOf(rc::gen::inRange<std::uint64_t>(1, 20),
                                            rc::gen::arbitrary<std::uint64_t>());
    if (id == 0) continue;
    const int role = *rc::gen::inRange(0, 4);
    if (role == 0 || role == 2) c.voters.push_back(N(id));
    if (role == 1 || role == 2) c.voters_outgoing.push_back(N(id));
    if (role == 3) c.learners.push_back(N(id));
  }
  c.normalize();
  // Keep learners disjoint from both voter sets.
  std::erase_if(c.learners, [&](NodeId id) {
    return std::find(c.voters.begin(), c.voters.end(), id) != c.voters.end() ||
           std::find(c.voters_outgoing.begin(), c.voters_outgoing.end(), id) !=
               c.voters_outgoing.end();
  });
  if (c.voters.empty()) {
    NodeId fresh = N(1000);
    c.voters.push_back(fresh);
    std::erase(c.learners, fresh);
    std::erase(c.voters_outgoing, fresh);
  }
  c.normalize();
  // Some members carry an address (replicated with the configuration).
  for (NodeId id : c.members()) {
    if (*rc::gen::inRange(0, 3) == 0) {
      c.set_address(id, "10.0.0." + std::to_string(id.value() % 250) + ":" +
                            std::to_string(7000 + id.value() % 1000));
    }
  }
  c.normalize();
  return c;
}

std::vector<std::uint8_t> to_vector(const Bytes& b) {
  return std::vector<std::uint8_t>(b.data(), b.data() + b.size());
}

}  // namespace

TEST_CASE("Configuration: encode/decode round trip", "[configuration][property]") {
  rc::prop("decode(encode(c)) == c for every valid configuration", [] {
    const Configuration c = gen_valid_config();
    RC_ASSERT(c.validate().is_ok());
    const Bytes encoded = core::encode_configuration(c);
    const auto decoded = core::decode_configuration(encoded.span());
    RC_LOG() << c.to_string() << " -> " << decoded.status().to_string();
    RC_ASSERT(decoded.is_ok());
    RC_ASSERT(decoded.value() == c);
  });

  rc::prop("every strict prefix of an encoding is rejected as Corruption", [] {
    const Configuration c = gen_valid_config();
    const auto bytes = to_vector(core::encode_configuration(c));
    RC_PRE(!bytes.empty());
    const std::size_t cut = *rc::gen::inRange<std::size_t>(0, bytes.size());
    const auto decoded =
        core::decode_configuration(std::span<const std::uint8_t>(bytes.data(), cut));
    RC_LOG() << c.to_string() << " cut at " << cut << " of " << bytes.size();
    RC_ASSERT(!decoded.is_ok());
    RC_ASSERT(decoded.status().code() == ErrorCode::Corruption);
  });
}

TEST_CASE("Configuration: decoding arbitrary bytes never crashes", "[configuration][property]") {
  auto check_decoded = [](std::span<const std::uint8_t> data) {
    const auto decoded = core::decode_configuration(data);
    if (!decoded.is_ok()) {
      RC_ASSERT(decoded.status().code() == ErrorCode::Corruption);
      return;
    }
    const Configuration& c = decoded.value();
    RC_LOG() << "decoded " << c.to_string();
    // A decoded configuration must be well formed: sorted, no duplicates, learners apart
    // from the voters, and it re-encodes to something that decodes to itself.
    RC_ASSERT(c.validate().is_ok());
    RC_ASSERT(sorted_unique(c.voters));
    RC_ASSERT(sorted_unique(c.voters_outgoing));
    RC_ASSERT(sorted_unique(c.learners));
    RC_ASSERT(disjoint(c.learners, c.voters));
    RC_ASSERT(disjoint(c.learners, c.voters_outgoing));
    const auto again = core::decode_configuration(core::encode_configuration(c).span());
    RC_ASSERT(again.is_ok());
    RC_ASSERT(again.value() == c);
  };

  rc::prop("random bytes give Corruption or a valid configuration", [&] {
    const auto data = *rc::gen::container<std::vector<std::uint8_t>>(rc::gen::arbitrary<std::uint8_t>());
    check_decoded(data);
  });

  rc::prop("mutated encodings give Corruption or a valid configuration", [&] {
    const Configuration c = gen_valid_config();
    auto bytes = to_vector(core::encode_configuration(c));
    RC_PRE(!bytes.empty());
    const int flips = *rc::gen::inRange(1, 4);
    for (int k = 0; k < flips; ++k) {
      const std::size_t at = *rc::gen::inRange<std::size_t>(0, bytes.size());
      bytes[at] = *rc::gen::arbitrary<std::uint8_t>();
    }
    if (*rc::gen::arbitrary<bool>()) {
      bytes.resize(*rc::gen::inRange<std::size_t>(0, bytes.size() + 8), 0xff);
    }
    check_decoded(bytes);
  });
}

TEST_CASE("Configuration: validate rejects overlapping sets and empty voters",
          "[configuration]") {
  SECTION("a valid simple and a valid joint configuration pass") {
    CHECK(config_of({1, 2, 3}, {4}).validate().is_ok());
    INFO("C_old,new legitimately shares voters between both sets");
    CHECK(config_of({1, 2, 4}, {5}, {1, 2, 3}).validate().is_ok());
  }
  SECTION("a learner that is also an incoming voter is rejected") {
    Configuration c = config_of({1, 2, 3});
    c.learners.push_back(N(2));
    const Status st = c.validate();
    INFO("learners must be disjoint from the voters: " << c.to_string());
    CHECK_FALSE(st.is_ok());
  }
  SECTION("a learner that is also an outgoing voter is rejected") {
    Configuration c = config_of({1, 2, 4}, {}, {1, 2, 3});
    c.learners.push_back(N(3));
    INFO("learners must be disjoint from C_old too: " << c.to_string());
    CHECK_FALSE(c.validate().is_ok());
  }
  SECTION("an empty voter set is rejected") {
    Configuration c = config_of({}, {4});
    INFO("a configuration without voters can never elect a leader");
    CHECK_FALSE(c.validate().is_ok());
    Configuration joint_without_incoming = config_of({}, {}, {1, 2});
    CHECK_FALSE(joint_without_incoming.validate().is_ok());
  }
}

TEST_CASE("Configuration: normalize sorts and deduplicates; members() lists everyone",
          "[configuration]") {
  Configuration c;
  c.voters = {N(3), N(1), N(3), N(2)};
  c.voters_outgoing = {N(2), N(5), N(2)};
  c.learners = {N(9), N(7)};
  c.normalize();
  CHECK(c.voters == std::vector<NodeId>{N(1), N(2), N(3)});
  CHECK(c.voters_outgoing == std::vector<NodeId>{N(2), N(5)});
  CHECK(c.learners == std::vector<NodeId>{N(7), N(9)});
  CHECK(c.members() == std::vector<NodeId>{N(1), N(2), N(3), N(5), N(7), N(9)});
  CHECK(c.is_joint());
  CHECK(c.is_voter(N(5)));
  CHECK_FALSE(c.is_voter(N(7)));
  CHECK(c.is_learner(N(7)));
  CHECK_FALSE(c.is_member(N(4)));
}

}  // namespace rlr::test
