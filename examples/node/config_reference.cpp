#include "config_reference.h"

#include <fmt/format.h>

namespace rlr::nodecfg {

namespace {

// clang-format off
constexpr OptionDoc kOptions[] = {
  {"", "cluster_id", "--cluster-id", "string", "required", "", "\"venue-a\"", false,
   "Names the cluster. Every node and client must use the same id: a peer or client that "
   "names another cluster is refused, and a data directory made for another cluster is "
   "refused at start."},
  {"", "id", "--id", "integer", "required", "", "1", false,
   "This node's id, a positive integer unique in the cluster. A founding voter lists "
   "itself in `peers` under this id. Never reuse the id of a removed node."},
  {"", "listen", "--listen", "string", "this node's address in `peers`", "", "\"0.0.0.0:7001\"", true,
   "HOST:PORT to accept peers and clients on; HOST is an IP address, not a name. Set it when the node must bind another "
   "address than the one its peers dial (e.g. 0.0.0.0 behind NAT); a joining node, which "
   "has no `peers`, must set it."},
  {"", "data_dir", "--data-dir", "string", "required (unless storage = \"memory\")", "",
   "\"/var/lib/rlr/n1\"", false,
   "Where the log (segment files) and the metadata (RocksDB) live; created if missing. "
   "One node per directory; it holds the node's votes and acknowledged entries, so it is "
   "never copied to another node or restored from an old backup while the node is a "
   "voter (docs/operations.md)."},
  {"", "role", "--role", "string", "\"voter\"", "", "\"voter\"", false,
   "`voter`: a founding member; the founders start together from the same `peers`. "
   "`join`: start empty and wait to be added as a learner by `rlr-ctl add-learner` "
   "(then promoted with `rlr-ctl promote`)."},
  {"", "peers", "--peer ID=HOST:PORT (repeat)", "array of { id, address } tables", "required for role = \"voter\"", "",
   "[\n  { id = 1, address = \"10.0.0.1:7001\" },\n  { id = 2, address = \"10.0.0.2:7001\" },\n"
   "  { id = 3, address = \"10.0.0.3:7001\" },\n]", false,
   "The founding voters, this node included, with the addresses their peers dial. Read "
   "only when the data directory is new: after that the membership is the replicated one "
   "(changed with `rlr-ctl add-learner`, `promote`, `remove`). Ignored for role = \"join\"."},
  {"", "storage", "--storage", "string", "\"rocksdb\"", "", "\"rocksdb\"", false,
   "`rocksdb`: the durable store (segment log + RocksDB metadata). `memory`: nothing "
   "survives a restart; for tests and benchmarks only."},
  {"", "sync", "--sync / --no-sync", "boolean", "true", "", "true", false,
   "fdatasync every persistence step before it is acknowledged. Off trades durability for "
   "latency: a power loss on a majority can then lose acknowledged entries. Keep it on in "
   "production."},
  {"", "auth_token", "--token", "string", "\"\" (none)", "", "\"\"", false,
   "A shared secret every peer and client must present in its handshake. It is sent in "
   "clear text: it keeps out misconfigured nodes, not attackers."},
  {"", "egress", "--egress", "string", "\"leader-only\"", "", "\"leader-only\"", false,
   "The hosted app's egress policy. `leader-only`: only the leader's copy emits side "
   "effects. `persist`: this node emits too (an audit learner writing a database). `off`: "
   "never."},
  {"", "forward_proposals", "--forward-proposals", "boolean", "false", "", "false", false,
   "As a follower, relay client proposals to the leader instead of answering NotLeader "
   "with a hint. Saves clients a redirect, costs a hop (docs/leader-routing.md)."},
  {"", "log_level", "--log-level", "string", "\"info\"", "", "\"info\"", false,
   "`debug`, `info`, `warn` or `error`: the lowest level written to stderr (systemd's "
   "journal under the unit)."},
  {"", "log_format", "--log-format", "string", "\"text\"", "", "\"text\"", false,
   "`text`: one readable line per event. `json`: one object per line, for log shippers."},
  {"", "app", "--app, --app-set KEY=VALUE", "string or [app] table", "\"none\"", "", "\"none\"", false,
   "The example app to host next to the node: `matching-engine`, `kv`, `audit` or `none`. "
   "As an [app] table: `name` plus the app's own settings (see below)."},
  {"timeouts", "tick_ms", "--tick-ms", "integer", "10", "ms", "10", false,
   "The Raft tick. Every timeout below counts ticks. A shorter tick detects a lost leader "
   "sooner and costs more wake-ups."},
  {"timeouts", "election_ticks", "--election-ticks", "integer", "15", "ticks", "15", false,
   "Election timeout, randomized in [e, 2e) ticks. Lower fails over faster; too low for "
   "the network's and the disk's pauses causes needless elections."},
  {"timeouts", "heartbeat_ticks", "--heartbeat-ticks", "integer", "3", "ticks", "3", false,
   "Heartbeat interval of the leader; below election_ticks."},
  {"timeouts", "disconnect_campaign_ticks", "--disconnect-campaign-ticks", "integer", "1", "ticks", "1",
   false,
   "On losing the leader's connection, pre-vote after this many ticks x (1 + 2 x rank) "
   "instead of waiting for the election timeout: fail-over in tens of milliseconds when a "
   "leader's process dies. 0 turns it off; below election_ticks."},
  {"timeouts", "proposal_timeout_ms", "--proposal-timeout-ms", "integer", "5000", "ms", "5000", false,
   "How long a proposal may wait to commit before it fails with Timeout (the entry may "
   "still commit later; clients retry with their session to stay exactly-once)."},
  {"timeouts", "link_silence_ms", "--link-silence-ms", "integer", "0 (the election timeout)", "ms", "0",
   false,
   "Close and redial a peer link that heard nothing, not even a keepalive, this long; at "
   "least three heartbeat intervals. Lower notices a half-open connection sooner."},
  {"admin", "listen", "--admin-listen", "string", "\"\" (no admin server)", "", "\"127.0.0.1:9101\"", true,
   "IP:PORT of the admin HTTP server: /metrics (Prometheus text format), / (the status "
   "page), /healthz and /readyz (docs/operations.md, \"Monitoring\"). It serves anyone who "
   "can reach it and takes no token: bind it to a management network or to loopback."},
  {"admin", "ready_max_lag", "--ready-max-lag", "integer", "10000", "entries", "10000", false,
   "/readyz answers 503 while this node trails its leader's commit index by more than "
   "this many entries (or knows no leader, or its storage failed), so a load balancer "
   "sends readers only to nodes that are nearly current."},
};

/// The example apps' settings ([app] table keys beside `name`).
struct AppSetting {
  const char* app;
  const char* key;
  const char* default_doc;
  const char* doc;
};
constexpr AppSetting kAppSettings[] = {
  {"matching-engine", "digest_interval", "100", "entries between output-digest checkpoints"},
  {"matching-engine", "output_log", "\"\" (none)", "append every emitted output to this file"},
  {"kv", "listen", "\"127.0.0.1:6379\"", "HOST:PORT of the RESP (Redis protocol) server"},
  {"kv", "resp_peers", "\"\"", "ID=HOST:PORT,... of every node's RESP server, for MOVED redirects"},
  {"kv", "digest_interval", "1000", "entries between output-digest checkpoints"},
  {"audit", "db", "\"<data_dir>/audit.sqlite\"", "the SQLite database the audit learner writes"},
  {"audit", "report", "\"<data_dir>/audit-verify.txt\"", "where the periodic verification writes its result"},
  {"audit", "verify_interval_ms", "1000", "how often the table is verified against the log; 0: never"},
  {"audit", "batch_outputs", "2000", "outputs written per SQLite transaction"},
  {"audit", "digest_interval", "100", "entries between output-digest checkpoints"},
};
// clang-format on

/// `text` as comment lines of at most 88 columns, each starting with `prefix`.
std::string wrap(const std::string& text, const std::string& prefix) {
  std::string out;
  std::string line = prefix;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t j = text.find(' ', i);
    if (j == std::string::npos) j = text.size();
    const std::string word = text.substr(i, j - i);
    if (line.size() > prefix.size() && line.size() + 1 + word.size() > 88) {
      out += line + "\n";
      line = prefix;
    }
    if (line.size() > prefix.size()) line += ' ';
    line += word;
    i = j + 1;
  }
  if (line.size() > prefix.size()) out += line + "\n";
  return out;
}

std::string toml_string(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  return out + "\"";
}

}  // namespace

std::span<const OptionDoc> config_options() { return kOptions; }

std::set<std::string> known_keys(const std::string& table) {
  std::set<std::string> keys;
  for (const OptionDoc& o : kOptions) {
    if (table == o.table) keys.insert(o.key);
  }
  if (table.empty()) {
    keys.insert("timeouts");
    keys.insert("admin");
  }
  return keys;
}

std::string default_config_toml() {
  std::string out =
      "# rlr-node configuration: a founding voter of a 3-node cluster.\n"
      "# Printed by `rlr-node --print-default-config`; every option is shown with its\n"
      "# default (required ones with an example value). Flags override the file. Check a\n"
      "# file with `rlr-node --check --config FILE`. Reference: docs/configuration.md.\n";
  std::string table;
  for (const OptionDoc& o : kOptions) {
    if (o.table != table) {
      table = o.table;
      out += fmt::format("\n[{}]\n", table);
    }
    out += "\n" + wrap(o.doc, "# ");
    std::string meta = fmt::format("Default: {}", o.default_doc);
    if (*o.unit != '\0') meta += fmt::format(", in {}", o.unit);
    if (*o.flag != '\0') meta += fmt::format(". Flag: {}", o.flag);
    out += wrap(meta + ".", "# ");
    out += fmt::format("{}{} = {}\n", o.commented ? "# " : "", o.key, o.example);
  }
  return out;
}

std::string config_reference_markdown() {
  std::string out =
      "# rlr-node configuration reference\n\n"
      "<!-- Generated by `rlr-node --print-config-reference`; tests/package/config_test.sh "
      "fails when this file differs. Edit examples/node/config_reference.cpp. -->\n\n"
      "`rlr-node --config FILE` reads a TOML file; the flags named below override it.\n"
      "`rlr-node --check --config FILE` validates a file and prints the configuration the\n"
      "node would run with, every option included; `rlr-node --print-default-config` prints\n"
      "a commented file to start from (examples/config/ has one per role: voter.toml,\n"
      "learner.toml, audit-learner.toml). A bad value, an unknown key or a key of the wrong\n"
      "type stops the node with exit status 2 and names the file, line and column.\n";
  std::string table = "-";
  for (const OptionDoc& o : kOptions) {
    if (o.table != table) {
      table = o.table;
      out += table.empty() ? "\n## Top-level keys\n" : fmt::format("\n## [{}]\n", table);
    }
    out += fmt::format("\n### `{}`\n\n", o.key);
    out += fmt::format("- type: {}{}\n", o.type, *o.unit != '\0' ? fmt::format(" ({})", o.unit) : "");
    out += fmt::format("- default: {}\n", o.default_doc);
    if (*o.flag != '\0') out += fmt::format("- flag: `{}`\n", o.flag);
    out += "\n" + wrap(o.doc, "");
  }
  out +=
      "\n## [app] settings of the example apps\n\n"
      "Beside `name`, an [app] table passes its keys to the app as strings (`--app-set\n"
      "KEY=VALUE` adds or overrides one).\n\n"
      "| app | key | default | what it sets |\n| --- | --- | --- | --- |\n";
  for (const AppSetting& s : kAppSettings) {
    out += fmt::format("| {} | `{}` | {} | {} |\n", s.app, s.key, s.default_doc, s.doc);
  }
  return out;
}

std::string effective_config_toml(const Config& c) {
  const NodeOptions& n = c.node;
  std::string out;
  out += fmt::format("cluster_id = {}\n", toml_string(n.cluster_id));
  out += fmt::format("id = {}\n", n.id.value());
  out += fmt::format("listen = {}\n", toml_string(n.listen.to_string()));
  out += fmt::format("data_dir = {}\n", toml_string(n.data_dir));
  out += fmt::format("role = \"{}\"\n", c.join ? "join" : "voter");
  out += "peers = [\n";
  for (const MemberAddress& m : n.initial_members) {
    out += fmt::format("  {{ id = {}, address = {} }},\n", m.id.value(), toml_string(m.address.to_string()));
  }
  out += "]\n";
  out += fmt::format("storage = \"{}\"\n", n.storage == StorageKind::Memory ? "memory" : "rocksdb");
  out += fmt::format("sync = {}\n", n.sync);
  // The token is a secret: say whether one is set, never what it is.
  out += fmt::format("auth_token = {}\n", n.auth_token.empty() ? "\"\"" : "\"(set)\"");
  out += fmt::format("egress = \"{}\"\n", egress_name(c.egress));
  out += fmt::format("forward_proposals = {}\n", n.forward_proposals);
  out += fmt::format("log_level = \"{}\"\n", to_string(c.log_level));
  out += fmt::format("log_format = \"{}\"\n", c.log_format == LogFormat::Json ? "json" : "text");
  out += "\n[app]\n";
  out += fmt::format("name = {}\n", toml_string(c.app));
  for (const auto& [k, v] : c.app_settings) out += fmt::format("{} = {}\n", k, toml_string(v));
  out += "\n[timeouts]\n";
  out += fmt::format("tick_ms = {}\n", n.tick.count());
  out += fmt::format("election_ticks = {}\n", n.election_ticks);
  out += fmt::format("heartbeat_ticks = {}\n", n.heartbeat_ticks);
  out += fmt::format("disconnect_campaign_ticks = {}\n", n.disconnect_campaign_ticks);
  out += fmt::format("proposal_timeout_ms = {}\n", n.proposal_timeout.count());
  out += fmt::format("link_silence_ms = {}\n", n.link_silence.count());
  out += "\n[admin]\n";
  out += fmt::format("listen = {}\n", toml_string(c.admin_listen ? c.admin_listen->to_string() : ""));
  out += fmt::format("ready_max_lag = {}\n", c.ready_max_lag);
  return out;
}

}  // namespace rlr::nodecfg
