#include "config.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "config_reference.h"
#include "health.h"

namespace rlr::nodecfg {

namespace {

using Error = ConfigError;

const char* type_name(toml::node_type t) {
  switch (t) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::date:
    case toml::node_type::time:
    case toml::node_type::date_time: return "a date/time";
    case toml::node_type::none: break;
  }
  return "nothing";
}

/// Reads typed values out of a parsed file, remembering positions.
class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  [[nodiscard]] std::string where(const toml::source_region& r) const {
    return fmt::format("{}:{}:{}", file_, r.begin.line, r.begin.column);
  }
  [[nodiscard]] std::string where(const toml::node& n) const { return where(n.source()); }

  /// Rejects keys of `t` that are not in `known`.
  [[nodiscard]] std::optional<Error> only_keys(const toml::table& t, const std::set<std::string>& known,
                                               const std::string& table_name) const {
    for (auto&& [k, v] : t) {
      if (known.count(std::string(k.str())) == 0) {
        std::string list;
        for (const auto& n : known) list += (list.empty() ? "" : ", ") + n;
        return Error{where(k.source()),
                     fmt::format("unknown key '{}'{} (known: {})", k.str(),
                                 table_name.empty() ? "" : " in [" + table_name + "]", list)};
      }
    }
    return std::nullopt;
  }

  std::optional<Error> get_string(const toml::node& n, const std::string& name, std::string& out,
                                  std::string& origin) const {
    if (!n.is_string()) return wrong_type(n, name, "a string");
    out = n.as_string()->get();
    origin = where(n);
    return std::nullopt;
  }

  std::optional<Error> get_uint(const toml::node& n, const std::string& name, std::uint64_t min,
                                std::uint64_t max, std::uint64_t& out, std::string& origin) const {
    if (!n.is_integer()) return wrong_type(n, name, "an integer");
    const std::int64_t v = n.as_integer()->get();
    if (v < 0 || static_cast<std::uint64_t>(v) < min || static_cast<std::uint64_t>(v) > max) {
      return Error{where(n), fmt::format("{} = {} is out of range [{}, {}]", name, v, min, max)};
    }
    out = static_cast<std::uint64_t>(v);
    origin = where(n);
    return std::nullopt;
  }

  std::optional<Error> get_bool(const toml::node& n, const std::string& name, bool& out,
                                std::string& origin) const {
    if (!n.is_boolean()) return wrong_type(n, name, "a boolean (true or false)");
    out = n.as_boolean()->get();
    origin = where(n);
    return std::nullopt;
  }

  [[nodiscard]] Error wrong_type(const toml::node& n, const std::string& name, const char* want) const {
    return Error{where(n), fmt::format("{} must be {}, not {}", name, want, type_name(n.type()))};
  }

 private:
  std::string file_;
};

std::optional<std::string> parse_egress(const std::string& s, EgressMode& out) {
  if (s == "leader-only") {
    out = EgressMode::LeaderOnly;
  } else if (s == "persist") {
    out = EgressMode::Persist;
  } else if (s == "off") {
    out = EgressMode::Off;
  } else {
    return fmt::format("egress '{}' is not one of leader-only, persist, off", s);
  }
  return std::nullopt;
}

std::optional<std::string> parse_level(const std::string& s, LogLevel& out) {
  if (!parse_log_level(s, out)) return fmt::format("log_level '{}' is not one of debug, info, warn, error", s);
  return std::nullopt;
}

std::optional<std::string> parse_log_format(const std::string& s, LogFormat& out) {
  if (s == "text") {
    out = LogFormat::Text;
  } else if (s == "json") {
    out = LogFormat::Json;
  } else {
    return fmt::format("log_format '{}' is not one of text, json", s);
  }
  return std::nullopt;
}

struct Peer {
  std::uint64_t id = 0;
  std::string address;
  std::string origin;
};

/// Raw values before validation, each with its origin.
struct Raw {
  std::string cluster_id, cluster_id_at;
  std::uint64_t id = 0;
  std::string id_at;
  std::string listen, listen_at;
  std::string data_dir, data_dir_at;
  std::string role = "voter", role_at;
  std::string egress = "leader-only", egress_at;
  std::string storage = "rocksdb", storage_at;
  std::string token, token_at;
  std::string log_level = "info", log_level_at;
  std::string log_format = "text", log_format_at;
  std::string app = "none", app_at;
  bool sync = true;
  std::string sync_at;
  bool forward = false;
  std::string forward_at;
  std::uint64_t tick_ms = 10, election_ticks = 15, heartbeat_ticks = 3, proposal_timeout_ms = 5000;
  std::uint64_t disconnect_campaign_ticks = 1;
  std::uint64_t link_silence_ms = 0;
  std::string tick_at, election_at, heartbeat_at, proposal_at, disconnect_at, silence_at;
  std::string admin_listen, admin_listen_at;
  std::uint64_t ready_max_lag = 10'000;
  std::string ready_max_lag_at;
  std::vector<Peer> peers;
  std::map<std::string, std::string> app_settings;
};

std::optional<Error> read_app(const toml::node& a, const Reader& r, Raw& raw);

/// A key the option table (config_reference.cpp) accepts but no branch below reads: the
/// two lists disagree. Refused, never ignored; the default config has every key, so
/// tests/package/config_test.sh finds the gap.
Error unread(const Reader& r, const toml::node& n, const std::string& key) {
  return Error{r.where(n), fmt::format("'{}' is in the option table but this build does not read it", key)};
}

/// Reads the table `name` of the file, when it has one: it must be a table of the keys the
/// option table lists for it; `read` takes each key and value in turn (an error stops it).
template <class Read>
std::optional<Error> read_table(const toml::table& root, const std::string& name, const Reader& r, Read&& read) {
  const toml::node* t = root.get(name);
  if (t == nullptr) return std::nullopt;
  if (!t->is_table()) return r.wrong_type(*t, name, "a table");
  const toml::table& tt = *t->as_table();
  if (auto e = r.only_keys(tt, known_keys(name), name); e) return e;
  for (auto&& [key, node] : tt) {
    if (auto e = read(std::string(key.str()), node); e) return e;
  }
  return std::nullopt;
}

std::optional<Error> read_file(const std::string& path, Raw& raw) {
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    if (b.line == 0) return Error{path, std::string(e.description())};
    return Error{fmt::format("{}:{}:{}", path, b.line, b.column), std::string(e.description())};
  } catch (const std::exception& e) {
    return Error{path, e.what()};
  }
  Reader r(path);
  if (auto e = r.only_keys(root, known_keys(""), ""); e) return e;
  for (auto&& [key, node] : root) {
    const std::string k(key.str());
    std::optional<Error> e;
    if (k == "cluster_id") e = r.get_string(node, k, raw.cluster_id, raw.cluster_id_at);
    else if (k == "id") e = r.get_uint(node, k, 1, INT64_MAX, raw.id, raw.id_at);
    else if (k == "listen") e = r.get_string(node, k, raw.listen, raw.listen_at);
    else if (k == "data_dir") e = r.get_string(node, k, raw.data_dir, raw.data_dir_at);
    else if (k == "role") e = r.get_string(node, k, raw.role, raw.role_at);
    else if (k == "egress") e = r.get_string(node, k, raw.egress, raw.egress_at);
    else if (k == "storage") e = r.get_string(node, k, raw.storage, raw.storage_at);
    else if (k == "auth_token") e = r.get_string(node, k, raw.token, raw.token_at);
    else if (k == "log_level") e = r.get_string(node, k, raw.log_level, raw.log_level_at);
    else if (k == "log_format") e = r.get_string(node, k, raw.log_format, raw.log_format_at);
    else if (k == "app") e = read_app(node, r, raw);
    else if (k == "sync") e = r.get_bool(node, k, raw.sync, raw.sync_at);
    else if (k == "forward_proposals") e = r.get_bool(node, k, raw.forward, raw.forward_at);
    else if (k != "peers" && k != "timeouts" && k != "admin") e = unread(r, node, k);
    if (e) return e;
  }
  if (const toml::node* peers = root.get("peers"); peers != nullptr) {
    if (!peers->is_array()) return r.wrong_type(*peers, "peers", "an array of { id, address } tables");
    for (const toml::node& p : *peers->as_array()) {
      if (!p.is_table()) return r.wrong_type(p, "each peer", "a table { id = N, address = \"HOST:PORT\" }");
      const toml::table& t = *p.as_table();
      if (auto e = r.only_keys(t, {"id", "address"}, "peers"); e) return e;
      Peer peer;
      std::string ignored;
      const toml::node* id = t.get("id");
      const toml::node* addr = t.get("address");
      if (id == nullptr) return Error{r.where(p), "peer without an id"};
      if (addr == nullptr) return Error{r.where(p), "peer without an address"};
      if (auto e = r.get_uint(*id, "peer id", 1, INT64_MAX, peer.id, ignored); e) return e;
      if (auto e = r.get_string(*addr, "peer address", peer.address, ignored); e) return e;
      peer.origin = r.where(p);
      raw.peers.push_back(std::move(peer));
    }
  }
  if (auto e = read_table(root, "timeouts", r, [&](const std::string& k, const toml::node& node) {
        if (k == "tick_ms") return r.get_uint(node, k, 1, 10000, raw.tick_ms, raw.tick_at);
        if (k == "election_ticks") return r.get_uint(node, k, 2, 100000, raw.election_ticks, raw.election_at);
        if (k == "heartbeat_ticks") return r.get_uint(node, k, 1, 100000, raw.heartbeat_ticks, raw.heartbeat_at);
        if (k == "proposal_timeout_ms") {
          return r.get_uint(node, k, 1, 3600000, raw.proposal_timeout_ms, raw.proposal_at);
        }
        if (k == "disconnect_campaign_ticks") {
          return r.get_uint(node, k, 0, 100000, raw.disconnect_campaign_ticks, raw.disconnect_at);
        }
        if (k == "link_silence_ms") return r.get_uint(node, k, 0, 3600000, raw.link_silence_ms, raw.silence_at);
        return std::optional<Error>(unread(r, node, k));
      });
      e) {
    return e;
  }
  if (auto e = read_table(root, "admin", r, [&](const std::string& k, const toml::node& node) {
        if (k == "listen") return r.get_string(node, k, raw.admin_listen, raw.admin_listen_at);
        if (k == "ready_max_lag") return r.get_uint(node, k, 0, INT64_MAX, raw.ready_max_lag, raw.ready_max_lag_at);
        return std::optional<Error>(unread(r, node, k));
      });
      e) {
    return e;
  }
  return std::nullopt;
}

/// `app = "kv"`, or an [app] table: `name = "kv"` plus the app's own settings, passed to
/// it as strings (the app validates them).
std::optional<Error> read_app(const toml::node& a, const Reader& r, Raw& raw) {
  if (a.is_string()) {
    raw.app = a.as_string()->get();
    raw.app_at = r.where(a);
    return std::nullopt;
  }
  if (!a.is_table()) return r.wrong_type(a, "app", "a string or an [app] table");
  for (auto&& [key, v] : *a.as_table()) {
    const std::string k(key.str());
    if (k == "name") {
      if (auto e = r.get_string(v, "app.name", raw.app, raw.app_at); e) return e;
    } else if (v.is_string()) {
      raw.app_settings[k] = v.as_string()->get();
    } else if (v.is_integer()) {
      raw.app_settings[k] = std::to_string(v.as_integer()->get());
    } else if (v.is_floating_point()) {
      raw.app_settings[k] = fmt::format("{}", v.as_floating_point()->get());
    } else if (v.is_boolean()) {
      raw.app_settings[k] = v.as_boolean()->get() ? "true" : "false";
    } else {
      return r.wrong_type(v, "app." + k, "a string, a number or a boolean");
    }
  }
  return std::nullopt;
}


// ---- overrides and validation --------------------------------------------------------

std::optional<Error> split_kv(const std::string& s, const char* flag, std::string& k, std::string& v) {
  const auto eq = s.find('=');
  if (eq == std::string::npos || eq == 0) {
    return Error{flag, fmt::format("'{}' is not of the form KEY=VALUE", s)};
  }
  k = s.substr(0, eq);
  v = s.substr(eq + 1);
  return std::nullopt;
}

void apply(const Overrides& o, Raw& raw) {
  auto set = [](const std::optional<std::string>& v, std::string& field, std::string& at, const char* flag) {
    if (v) {
      field = *v;
      at = flag;
    }
  };
  set(o.cluster_id, raw.cluster_id, raw.cluster_id_at, "--cluster-id");
  set(o.listen, raw.listen, raw.listen_at, "--listen");
  set(o.data_dir, raw.data_dir, raw.data_dir_at, "--data-dir");
  set(o.role, raw.role, raw.role_at, "--role");
  set(o.egress, raw.egress, raw.egress_at, "--egress");
  set(o.storage, raw.storage, raw.storage_at, "--storage");
  set(o.token, raw.token, raw.token_at, "--token");
  set(o.log_level, raw.log_level, raw.log_level_at, "--log-level");
  set(o.log_format, raw.log_format, raw.log_format_at, "--log-format");
  set(o.app, raw.app, raw.app_at, "--app");
  set(o.admin_listen, raw.admin_listen, raw.admin_listen_at, "--admin-listen");
  if (o.ready_max_lag) {
    raw.ready_max_lag = *o.ready_max_lag;
    raw.ready_max_lag_at = "--ready-max-lag";
  }
  if (o.id) {
    raw.id = *o.id;
    raw.id_at = "--id";
  }
  auto set_u = [](const std::optional<std::uint32_t>& v, std::uint64_t& field, std::string& at, const char* flag) {
    if (v) {
      field = *v;
      at = flag;
    }
  };
  set_u(o.tick_ms, raw.tick_ms, raw.tick_at, "--tick-ms");
  set_u(o.election_ticks, raw.election_ticks, raw.election_at, "--election-ticks");
  set_u(o.heartbeat_ticks, raw.heartbeat_ticks, raw.heartbeat_at, "--heartbeat-ticks");
  set_u(o.proposal_timeout_ms, raw.proposal_timeout_ms, raw.proposal_at, "--proposal-timeout-ms");
  set_u(o.disconnect_campaign_ticks, raw.disconnect_campaign_ticks, raw.disconnect_at, "--disconnect-campaign-ticks");
  set_u(o.link_silence_ms, raw.link_silence_ms, raw.silence_at, "--link-silence-ms");
  if (o.sync) {
    raw.sync = *o.sync;
    raw.sync_at = "--sync";
  }
  if (o.forward_proposals) {
    raw.forward = true;
    raw.forward_at = "--forward-proposals";
  }
}

std::optional<Error> parse_peer_flags(const Overrides& o, Raw& raw) {
  if (o.peers.empty()) return std::nullopt;
  raw.peers.clear();
  for (const auto& p : o.peers) {
    std::string k;
    std::string v;
    if (auto e = split_kv(p, "--peer", k, v); e) {
      e->what = fmt::format("'{}' is not of the form ID=HOST:PORT", p);
      return e;
    }
    if (k.find_first_not_of("0123456789") != std::string::npos || k.size() > 18 || std::stoull(k) == 0) {
      return Error{"--peer", fmt::format("'{}': the id must be a positive integer", p)};
    }
    raw.peers.push_back(Peer{std::stoull(k), v, "--peer " + p});
  }
  return std::nullopt;
}

std::string at_or(const std::string& at, const std::string& fallback) { return at.empty() ? fallback : at; }

/// An address this node binds (`what`, from `at`): HOST:PORT with HOST an IP literal; a
/// name would pass Address::parse and fail only at start.
std::variant<Address, Error> bind_address(const std::string& text, const std::string& at, const char* what) {
  auto address = Address::parse(text);
  if (!address) return Error{at, fmt::format("{}: {}", what, address.status().message())};
  in6_addr ip{};
  const std::string& host = address.value().host;
  if (::inet_pton(AF_INET, host.c_str(), &ip) != 1 && ::inet_pton(AF_INET6, host.c_str(), &ip) != 1) {
    return Error{at, fmt::format("{}: '{}' is not an IP address (the node binds it; use the host's "
                                 "address, or 0.0.0.0 for all)",
                                 what, host)};
  }
  return std::move(address).value();
}

std::optional<Error> prepare_data_dir(const std::string& dir, const std::string& at) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Error{at, fmt::format("data_dir '{}' cannot be created: {}", dir, ec.message())};
  if (!fs::is_directory(dir, ec)) return Error{at, fmt::format("data_dir '{}' is not a directory", dir)};
  if (::access(dir.c_str(), R_OK | W_OK | X_OK) != 0) {
    return Error{at, fmt::format("data_dir '{}' is not readable and writable: {}", dir, std::strerror(errno))};
  }
  if (const std::string why = admin::probe_durable_write(dir); !why.empty()) {
    return Error{at, fmt::format("data_dir '{}' does not take a durable write: {}", dir, why)};
  }
  return std::nullopt;
}

}  // namespace

std::variant<Config, ConfigError> load_config(const Overrides& o) {
  Raw raw;
  const std::string file = o.config_file;
  if (!file.empty()) {
    if (auto e = read_file(file, raw); e) return *e;
  }
  apply(o, raw);
  if (auto e = parse_peer_flags(o, raw); e) return *e;
  for (const auto& kv : o.app_set) {
    std::string k;
    std::string v;
    if (auto e = split_kv(kv, "--app-set", k, v); e) return *e;
    raw.app_settings[k] = v;
  }
  const std::string nowhere = file.empty() ? std::string("command line") : file;

  Config c;
  c.source = file;
  NodeOptions& n = c.node;
  if (raw.cluster_id.empty()) {
    return Error{at_or(raw.cluster_id_at, nowhere), "cluster_id is required (in the file or --cluster-id)"};
  }
  n.cluster_id = raw.cluster_id;
  if (raw.id == 0) return Error{at_or(raw.id_at, nowhere), "id is required and must be positive (or --id)"};
  n.id = NodeId{raw.id};

  if (raw.role != "voter" && raw.role != "join") {
    return Error{raw.role_at, fmt::format("role '{}' is not one of voter, join", raw.role)};
  }
  c.join = raw.role == "join";

  std::set<std::uint64_t> ids;
  std::set<std::string> addresses;
  for (const Peer& p : raw.peers) {
    auto address = Address::parse(p.address);
    if (!address) return Error{p.origin, "peer " + std::to_string(p.id) + ": " + address.status().message()};
    if (!ids.insert(p.id).second) return Error{p.origin, fmt::format("duplicate peer id {}", p.id)};
    if (!addresses.insert(p.address).second) {
      return Error{p.origin, fmt::format("duplicate peer address {}", p.address)};
    }
    if (!c.join) n.initial_members.push_back(MemberAddress{NodeId{p.id}, std::move(address).value()});
  }
  if (!c.join) {
    if (raw.peers.empty()) {
      return Error{nowhere, "a founding voter (role = \"voter\") needs its peers, itself included "
                            "(peers = [{ id = 1, address = \"HOST:PORT\" }, ...] or --peer ID=HOST:PORT)"};
    }
    if (ids.count(raw.id) == 0) {
      return Error{at_or(raw.id_at, nowhere),
                   fmt::format("id {} is not among the peers ({}); a founder lists itself", raw.id,
                               fmt::join(ids, ", "))};
    }
  }

  std::string listen = raw.listen;
  std::string listen_at = raw.listen_at;
  if (listen.empty()) {
    for (const Peer& p : raw.peers) {
      if (p.id == raw.id) {
        listen = p.address;
        listen_at = p.origin;
      }
    }
  }
  if (listen.empty()) return Error{nowhere, "listen is required (HOST:PORT, or --listen)"};
  {
    auto address = bind_address(listen, listen_at, "listen");
    if (auto* e = std::get_if<Error>(&address)) return *e;
    n.listen = std::get<Address>(std::move(address));
  }
  if (!raw.admin_listen.empty()) {
    auto address = bind_address(raw.admin_listen, raw.admin_listen_at, "admin listen");
    if (auto* e = std::get_if<Error>(&address)) return *e;
    if (std::get<Address>(address) == n.listen) {
      return Error{raw.admin_listen_at, "admin listen: the same address as the node's own listen address"};
    }
    c.admin_listen = std::get<Address>(std::move(address));
  }
  c.ready_max_lag = raw.ready_max_lag;

  if (auto e = parse_egress(raw.egress, c.egress); e) return Error{raw.egress_at, *e};
  if (auto e = parse_level(raw.log_level, c.log_level); e) return Error{raw.log_level_at, *e};
  if (auto e = parse_log_format(raw.log_format, c.log_format); e) return Error{raw.log_format_at, *e};
  if (raw.storage == "rocksdb") {
    n.storage = StorageKind::RocksDb;
  } else if (raw.storage == "memory") {
    n.storage = StorageKind::Memory;
  } else {
    return Error{raw.storage_at, fmt::format("storage '{}' is not one of rocksdb, memory", raw.storage)};
  }
  n.sync = raw.sync;
  n.auth_token = raw.token;
  n.forward_proposals = raw.forward;

  if (raw.tick_ms == 0 || raw.tick_ms > 10000) {
    return Error{raw.tick_at, fmt::format("tick_ms = {} is out of range [1, 10000]", raw.tick_ms)};
  }
  if (raw.election_ticks < 2 || raw.election_ticks > 100000) {
    return Error{raw.election_at, fmt::format("election_ticks = {} is out of range [2, 100000]", raw.election_ticks)};
  }
  if (raw.heartbeat_ticks == 0 || raw.heartbeat_ticks >= raw.election_ticks) {
    return Error{at_or(raw.heartbeat_at, raw.election_at),
                 fmt::format("heartbeat_ticks ({}) must be at least 1 and below election_ticks ({})",
                             raw.heartbeat_ticks, raw.election_ticks)};
  }
  if (raw.proposal_timeout_ms == 0 || raw.proposal_timeout_ms > 3600000) {
    return Error{raw.proposal_at, fmt::format("proposal_timeout_ms = {} is out of range", raw.proposal_timeout_ms)};
  }
  n.tick = std::chrono::milliseconds(raw.tick_ms);
  n.election_ticks = static_cast<std::uint32_t>(raw.election_ticks);
  n.heartbeat_ticks = static_cast<std::uint32_t>(raw.heartbeat_ticks);
  n.proposal_timeout = std::chrono::milliseconds(raw.proposal_timeout_ms);
  if (raw.disconnect_campaign_ticks >= raw.election_ticks) {
    return Error{at_or(raw.disconnect_at, raw.election_at),
                 fmt::format("disconnect_campaign_ticks ({}) must be below election_ticks ({}); 0 turns it off",
                             raw.disconnect_campaign_ticks, raw.election_ticks)};
  }
  n.disconnect_campaign_ticks = static_cast<std::uint32_t>(raw.disconnect_campaign_ticks);
  if (raw.link_silence_ms != 0 && raw.link_silence_ms < 3 * raw.heartbeat_ticks * raw.tick_ms) {
    return Error{raw.silence_at,
                 fmt::format("link_silence_ms ({}) must be 0 (the election timeout) or at least three heartbeat "
                             "intervals ({} ms)",
                             raw.link_silence_ms, 3 * raw.heartbeat_ticks * raw.tick_ms)};
  }
  n.link_silence = std::chrono::milliseconds(raw.link_silence_ms);

  c.app = raw.app.empty() ? "none" : raw.app;
  c.app_settings = raw.app_settings;

  if (n.storage == StorageKind::RocksDb || !raw.data_dir.empty()) {
    if (raw.data_dir.empty()) return Error{nowhere, "data_dir is required (or --data-dir)"};
    if (auto e = prepare_data_dir(raw.data_dir, at_or(raw.data_dir_at, nowhere)); e) return *e;
  }
  n.data_dir = raw.data_dir;

  if (Status s = validate(n); !s) return Error{nowhere, s.message()};
  return c;
}

const char* egress_name(EgressMode m) {
  switch (m) {
    case EgressMode::LeaderOnly: return "leader-only";
    case EgressMode::Persist: return "persist";
    case EgressMode::Off: return "off";
  }
  return "?";
}

}  // namespace rlr::nodecfg
