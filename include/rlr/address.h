/// \file
/// librlr — where a node listens: the one address type of the public API (NodeOptions,
/// members, cluster status, leader hints, the client's bootstrap list).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "rlr/export.h"
#include "rlr/status.h"

namespace rlr {

/// A host (DNS name, IPv4 or IPv6 literal, without brackets) and a TCP port.
///
/// Example:
/// \code{.cpp}
///   auto a = rlr::Address::parse("[::1]:7001");   // a.value().host == "::1", port 7001
///   std::string s = a.value().to_string();        // "[::1]:7001"
/// \endcode
struct RLR_API Address {
  /// DNS name, IPv4 or IPv6 literal (no brackets); empty: no address.
  std::string host;
  std::uint16_t port = 0;  ///< 0 only where a listener takes any free port

  /// True when no host is set ("unknown", e.g. no leader known).
  [[nodiscard]] bool empty() const noexcept { return host.empty(); }
  /// "host:port", or "[host]:port" for an IPv6 literal; empty when empty().
  [[nodiscard]] std::string to_string() const;
  /// Parses "host:port" or "[IPv6]:port": the host a valid DNS name, IPv4 or (bracketed)
  /// IPv6 literal, the port in 1..65535. Errors: InvalidArgument saying what is wrong
  /// ("bad address '...'", "bad host", "bad port").
  [[nodiscard]] static Result<Address> parse(std::string_view text);
  /// Parses a comma-separated list ("h1:7001, h2:7002"), as command lines take them:
  /// blanks around an item and empty items are ignored.
  /// Errors: InvalidArgument for a list with no address, or the first that does not parse.
  [[nodiscard]] static Result<std::vector<Address>> parse_list(std::string_view text);

  /// Same host (compared as text) and port.
  friend bool operator==(const Address&, const Address&) = default;
};

}  // namespace rlr
