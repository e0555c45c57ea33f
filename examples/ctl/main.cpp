// rlr-ctl: administer and inspect a librlr cluster through rlr::Client.
//
//   rlr-ctl --cluster demo --bootstrap 127.0.0.1:7001,127.0.0.1:7002 status [--json]
//   rlr-ctl ... add-learner 4 127.0.0.1:7004 | promote 4 | remove 4 | transfer-leader 2
//   rlr-ctl ... verify [--json] | propose "some text" | leader | watch [--from N] [--count K]
//   rlr-ctl --cluster demo dump --data-dir DIR --id N [--from I] [--to J]   (offline; see ctl/dump.cpp)
//
// Exit status: 0 success, 1 the operation failed (or verify found divergence), 2 bad
// command line, 3 the cluster could not be reached.
#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "ctl/dump.h"
#include "rlr/client.h"
#include "rlr/version.h"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnreachable = 3;

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(static_cast<unsigned char>(c)));
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string hex(std::uint64_t v) { return fmt::format("{:016x}", v); }

/// One member as the leader sees it, plus the member's own answer.
struct Row {
  rlr::MemberInfo leader_view;
  std::optional<rlr::ClusterInfo> own;  ///< the member's own cluster_info
  std::string error;                    ///< why `own` is missing
};

struct Snapshot {
  std::optional<rlr::ClusterInfo> leader;  ///< the leader's answer
  std::string leader_error;
  std::vector<Row> rows;
};

Snapshot gather(rlr::Client& c, const std::vector<rlr::Address>& bootstrap) {
  Snapshot s;
  auto li = c.cluster_info();
  if (li) {
    s.leader = li.value();
    for (const auto& m : s.leader->members) s.rows.push_back(Row{m, std::nullopt, {}});
  } else {
    s.leader_error = li.status().to_string();
    // No leader: show what the bootstrap nodes say about themselves.
    for (const auto& a : bootstrap) {
      rlr::MemberInfo m;
      m.address = a;
      s.rows.push_back(Row{m, std::nullopt, {}});
    }
  }
  for (Row& r : s.rows) {
    if (r.leader_view.address.empty()) {
      r.error = "address unknown";
      continue;
    }
    auto own = c.cluster_info(r.leader_view.address);
    if (own) {
      r.own = own.value();
      if (r.leader_view.id.is_zero()) r.leader_view.id = own.value().id;
    } else {
      r.error = own.status().message();
    }
  }
  return s;
}

std::string ms_text(std::int64_t ms) {
  if (ms < 0) return "-";
  if (ms < 10000) return fmt::format("{}ms", ms);
  return fmt::format("{}s", ms / 1000);
}

/// "100%" for a member caught up with the leader's log, else match / leader's last index.
std::string catch_up(const rlr::MemberInfo& m, const rlr::ClusterInfo& leader) {
  if (m.id == leader.id) return "leader";
  if (leader.last_index.is_zero()) return "-";
  const double pct = 100.0 * static_cast<double>(m.match.value()) / static_cast<double>(leader.last_index.value());
  if (m.lag == 0) return "100%";
  return fmt::format("{:.1f}%", std::min(pct, 99.9));
}

void print_table(const Snapshot& s) {
  if (s.leader) {
    const auto& l = *s.leader;
    std::size_t voters = 0;
    for (const auto& m : l.members) voters += m.voter ? 1 : 0;
    std::printf("cluster %s: leader %llu, term %llu, commit %llu, last index %llu, %zu members (%zu voters, %zu learners)%s\n",
                l.cluster_id.c_str(), static_cast<unsigned long long>(l.id.value()),
                static_cast<unsigned long long>(l.term.value()), static_cast<unsigned long long>(l.commit.value()),
                static_cast<unsigned long long>(l.last_index.value()), l.members.size(), voters,
                l.members.size() - voters, l.diverged ? "  ** DIGESTS DIVERGE **" : "");
  } else {
    std::printf("no leader: %s\n", s.leader_error.c_str());
  }
  std::vector<std::vector<std::string>> table;
  table.push_back({"ID", "ADDRESS", "ROLE", "MEMBER", "TERM", "COMMIT", "APPLIED", "MATCH", "LAG",
                   "CONTACT", "DIGEST@INDEX", "CATCH-UP"});
  for (const Row& r : s.rows) {
    const auto& m = r.leader_view;
    std::vector<std::string> row;
    row.push_back(m.id.is_zero() ? "?" : std::to_string(m.id.value()));
    row.push_back(m.address.empty() ? "-" : m.address.to_string());
    if (r.own) {
      row.push_back(std::string(rlr::to_string(r.own->role)));
    } else {
      row.push_back("unreachable");
    }
    row.push_back(s.leader ? (m.voter ? "voter" : "learner") : "?");
    row.push_back(r.own ? std::to_string(r.own->term.value()) : "-");
    row.push_back(r.own ? std::to_string(r.own->commit.value()) : "-");
    row.push_back(r.own ? std::to_string(r.own->applied.value()) : "-");
    row.push_back(s.leader ? std::to_string(m.match.value()) : "-");
    row.push_back(s.leader ? std::to_string(m.lag) : "-");
    row.push_back(s.leader ? (m.id == s.leader->id ? "self" : ms_text(m.last_contact.count())) : "-");
    if (r.own && !r.own->digest.index.is_zero()) {
      row.push_back(fmt::format("{}@{}", hex(r.own->digest.digest).substr(0, 12), r.own->digest.index.value()));
    } else {
      row.push_back("-");
    }
    row.push_back(s.leader ? catch_up(m, *s.leader) : "-");
    table.push_back(std::move(row));
  }
  std::vector<std::size_t> widths(table.front().size(), 0);
  for (const auto& row : table) {
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : table) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    std::printf("%s\n", line.c_str());
  }
  for (const Row& r : s.rows) {
    if (!r.own) {
      std::printf("node %s (%s): %s\n", r.leader_view.id.is_zero() ? "?" : std::to_string(r.leader_view.id.value()).c_str(),
                  r.leader_view.address.to_string().c_str(), r.error.c_str());
    }
  }
}

void print_json(const Snapshot& s) {
  std::string out = "{";
  if (s.leader) {
    const auto& l = *s.leader;
    out += fmt::format("\"cluster_id\":{},\"leader\":{},\"term\":{},\"commit\":{},\"last_index\":{},\"diverged\":{},",
                       json_string(l.cluster_id), l.id.value(), l.term.value(), l.commit.value(),
                       l.last_index.value(), l.diverged ? "true" : "false");
  } else {
    out += fmt::format("\"leader\":null,\"error\":{},", json_string(s.leader_error));
  }
  out += "\"members\":[";
  bool first = true;
  for (const Row& r : s.rows) {
    const auto& m = r.leader_view;
    if (!first) out += ",";
    first = false;
    out += fmt::format("{{\"id\":{},\"address\":{},\"reachable\":{}", m.id.value(), json_string(m.address.to_string()),
                       r.own ? "true" : "false");
    if (s.leader) {
      out += fmt::format(",\"voter\":{},\"match\":{},\"lag\":{},\"last_contact_ms\":{},\"catch_up\":{}",
                         m.voter ? "true" : "false", m.match.value(), m.lag, m.last_contact.count(),
                         json_string(catch_up(m, *s.leader)));
      out += fmt::format(",\"reported_digest\":{{\"index\":{},\"digest\":\"{}\"}},\"diverged_at\":{}",
                         m.digest.index.value(), hex(m.digest.digest), m.diverged_at.value());
    }
    if (r.own) {
      const auto& o = *r.own;
      out += fmt::format(",\"role\":{},\"term\":{},\"leader_id\":{},\"commit\":{},\"applied\":{},\"first_index\":{},"
                         "\"last_index\":{},\"digest\":{{\"index\":{},\"digest\":\"{}\"}},\"diverged\":{}",
                         json_string(std::string(rlr::to_string(o.role))), o.term.value(), o.leader.value(),
                         o.commit.value(), o.applied.value(), o.first_index.value(), o.last_index.value(),
                         o.digest.index.value(), hex(o.digest.digest), o.diverged ? "true" : "false");
    } else {
      out += fmt::format(",\"error\":{}", json_string(r.error));
    }
    out += "}";
  }
  out += "]}";
  std::printf("%s\n", out.c_str());
}

/// Compares the digest checkpoints the nodes report. 0: agree; 1: divergence; 3: a node
/// could not be asked.
int verify(const Snapshot& s, bool json) {
  std::vector<std::string> problems;
  std::vector<std::string> unreachable;
  std::map<std::uint64_t, std::vector<std::pair<std::uint64_t, std::uint64_t>>> by_index;  // index -> (node, digest)
  for (const Row& r : s.rows) {
    const std::uint64_t id = r.leader_view.id.value();
    if (!r.own) {
      unreachable.push_back(fmt::format("node {} ({}): {}", id, r.leader_view.address.to_string(), r.error));
      continue;
    }
    const auto& o = *r.own;
    if (!o.digest.index.is_zero()) by_index[o.digest.index.value()].emplace_back(id, o.digest.digest);
    if (o.diverged) problems.push_back(fmt::format("node {} reports that a member's digest differs from its own", id));
    for (const auto& m : o.members) {
      if (!m.diverged_at.is_zero()) {
        problems.push_back(fmt::format("node {} sees node {} diverge at checkpoint index {}", id, m.id.value(),
                                       m.diverged_at.value()));
      }
    }
  }
  std::uint64_t agreed_index = 0;
  std::uint64_t agreed_digest = 0;
  std::size_t agreed_nodes = 0;
  for (const auto& [index, reports] : by_index) {
    for (const auto& [node, digest] : reports) {
      if (digest != reports.front().second) {
        problems.push_back(fmt::format("at index {} node {} has digest {} but node {} has {}", index, node,
                                       hex(digest), reports.front().first, hex(reports.front().second)));
      }
    }
    if (reports.size() >= agreed_nodes) {
      agreed_index = index;
      agreed_digest = reports.front().second;
      agreed_nodes = reports.size();
    }
  }
  const int rc = !problems.empty() ? kExitFailed : !unreachable.empty() ? kExitUnreachable : kExitOk;
  if (json) {
    std::string out = fmt::format("{{\"ok\":{},\"diverged\":{},\"problems\":[", rc == kExitOk ? "true" : "false",
                                  problems.empty() ? "false" : "true");
    for (std::size_t i = 0; i < problems.size(); ++i) out += (i ? "," : "") + json_string(problems[i]);
    out += "],\"unreachable\":[";
    for (std::size_t i = 0; i < unreachable.size(); ++i) out += (i ? "," : "") + json_string(unreachable[i]);
    out += "],\"checkpoints\":[";
    bool first = true;
    for (const auto& [index, reports] : by_index) {
      for (const auto& [node, digest] : reports) {
        out += fmt::format("{}{{\"node\":{},\"index\":{},\"digest\":\"{}\"}}", first ? "" : ",", node, index, hex(digest));
        first = false;
      }
    }
    out += "]}";
    std::printf("%s\n", out.c_str());
    return rc;
  }
  for (const auto& [index, reports] : by_index) {
    for (const auto& [node, digest] : reports) {
      std::printf("node %llu: checkpoint at index %llu, digest %s\n", static_cast<unsigned long long>(node),
                  static_cast<unsigned long long>(index), hex(digest).c_str());
    }
  }
  for (const auto& u : unreachable) std::printf("cannot ask %s\n", u.c_str());
  if (!problems.empty()) {
    std::printf("DIVERGED: the replicas' outputs differ:\n");
    for (const auto& p : problems) std::printf("  - %s\n", p.c_str());
  } else if (by_index.empty()) {
    std::printf("OK: no divergence reported (no digest checkpoints yet: no state machine attached, or fewer "
                "entries applied than the digest interval)\n");
  } else if (!unreachable.empty()) {
    std::printf("INCOMPLETE: no divergence among the nodes that answered; %zu could not be asked\n", unreachable.size());
  } else {
    std::printf("OK: no divergence; %zu node(s) agree at checkpoint %llu (digest %s)\n", agreed_nodes,
                static_cast<unsigned long long>(agreed_index), hex(agreed_digest).c_str());
  }
  return rc;
}

int report(const rlr::Status& s, const std::string& what) {
  if (s) {
    std::printf("%s\n", what.c_str());
    return kExitOk;
  }
  std::fprintf(stderr, "rlr-ctl: %s\n", s.to_string().c_str());
  return s.code() == rlr::ErrorCode::Unavailable ? kExitUnreachable : kExitFailed;
}

int run(int argc, char** argv) {
  CLI::App cli{"rlr-ctl: inspect and administer a librlr cluster.\n"
               "Exit status: 0 ok, 1 failed (verify: divergence), 2 bad usage, 3 cluster unreachable."};
  cli.require_subcommand(1);
  cli.set_version_flag("--version", fmt::format("rlr-ctl {} (storage format {}, wire protocol {})", rlr::version(),
                                                rlr::storage_format_version(), rlr::wire_protocol_version()));
  std::string cluster;
  std::string bootstrap;
  std::string token;
  std::uint32_t timeout_ms = 10000;
  cli.add_option("--cluster", cluster, "cluster id")->required()->envname("RLR_CLUSTER");
  cli.add_option("--bootstrap", bootstrap, "HOST:PORT,HOST:PORT,... of some nodes (all but dump need it)")
      ->envname("RLR_BOOTSTRAP");
  cli.add_option("--token", token, "auth token")->envname("RLR_TOKEN");
  cli.add_option("--timeout-ms", timeout_ms, "give up after this long (default 10000)");

  bool json = false;
  auto* status = cli.add_subcommand("status", "members, roles, term, commit, applied, lag, digests, catch-up");
  status->add_flag("--json", json, "machine-readable output");
  auto* verify_cmd = cli.add_subcommand("verify", "compare the replicas' output digests; exit 1 on divergence");
  verify_cmd->add_flag("--json", json, "machine-readable output");
  std::uint64_t id = 0;
  std::string address;
  auto* add = cli.add_subcommand("add-learner", "add a node as a learner (it receives the log, does not vote)");
  add->add_option("ID", id, "node id")->required();
  add->add_option("ADDRESS", address, "HOST:PORT where it listens")->required();
  auto* promote = cli.add_subcommand("promote", "make a learner a voter");
  promote->add_option("ID", id, "node id")->required();
  auto* remove = cli.add_subcommand("remove", "remove a member");
  remove->add_option("ID", id, "node id")->required();
  auto* transfer = cli.add_subcommand("transfer-leader", "hand leadership to another voter");
  transfer->add_option("ID", id, "node id")->required();
  std::string text;
  auto* propose = cli.add_subcommand("propose", "append TEXT to the replicated log; prints its index and term");
  propose->add_option("TEXT", text, "the command")->required();
  auto* leader = cli.add_subcommand("leader", "print the leader's id");
  std::uint64_t from = 1;
  std::uint64_t count = 0;
  bool all_kinds = false;
  bool sessions = false;
  auto* watch = cli.add_subcommand("watch", "print committed commands as they arrive: INDEX TERM TEXT (survives failovers)");
  watch->add_option("--from", from, "first index (default 1)");
  watch->add_option("--count", count, "exit after this many commands (default: run until interrupted)");
  watch->add_flag("--all", all_kinds,
                  "also print the runtime's own entries (no-op, configuration, watermark) as INDEX TERM <KIND>");
  watch->add_flag("--sessions", sessions,
                  "print each command's client session: INDEX TERM CLIENT_ID:SEQUENCE TEXT (0:0 when none)");
  rlr::ctl::DumpOptions dump_options;
  auto* dump = cli.add_subcommand(
      "dump", "print a stopped node's stored log and hard state from its data directory (no cluster contact)");
  dump->add_option("--data-dir", dump_options.data_dir, "the node's data directory")->required();
  dump->add_option("--id", dump_options.node_id, "the node's id")->required();
  dump->add_option("--from", dump_options.from, "first index to print (default: the first stored)");
  dump->add_option("--to", dump_options.to, "last index to print (default: the last stored)");

  try {
    cli.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return cli.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return cli.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return cli.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "rlr-ctl: %s\n(see rlr-ctl --help)\n", e.what());
    return kExitUsage;
  }

  if (*dump) {
    dump_options.cluster_id = cluster;
    return rlr::ctl::dump_data_dir(dump_options);
  }
  if (bootstrap.empty()) {
    std::fprintf(stderr, "rlr-ctl: --bootstrap is required\n(see rlr-ctl --help)\n");
    return kExitUsage;
  }

  rlr::ClientOptions o;
  o.cluster_id = cluster;
  auto parsed = rlr::Address::parse_list(bootstrap);
  if (!parsed) {
    std::fprintf(stderr, "rlr-ctl: --bootstrap: %s\n", parsed.status().message().c_str());
    return kExitUsage;
  }
  o.bootstrap = std::move(parsed).value();
  o.auth_token = token;
  o.total_timeout = std::chrono::milliseconds(std::max<std::uint32_t>(timeout_ms, 100));
  o.request_timeout = std::min(o.total_timeout, std::chrono::milliseconds(3000));
  o.backoff_max = std::chrono::milliseconds(500);
  rlr::MemberAddress learner;
  if (*add) {
    auto a = rlr::Address::parse(address);
    if (!a) {
      std::fprintf(stderr, "rlr-ctl: add-learner: %s\n", a.status().message().c_str());
      return kExitUsage;
    }
    learner = rlr::MemberAddress{rlr::NodeId{id}, std::move(a).value()};
  }
  auto connected = rlr::Client::connect(o);
  if (!connected) {
    std::fprintf(stderr, "rlr-ctl: cannot reach cluster '%s' via %s: %s\n", cluster.c_str(), bootstrap.c_str(),
                 connected.status().to_string().c_str());
    return connected.status().code() == rlr::ErrorCode::Unavailable ? kExitUnreachable : kExitFailed;
  }
  rlr::Client& c = *connected.value();

  if (*status || *verify_cmd) {
    const Snapshot s = gather(c, o.bootstrap);
    if (*verify_cmd) return verify(s, json);
    if (json) {
      print_json(s);
    } else {
      print_table(s);
    }
    const bool any = std::any_of(s.rows.begin(), s.rows.end(), [](const Row& r) { return r.own.has_value(); });
    return !any ? kExitUnreachable : s.leader ? kExitOk : kExitFailed;
  }
  if (*add) {
    return report(c.add_learner(learner), fmt::format("node {} added as a learner at {}", id, address));
  }
  if (*promote) return report(c.promote(rlr::NodeId{id}), fmt::format("node {} is now a voter", id));
  if (*remove) return report(c.remove(rlr::NodeId{id}), fmt::format("node {} removed", id));
  if (*transfer) {
    return report(c.transfer_leadership(rlr::NodeId{id}), fmt::format("leadership transferred to node {}", id));
  }
  if (*propose) {
    auto r = c.propose_sync(rlr::Bytes::copy_of(text));
    if (!r) return report(r.status(), "");
    std::printf("index=%llu term=%llu\n", static_cast<unsigned long long>(r.value().index.value()),
                static_cast<unsigned long long>(r.value().term.value()));
    return kExitOk;
  }
  if (*watch) {
    auto sub = c.subscribe(rlr::LogIndex{from}, rlr::SubscribeOptions{.include_internal = all_kinds});
    if (!sub) return report(sub.status(), "");
    std::uint64_t seen = 0;
    for (;;) {
      auto batch = sub.value()->next(std::chrono::milliseconds(500));
      if (!batch) {
        std::fprintf(stderr, "rlr-ctl: watch: %s\n", batch.status().to_string().c_str());
        if (batch.status().code() == rlr::ErrorCode::Compacted) return kExitFailed;
        continue;  // Unavailable: the subscription keeps trying
      }
      for (const rlr::CommittedEntry& e : batch.value().entries) {
        if (e.kind == rlr::EntryKind::Normal) {
          const std::string body(e.payload.as_string_view());
          const std::string session =
              sessions ? fmt::format("{}:{} ", e.client_id, e.sequence) : std::string();
          std::printf("%llu %llu %s%s\n", static_cast<unsigned long long>(e.index.value()),
                      static_cast<unsigned long long>(e.term.value()), session.c_str(), body.c_str());
        } else {
          std::printf("%llu %llu <%s>\n", static_cast<unsigned long long>(e.index.value()),
                      static_cast<unsigned long long>(e.term.value()), std::string(rlr::to_string(e.kind)).c_str());
        }
        std::fflush(stdout);
        if (count != 0 && ++seen >= count) return kExitOk;
      }
    }
  }
  if (*leader) {
    auto r = c.leader();
    if (!r) return report(r.status(), "");
    std::printf("%llu\n", static_cast<unsigned long long>(r.value().value()));
    return kExitOk;
  }
  return kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rlr-ctl: fatal: %s\n", e.what());
    return kExitFailed;
  }
}
