// rlr-node's configuration: a TOML file with command-line overrides.
//
// Every value remembers where it came from ("n1.toml:7:1" or "--listen"), so that a bad
// value is reported at its source. load_config() never throws.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "rlr/node.h"
#include "rlr/state_machine.h"

namespace rlr::nodecfg {

struct Config {
  NodeOptions node;                  ///< identity, listen, peers (founders), data dir, timeouts
  bool join = false;                 ///< role "join": start empty, wait to be added as learner
  EgressMode egress = EgressMode::LeaderOnly;
  LogLevel log_level = LogLevel::Info;
  LogFormat log_format = LogFormat::Text;  ///< of every line, the node's own and librlr's
  std::string app = "none";
  std::map<std::string, std::string> app_settings;  ///< the [app] table, values as strings
  std::string source;                ///< the config file, empty when none
  /// [admin] listen: where /metrics, the status page and the health checks are served;
  /// unset: no admin server.
  std::optional<Address> admin_listen;
  /// [admin] ready_max_lag: /readyz fails while this node trails its leader's commit
  /// index by more entries than this.
  std::uint64_t ready_max_lag = 10'000;
};

/// Command-line values; unset ones leave the file's (or the default) value.
struct Overrides {
  std::string config_file;
  std::optional<std::string> cluster_id, listen, data_dir, role, egress, token, log_level, log_format, app,
      storage, admin_listen;
  std::optional<std::uint64_t> id;
  std::vector<std::string> peers;     ///< "ID=HOST:PORT"; when given, replace the file's
  std::vector<std::string> app_set;   ///< "KEY=VALUE", merged over the [app] table
  std::optional<std::uint32_t> tick_ms, election_ticks, heartbeat_ticks, proposal_timeout_ms,
      disconnect_campaign_ticks, link_silence_ms;
  std::optional<std::uint64_t> ready_max_lag;
  std::optional<bool> sync;
  bool forward_proposals = false;
};

/// A configuration error: where (file:line:col or --flag) and what.
struct ConfigError {
  std::string where;
  std::string what;
};

/// Reads the file (if any), applies the overrides, validates everything and prepares
/// the data directory. Returns the error of the first bad value.
[[nodiscard]] std::variant<Config, ConfigError> load_config(const Overrides& o);

/// "leader-only" / "persist" / "off".
[[nodiscard]] const char* egress_name(EgressMode m);

}  // namespace rlr::nodecfg
