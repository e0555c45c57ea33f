#include "core/configuration.h"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace rlr::core {
namespace {

bool contains(const std::vector<NodeId>& v, NodeId id) {
  return std::binary_search(v.begin(), v.end(), id);
}

void sort_unique(std::vector<NodeId>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

// Encoding: version byte, then three sets, each a varint count followed by varint ids.
constexpr std::uint8_t kCodecVersion = 1;
constexpr std::uint64_t kMaxMembers = 1024;
constexpr std::uint64_t kMaxAddressBytes = 1024;

void put_varint(std::vector<std::uint8_t>& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<std::uint8_t>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<std::uint8_t>(v));
}

bool get_varint(std::span<const std::uint8_t>& in, std::uint64_t& v) {
  v = 0;
  for (unsigned shift = 0; shift < 64; shift += 7) {
    if (in.empty()) return false;
    const std::uint8_t b = in.front();
    in = in.subspan(1);
    if (shift == 63 && (b & 0x7e) != 0) return false;  // overflow
    v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

void put_set(std::vector<std::uint8_t>& out, const std::vector<NodeId>& s) {
  put_varint(out, s.size());
  for (NodeId id : s) put_varint(out, id.value());
}

bool get_set(std::span<const std::uint8_t>& in, std::vector<NodeId>& s) {
  std::uint64_t n = 0;
  if (!get_varint(in, n) || n > kMaxMembers) return false;
  s.clear();
  s.reserve(static_cast<std::size_t>(n));
  for (std::uint64_t i = 0; i < n; ++i) {
    std::uint64_t id = 0;
    if (!get_varint(in, id) || id == 0) return false;
    s.emplace_back(id);
  }
  return true;
}

std::string ids(const std::vector<NodeId>& v) {
  std::vector<std::uint64_t> raw;
  raw.reserve(v.size());
  for (NodeId id : v) raw.push_back(id.value());
  return fmt::format("{}", fmt::join(raw, ","));
}

}  // namespace

bool Configuration::is_voter(NodeId id) const noexcept {
  return contains(voters, id) || contains(voters_outgoing, id);
}

bool Configuration::is_learner(NodeId id) const noexcept { return contains(learners, id); }

std::vector<NodeId> Configuration::members() const {
  std::vector<NodeId> all = voters;
  all.insert(all.end(), voters_outgoing.begin(), voters_outgoing.end());
  all.insert(all.end(), learners.begin(), learners.end());
  sort_unique(all);
  return all;
}

void Configuration::normalize() {
  sort_unique(voters);
  sort_unique(voters_outgoing);
  sort_unique(learners);
  std::erase_if(addresses, [&](const MemberEndpoint& e) { return e.address.empty() || !is_member(e.id); });
  std::stable_sort(addresses.begin(), addresses.end(),
                   [](const MemberEndpoint& a, const MemberEndpoint& b) { return a.id < b.id; });
  addresses.erase(std::unique(addresses.begin(), addresses.end(),
                              [](const MemberEndpoint& a, const MemberEndpoint& b) { return a.id == b.id; }),
                  addresses.end());
}

std::string Configuration::address_of(NodeId id) const {
  for (const auto& e : addresses) {
    if (e.id == id) return e.address;
  }
  return {};
}

void Configuration::set_address(NodeId id, std::string address) {
  std::erase_if(addresses, [&](const MemberEndpoint& e) { return e.id == id; });
  if (!address.empty()) addresses.push_back(MemberEndpoint{id, std::move(address)});
  std::sort(addresses.begin(), addresses.end(),
            [](const MemberEndpoint& a, const MemberEndpoint& b) { return a.id < b.id; });
}

Status Configuration::validate() const {
  if (voters.empty()) return {ErrorCode::InvalidArgument, "configuration has no voters"};
  for (const auto* set : {&voters, &voters_outgoing, &learners}) {
    if (!std::is_sorted(set->begin(), set->end()) ||
        std::adjacent_find(set->begin(), set->end()) != set->end()) {
      return {ErrorCode::InvalidArgument, "configuration sets must be sorted and unique"};
    }
    if (std::find(set->begin(), set->end(), kNoNode) != set->end()) {
      return {ErrorCode::InvalidArgument, "node id 0 is reserved"};
    }
  }
  for (std::size_t i = 0; i < addresses.size(); ++i) {
    const auto& e = addresses[i];
    if (!is_member(e.id) || e.address.empty() || (i > 0 && !(addresses[i - 1].id < e.id))) {
      return {ErrorCode::InvalidArgument, "addresses must be sorted, unique, non-empty, of members"};
    }
  }
  for (NodeId l : learners) {
    if (contains(voters, l) || contains(voters_outgoing, l)) {
      return {ErrorCode::InvalidArgument,
              fmt::format("node {} is both a learner and a voter", l.value())};
    }
  }
  return Status::ok();
}

std::string Configuration::to_string() const {
  std::string s = fmt::format("voters={{{}}}", ids(voters));
  if (is_joint()) s += fmt::format(" outgoing={{{}}}", ids(voters_outgoing));
  if (!learners.empty()) s += fmt::format(" learners={{{}}}", ids(learners));
  return s;
}

Bytes encode_configuration(const Configuration& c) {
  std::vector<std::uint8_t> out;
  out.reserve(4 + 2 * (c.voters.size() + c.voters_outgoing.size() + c.learners.size()));
  out.push_back(kCodecVersion);
  put_set(out, c.voters);
  put_set(out, c.voters_outgoing);
  put_set(out, c.learners);
  put_varint(out, c.addresses.size());
  for (const auto& e : c.addresses) {
    put_varint(out, e.id.value());
    put_varint(out, e.address.size());
    out.insert(out.end(), e.address.begin(), e.address.end());
  }
  return Bytes(std::move(out));
}

Result<Configuration> decode_configuration(std::span<const std::uint8_t> data) {
  if (data.empty() || data.front() != kCodecVersion) {
    return Status{ErrorCode::Corruption, "configuration: unknown codec version"};
  }
  data = data.subspan(1);
  Configuration c;
  if (!get_set(data, c.voters) || !get_set(data, c.voters_outgoing) ||
      !get_set(data, c.learners)) {
    return Status{ErrorCode::Corruption, "configuration: truncated or oversized set"};
  }
  std::uint64_t n = 0;
  if (!get_varint(data, n) || n > kMaxMembers) {
    return Status{ErrorCode::Corruption, "configuration: bad address count"};
  }
  for (std::uint64_t i = 0; i < n; ++i) {
    std::uint64_t id = 0;
    std::uint64_t len = 0;
    if (!get_varint(data, id) || id == 0 || !get_varint(data, len) || len == 0 ||
        len > kMaxAddressBytes || len > data.size()) {
      return Status{ErrorCode::Corruption, "configuration: bad address record"};
    }
    c.addresses.push_back(MemberEndpoint{NodeId{id}, std::string(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(len))});
    data = data.subspan(static_cast<std::size_t>(len));
  }
  if (!data.empty()) return Status{ErrorCode::Corruption, "configuration: trailing bytes"};
  if (Status s = c.validate(); !s) {
    return Status{ErrorCode::Corruption, "configuration: " + s.message()};
  }
  return c;
}

}  // namespace rlr::core
