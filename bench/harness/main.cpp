// rlr-bench: throughput, latency, failover and catch-up of a librlr cluster on loopback.
//
//   rlr-bench SCENARIO [options]      (rlr-bench --help lists them)
//
// Scenarios: inleader, durable, latency, failover, catchup. Each has defaults that match
// the targets of issue 7 (bench/README.md); every default can be overridden.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <limits>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cluster.h"
#include "load.h"
#include "probes.h"
#include "stats.h"
#include "trace.h"
#include "rlr/allocator.h"

namespace rlrbench {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------

struct Options {
  std::string scenario;
  int nodes = 3;
  std::string mode;         // inproc | procs ("" = the scenario's default)
  std::string storage;      // memory | rocksdb
  std::optional<bool> sync;
  std::vector<std::size_t> payloads;
  std::vector<int> clients;
  int outstanding = 0;      // 0 = the scenario's default
  std::string client_mode;  // node | tcp
  double seconds = 5;
  double warmup = 1;
  bool json = false;
  std::string plot;
  std::string data_dir;
  bool keep_data = false;
  std::string node_binary;
  std::string node_log_level = "warn";
  int kills = 20;
  std::string fault = "kill";  // failover: kill | pause | partition
  double settle = 1.0;
  std::uint64_t entries = 1'000'000;
  std::uint32_t tick_ms = 10;
  std::uint32_t election_ticks = 15;
  std::uint32_t heartbeat_ticks = 3;
  int backoff_ms = 5;
  bool null_target = false;
  bool complete_on_raft_thread = false;
  bool persist_thread = false;
  bool default_allocator = false;
  bool shared_payloads = false;
  std::uint64_t compact_after = 0;  // 0 = the library's default
  std::optional<std::size_t> memory_log_entries;  // nullopt = the library's default
  std::optional<std::size_t> memory_log_bytes;
  bool warm_until_compacted = false;
  double warmup_max = 120;
  bool trace = false;
};

/// Fills what the user left unset with the scenario's defaults.
void apply_defaults(Options& o) {
  const auto set_if = [](auto& field, auto value, bool unset) {
    if (unset) field = value;
  };
  const std::string& s = o.scenario;
  set_if(o.mode, std::string(s == "failover" ? "procs" : "inproc"), o.mode.empty());
  set_if(o.storage, std::string(s == "inleader" ? "memory" : "rocksdb"), o.storage.empty());
  if (!o.sync) o.sync = o.storage == "rocksdb";
  if (o.payloads.empty()) {
    if (s == "durable") o.payloads = {64, 256};
    else if (s == "catchup") o.payloads = {64};
    else o.payloads = {256};
  }
  if (o.clients.empty()) {
    if (s == "inleader") o.clients = {1, 8, 32, 128};
    else if (s == "durable" || s == "failover" || s == "catchup") o.clients = {2};
    else o.clients = {1};
  }
  if (o.outstanding == 0) {
    if (s == "durable") o.outstanding = 16384;
    else if (s == "catchup") o.outstanding = 8192;
    else if (s == "failover") o.outstanding = 32;
    else o.outstanding = 1;
  }
  set_if(o.client_mode, std::string(o.mode == "procs" ? "tcp" : "node"), o.client_mode.empty());
  if (o.data_dir.empty()) o.data_dir = fmt::format("/tmp/rlr-bench-{}", ::getpid());
}

std::string source_commit() {
#ifdef RLR_BENCH_SOURCE_DIR
  const std::string cmd = fmt::format(
      "git -C '{}' rev-parse --short HEAD 2>/dev/null; git -C '{}' status --porcelain "
      "--untracked-files=no 2>/dev/null | head -1",
      RLR_BENCH_SOURCE_DIR, RLR_BENCH_SOURCE_DIR);
  std::string out;
  if (std::FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[256];
    while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
    ::pclose(p);
  }
  const auto nl = out.find('\n');
  if (nl == std::string::npos) return "unknown";
  std::string hash = out.substr(0, nl);
  if (out.size() > nl + 1) hash += "-dirty";
  return hash;
#else
  return "unknown";
#endif
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Progress and diagnostics: stderr, so that --json keeps stdout clean.
template <class... Args>
void note(fmt::format_string<Args...> f, Args&&... args) {
  std::fputs((fmt::format(f, std::forward<Args>(args)...) + "\n").c_str(), stderr);
}

// ---------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------

struct RunResult {
  std::string label;
  Json params = Json::object();
  std::uint64_t committed = 0;
  double seconds = 0;
  double entries_per_s = 0;
  double mb_per_s = 0;
  std::uint64_t errors = 0;
  std::string first_error;
  Percentiles latency;
  std::vector<std::int64_t> sorted_ns;  // for the plot
  double cpu_s = 0;                     // every process of the cluster + clients
  double cpu_us_per_entry = 0;
  std::vector<std::pair<std::string, double>> rss_mib;  // "process" or "n1", "n2", ...
  double sample_mib = 0;
  std::vector<std::pair<double, double>> timeline;  // (seconds since start, entries/s)
  std::vector<double> markers;                      // seconds since start (kills)
  double warmup_s = 0;              // load before the window opened
  double warmup_entries_per_s = 0;  // committed entries/s during the warm-up
  bool warm_until_compacted = false;  // the warm-up waited for every node's first compaction
  bool warm_reached = true;           // ... and saw it (false: --warmup-max ended it)
  Json extra = Json::object();
  std::optional<Breakdown> trace;  // --trace
};

struct TargetCheck {
  std::string name;
  double value = 0;
  std::string op;  // ">=" or "<="
  double threshold = 0;
  std::string unit;
  [[nodiscard]] bool met() const {
    if (op == ">=") return value >= threshold;
    return op == "<" ? value < threshold : value <= threshold;
  }
};

struct Report {
  std::vector<RunResult> runs;
  std::vector<TargetCheck> targets;
  Json extra = Json::object();
  std::vector<std::string> failures;  // runs that could not complete
};

std::string fmt_us(double us) {
  if (us >= 10'000) return fmt::format("{:.1f}ms", us / 1000);
  return fmt::format("{:.1f}us", us);
}

void print_run(std::FILE* out, const RunResult& r) {
  std::fprintf(out, "%s\n", r.label.c_str());
  std::fprintf(out, "  committed     %llu entries in %.2f s: %.0f entries/s, %.2f MB/s (errors %llu%s%s)\n",
               static_cast<unsigned long long>(r.committed), r.seconds, r.entries_per_s, r.mb_per_s,
               static_cast<unsigned long long>(r.errors), r.first_error.empty() ? "" : ", first: ",
               r.first_error.c_str());
  const Percentiles& p = r.latency;
  if (p.count > 0) std::fprintf(out, "  latency       p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (mean %s, n=%zu)\n",
               fmt_us(p.p50_us).c_str(), fmt_us(p.p90_us).c_str(), fmt_us(p.p99_us).c_str(),
               fmt_us(p.p999_us).c_str(), fmt_us(p.max_us).c_str(), fmt_us(p.mean_us).c_str(), p.count);
  std::string rss;
  for (const auto& [who, mib] : r.rss_mib) rss += fmt::format(" {}={:.0f}MiB", who, mib);
  if (r.warmup_s > 0) {
    std::fprintf(out, "  warm-up       %.1f s at %.0f entries/s%s\n", r.warmup_s, r.warmup_entries_per_s,
                 !r.warm_until_compacted ? ""
                 : r.warm_reached        ? " (until every node had compacted its log once)"
                                         : " (ended by --warmup-max: not every node had compacted)");
  }
  std::fprintf(out, "  resources     cpu %.2f us/entry (%.2f cpu-s); peak RSS%s (latency samples %.1f MiB)\n",
               r.cpu_us_per_entry, r.cpu_s, rss.c_str(), r.sample_mib);
  if (r.trace) print_breakdown(out, *r.trace);
}

Json run_json(const RunResult& r) {
  Json j = Json::object();
  j.set("label", Json::string(r.label));
  j.set("params", r.params);
  j.set("committed", Json::integer(static_cast<std::int64_t>(r.committed)));
  j.set("seconds", Json::number(r.seconds));
  j.set("entries_per_s", Json::number(r.entries_per_s));
  j.set("mb_per_s", Json::number(r.mb_per_s));
  j.set("errors", Json::integer(static_cast<std::int64_t>(r.errors)));
  if (!r.first_error.empty()) j.set("first_error", Json::string(r.first_error));
  j.set("latency_us", to_json(r.latency));
  j.set("warmup_seconds", Json::number(r.warmup_s));
  j.set("warmup_entries_per_s", Json::number(r.warmup_entries_per_s));
  if (r.warm_until_compacted) j.set("warmed_until_compacted", Json::boolean(r.warm_reached));
  j.set("cpu_seconds", Json::number(r.cpu_s));
  j.set("cpu_us_per_entry", Json::number(r.cpu_us_per_entry));
  Json rss = Json::object();
  for (const auto& [who, mib] : r.rss_mib) rss.set(who, Json::number(mib));
  j.set("peak_rss_mib", rss);
  j.set("latency_sample_mib", Json::number(r.sample_mib));
  if (r.trace) j.set("trace", to_json(*r.trace));
  Json tl = Json::array();
  for (const auto& [t, v] : r.timeline) {
    Json pt = Json::array();
    pt.push(Json::number(t)).push(Json::number(v));
    tl.push(pt);
  }
  j.set("throughput_timeline", tl);
  if (!r.extra.empty()) j.set("extra", r.extra);
  return j;
}

/// The shape of the runs, for the report's first line: where the nodes run, how the
/// clients reach the leader, and whether each proposal has a fresh payload.
std::string shape_label(const Options& o) {
  if (o.null_target) return "no cluster (null target), clients in this process";
  const std::string nodes = o.mode == "procs" ? fmt::format("{} rlr-node processes", o.nodes)
                                              : fmt::format("{} nodes in this process", o.nodes);
  const std::string clients = o.client_mode == "node" ? "clients call Node::propose in the leader's process"
                                                      : "clients over TCP (rlr::Client), in this process";
  return fmt::format("{}, {}, {}", nodes, clients,
                     o.shared_payloads ? "shared payload buffers" : "fresh payload per proposal");
}

// ---------------------------------------------------------------------------------
// Plot (gnuplot): latency distribution by percentile, throughput over time
// ---------------------------------------------------------------------------------

bool write_plot(const Options& o, const Report& rep) {
  const std::string dir = fmt::format("{}/plot", o.data_dir);
  std::error_code ec;
  fs::create_directories(dir, ec);
  std::string lat_plots;
  std::string tp_plots;
  std::string arrows;
  for (std::size_t k = 0; k < rep.runs.size(); ++k) {
    const RunResult& r = rep.runs[k];
    const std::string title = r.label;
    if (!r.sorted_ns.empty()) {
      const std::string f = fmt::format("{}/lat{}.dat", dir, k);
      std::ofstream out(f);
      const double n = static_cast<double>(r.sorted_ns.size());
      const double top = std::log10(n);
      for (double x = 0; x <= top + 1e-9; x += 0.01) {
        const double q = 1 - std::pow(10.0, -x);
        out << x << ' ' << static_cast<double>(percentile_sorted(r.sorted_ns, q)) / 1000.0 << '\n';
      }
      out << top << ' ' << static_cast<double>(r.sorted_ns.back()) / 1000.0 << '\n';
      lat_plots += fmt::format("{}'{}' using 1:2 with lines lw 2 title \"{}\"", lat_plots.empty() ? "" : ", ",
                               f, title);
    }
    if (!r.timeline.empty()) {
      const std::string f = fmt::format("{}/tp{}.dat", dir, k);
      std::ofstream out(f);
      for (const auto& [t, v] : r.timeline) out << t << ' ' << v << '\n';
      tp_plots += fmt::format("{}'{}' using 1:2 with lines lw 2 title \"{}\"", tp_plots.empty() ? "" : ", ", f,
                              title);
    }
    for (double m : r.markers) {
      arrows += fmt::format("set arrow from {},graph 0 to {},graph 1 nohead lc rgb '#cc0000' dt 2\n", m, m);
    }
  }
  const std::string script = fmt::format("{}/plot.gp", dir);
  {
    std::ofstream gp(script);
    gp << "set terminal pngcairo size 1600,650 font 'sans,10'\n";
    gp << "set output '" << o.plot << "'\n";
    gp << "set multiplot layout 1," << (lat_plots.empty() ? 1 : 2) << " title \"rlr-bench " << o.scenario << " ("
       << shape_label(o) << "; " << o.storage << (o.sync.value_or(false) ? " sync" : "") << ")\"\n";
    gp << "set grid\nset key top left\n";
    if (!lat_plots.empty()) {
      gp << "set title 'latency: proposal to commit acknowledgement'\n";
      gp << "set xlabel 'percentile'\nset ylabel 'microseconds'\nset logscale y\n";
      gp << "set xtics ('0' 0, '90' 1, '99' 2, '99.9' 3, '99.99' 4, '99.999' 5, '99.9999' 6)\n";
      gp << "plot " << lat_plots << "\n";
      gp << "unset logscale y\nset xtics auto\n";
    }
    gp << "set title '" << (o.scenario == "catchup" ? "learner commit index advance, entries/s" : "committed entries per second (100 ms buckets)") << "'\n";
    gp << "set xlabel 'seconds'\nset ylabel 'entries/s'\nset yrange [0:*]\n";
    gp << arrows;
    if (!tp_plots.empty()) gp << "plot " << tp_plots << "\n";
    else gp << "plot NaN notitle\n";
    gp << "unset multiplot\n";
  }
  const int rc = std::system(fmt::format("gnuplot '{}' 2>&1", script).c_str());
  if (rc != 0) note("rlr-bench: gnuplot failed ({}); the script is {}", rc, script);
  return rc == 0;
}

// ---------------------------------------------------------------------------------
// Running a cluster with load
// ---------------------------------------------------------------------------------

ClusterSpec cluster_spec(const Options& o, const std::string& dir) {
  ClusterSpec s;
  s.nodes = o.nodes;
  s.storage = o.storage == "memory" ? rlr::StorageKind::Memory : rlr::StorageKind::RocksDb;
  s.sync = o.sync.value_or(false);
  s.dir = dir;
  s.tick_ms = o.tick_ms;
  s.election_ticks = o.election_ticks;
  s.heartbeat_ticks = o.heartbeat_ticks;
  s.node_binary = o.node_binary;
  s.node_log_level = o.node_log_level;
  s.complete_on_raft_thread = o.complete_on_raft_thread;
  s.persist_thread = o.persist_thread;
  s.compact_after_entries = o.compact_after;
  s.memory_log_entries = o.memory_log_entries;
  s.memory_log_bytes = o.memory_log_bytes;
  s.proxied_links = o.scenario == "failover" && o.fault == "partition";
  if (o.trace) s.trace_dir = dir + "/trace";
  return s;
}

rlr::ClientOptions client_options(const Options& o, std::vector<rlr::Address> bootstrap) {
  rlr::ClientOptions c;
  c.cluster_id = "rlr-bench";
  c.bootstrap = std::move(bootstrap);
  c.request_timeout = 2000ms;
  c.total_timeout = 30000ms;
  c.backoff_min = std::chrono::milliseconds(o.backoff_ms);
  c.backoff_max = std::max<std::chrono::milliseconds>(c.backoff_min, 200ms);
  // Client liveness on the cluster's own scale: a keepalive each heartbeat interval, and
  // the nodes' link silence bound (the minimum election timeout, as rlr-node derives it),
  // so a client gives up on a silent leader when its followers do.
  c.keepalive_interval = std::chrono::milliseconds(o.tick_ms * o.heartbeat_ticks);
  c.silence_timeout = std::max(std::chrono::milliseconds(o.tick_ms * o.election_ticks), 3 * c.keepalive_interval);
  return c;
}

/// A running cluster of either kind plus the clients' targets.
struct Harness {
  std::unique_ptr<InProcCluster> inproc;
  std::unique_ptr<ProcCluster> procs;
  rlr::Node* leader = nullptr;  // in process
  std::unique_ptr<NullTarget> null_target;
  std::vector<std::unique_ptr<Target>> owned;
  std::vector<Target*> targets;
  std::vector<std::uint16_t> ports;

  /// CPU seconds of everything: this process plus every node process.
  [[nodiscard]] double cpu() const {
    double c = self_cpu_seconds();
    if (procs) {
      for (pid_t p : procs->pids()) c += std::max(0.0, proc_cpu_seconds(p));
    }
    return c;
  }
  [[nodiscard]] std::vector<std::pair<std::string, double>> rss() const {
    std::vector<std::pair<std::string, double>> out;
    out.emplace_back(procs ? "bench" : "process", peak_rss_mib(0));
    if (procs) {
      for (int i = 1; i <= procs->spec().nodes + 1; ++i) {
        const pid_t p = procs->pid(static_cast<std::uint64_t>(i));
        if (p > 0) out.emplace_back(fmt::format("n{}", i), peak_rss_mib(p));
      }
    }
    return out;
  }
  void stop() {
    owned.clear();  // clients first: their callbacks reference the load
    targets.clear();
    null_target.reset();
    if (inproc) inproc->stop();
    if (procs) procs->stop();
  }
};

rlr::Status start_harness(const Options& o, const std::string& dir, int clients, Harness& h) {
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir, ec);
  const ClusterSpec spec = cluster_spec(o, dir);
  if (!spec.trace_dir.empty()) fs::create_directories(spec.trace_dir, ec);
  std::vector<rlr::Address> bootstrap;
  if (o.null_target) {
    h.null_target = std::make_unique<NullTarget>();
    for (int i = 0; i < clients; ++i) h.targets.push_back(h.null_target.get());
    return rlr::Status::ok();
  }
  if (o.mode == "inproc") {
    h.inproc = std::make_unique<InProcCluster>(spec);
    if (rlr::Status s = h.inproc->start(); !s) return s;
    h.leader = h.inproc->wait_leader(20s);
    if (h.leader == nullptr) return rlr::Status{rlr::ErrorCode::Unavailable, "no leader within 20 s"};
    for (std::size_t i = 0; i < h.inproc->size(); ++i) {
      const auto info = h.inproc->node(i).cluster_info();
      for (const auto& m : info.members) {
        if (m.id == info.id && !m.address.empty()) bootstrap.push_back(m.address);
      }
    }
  } else {
    h.procs = std::make_unique<ProcCluster>(spec);
    if (rlr::Status s = h.procs->start(); !s) return s;
    bootstrap = h.procs->bootstrap();
  }
  for (int i = 0; i < clients; ++i) {
    if (o.client_mode == "node") {
      if (h.leader == nullptr) {
        return rlr::Status{rlr::ErrorCode::InvalidArgument, "--client-mode node needs --mode inproc"};
      }
      h.owned.push_back(std::make_unique<NodeTarget>(*h.leader));
    } else {
      auto c = rlr::Client::connect(client_options(o, bootstrap));
      if (!c) return c.status();
      // The first proposal waits for a leader that has committed its term.
      if (i == 0) {
        auto r = c.value()->propose_sync(rlr::Bytes::copy_of("warm-up"));
        if (!r) return r.status();
      }
      h.owned.push_back(std::make_unique<ClientTarget>(std::move(c).value()));
    }
    h.targets.push_back(h.owned.back().get());
  }
  return rlr::Status::ok();
}

/// GLIBC_TUNABLES as this process got it ("" when unset): glibc.malloc.hugetlb=1 (transparent
/// huge pages for malloc's heaps) changes the figures a lot on this VM (bench/README).
std::string glibc_tunables() {
  const char* t = std::getenv("GLIBC_TUNABLES");
  return t == nullptr ? std::string() : std::string(t);
}

/// " GLIBC_TUNABLES=..." for labels, "" when unset.
std::string tunables_label() {
  const std::string t = glibc_tunables();
  return t.empty() ? std::string() : fmt::format(" GLIBC_TUNABLES={}", t);
}

std::string memory_label(const Options& o) {
  std::string s;
  if (o.memory_log_entries) s += fmt::format(" memory-log-entries={}", *o.memory_log_entries);
  if (o.memory_log_bytes) s += fmt::format(" memory-log-bytes={}", *o.memory_log_bytes);
  return s;
}

std::string params_label(const Options& o, std::size_t payload, int clients) {
  if (o.null_target) {
    return fmt::format("{} NULL TARGET (no cluster) payload={}B clients={} outstanding={}", o.scenario, payload,
                       clients, o.outstanding);
  }
  return fmt::format("{} nodes={} {} {}{} payload={}B clients={} outstanding={} via={}{}{}{}{}{}{}{}{}", o.scenario,
                     o.nodes, o.mode, o.storage, o.sync.value_or(false) ? "+sync" : "", payload, clients,
                     o.outstanding, o.client_mode, o.complete_on_raft_thread ? " complete-on-raft-thread" : "",
                     o.persist_thread ? " persist-thread" : "", o.default_allocator ? " default-allocator" : "",
                     o.shared_payloads ? " shared-payloads" : "",
                     o.compact_after > 0 ? fmt::format(" compact-after={}", o.compact_after) : "",
                     memory_label(o),
                     o.warm_until_compacted ? " warm-until-compacted" : "",
                     tunables_label());
}

Json params_json(const Options& o, std::size_t payload, int clients) {
  Json p = Json::object();
  p.set("nodes", Json::integer(o.nodes));
  p.set("mode", Json::string(o.mode));
  p.set("storage", Json::string(o.storage));
  p.set("sync", Json::boolean(o.sync.value_or(false)));
  p.set("payload_bytes", Json::integer(static_cast<std::int64_t>(payload)));
  p.set("clients", Json::integer(clients));
  p.set("outstanding", Json::integer(o.outstanding));
  p.set("client_mode", Json::string(o.client_mode));
  p.set("seconds", Json::number(o.seconds));
  p.set("warmup_seconds", Json::number(o.warmup));
  p.set("warm_until_compacted", Json::boolean(o.warm_until_compacted));
  if (o.warm_until_compacted) p.set("warmup_max_seconds", Json::number(o.warmup_max));
  p.set("compact_after_entries", Json::integer(static_cast<std::int64_t>(o.compact_after)));
  p.set("glibc_tunables", Json::string(glibc_tunables()));
  if (o.memory_log_entries) p.set("memory_log_entries", Json::integer(static_cast<std::int64_t>(*o.memory_log_entries)));
  if (o.memory_log_bytes) p.set("memory_log_bytes", Json::integer(static_cast<std::int64_t>(*o.memory_log_bytes)));
  p.set("complete_on_raft_thread", Json::boolean(o.complete_on_raft_thread));
  p.set("persist_thread", Json::boolean(o.persist_thread));
  p.set("default_allocator", Json::boolean(o.default_allocator));
  p.set("shared_payloads", Json::boolean(o.shared_payloads));
  return p;
}

/// Samples the acknowledged count every 100 ms from `start_ns`. The measurement window
/// opens at the first sample at or after `min_begin_ns` at which `ready()` holds, or at the
/// first one at or after `max_begin_ns` whatever it says, and lasts `window_ns`;
/// `at_begin(t)` is called when it opens. Returns the timeline (seconds since `start_ns`,
/// entries/s) up to the window's end.
template <class ReadyFn, class AtBegin>
std::vector<std::pair<double, double>> sample_window(const Load& load, std::int64_t start_ns,
                                                     std::int64_t min_begin_ns, std::int64_t max_begin_ns,
                                                     std::int64_t window_ns, ReadyFn ready, AtBegin at_begin) {
  std::vector<std::pair<double, double>> tl;
  std::uint64_t last = load.acked_total();
  std::int64_t last_t = now_ns();
  std::optional<std::int64_t> window_end;
  for (std::int64_t next = start_ns + 100'000'000;; next += 100'000'000) {
    std::this_thread::sleep_for(std::chrono::nanoseconds(next - now_ns()));
    const std::int64_t t = now_ns();
    const std::uint64_t acked = load.acked_total();
    tl.emplace_back(static_cast<double>(t - start_ns) / 1e9,
                    static_cast<double>(acked - last) * 1e9 / static_cast<double>(t - last_t));
    last = acked;
    last_t = t;
    if (window_end) {
      if (t >= *window_end) break;
    } else if (t >= min_begin_ns && (t >= max_begin_ns || ready())) {
      window_end = t + window_ns;
      at_begin(t);
    }
  }
  return tl;
}

/// True when every in-process node has compacted its log at least once: its retained log
/// has reached its steady size, and memory freed by compaction is being reused.
bool all_compacted(Harness& h) {
  if (!h.inproc || h.inproc->size() == 0) return false;
  for (std::size_t i = 0; i < h.inproc->size(); ++i) {
    if (h.inproc->node(i).cluster_info().first_index.value() <= 1) return false;
  }
  return true;
}

/// One measured run: a fresh cluster, `clients` clients, `payload`-byte entries.
std::optional<RunResult> run_load(const Options& o, std::size_t payload, int clients, int index) {
  const std::string dir = fmt::format("{}/run{}", o.data_dir, index);
  RunResult r;
  r.label = params_label(o, payload, clients);
  r.params = params_json(o, payload, clients);
  note("rlr-bench: {} ...", r.label);
  Harness h;
  if (rlr::Status s = start_harness(o, dir, clients, h); !s) {
    note("rlr-bench: cannot start the cluster: {}", s.to_string());
    h.stop();
    return std::nullopt;
  }
  if (h.inproc) reset_peak_rss();
  LoadOptions lo;
  lo.clients = clients;
  lo.outstanding = o.outstanding;
  lo.payload_bytes = payload;
  lo.shared_payloads = o.shared_payloads;
  lo.trace = o.trace;
  Load load(lo, h.targets);
  const std::int64_t start = now_ns();
  const std::int64_t min_begin = start + static_cast<std::int64_t>(o.warmup * 1e9);
  const std::int64_t max_begin =
      o.warm_until_compacted ? start + static_cast<std::int64_t>(std::max(o.warmup, o.warmup_max) * 1e9) : min_begin;
  const std::int64_t window_ns = static_cast<std::int64_t>(o.seconds * 1e9);
  constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();
  load.start(kNever, kNever);  // the window opens once warm (sample_window)
  double cpu0 = h.cpu();
  std::int64_t cpu0_t = now_ns();
  std::uint64_t acked_warm = 0;
  r.timeline = sample_window(
      load, start, min_begin, max_begin, window_ns,
      [&] {
        if (o.warm_until_compacted) r.warm_reached = all_compacted(h);
        return r.warm_reached;
      },
      [&](std::int64_t t) {
        load.set_window(t, t + window_ns);
        acked_warm = load.acked_total();
        cpu0 = h.cpu();
        cpu0_t = now_ns();
        r.warmup_s = static_cast<double>(t - start) / 1e9;
      });
  r.warm_until_compacted = o.warm_until_compacted;
  r.warmup_entries_per_s = r.warmup_s > 0 ? static_cast<double>(acked_warm) / r.warmup_s : 0;
  if (o.warm_until_compacted && !r.warm_reached) {
    note("rlr-bench: --warmup-max ({} s) passed before every node had compacted its log; measuring anyway",
         o.warmup_max);
  }
  const double cpu1 = h.cpu();
  const std::int64_t cpu1_t = now_ns();
  r.rss_mib = h.rss();
  r.sample_mib = static_cast<double>(load.sample_bytes()) / (1 << 20);
  const bool drained = load.stop(15s);
  if (!drained) note("rlr-bench: some proposals had no outcome 15 s after the run");
  h.stop();  // no callback runs after this; the nodes have written their traces
  if (o.trace) {
    const ClusterSpec spec = cluster_spec(o, dir);
    std::vector<std::string> files;
    for (int id = 1; id <= o.nodes; ++id) files.push_back(spec.trace_file(static_cast<std::uint64_t>(id)));
    auto b = analyze_trace(files, load.take_ops());
    if (b) {
      r.trace = std::move(b).value();
    } else {
      note("rlr-bench: --trace: {}", b.status().to_string());
    }
  }
  r.committed = load.acked_in_window();
  r.seconds = o.seconds;
  r.entries_per_s = static_cast<double>(r.committed) / r.seconds;
  r.mb_per_s = r.entries_per_s * static_cast<double>(payload) / 1e6;
  r.errors = load.errors();
  r.first_error = load.first_error();
  r.sorted_ns = load.take_samples();
  r.latency = summarize(r.sorted_ns);
  // CPU over the window, scaled to the window when the sampling instants drift slightly.
  const double window_s = static_cast<double>(cpu1_t - cpu0_t) / 1e9;
  r.cpu_s = (cpu1 - cpu0) * (window_s > 0 ? r.seconds / window_s : 1.0);
  r.cpu_us_per_entry = r.committed > 0 ? r.cpu_s * 1e6 / static_cast<double>(r.committed) : 0;
  return r;
}

// ---------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------

void scenario_sweep(const Options& o, Report& rep) {
  int index = 0;
  for (std::size_t payload : o.payloads) {
    for (int clients : o.clients) {
      auto r = run_load(o, payload, clients, index++);
      if (!r) {
        rep.failures.push_back(params_label(o, payload, clients));
        continue;
      }
      if (o.null_target) {
        rep.runs.push_back(std::move(*r));
        continue;
      }
      // The in-leader targets are for clients inside the leader's process.
      if (o.scenario == "inleader" && clients == 128 && o.client_mode == "node") {
        rep.targets.push_back({"inleader 128 threads throughput", r->entries_per_s, ">=", 300'000, "ops/s"});
      }
      if (o.scenario == "inleader" && clients == 1 && o.client_mode == "node") {
        rep.targets.push_back({"inleader 1 thread p50 latency", r->latency.p50_us, "<=", 100, "us"});
      }
      if (o.scenario == "durable" && payload == 64) {
        rep.targets.push_back({"durable 64 B throughput", r->entries_per_s, ">=", 1'000'000, "entries/s"});
      }
      if (o.scenario == "durable" && o.mode == "procs" && clients == 16 && o.outstanding == 16) {
        rep.targets.push_back({"durable procs 16 x 16 p99 latency", r->latency.p99_us, "<=", 2000, "us"});
      }
      rep.runs.push_back(std::move(*r));
    }
  }
}

void scenario_latency(const Options& o, Report& rep) {
  // The physical floor, measured first on the same file system and the same loopback.
  std::error_code ec;
  fs::create_directories(o.data_dir, ec);
  auto idle_fsync_ns = probe_fdatasync(o.data_dir, o.payloads.front(), 500, 2s, false);
  auto fsync_ns = probe_fdatasync(o.data_dir, o.payloads.front(), 2000, 3s, true);
  // What each replica's fsync costs when all of them (in this process, on this one disk)
  // fsync at once, as they do on the commit path: the file system's journal serializes them.
  auto shared_fsync_ns = probe_fdatasync(o.data_dir, o.payloads.front(), 2000, 4s, true, o.nodes);
  auto rtt_ns = probe_loopback_rtt(64, 20000, 2s);
  const Percentiles idle_fsync_p = summarize(idle_fsync_ns);
  const Percentiles fsync_p = summarize(fsync_ns);
  const Percentiles shared_fsync_p = summarize(shared_fsync_ns);
  const Percentiles rtt_p = summarize(rtt_ns);
  note("rlr-bench: fdatasync on idle vCPUs p50 {} (n={}); with the vCPUs kept awake p50 {}",
       fmt_us(idle_fsync_p.p50_us), idle_fsync_p.count, fmt_us(fsync_p.p50_us));
  note("rlr-bench: fdatasync p50 {} (n={}), loopback RTT p50 {} (n={})", fmt_us(fsync_p.p50_us), fsync_p.count,
       fmt_us(rtt_p.p50_us), rtt_p.count);
  auto r = run_load(o, o.payloads.front(), o.clients.front(), 0);
  if (!r) {
    rep.failures.push_back("latency");
    return;
  }
  const double floor_us = fsync_p.p50_us + rtt_p.p50_us;
  const double ratio = floor_us > 0 ? r->latency.p50_us / floor_us : 0;
  r->extra.set("fdatasync_us", to_json(fsync_p));
  r->extra.set("fdatasync_idle_vcpu_us", to_json(idle_fsync_p));
  r->extra.set("loopback_rtt_us", to_json(rtt_p));
  r->extra.set("floor_p50_us", Json::number(floor_us));
  r->extra.set("ratio_commit_p50_to_floor", Json::number(ratio));
  rep.extra.set("fdatasync_us", to_json(fsync_p));
  rep.extra.set("fdatasync_idle_vcpu_us", to_json(idle_fsync_p));
  rep.extra.set("loopback_rtt_us", to_json(rtt_p));
  rep.extra.set("ratio_commit_p50_to_fdatasync_plus_rtt", Json::number(ratio));
  // Nodes as processes have the stricter target (the standalone deployment's).
  rep.targets.push_back({"latency p50 / (fdatasync p50 + RTT p50)", ratio, "<=", o.mode == "procs" ? 1.3 : 1.5, "x"});
  rep.targets.push_back({"latency p99", r->latency.p99_us, "<", 1000, "us"});
  rep.targets.push_back({"latency p99.9", r->latency.p999_us, "<", 2000, "us"});
  const double shared_floor_us = shared_fsync_p.p50_us + rtt_p.p50_us;
  const double shared_ratio = shared_floor_us > 0 ? r->latency.p50_us / shared_floor_us : 0;
  rep.extra.set("fdatasync_concurrent_us", to_json(shared_fsync_p));
  rep.extra.set("ratio_commit_p50_to_concurrent_fdatasync_plus_rtt", Json::number(shared_ratio));
  rep.runs.push_back(std::move(*r));
  // The ratio line, printed with the run (stdout unless --json).
  std::fprintf(o.json ? stderr : stdout,
               "floor: fdatasync p50 %s p99 %s (n=%zu; on idle vCPUs p50 %s) + loopback RTT p50 %s p99 %s "
               "(n=%zu) = %s; commit p50 / floor = %.2f\n",
               fmt_us(fsync_p.p50_us).c_str(), fmt_us(fsync_p.p99_us).c_str(), fsync_p.count,
               fmt_us(idle_fsync_p.p50_us).c_str(),
               fmt_us(rtt_p.p50_us).c_str(), fmt_us(rtt_p.p99_us).c_str(), rtt_p.count, fmt_us(floor_us).c_str(),
               ratio);
  // Its tail too: a commit waits for the leader's fsync and one follower's, both made
  // while the other replicas fsync on the same disk, so the commit's tail follows the
  // tail this disk gives concurrent writers.
  std::fprintf(o.json ? stderr : stdout,
               "floor with %d writers fsyncing at once on this disk (as the replicas do): fdatasync p50 %s "
               "p99 %s p99.9 %s max %s (n=%zu) + RTT = %s; commit p50 / that = %.2f\n",
               o.nodes, fmt_us(shared_fsync_p.p50_us).c_str(), fmt_us(shared_fsync_p.p99_us).c_str(),
               fmt_us(shared_fsync_p.p999_us).c_str(), fmt_us(shared_fsync_p.max_us).c_str(),
               shared_fsync_p.count, fmt_us(shared_floor_us).c_str(), shared_ratio);
}

/// The leader's view, asked through `c`; retries until `timeout`.
std::optional<rlr::ClusterInfo> leader_view(rlr::Client& c, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    auto ci = c.cluster_info();
    if (ci && ci.value().role == rlr::Role::Leader) return ci.value();
    std::this_thread::sleep_for(20ms);
  }
  return std::nullopt;
}

/// Waits until every member follows the leader closely and proposals commit.
/// After a paused or cut-off node is given back: how long until the leader's view of it
/// shows an accepted append (its match index moves past `match_before`); nullopt after
/// `timeout`. Polls the leader, so the resolution is one cluster_info round trip.
std::optional<std::int64_t> wait_rejoin(rlr::Client& control, std::uint64_t victim, rlr::LogIndex match_before,
                                        std::int64_t t_heal, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    auto ci = control.cluster_info();
    if (ci && ci.value().role == rlr::Role::Leader) {
      for (const auto& m : ci.value().members) {
        if (m.id.value() == victim && m.match > match_before) return now_ns() - t_heal;
      }
    }
    std::this_thread::sleep_for(200us);
  }
  return std::nullopt;
}

std::optional<rlr::ClusterInfo> wait_stable(rlr::Client& control, const Load& load, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    auto ci = leader_view(control, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
    if (!ci) return std::nullopt;
    bool caught_up = true;
    for (const auto& m : ci->members) {
      if (m.id == ci->id) continue;
      if (m.lag > 5000 || m.last_contact.count() < 0 || m.last_contact.count() > 100) caught_up = false;
    }
    const std::uint64_t before = load.acked_total();
    std::this_thread::sleep_for(50ms);
    if (caught_up && load.acked_total() > before) return ci;
  }
  return std::nullopt;
}

void scenario_failover(const Options& o, Report& rep) {
  if (o.fault != "kill" && o.fault != "pause" && o.fault != "partition") {
    note("rlr-bench: --fault {}: want kill, pause or partition", o.fault);
    rep.failures.push_back("failover");
    return;
  }
  if (o.mode != "procs") {
    note("rlr-bench: failover needs --mode procs (it kills rlr-node processes)");
    rep.failures.push_back("failover");
    return;
  }
  const std::size_t payload = o.payloads.front();
  const int clients = o.clients.front();
  RunResult r;
  r.label = params_label(o, payload, clients);
  r.params = params_json(o, payload, clients);
  r.params.set("kills", Json::integer(o.kills));
  r.params.set("fault", Json::string(o.fault));
  r.params.set("tick_ms", Json::integer(o.tick_ms));
  r.params.set("election_ticks", Json::integer(o.election_ticks));
  r.params.set("heartbeat_ticks", Json::integer(o.heartbeat_ticks));
  r.params.set("client_backoff_min_ms", Json::integer(o.backoff_ms));
  note("rlr-bench: {} fault={} x {} ...", r.label, o.fault, o.kills);
  Harness h;
  const std::string dir = fmt::format("{}/run0", o.data_dir);
  if (rlr::Status s = start_harness(o, dir, clients, h); !s) {
    note("rlr-bench: cannot start the cluster: {}", s.to_string());
    h.stop();
    rep.failures.push_back("failover");
    return;
  }
  auto control = rlr::Client::connect(client_options(o, h.procs->bootstrap()));
  if (!control) {
    note("rlr-bench: control client: {}", control.status().to_string());
    h.stop();
    rep.failures.push_back("failover");
    return;
  }
  FailoverWatch watch;
  LoadOptions lo;
  lo.clients = clients;
  lo.outstanding = o.outstanding;
  lo.payload_bytes = payload;
  lo.shared_payloads = o.shared_payloads;
  lo.watch = &watch;
  Load load(lo, h.targets);
  const std::int64_t start = now_ns();
  load.start(start, INT64_MAX);
  const double cpu0 = h.cpu();

  std::vector<std::int64_t> failover_ns;
  std::vector<std::int64_t> rejoin_ns;
  int rejoin_timeouts = 0;
  Json kills = Json::array();
  std::atomic<bool> sampling{true};
  std::vector<std::pair<double, double>> timeline;
  std::thread sampler([&] {
    std::uint64_t last = load.acked_total();
    for (std::int64_t next = start + 100'000'000; sampling.load(); next += 100'000'000) {
      std::this_thread::sleep_for(std::chrono::nanoseconds(next - now_ns()));
      const std::uint64_t acked = load.acked_total();
      timeline.emplace_back(static_cast<double>(now_ns() - start) / 1e9, static_cast<double>(acked - last) * 10);
      last = acked;
    }
  });
  int timeouts = 0;
  for (int k = 0; k < o.kills; ++k) {
    auto ci = wait_stable(*control.value(), load, 20s);
    if (!ci) {
      note("rlr-bench: the cluster did not stabilize within 20 s before kill {}", k + 1);
      break;
    }
    const std::uint64_t victim = ci->id.value();
    watch.first_ack_ns = 0;
    watch.after_term.store(ci->term.value(), std::memory_order_release);
    const std::int64_t t_kill = now_ns();
    if (o.fault == "kill") {
      h.procs->kill9(victim);
    } else if (o.fault == "pause") {
      h.procs->signal(victim, SIGSTOP);
    } else {
      h.procs->isolate(victim, true);
    }
    r.markers.push_back(static_cast<double>(t_kill - start) / 1e9);
    const auto deadline = Clock::now() + 15s;
    while (watch.first_ack_ns.load() == 0 && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
    const std::int64_t acked_at = watch.first_ack_ns.load();
    watch.after_term = 0;
    Json kj = Json::object();
    kj.set("victim", Json::integer(static_cast<std::int64_t>(victim)));
    kj.set("old_term", Json::integer(static_cast<std::int64_t>(ci->term.value())));
    if (acked_at == 0) {
      ++timeouts;
      note("rlr-bench: kill {}: no commit by a new leader within 15 s", k + 1);
      kj.set("failover_ms", Json::string("timeout"));
    } else {
      failover_ns.push_back(acked_at - t_kill);
      kj.set("failover_ms", Json::number(static_cast<double>(acked_at - t_kill) / 1e6));
      note("rlr-bench: {} {} (node {}, term {}): first new-leader commit after {:.1f} ms", o.fault, k + 1,
           victim, ci->term.value(), static_cast<double>(acked_at - t_kill) / 1e6);
    }
    if (o.fault == "kill") {
      if (rlr::Status s = h.procs->restart(victim); !s) note("rlr-bench: restart: {}", s.to_string());
    } else {
      // Give the node back and time its return: heal (or SIGCONT) to the first append
      // it accepts from the new leader.
      rlr::LogIndex match_before;
      if (auto now = leader_view(*control.value(), 2s)) {
        for (const auto& m : now->members) {
          if (m.id.value() == victim) match_before = m.match;
        }
      }
      const std::int64_t t_heal = now_ns();
      if (o.fault == "pause") {
        h.procs->signal(victim, SIGCONT);
      } else {
        h.procs->isolate(victim, false);
      }
      const auto back = wait_rejoin(*control.value(), victim, match_before, t_heal, 15s);
      if (back) {
        rejoin_ns.push_back(*back);
        kj.set("rejoin_ms", Json::number(static_cast<double>(*back) / 1e6));
        note("rlr-bench: {} {}: node {} accepted an append {:.1f} ms after it was given back", o.fault, k + 1,
             victim, static_cast<double>(*back) / 1e6);
      } else {
        ++rejoin_timeouts;
        kj.set("rejoin_ms", Json::string("timeout"));
        note("rlr-bench: {} {}: node {} accepted no append within 15 s of being given back", o.fault, k + 1,
             victim);
      }
    }
    kills.push(kj);
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int>(o.settle * 1000)));
  }
  const double cpu1 = h.cpu();
  const std::int64_t end = now_ns();
  sampling = false;
  sampler.join();
  r.timeline = std::move(timeline);
  r.rss_mib = h.rss();
  r.sample_mib = static_cast<double>(load.sample_bytes()) / (1 << 20);
  if (!load.stop(15s)) note("rlr-bench: some proposals had no outcome 15 s after the run");
  control.value().reset();
  h.stop();
  r.seconds = static_cast<double>(end - start) / 1e9;
  r.committed = load.acked_in_window();
  r.entries_per_s = static_cast<double>(r.committed) / r.seconds;
  r.mb_per_s = r.entries_per_s * static_cast<double>(payload) / 1e6;
  r.errors = load.errors();
  r.first_error = load.first_error();
  r.sorted_ns = load.take_samples();
  r.latency = summarize(r.sorted_ns);
  r.cpu_s = cpu1 - cpu0;
  r.cpu_us_per_entry = r.committed > 0 ? r.cpu_s * 1e6 / static_cast<double>(r.committed) : 0;
  const Percentiles fp = summarize(failover_ns);
  r.extra.set("failover_ms", to_json(Percentiles{fp.count, fp.mean_us / 1000, fp.p50_us / 1000, fp.p90_us / 1000,
                                                 fp.p99_us / 1000, fp.p999_us / 1000, fp.max_us / 1000}));
  r.extra.set("kills", kills);
  r.extra.set("timeouts", Json::integer(timeouts));
  rep.extra.set("failover_ms", to_json(Percentiles{fp.count, fp.mean_us / 1000, fp.p50_us / 1000, fp.p90_us / 1000,
                                                   fp.p99_us / 1000, fp.p999_us / 1000, fp.max_us / 1000}));
  const char* fault_name = o.fault == "kill" ? "kill -9" : o.fault == "pause" ? "SIGSTOP" : "partition";
  std::fprintf(o.json ? stderr : stdout,
               "failover: %zu faults measured (%d without a new-leader commit in 15 s): %s of the leader to first "
               "new-leader commit p50 %.1f ms  p90 %.1f ms  p99 %.1f ms  max %.1f ms\n",
               fp.count, timeouts, fault_name, fp.p50_us / 1000, fp.p90_us / 1000, fp.p99_us / 1000,
               fp.max_us / 1000);
  if (o.fault != "kill") {
    const Percentiles rp = summarize(rejoin_ns);
    const Json rj = to_json(Percentiles{rp.count, rp.mean_us / 1000, rp.p50_us / 1000, rp.p90_us / 1000,
                                        rp.p99_us / 1000, rp.p999_us / 1000, rp.max_us / 1000});
    r.extra.set("rejoin_ms", rj);
    rep.extra.set("rejoin_ms", rj);
    std::fprintf(o.json ? stderr : stdout,
                 "rejoin: %zu measured (%d timed out): %s to the old leader's first accepted append "
                 "p50 %.1f ms  p90 %.1f ms  p99 %.1f ms  max %.1f ms\n",
                 rp.count, rejoin_timeouts, o.fault == "pause" ? "SIGCONT" : "heal", rp.p50_us / 1000,
                 rp.p90_us / 1000, rp.p99_us / 1000, rp.max_us / 1000);
    // Two heartbeat intervals and a loopback round trip (taken as 1 ms).
    const double bound = 2.0 * o.heartbeat_ticks * o.tick_ms + 1.0;
    rep.targets.push_back({"rejoin p99", rejoin_timeouts > 0 ? 15000.0 : rp.p99_us / 1000, "<=", bound, "ms"});
  }
  const double worst = timeouts > 0 ? 15000.0 : fp.p99_us / 1000;
  rep.targets.push_back({"failover p99", worst, "<=", 300, "ms"});
  rep.targets.push_back({"failover p50", fp.p50_us / 1000, "<=", 150, "ms"});
  if (static_cast<int>(fp.count) + timeouts < o.kills) rep.failures.push_back("failover: fewer kills than asked");
  rep.runs.push_back(std::move(r));
}

void scenario_catchup(const Options& o, Report& rep) {
  const std::size_t payload = o.payloads.front();
  const int clients = o.clients.front();
  RunResult r;
  r.label = fmt::format("catchup nodes={}+learner {} {}{} payload={}B entries={}{}{}{}{}", o.nodes, o.mode, o.storage,
                        o.sync.value_or(false) ? "+sync" : "", payload, o.entries,
                        o.persist_thread ? " persist-thread" : "", o.default_allocator ? " default-allocator" : "",
                        memory_label(o),
                        tunables_label());
  r.params = params_json(o, payload, clients);
  r.params.set("entries", Json::integer(static_cast<std::int64_t>(o.entries)));
  note("rlr-bench: {} ...", r.label);
  Harness h;
  const std::string dir = fmt::format("{}/run0", o.data_dir);
  if (rlr::Status s = start_harness(o, dir, clients, h); !s) {
    note("rlr-bench: cannot start the cluster: {}", s.to_string());
    h.stop();
    rep.failures.push_back("catchup");
    return;
  }
  std::unique_ptr<rlr::Client> control;
  if (h.procs) {
    auto c = rlr::Client::connect(client_options(o, h.procs->bootstrap()));
    if (!c) {
      note("rlr-bench: control client: {}", c.status().to_string());
      h.stop();
      rep.failures.push_back("catchup");
      return;
    }
    control = std::move(c).value();
  }
  // 1. Fill the log.
  {
    LoadOptions lo;
    lo.clients = clients;
    lo.outstanding = o.outstanding;
    lo.payload_bytes = payload;
    lo.shared_payloads = o.shared_payloads;
    Load fill(lo, h.targets);
    const std::int64_t t0 = now_ns();
    fill.start(0, INT64_MAX);
    while (fill.acked_total() < o.entries && now_ns() - t0 < 300'000'000'000) std::this_thread::sleep_for(5ms);
    fill.stop(30s);
    note("rlr-bench: filled {} entries in {:.2f} s", fill.acked_total(), static_cast<double>(now_ns() - t0) / 1e9);
  }
  const auto leader_commit = [&]() -> std::uint64_t {
    if (h.inproc) return h.leader->cluster_info().commit.value();
    auto ci = control->cluster_info();
    return ci ? ci.value().commit.value() : 0;
  };
  const std::uint64_t target = leader_commit();
  if (h.inproc) reset_peak_rss();
  // 2. Start an empty node and add it as a learner; time until its commit index reaches target.
  rlr::Node* learner = nullptr;
  rlr::MemberAddress addr;
  rlr::Address learner_address;
  if (h.inproc) {
    auto n = h.inproc->start_joiner(addr);
    if (!n) {
      note("rlr-bench: cannot start the learner: {}", n.status().to_string());
      h.stop();
      rep.failures.push_back("catchup");
      return;
    }
    learner = n.value();
  } else {
    auto a = h.procs->start_joiner();
    if (!a) {
      note("rlr-bench: cannot start the learner: {}", a.status().to_string());
      h.stop();
      rep.failures.push_back("catchup");
      return;
    }
    addr = a.value();
    learner_address = addr.address;
    std::this_thread::sleep_for(300ms);  // let the process listen
  }
  const auto learner_commit = [&]() -> std::uint64_t {
    if (learner != nullptr) return learner->cluster_info().commit.value();
    auto ci = control->cluster_info(learner_address);
    return ci ? ci.value().commit.value() : 0;
  };
  const double cpu0 = h.cpu();
  const std::int64_t t0 = now_ns();
  rlr::Status added = h.inproc ? h.leader->add_learner(addr, 30s) : control->add_learner(addr);
  // On a loaded machine leadership may have moved during the fill: ask the new leader.
  for (int attempt = 0; h.inproc && added.code() == rlr::ErrorCode::NotLeader && attempt < 5; ++attempt) {
    h.leader = h.inproc->wait_leader(20s);
    if (h.leader == nullptr) break;
    added = h.leader->add_learner(addr, 30s);
  }
  if (!added) {
    note("rlr-bench: add_learner: {}", added.to_string());
    h.stop();
    rep.failures.push_back("catchup");
    return;
  }
  std::uint64_t last = 0;
  std::int64_t last_t = t0;
  std::uint64_t reached = 0;
  while (now_ns() - t0 < 300'000'000'000) {
    reached = learner_commit();
    const std::int64_t t = now_ns();
    if (t - last_t >= 100'000'000 || reached >= target) {
      r.timeline.emplace_back(static_cast<double>(t - t0) / 1e9,
                              static_cast<double>(reached - last) * 1e9 / static_cast<double>(t - last_t));
      last = reached;
      last_t = t;
    }
    if (reached >= target) break;
    std::this_thread::sleep_for(2ms);
  }
  const std::int64_t t1 = now_ns();
  const double cpu1 = h.cpu();
  r.rss_mib = h.rss();
  h.stop();
  r.seconds = static_cast<double>(t1 - t0) / 1e9;
  r.committed = reached >= target ? target : reached;
  r.entries_per_s = static_cast<double>(r.committed) / r.seconds;
  r.mb_per_s = r.entries_per_s * static_cast<double>(payload) / 1e6;
  r.cpu_s = cpu1 - cpu0;
  r.cpu_us_per_entry = r.committed > 0 ? r.cpu_s * 1e6 / static_cast<double>(r.committed) : 0;
  r.extra.set("leader_commit", Json::integer(static_cast<std::int64_t>(target)));
  r.extra.set("learner_reached", Json::integer(static_cast<std::int64_t>(reached)));
  if (reached < target) {
    note("rlr-bench: the learner reached {} of {} in 300 s", reached, target);
    rep.failures.push_back("catchup: learner did not catch up");
  }
  std::fprintf(o.json ? stderr : stdout, "catchup: learner reached commit index %llu in %.3f s: %.0f entries/s\n",
               static_cast<unsigned long long>(reached), r.seconds, r.entries_per_s);
  rep.targets.push_back({"catchup throughput", r.entries_per_s, ">=", 1'000'000, "entries/s"});
  rep.runs.push_back(std::move(r));
}

std::string default_node_binary() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "rlr-node";
  return (self.parent_path() / "rlr-node").string();
}

int run(int argc, char** argv) {
  Options o;
  CLI::App cli{
      "rlr-bench: benchmarks a librlr cluster on loopback TCP.\n"
      "Scenarios: inleader (client threads in the leader, or over TCP with --mode procs; one entry per\n"
      "request), durable (pipelined, RocksDB + fsync), latency (one outstanding proposal vs. fdatasync\n"
      "+ RTT), failover (kill -9 the leader of rlr-node processes), catchup (a learner added N entries\n"
      "behind). The report's first line names the shape: where the nodes run, how clients reach them.\n"
      "Results go to stdout (--json: one JSON document); progress goes to stderr."};
  cli.add_option("scenario", o.scenario, "inleader | durable | latency | failover | catchup")
      ->required()
      ->check(CLI::IsMember({"inleader", "durable", "latency", "failover", "catchup"}));
  cli.add_option("--nodes", o.nodes, "cluster size (3 or 5)")->check(CLI::IsMember({3, 5}));
  cli.add_option("--mode", o.mode, "inproc: every node in this process; procs: rlr-node processes")
      ->check(CLI::IsMember({"inproc", "procs"}));
  cli.add_option("--storage", o.storage, "memory | rocksdb")->check(CLI::IsMember({"memory", "rocksdb"}));
  int sync_flag = 0;  // +1 per --sync, -1 per --no-sync
  cli.add_flag("--sync,!--no-sync", sync_flag, "fsync every persistence step (default: on with rocksdb)");
  cli.add_option("--payload", o.payloads, "entry size in bytes (comma-separated list sweeps)")->delimiter(',');
  cli.add_option("--clients,--threads", o.clients, "client threads (comma-separated list sweeps)")->delimiter(',');
  cli.add_option("--outstanding", o.outstanding, "proposals in flight per client (1: propose, wait, repeat)")
      ->check(CLI::Range(1, static_cast<int>(Load::kMaxOutstanding) - 1));
  cli.add_option("--client-mode", o.client_mode, "node: Node::propose in this process; tcp: rlr::Client")
      ->check(CLI::IsMember({"node", "tcp"}));
  cli.add_option("--seconds", o.seconds, "measured seconds per run (after --warmup)")->check(CLI::PositiveNumber);
  cli.add_option("--warmup", o.warmup, "seconds of load before measuring")->check(CLI::NonNegativeNumber);
  cli.add_flag("--warm-until-compacted", o.warm_until_compacted,
               "inproc inleader/durable: warm up (at least --warmup) until every node has compacted its log "
               "once, so the window measures the steady state: the retained log at its size, memory freed "
               "by compaction being reused (until then every new entry touches fresh pages)");
  cli.add_option("--warmup-max", o.warmup_max, "--warm-until-compacted: longest warm-up, seconds")
      ->check(CLI::PositiveNumber);
  cli.add_option("--memory-log-entries", o.memory_log_entries,
                 "inproc: NodeOptions::memory_log_entries (entries a node keeps in memory; 0: no limit)");
  cli.add_option("--memory-log-bytes", o.memory_log_bytes,
                 "inproc: NodeOptions::memory_log_bytes (payload bytes a node keeps in memory; 0: no limit)");
  cli.add_option("--compact-after", o.compact_after,
                 "inproc: NodeOptions::compact_after_entries (0: the library's default, 1,000,000)");
  cli.add_flag("--json", o.json, "print one JSON document on stdout");
  cli.add_option("--plot", o.plot, "write a PNG (gnuplot): latency by percentile and throughput over time");
  cli.add_option("--data-dir", o.data_dir, "scratch directory (default /tmp/rlr-bench-PID; removed afterwards)");
  cli.add_flag("--keep-data", o.keep_data, "keep the scratch directory (node logs, data)");
  cli.add_option("--node-binary", o.node_binary, "rlr-node for --mode procs (default: next to rlr-bench)");
  cli.add_option("--node-log-level", o.node_log_level, "--mode procs: rlr-node's --log-level (with --keep-data the logs stay)")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
  cli.add_option("--kills", o.kills, "failover: how many times to fault the leader")->check(CLI::Range(1, 100000));
  cli.add_option("--fault", o.fault,
                 "failover: kill (kill -9, then restart), pause (SIGSTOP, then SIGCONT) or partition (its peer "
                 "links stall, then heal); pause and partition also time the old leader's rejoin");
  cli.add_option("--settle", o.settle, "failover: seconds to wait after restarting a killed node")
      ->check(CLI::NonNegativeNumber);
  cli.add_option("--entries", o.entries, "catchup: entries the learner starts behind");
  cli.add_option("--tick-ms", o.tick_ms, "Raft tick in milliseconds");
  cli.add_option("--election-ticks", o.election_ticks, "election timeout in ticks ([e, 2e))");
  cli.add_option("--heartbeat-ticks", o.heartbeat_ticks, "heartbeat interval in ticks");
  cli.add_flag("--complete-on-raft-thread", o.complete_on_raft_thread,
               "inproc: NodeOptions::complete_on_raft_thread (proposal callbacks run on the raft thread)");
  cli.add_flag("--persist-thread", o.persist_thread,
               "inproc: NodeOptions::persist_thread (log writes on a storage thread of each node)");
  cli.add_flag("--default-allocator", o.default_allocator,
               "leave glibc malloc at its defaults (by default rlr-bench applies rlr::tune_allocator(), "
               "as rlr-node does)");
  cli.add_flag("--shared-payloads", o.shared_payloads,
               "each client proposes its 64 payload buffers over and over (cache-hot, shared by many "
               "entries) instead of a fresh buffer per proposal");
  cli.add_flag("--null-target", o.null_target,
               "inleader/durable: no cluster; a thread acknowledges every proposal at once (calibrates "
               "the cost of the client threads and the OS alone)");
  cli.add_flag("--trace", o.trace,
               "inleader/durable/latency: every node stamps each entry's way through it (NodeOptions::"
               "trace_entries) and the report takes the commits apart: where the p50, the p99 and the "
               "slowest 1% spend their time (client, hand-offs, fsyncs, network), and the slowest five");
  cli.add_option("--client-backoff-ms", o.backoff_ms, "rlr::Client backoff_min (tcp clients)")
      ->check(CLI::Range(1, 10000));
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli.exit(e);
  }
  if (sync_flag != 0) o.sync = sync_flag > 0;
  apply_defaults(o);
  if (o.node_binary.empty()) o.node_binary = default_node_binary();
  if (o.trace && (o.null_target || (o.scenario != "inleader" && o.scenario != "durable" && o.scenario != "latency"))) {
    note("rlr-bench: --trace applies to inleader, durable and latency, with a cluster");
    return 2;
  }
  if (o.null_target && o.scenario != "inleader" && o.scenario != "durable") {
    note("rlr-bench: --null-target applies to inleader and durable");
    return 2;
  }
  if (o.warm_until_compacted &&
      (o.mode != "inproc" || o.null_target || (o.scenario != "inleader" && o.scenario != "durable"))) {
    note("rlr-bench: --warm-until-compacted applies to inleader and durable with in-process nodes");
    return 2;
  }
  if ((o.compact_after > 0 || o.memory_log_entries || o.memory_log_bytes) && o.mode != "inproc") {
    note("rlr-bench: --compact-after and --memory-log-* apply to in-process nodes (--mode inproc)");
    return 2;
  }
  if (o.mode == "procs" && o.client_mode == "node") {
    note("rlr-bench: --mode procs needs --client-mode tcp");
    return 2;
  }
  // A client whose connection breaks (failover) must not kill us with SIGPIPE.
  ::signal(SIGPIPE, SIG_IGN);
  // In-process nodes run in this process: tune its allocator as rlr-node tunes its own.
  if (!o.default_allocator) {
    if (rlr::Status t = rlr::tune_allocator(); !t) note("rlr-bench: allocator not tuned: {}", t.to_string());
  }

  Report rep;
  const std::string started = utc_now();
  if (o.scenario == "inleader" || o.scenario == "durable") scenario_sweep(o, rep);
  else if (o.scenario == "latency") scenario_latency(o, rep);
  else if (o.scenario == "failover") scenario_failover(o, rep);
  else scenario_catchup(o, rep);

  if (!o.plot.empty()) write_plot(o, rep);

  std::FILE* out = o.json ? stderr : stdout;
  const std::string commit = source_commit();
  std::fprintf(out, "rlr-bench %s [%s]: %s, commit %s, %u cpus, load average at end: ", o.scenario.c_str(),
               shape_label(o).c_str(), started.c_str(), commit.c_str(), std::thread::hardware_concurrency());
  {
    std::ifstream la("/proc/loadavg");
    std::string l;
    std::getline(la, l);
    std::fprintf(out, "%s\n", l.c_str());
  }
  for (const auto& r : rep.runs) print_run(out, r);
  for (const auto& t : rep.targets) {
    std::fprintf(out, "target %-42s %12.2f %s %-10g %-9s %s%s\n", t.name.c_str(), t.value, t.op.c_str(),
                 t.threshold, t.unit.c_str(), t.met() ? "MET" : "MISSED",
                 o.nodes == 3 ? "" : " (targets are for 3 nodes)");
  }
  for (const auto& f : rep.failures) std::fprintf(out, "FAILED: %s\n", f.c_str());

  if (o.json) {
    Json doc = Json::object();
    doc.set("scenario", Json::string(o.scenario));
    doc.set("date", Json::string(started));
    doc.set("commit", Json::string(commit));
    doc.set("cpus", Json::integer(std::thread::hardware_concurrency()));
    doc.set("shape", Json::string(shape_label(o)));
    Json runs = Json::array();
    for (const auto& r : rep.runs) runs.push(run_json(r));
    doc.set("runs", runs);
    if (!rep.extra.empty()) doc.set("summary", rep.extra);
    Json targets = Json::array();
    for (const auto& t : rep.targets) {
      Json tj = Json::object();
      tj.set("name", Json::string(t.name));
      tj.set("value", Json::number(t.value));
      tj.set("op", Json::string(t.op));
      tj.set("threshold", Json::number(t.threshold));
      tj.set("unit", Json::string(t.unit));
      tj.set("met", Json::boolean(t.met()));
      targets.push(tj);
    }
    doc.set("targets", targets);
    Json failures = Json::array();
    for (const auto& f : rep.failures) failures.push(Json::string(f));
    doc.set("failures", failures);
    std::printf("%s\n", doc.dump().c_str());
  }
  if (!o.keep_data) {
    std::error_code ec;
    fs::remove_all(o.data_dir, ec);
  } else {
    note("rlr-bench: data kept in {}", o.data_dir);
  }
  return rep.failures.empty() ? 0 : 1;
}

}  // namespace
}  // namespace rlrbench

int main(int argc, char** argv) {
  try {
    return rlrbench::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rlr-bench: fatal: %s\n", e.what());
    return 1;
  }
}
