#include "rlr/address.h"

#include <arpa/inet.h>

#include <fmt/format.h>

namespace rlr {

namespace {

bool is_ipv6(const std::string& host) {
  in6_addr a6{};
  return inet_pton(AF_INET6, host.c_str(), &a6) == 1;
}

/// A DNS name (letters, digits, '-' and '.', not starting or ending with '.' or '-') or
/// an IPv4 literal. All digits and dots must be a valid IPv4 address: "1.2.3.999" is a
/// bad address, not a name.
bool valid_name_or_ipv4(const std::string& host) {
  if (host.empty() || host.size() > 253) return false;
  in_addr a4{};
  if (inet_pton(AF_INET, host.c_str(), &a4) == 1) return true;
  if (host.front() == '.' || host.front() == '-' || host.back() == '.' || host.back() == '-') return false;
  bool all_digits_or_dots = true;
  for (const char c : host) {
    const bool digit = c >= '0' && c <= '9';
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || digit || c == '-' || c == '.';
    if (!ok) return false;
    if (!digit && c != '.') all_digits_or_dots = false;
  }
  return !all_digits_or_dots;
}

Status bad(std::string message) { return Status{ErrorCode::InvalidArgument, std::move(message)}; }

}  // namespace

std::string Address::to_string() const {
  if (host.empty()) return {};
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

Result<Address> Address::parse(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 >= text.size()) {
    return bad(fmt::format("bad address '{}' (want HOST:PORT)", text));
  }
  Address a;
  a.host = std::string(text.substr(0, colon));
  if (a.host.front() == '[') {
    if (a.host.size() < 3 || a.host.back() != ']') return bad(fmt::format("bad address '{}' (want [IPv6]:PORT)", text));
    a.host = a.host.substr(1, a.host.size() - 2);
    if (!is_ipv6(a.host)) return bad(fmt::format("bad IPv6 address in '{}'", text));
  } else if (a.host.find(':') != std::string::npos) {
    return bad(fmt::format("bad address '{}' (an IPv6 host needs brackets: [IPv6]:PORT)", text));
  } else if (!valid_name_or_ipv4(a.host)) {
    return bad(fmt::format("bad host '{}' in address '{}'", a.host, text));
  }
  const std::string_view p = text.substr(colon + 1);
  if (p.size() > 5 || p.find_first_not_of("0123456789") != std::string_view::npos) {
    return bad(fmt::format("bad port '{}' in address '{}'", p, text));
  }
  unsigned long v = 0;
  for (const char c : p) v = v * 10 + static_cast<unsigned long>(c - '0');
  if (v == 0 || v > 65535) return bad(fmt::format("port {} in address '{}' is not in 1..65535", v, text));
  a.port = static_cast<std::uint16_t>(v);
  return a;
}

Result<std::vector<Address>> Address::parse_list(std::string_view text) {
  std::vector<Address> out;
  for (;;) {
    const auto comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    const auto first = item.find_first_not_of(" \t");
    item = first == std::string_view::npos ? std::string_view{}
                                           : item.substr(first, item.find_last_not_of(" \t") - first + 1);
    if (!item.empty()) {
      auto a = parse(item);
      if (!a) return a.status();
      out.push_back(std::move(a).value());
    }
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  if (out.empty()) return bad("the address list is empty");
  return out;
}

}  // namespace rlr
