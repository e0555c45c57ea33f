// rlr-node: one replicator node as a process, optionally hosting an example app.
//
//   rlr-node --config n1.toml [overrides...]
//
// Exit status: 0 after a clean stop (SIGINT/SIGTERM), 2 for a bad configuration or
// command line, 1 when the node cannot start or fails.
#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "admin_server.h"
#include "config.h"
#include "config_reference.h"
#include "rlr/allocator.h"
#include "rlr/node.h"
#include "rlr/version.h"

#ifdef RLR_HAVE_APPS
#include "apps/apps.h"
#endif

namespace {

using Level = rlr::LogLevel;

constexpr int kExitFailure = 1;
constexpr int kExitConfig = 2;
/// A write to the node's storage failed: memory is ahead of disk, so the node stops and a
/// restart (systemd's Restart=on-failure) recovers from what is durable.
constexpr int kExitStorage = 3;

/// The node's own lines ("elected leader", "stopping") go through the same sink as
/// librlr's, so one --log-format and --log-level govern every line the process writes.
class Log {
 public:
  void set(std::shared_ptr<rlr::LogSink> sink, rlr::NodeId id) {
    sink_ = std::move(sink);
    id_ = id;
  }
  [[nodiscard]] const std::shared_ptr<rlr::LogSink>& sink() const { return sink_; }
  template <class... Args>
  void at(Level l, fmt::format_string<Args...> f, Args&&... args) const {
    if (!sink_ || l < sink_->min_level()) return;
    const std::string message = fmt::format(f, std::forward<Args>(args)...);
    rlr::LogRecord r;
    r.level = l;
    r.component = "rlr-node";
    r.node = id_;
    r.message = message;
    r.time = std::chrono::system_clock::now();
    sink_->write(r);
  }

 private:
  std::shared_ptr<rlr::LogSink> sink_ = rlr::make_stderr_log_sink();
  rlr::NodeId id_;
};

Log g_log;

std::string app_list() {
#ifdef RLR_HAVE_APPS
  return fmt::format("{}", fmt::join(rlr::apps::app_names(), ", "));
#else
  return "none (this rlr-node was built without the example apps)";
#endif
}

/// Watches the node's view and logs what a person wants to see: elections, lost
/// leadership, leader changes, membership changes.
class EventWatcher {
 public:
  void poll(const rlr::Node& node) {
    const rlr::ClusterInfo ci = node.cluster_info();
    if (first_) {
      first_ = false;
      role_ = ci.role;
      leader_ = ci.leader;
      members_ = members_of(ci);
      g_log.at(Level::Info, "starting as {} in term {} with {} member(s): {}", rlr::to_string(ci.role),
               ci.term.value(), members_.size(), describe(members_));
      return;
    }
    if (ci.role != role_) {
      if (ci.role == rlr::Role::Leader) {
        g_log.at(Level::Info, "elected leader for term {} (commit {})", ci.term.value(), ci.commit.value());
      } else if (role_ == rlr::Role::Leader) {
        g_log.at(Level::Warn, "lost leadership in term {}: now {}{}", ci.term.value(),
                 rlr::to_string(ci.role),
                 ci.leader.is_zero() ? std::string() : fmt::format(", leader is node {}", ci.leader.value()));
      } else if (ci.role == rlr::Role::Learner || role_ == rlr::Role::Learner) {
        g_log.at(Level::Info, "now {} (term {})", rlr::to_string(ci.role), ci.term.value());
      } else {
        g_log.at(Level::Debug, "now {} (term {})", rlr::to_string(ci.role), ci.term.value());
      }
      role_ = ci.role;
    }
    if (ci.leader != leader_) {
      if (!ci.leader.is_zero() && ci.leader != ci.id) {
        g_log.at(Level::Info, "leader is node {} (term {})", ci.leader.value(), ci.term.value());
      } else if (ci.leader.is_zero()) {
        g_log.at(Level::Info, "no leader known (term {})", ci.term.value());
      }
      leader_ = ci.leader;
    }
    auto now = members_of(ci);
    if (now != members_) {
      for (const auto& [id, m] : now) {
        auto it = members_.find(id);
        if (it == members_.end()) {
          g_log.at(Level::Info, "member {} joined as {} ({})", id, m.first ? "voter" : "learner", m.second);
        } else if (it->second.first != m.first) {
          g_log.at(Level::Info, "member {} is now a {}", id, m.first ? "voter" : "learner");
        }
      }
      for (const auto& [id, m] : members_) {
        if (now.count(id) == 0) g_log.at(Level::Info, "member {} left the cluster", id);
      }
      members_ = std::move(now);
    }
    if (ci.diverged && !diverged_) g_log.at(Level::Error, "output digests diverge from another member's");
    diverged_ = ci.diverged;
    storage_error_ = ci.storage_error;
    if (++polls_ % 100 == 0) {
      g_log.at(Level::Debug, "term {} commit {} applied {} last {}", ci.term.value(), ci.commit.value(),
               ci.applied.value(), ci.last_index.value());
    }
  }

  /// Why the node's storage failed, as of the last poll; empty while it works.
  [[nodiscard]] const std::string& storage_error() const { return storage_error_; }

 private:
  std::string storage_error_;
  using Members = std::map<std::uint64_t, std::pair<bool, std::string>>;
  static Members members_of(const rlr::ClusterInfo& ci) {
    Members m;
    for (const auto& mi : ci.members) m[mi.id.value()] = {mi.voter, mi.address.to_string()};
    return m;
  }
  static std::string describe(const Members& m) {
    std::string s;
    for (const auto& [id, v] : m) {
      s += fmt::format("{}{}={}{}", s.empty() ? "" : ", ", id, v.second, v.first ? "" : " (learner)");
    }
    return s.empty() ? "none yet" : s;
  }

  bool first_ = true;
  rlr::Role role_ = rlr::Role::Follower;
  rlr::NodeId leader_;
  Members members_;
  bool diverged_ = false;
  std::uint64_t polls_ = 0;
};

int run(int argc, char** argv) {
  rlr::nodecfg::Overrides o;
  bool check_only = false;
  bool list_apps = false;
  bool print_default_config = false;
  bool print_config_reference = false;
  CLI::App cli{fmt::format(
      "rlr-node: one librlr replicator node.\n"
      "Reads a TOML config (--config); flags override it. Apps available: {}.\n"
      "Exit status: 0 clean stop, 1 runtime failure, 2 bad configuration.",
      app_list())};
  cli.set_version_flag("--version", fmt::format("rlr-node {} (storage format {}, wire protocol {})", rlr::version(),
                                                rlr::storage_format_version(), rlr::wire_protocol_version()));
  cli.add_option("-c,--config", o.config_file, "TOML config file");
  cli.add_option("--cluster-id", o.cluster_id, "cluster id (every node and client must agree)");
  cli.add_option("--id", o.id, "this node's id (positive integer)");
  cli.add_option("--listen", o.listen, "HOST:PORT to listen on (default: this node's peer address)");
  cli.add_option("--peer", o.peers, "ID=HOST:PORT of a founding voter, this node included (repeat; replaces the file's peers)");
  cli.add_option("--data-dir", o.data_dir, "directory for the log and metadata (created if missing)");
  cli.add_option("--role", o.role, "voter (a founding member) or join (start empty; wait to be added as a learner)");
  cli.add_option("--egress", o.egress, "app egress policy: leader-only, persist or off");
  cli.add_option("--storage", o.storage, "rocksdb (default) or memory");
  cli.add_option("--tick-ms", o.tick_ms, "Raft tick in milliseconds");
  cli.add_option("--election-ticks", o.election_ticks, "election timeout in ticks (randomized in [e, 2e))");
  cli.add_option("--heartbeat-ticks", o.heartbeat_ticks, "heartbeat interval in ticks");
  cli.add_option("--disconnect-campaign-ticks", o.disconnect_campaign_ticks,
                 "on losing the leader's connection, pre-vote after this many ticks x (1 + 2 rank); 0: off");
  cli.add_option("--proposal-timeout-ms", o.proposal_timeout_ms, "how long a proposal may wait to commit");
  cli.add_option("--admin-listen", o.admin_listen,
                 "IP:PORT of the admin HTTP server (/metrics, status page, /healthz, /readyz)");
  cli.add_option("--ready-max-lag", o.ready_max_lag, "/readyz fails beyond this many entries behind the leader");
  cli.add_option("--link-silence-ms", o.link_silence_ms,
                 "close and redial a peer link that heard nothing (not even a keepalive) this long; "
                 "0: the election timeout");
  int sync_flag = 0;  // +1 per --sync, -1 per --no-sync
  cli.add_flag("--sync,!--no-sync", sync_flag, "fsync every persistence step (default on)");
  cli.add_option("--token", o.token, "shared secret for peers and clients");
  cli.add_option("--log-level", o.log_level, "debug, info, warn or error");
  cli.add_option("--log-format", o.log_format, "text (one line per event) or json (one object per line)");
  cli.add_option("--app", o.app, "app to host: " + app_list());
  cli.add_option("--app-set", o.app_set, "KEY=VALUE setting for the app (repeat; over the [app] table)");
  cli.add_flag("--forward-proposals", o.forward_proposals,
               "as a follower, relay client proposals to the leader instead of redirecting");
  std::string trace_file;
  std::size_t trace_entries = std::size_t{1} << 18;
  cli.add_option("--trace", trace_file,
                 "diagnostics: stamp each log entry's way through this node (received, appended, sent, "
                 "synced, acknowledged, committed, replied) and write the stamps to this file at a clean "
                 "stop (rlr-bench --trace reads them)");
  cli.add_option("--trace-entries", trace_entries, "with --trace: how many of the latest log entries to keep")
      ->check(CLI::Range(std::size_t{1}, rlr::kMaxTraceEntries));
  cli.add_flag("--check", check_only,
               "validate the configuration, print it (every option, as TOML), and exit");
  cli.add_flag("--print-default-config", print_default_config,
               "print a commented configuration of a founding voter with every option's default, and exit");
  cli.add_flag("--print-config-reference", print_config_reference,
               "print the configuration reference (docs/configuration.md), and exit");
  cli.add_flag("--list-apps", list_apps, "print the apps this binary can host, and exit");
  try {
    cli.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return cli.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return cli.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return cli.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "rlr-node: command line error: %s\n(see rlr-node --help)\n", e.what());
    return kExitConfig;
  }
  if (sync_flag != 0) o.sync = sync_flag > 0;
  if (print_default_config) {
    std::fputs(rlr::nodecfg::default_config_toml().c_str(), stdout);
    return 0;
  }
  if (print_config_reference) {
    std::fputs(rlr::nodecfg::config_reference_markdown().c_str(), stdout);
    return 0;
  }
  if (list_apps) {
#ifdef RLR_HAVE_APPS
    for (const auto& n : rlr::apps::app_names()) std::printf("%s\n", n.c_str());
#else
    std::printf("none\n");
#endif
    return 0;
  }

  auto loaded = rlr::nodecfg::load_config(o);
  if (const auto* err = std::get_if<rlr::nodecfg::ConfigError>(&loaded)) {
    std::fprintf(stderr, "rlr-node: config error: %s: %s\n", err->where.c_str(), err->what.c_str());
    return kExitConfig;
  }
  rlr::nodecfg::Config cfg = std::get<rlr::nodecfg::Config>(std::move(loaded));
  if (!trace_file.empty()) {
    cfg.node.trace_entries = trace_entries;
    cfg.node.trace_path = trace_file;
  }
  const rlr::NodeOptions& n = cfg.node;

#ifdef RLR_HAVE_APPS
  std::unique_ptr<rlr::apps::App> app;
  if (cfg.app != "none") {
    app = rlr::apps::make_app(cfg.app);
    if (!app) {
      std::fprintf(stderr, "rlr-node: config error: app: unknown app '%s' (known: %s)\n", cfg.app.c_str(),
                   app_list().c_str());
      return kExitConfig;
    }
  }
#else
  if (cfg.app != "none") {
    std::fprintf(stderr, "rlr-node: config error: app: '%s' cannot be hosted: %s\n", cfg.app.c_str(),
                 app_list().c_str());
    return kExitConfig;
  }
#endif

  g_log.set(rlr::make_stderr_log_sink(cfg.log_format, cfg.log_level), n.id);
  const std::string members = [&] {
    std::string s;
    for (const auto& m : n.initial_members) s += fmt::format("{}{}={}", s.empty() ? "" : ",", m.id.value(), m.address.to_string());
    return s;
  }();
  if (check_only) {
    std::printf("config ok: cluster '%s', node %llu, listen %s, role %s, peers [%s], data_dir '%s', "
                "egress %s, app %s, tick %ums x %u election / %u heartbeat, sync %s%s\n",
                n.cluster_id.c_str(), static_cast<unsigned long long>(n.id.value()), n.listen.to_string().c_str(), cfg.join ? "join" : "voter", members.c_str(),
                n.data_dir.c_str(), rlr::nodecfg::egress_name(cfg.egress), cfg.app.c_str(), static_cast<unsigned>(n.tick.count()),
                n.election_ticks, n.heartbeat_ticks, n.sync ? "on" : "off",
                n.forward_proposals ? ", forwarding proposals" : "");
    std::printf("\n# the configuration this node would run with\n%s",
                rlr::nodecfg::effective_config_toml(cfg).c_str());
    return 0;
  }

  // This process runs a node above all: allocator settings for a growing log and large
  // steps, before any thread exists (rlr/allocator.h).
  if (rlr::Status t = rlr::tune_allocator(); !t) {
    g_log.at(Level::Warn, "allocator left at its defaults: {}", t.to_string());
  }

  // Signals are taken synchronously by this thread: block them before any other thread
  // exists so that every thread inherits the mask. SIGHUP (a closed terminal, a reload
  // request) would otherwise end the node without its clean stop: it is taken and
  // logged, as there is nothing to reload.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  // A write past the file-size limit (RLIMIT_FSIZE) must fail with EFBIG, as a full disk
  // fails with ENOSPC, so that the node says why and stops with status 3; by default
  // SIGXFSZ would kill it without a word.
  ::signal(SIGXFSZ, SIG_IGN);

  auto built = rlr::NodeBuilder().options(n).log_sink(g_log.sink()).build();
  if (!built) {
    const rlr::Status& s = built.status();
    g_log.at(Level::Error, "cannot start: {}", s.to_string());
    const bool config_problem = s.code() == rlr::ErrorCode::InvalidArgument || s.code() == rlr::ErrorCode::WrongCluster;
    return config_problem ? kExitConfig : kExitFailure;
  }
  std::unique_ptr<rlr::Node> node = std::move(built).value();
  g_log.at(Level::Info, "serving cluster '{}' on {} ({}, data '{}', egress {}, app {}{})", n.cluster_id,
           n.listen.to_string(),
           cfg.join ? "joining: waiting to be added as a learner" : "founding voter of " + members,
           n.data_dir, rlr::nodecfg::egress_name(cfg.egress), cfg.app,
           n.forward_proposals ? ", forwarding proposals" : "");

  std::unique_ptr<rlr::admin::AdminServer> admin;
  if (cfg.admin_listen) {
    auto started = rlr::admin::AdminServer::start(
        *node, rlr::admin::AdminOptions{*cfg.admin_listen, n.storage == rlr::StorageKind::Memory ? "" : n.data_dir,
                                        cfg.ready_max_lag});
    if (!started) {
      g_log.at(Level::Error, "cannot start: {}", started.status().to_string());
      node->stop();
      return kExitFailure;
    }
    admin = std::move(started).value();
    g_log.at(Level::Info, "admin server on http://{}/ (/metrics, /healthz, /readyz)", admin->address().to_string());
  }

#ifdef RLR_HAVE_APPS
  std::unique_ptr<rlr::apps::AppContext> ctx;
  if (app) {
    ctx = std::make_unique<rlr::apps::AppContext>(rlr::apps::AppContext{*node, n.data_dir, cfg.app_settings, cfg.egress});
    if (rlr::Status s = app->start(*ctx); !s) {
      g_log.at(Level::Error, "app '{}' cannot start: {}", cfg.app, s.to_string());
      node->stop();
      return s.code() == rlr::ErrorCode::InvalidArgument ? kExitConfig : kExitFailure;
    }
    g_log.at(Level::Info, "app '{}' started", cfg.app);
  }
#endif

  EventWatcher watcher;
  int signal_number = 0;
  for (;;) {
    watcher.poll(*node);
    if (!watcher.storage_error().empty()) break;
    const timespec wait{0, 100'000'000};
    const int sig = sigtimedwait(&stop_signals, nullptr, &wait);
    if (sig == SIGHUP) {
      g_log.at(Level::Warn, "SIGHUP ignored: rlr-node reloads nothing; restart it to apply a new configuration");
    } else if (sig > 0) {
      signal_number = sig;
      break;
    }
  }
  const bool storage_failed = !watcher.storage_error().empty();
  if (storage_failed) {
    g_log.at(Level::Error,
             "stopping: the storage refused a write ({}); exit status {} so that a restart recovers from what "
             "is durable",
             watcher.storage_error(), kExitStorage);
  } else {
    g_log.at(Level::Info, "stopping ({})", signal_number == SIGINT ? "SIGINT" : "SIGTERM");
  }
#ifdef RLR_HAVE_APPS
  if (app) app->stop();
#endif
  if (admin) admin->stop();
  node->stop();
  node.reset();
  g_log.at(Level::Info, "stopped");
  return storage_failed ? kExitStorage : 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rlr-node: fatal: %s\n", e.what());
    return kExitFailure;
  }
}
