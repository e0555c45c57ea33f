// Small helpers shared by the example apps: reading [app] settings.
#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "apps/apps.h"

namespace rlr::apps {

/// The setting `key` as an unsigned integer in [min, max], or `fallback` when absent.
[[nodiscard]] inline Result<std::uint64_t> setting_u64(const AppContext& ctx, const std::string& key,
                                                       std::uint64_t fallback, std::uint64_t min,
                                                       std::uint64_t max) {
  auto it = ctx.settings.find(key);
  if (it == ctx.settings.end()) return fallback;
  const std::string& s = it->second;
  std::uint64_t v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc{} || ptr != s.data() + s.size() || v < min || v > max) {
    return Status{ErrorCode::InvalidArgument,
                  fmt::format("[app] {} = \"{}\": expected an integer in [{}, {}]", key, s, min, max)};
  }
  return v;
}

/// The setting `key` as a string, or `fallback` when absent.
[[nodiscard]] inline std::string setting(const AppContext& ctx, const std::string& key,
                                         std::string fallback = {}) {
  auto it = ctx.settings.find(key);
  return it == ctx.settings.end() ? fallback : it->second;
}

/// Splits "host:port" (port 0..65535). Errors: InvalidArgument naming `what`.
[[nodiscard]] inline Status split_host_port(std::string_view hp, std::string_view what,
                                            std::string& host, std::uint16_t& port) {
  const auto colon = hp.rfind(':');
  const auto bad = [&] {
    return Status{ErrorCode::InvalidArgument,
                  fmt::format("{} = \"{}\": expected host:port", what, hp)};
  };
  if (colon == std::string_view::npos || colon == 0) return bad();
  const std::string_view p = hp.substr(colon + 1);
  unsigned v = 0;
  const auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
  if (p.empty() || ec != std::errc{} || ptr != p.data() + p.size() || v > 65535) return bad();
  host = std::string(hp.substr(0, colon));
  port = static_cast<std::uint16_t>(v);
  return Status::ok();
}

}  // namespace rlr::apps
