// The real binaries as processes: rlr-node clusters on loopback driven with rlr-ctl (and
// redis-cli when the kv app is built in). Each test case starts its own cluster in its
// own temporary directory on fresh ports and kills every process it started.
#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <memory>
#include <set>

#include <variant>

#include "harness.h"
#include "wire/client_codec.h"

namespace {

using namespace std::chrono_literals;
using proc::Process;
using proc::RunResult;

/// The binaries under test: the build's, unless RLR_NODE_BIN / RLR_CTL_BIN name others.
std::string binary(const char* env, const char* built) {
  const char* v = std::getenv(env);
  return v != nullptr && *v != '\0' ? v : built;
}
const std::string kNode = binary("RLR_NODE_BIN", RLR_NODE_BIN);
const std::string kCtl = binary("RLR_CTL_BIN", RLR_CTL_BIN);
constexpr const char* kCluster = "proc-test";

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

/// N founding voters; node i (1-based) listens on ports_[i-1].
class Cluster {
 public:
  /// `app_toml(i)` returns extra TOML (e.g. an [app] table) for node i.
  /// Nodes n+1 .. n+joiners start empty (role = "join") and wait to be added.
  explicit Cluster(int n, std::string extra = "", std::function<std::string(int)> app_toml = nullptr, int joiners = 0)
      : n_(n),
        ports_(proc::free_ports(static_cast<std::size_t>(n + joiners))),
        nodes_(static_cast<std::size_t>(n + joiners)) {
    for (int i = n + 1; i <= n + joiners; ++i) {
      proc::write_file(config(i), fmt("cluster_id = \"{}\"\nid = {}\nrole = \"join\"\nlisten = \"{}\"\n"
                                      "data_dir = \"{}\"\nsync = false\n{}\n",
                                      kCluster, i, address(i), dir_.file("data" + std::to_string(i)), extra));
    }
    for (int i = 1; i <= n_; ++i) {
      std::string t = fmt("cluster_id = \"{}\"\nid = {}\ndata_dir = \"{}\"\nsync = false\n{}\npeers = [\n",
                          kCluster, i, dir_.file("data" + std::to_string(i)), extra);
      for (int j = 1; j <= n_; ++j) t += fmt("  {{ id = {}, address = \"{}\" }},\n", j, address(j));
      t += "]\n[timeouts]\ntick_ms = 10\nelection_ticks = 15\nheartbeat_ticks = 3\n";
      if (app_toml) t += app_toml(i);
      proc::write_file(config(i), t);
    }
  }
  ~Cluster() {
    for (auto& p : nodes_) p.reset();  // SIGKILL + reap whatever still runs
  }
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  [[nodiscard]] std::string address(int i) const { return "127.0.0.1:" + std::to_string(ports_[static_cast<std::size_t>(i - 1)]); }
  [[nodiscard]] std::string config(int i) const { return dir_.file("n" + std::to_string(i) + ".toml"); }
  [[nodiscard]] std::string log(int i) const { return dir_.file("n" + std::to_string(i) + ".log"); }
  [[nodiscard]] const proc::TempDir& dir() const { return dir_; }
  [[nodiscard]] std::string bootstrap() const {
    std::string s;
    for (int i = 1; i <= n_; ++i) s += (i > 1 ? "," : "") + address(i);
    return s;
  }

  /// Starts node i; `flags` go after its --config; `wrapper` (e.g. prlimit and its
  /// arguments) runs rlr-node.
  void start(int i, const std::vector<std::string>& flags = {}, const std::vector<std::string>& wrapper = {}) {
    std::vector<std::string> argv = wrapper;
    argv.insert(argv.end(), {kNode, "--config", config(i)});
    argv.insert(argv.end(), flags.begin(), flags.end());
    nodes_[static_cast<std::size_t>(i - 1)] = std::make_unique<Process>(argv, log(i), log(i));
  }
  void start_all() {
    for (int i = 1; i <= n_; ++i) start(i);
  }
  void kill9(int i) { nodes_[static_cast<std::size_t>(i - 1)]->kill9(); }
  [[nodiscard]] std::uint16_t port(int i) const { return ports_[static_cast<std::size_t>(i - 1)]; }
  Process& node(int i) { return *nodes_[static_cast<std::size_t>(i - 1)]; }

  RunResult ctl(std::vector<std::string> args, const std::string& bootstrap_list = {}) const {
    std::vector<std::string> argv{kCtl, "--cluster", kCluster, "--bootstrap",
                                  bootstrap_list.empty() ? bootstrap() : bootstrap_list, "--timeout-ms", "8000"};
    argv.insert(argv.end(), args.begin(), args.end());
    return proc::run(argv, 30s);
  }

  /// The leader's id once some node reports one (0 on timeout).
  int wait_leader(std::chrono::milliseconds timeout = 15s, int not_this = 0) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = ctl({"leader"});
      if (r.code == 0) {
        const int id = std::atoi(r.out.c_str());
        if (id > 0 && id != not_this) return id;
      }
      std::this_thread::sleep_for(100ms);
    }
    return 0;
  }

  /// Every node's log, for failure messages.
  [[nodiscard]] std::string logs() const {
    std::string s;
    for (int i = 1; i <= static_cast<int>(nodes_.size()); ++i) {
      std::string l = proc::read_file(log(i));
      if (l.size() > 4000) l = "..." + l.substr(l.size() - 4000);
      s += "---- node " + std::to_string(i) + " ----\n" + l;
    }
    return s;
  }

  template <class... Args>
  static std::string fmt(const char* f, Args&&... args) {
    // A tiny "{}" formatter so the test does not depend on the fmt library.
    std::vector<std::string> vals{to_s(std::forward<Args>(args))...};
    std::string out;
    std::size_t k = 0;
    for (const char* p = f; *p != '\0'; ++p) {
      if (p[0] == '{' && p[1] == '{') {
        out += '{';
        ++p;
      } else if (p[0] == '}' && p[1] == '}') {
        out += '}';
        ++p;
      } else if (p[0] == '{' && p[1] == '}') {
        out += k < vals.size() ? vals[k++] : "";
        ++p;
      } else {
        out += *p;
      }
    }
    return out;
  }

 private:
  static std::string to_s(const std::string& s) { return s; }
  static std::string to_s(const char* s) { return s; }
  static std::string to_s(int v) { return std::to_string(v); }

  int n_;
  proc::TempDir dir_;
  std::vector<std::uint16_t> ports_;
  std::vector<std::unique_ptr<Process>> nodes_;
};

/// Waits until the file contains `text`.
bool wait_for_log(const std::string& path, const std::string& text, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (contains(proc::read_file(path), text)) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(50ms);
  }
}

/// Runs rlr-node on a config text and expects exit status 2 with `where` in the message.
void expect_config_error(const std::string& toml, const std::vector<std::string>& flags, const std::string& where,
                         const std::string& what) {
  proc::TempDir d;
  const std::string path = d.file("bad.toml");
  std::string text = toml;
  for (std::string::size_type p; (p = text.find("@DIR@")) != std::string::npos;) text.replace(p, 5, d.path());
  proc::write_file(path, text);
  std::vector<std::string> argv{kNode, "--config", path};
  argv.insert(argv.end(), flags.begin(), flags.end());
  argv.push_back("--check");
  const RunResult r = proc::run(argv, 20s);
  INFO("config:\n" << text << "\nflags: " << flags.size() << "\n" << r.all());
  CHECK(r.code == 2);
  const std::string expect_where = where.rfind("--", 0) == 0 ? where : path + ":" + where;
  CHECK(contains(r.err, expect_where));
  CHECK(contains(r.err, what));
}

const char* kGood =
    "cluster_id = \"c\"\n"                                  // 1
    "id = 1\n"                                              // 2
    "data_dir = \"@DIR@/data\"\n"                           // 3
    "peers = [\n"                                           // 4
    "  { id = 1, address = \"127.0.0.1:17101\" },\n"        // 5
    "  { id = 2, address = \"127.0.0.1:17102\" },\n"        // 6
    "]\n";                                                  // 7

}  // namespace

TEST_CASE("rlr-node: a good config passes --check", "[process][config]") {
  proc::TempDir d;
  std::string text = kGood;
  text.replace(text.find("@DIR@"), 5, d.path());
  proc::write_file(d.file("ok.toml"), text);
  const RunResult r = proc::run({kNode, "--config", d.file("ok.toml"), "--check"});
  INFO(r.all());
  CHECK(r.code == 0);
  CHECK(contains(r.out, "config ok"));
}

TEST_CASE("rlr-node: every bad config exits 2 naming the line or flag", "[process][config]") {
  SECTION("unknown key") {
    expect_config_error(std::string(kGood) + "colour = \"blue\"\n", {}, "8:", "unknown key 'colour'");
  }
  SECTION("unknown key in a table") {
    expect_config_error(std::string(kGood) + "[timeouts]\ntick_ms = 10\nelection_tiks = 5\n", {}, "10:",
                        "unknown key 'election_tiks'");
  }
  SECTION("bad value type") {
    std::string t = kGood;
    t.replace(t.find("id = 1\n"), 7, "id = \"one\"\n");
    expect_config_error(t, {}, "2:", "id must be an integer");
  }
  SECTION("bad address of a peer") {
    std::string t = kGood;
    t.replace(t.find("127.0.0.1:17102"), 15, "127.0.0.1:99999");
    expect_config_error(t, {}, "6:", "99999");
  }
  SECTION("bad listen address") {
    expect_config_error(std::string(kGood) + "listen = \"localhost\"\n", {}, "8:", "bad address 'localhost'");
  }
  SECTION("a host name as the listen address (the node binds it)") {
    expect_config_error(std::string(kGood) + "listen = \"node1.example.net:7000\"\n", {}, "8:",
                        "is not an IP address");
  }
  SECTION("a host name as the admin address") {
    expect_config_error(std::string(kGood) + "[admin]\nlisten = \"localhost:9100\"\n", {}, "9:",
                        "admin listen: 'localhost' is not an IP address");
  }
  SECTION("the admin address is the node's own") {
    expect_config_error(kGood, {"--admin-listen", "127.0.0.1:17101"}, "--admin-listen",
                        "the same address as the node's own listen address");
  }
  SECTION("an unknown key in [admin]") {
    expect_config_error(std::string(kGood) + "[admin]\nlisten_port = 9100\n", {}, "9:", "unknown key 'listen_port'");
  }
  SECTION("duplicate peer id") {
    std::string t = kGood;
    t.replace(t.find("{ id = 2"), 8, "{ id = 1");
    expect_config_error(t, {}, "6:", "duplicate peer id 1");
  }
  SECTION("a founder missing from its peers") {
    std::string t = kGood;
    t.replace(t.find("id = 1\n"), 7, "id = 3\n");
    expect_config_error(t, {}, "2:", "not among the peers");
  }
  SECTION("data dir that cannot be created") {
    std::string t = kGood;
    t.replace(t.find("@DIR@/data"), 10, "/proc/no/such/dir");
    expect_config_error(t, {}, "3:", "cannot be created");
  }
  SECTION("TOML syntax error") {
    expect_config_error(std::string(kGood) + "role = \n", {}, "8:", "");
  }
  SECTION("unknown log format") {
    expect_config_error(std::string(kGood) + "log_format = \"xml\"\n", {}, "8:", "log_format 'xml' is not one of text, json");
    expect_config_error(kGood, {"--log-format", "yaml"}, "--log-format", "log_format 'yaml'");
  }
  SECTION("unknown egress value") {
    expect_config_error(std::string(kGood) + "egress = \"sometimes\"\n", {}, "8:", "egress 'sometimes'");
  }
  SECTION("bad flag value: --listen") {
    expect_config_error(kGood, {"--listen", "nowhere"}, "--listen", "bad address 'nowhere'");
  }
  SECTION("bad flag value: --peer") {
    expect_config_error(kGood, {"--peer", "x=127.0.0.1:1"}, "--peer", "positive integer");
  }
  SECTION("unknown flag") {
    expect_config_error(kGood, {"--colour", "blue"}, "--colour", "");
  }
  SECTION("disconnect_campaign_ticks not below election_ticks") {
    expect_config_error(std::string(kGood) + "[timeouts]\nelection_ticks = 5\ndisconnect_campaign_ticks = 5\n", {},
                        "10:", "disconnect_campaign_ticks (5) must be below election_ticks (5)");
    expect_config_error(kGood, {"--disconnect-campaign-ticks", "20"}, "--disconnect-campaign-ticks",
                        "must be below election_ticks (15)");
  }
  SECTION("a link silence timeout shorter than three heartbeats") {
    expect_config_error(std::string(kGood) + "[timeouts]\nlink_silence_ms = 40\n", {}, "9:",
                        "link_silence_ms (40) must be 0 (the election timeout) or at least three heartbeat "
                        "intervals (90 ms)");
    expect_config_error(kGood, {"--link-silence-ms", "89"}, "--link-silence-ms", "at least three heartbeat");
  }
  SECTION("non-numeric flag") {
    expect_config_error(kGood, {"--election-ticks", "many"}, "--election-ticks", "");
  }
}

TEST_CASE("cluster: three rlr-node processes elect a leader; rlr-ctl proposes and shows status",
          "[process][cluster]") {
  Cluster c(3);
  c.start_all();
  const int leader = c.wait_leader();
  INFO(c.logs());
  REQUIRE(leader > 0);

  const RunResult p = c.ctl({"propose", "hello"});
  INFO(p.all());
  REQUIRE(p.code == 0);
  CHECK(contains(p.out, "index="));

  SECTION("status table") {
    const RunResult s = c.ctl({"status"});
    INFO(s.all());
    REQUIRE(s.code == 0);
    CHECK(contains(s.out, "leader " + std::to_string(leader)));
    CHECK(contains(s.out, "ID"));
    CHECK(contains(s.out, "CATCH-UP"));
    for (int i = 1; i <= 3; ++i) CHECK(contains(s.out, c.address(i)));
    std::size_t leaders = 0;
    std::size_t followers = 0;
    std::istringstream lines(s.out);
    for (std::string line; std::getline(lines, line);) {
      if (contains(line, "127.0.0.1:") && contains(line, " leader ")) ++leaders;
      if (contains(line, "127.0.0.1:") && contains(line, " follower ")) ++followers;
    }
    CHECK(leaders == 1);
    CHECK(followers == 2);
  }
  SECTION("status --json") {
    const RunResult s = c.ctl({"status", "--json"});
    INFO(s.all());
    REQUIRE(s.code == 0);
    auto j = proc::JsonParser(s.out).parse();
    REQUIRE(j);
    CHECK((*j)["cluster_id"].string == kCluster);
    CHECK(static_cast<int>((*j)["leader"].number) == leader);
    const auto& members = (*j)["members"].array;
    REQUIRE(members.size() == 3);
    int leaders = 0;
    for (const auto& m : members) {
      CHECK(m["reachable"].boolean);
      CHECK(m["voter"].boolean);
      CHECK(m["applied"].type == proc::Json::Type::Number);
      if (m["role"].string == "leader") ++leaders;
    }
    CHECK(leaders == 1);
  }
  SECTION("verify") {
    const RunResult v = c.ctl({"verify"});
    INFO(v.all());
    CHECK(v.code == 0);
    CHECK(contains(v.out, "OK"));
  }
}

TEST_CASE("redirect: rlr-ctl given only a follower finds the leader", "[process][redirect]") {
  Cluster c(3);
  c.start_all();
  const int leader = c.wait_leader();
  INFO(c.logs());
  REQUIRE(leader > 0);
  const int follower = leader == 1 ? 2 : 1;
  const RunResult p = c.ctl({"propose", "via a follower"}, c.address(follower));
  INFO(p.all());
  REQUIRE(p.code == 0);
  CHECK(contains(p.out, "index="));
  const RunResult l = c.ctl({"leader"}, c.address(follower));
  CHECK(std::atoi(l.out.c_str()) == leader);
}

TEST_CASE("failover: kill -9 the leader, a new one is elected, proposals work again", "[process][failover]") {
  Cluster c(3);
  c.start_all();
  const int old_leader = c.wait_leader();
  INFO(c.logs());
  REQUIRE(old_leader > 0);
  REQUIRE(c.ctl({"propose", "before"}).code == 0);

  c.kill9(old_leader);
  const int new_leader = c.wait_leader(15s, old_leader);
  INFO(c.logs());
  REQUIRE(new_leader > 0);
  CHECK(new_leader != old_leader);

  // The bootstrap list still names the dead node first: the client must skip it.
  const RunResult p = c.ctl({"propose", "after"});
  INFO(p.all());
  REQUIRE(p.code == 0);
  CHECK(contains(p.out, "index="));

  // The survivors' logs say what happened, readably (the node logs its view every 100 ms).
  CHECK(wait_for_log(c.log(new_leader), "elected leader", 5s));

  // And the killed node comes back as a follower of the new leader.
  c.start(old_leader);
  CHECK(wait_for_log(c.log(old_leader), "leader is node " + std::to_string(new_leader), 10s));
}

TEST_CASE("signals: SIGTERM stops a node cleanly with status 0", "[process][signals]") {
  Cluster c(1);
  c.start(1);
  REQUIRE(c.wait_leader() == 1);
  c.node(1).signal(SIGTERM);
  const auto code = c.node(1).wait_exit(10s);
  INFO(c.logs());
  REQUIRE(code);
  CHECK(*code == 0);
  CHECK(contains(proc::read_file(c.log(1)), "stopped"));
}

TEST_CASE("storage: a leader whose log write fails hands over, exits 3, and catches up after a restart",
          "[process][storage-failure]") {
  Cluster c(3);
  c.start(1);
  c.start(2);
  // Node 3's files may not grow past 1 MiB (RLIMIT_FSIZE): its log segment reaches that
  // after about ten of the 100 KB proposals below, and the write past it fails (EFBIG),
  // as one on a full disk fails with ENOSPC.
  c.start(3, {}, {"/usr/bin/prlimit", "--fsize=1048576", "--"});
  int leader = c.wait_leader();
  INFO(c.logs());
  REQUIRE(leader > 0);
  if (leader != 3) {
    const RunResult t = c.ctl({"transfer-leader", "3"});
    INFO(t.all());
    REQUIRE(t.code == 0);
  }
  REQUIRE(c.ctl({"leader"}).out.rfind("3", 0) == 0);

  const std::string big(100'000, 'x');
  int acked = 0;
  for (int k = 0; k < 40 && c.node(3).running(); ++k) {
    if (c.ctl({"propose", big + std::to_string(k)}).code == 0) ++acked;
  }
  const auto code = c.node(3).wait_exit(20s);
  INFO(c.logs());
  REQUIRE(code);
  CHECK(*code == 3);
  CHECK(acked > 0);
  const std::string log3 = proc::read_file(c.log(3));
  CHECK(contains(log3, "storage failed, node stops participating"));
  CHECK(contains(log3, "File too large"));
  CHECK(contains(log3, "handing leadership to node"));
  CHECK(contains(log3, "exit status 3"));

  // The others carry on under a new leader.
  const int next = c.wait_leader(15s, 3);
  REQUIRE(next > 0);
  CHECK(next != 3);
  const RunResult after = c.ctl({"propose", "after"});
  INFO(after.all());
  REQUIRE(after.code == 0);

  // Restarted without the limit, node 3 recovers what is durable and catches up.
  const std::size_t seen = proc::read_file(c.log(3)).size();
  c.start(3);
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  bool caught_up = false;
  while (!caught_up && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(200ms);
    const RunResult st = c.ctl({"status", "--json"});
    if (st.code != 0) continue;
    const auto parsed = proc::JsonParser(st.out).parse();
    if (!parsed) continue;
    const proc::Json& j = *parsed;
    const double commit = j["commit"].number;
    for (const auto& m : j["members"].array) {
      if (m["id"].number == 3 && m["reachable"].boolean && m["commit"].number >= commit) caught_up = true;
    }
  }
  CHECK(caught_up);
  CHECK(contains(proc::read_file(c.log(3)).substr(seen), "leader is node " + std::to_string(next)));
}

TEST_CASE("signals: SIGHUP is logged and ignored; the node keeps serving", "[process][signals]") {
  Cluster c(1);
  c.start(1);
  REQUIRE(c.wait_leader() == 1);
  c.node(1).signal(SIGHUP);
  INFO(c.logs());
  REQUIRE(wait_for_log(c.log(1), "SIGHUP ignored", 10s));
  CHECK_FALSE(c.node(1).wait_exit(300ms));
  c.node(1).signal(SIGTERM);
  const auto code = c.node(1).wait_exit(10s);
  REQUIRE(code);
  CHECK(*code == 0);
}

TEST_CASE("logging: with --log-format json every line, the node's and librlr's, is one JSON object",
          "[process][log]") {
  Cluster c(3);
  c.start(1, {"--log-format", "json", "--log-level", "debug"});
  c.start(2);
  c.start(3);
  REQUIRE(c.wait_leader() != 0);
  // Losing node 3 makes node 1's transport speak.
  c.kill9(3);
  INFO(c.logs());
  REQUIRE(wait_for_log(c.log(1), R"("component":"transport")", 15s));
  c.node(1).signal(SIGTERM);
  REQUIRE(c.node(1).wait_exit(10s));
  // Every line parses; each names its time, level, component, node and message.
  std::set<std::string> components;
  std::istringstream in(proc::read_file(c.log(1)));
  int n = 0;
  for (std::string line; std::getline(in, line);) {
    ++n;
    INFO("line " << n << ": " << line);
    const auto j = proc::JsonParser(line).parse();
    REQUIRE(j);
    REQUIRE(j->type == proc::Json::Type::Object);
    for (const char* k : {"time", "level", "component", "message"}) {
      CHECK((*j)[k].type == proc::Json::Type::String);
    }
    CHECK((*j)["node"].number == 1);
    const std::string level = (*j)["level"].string;
    CHECK((level == "debug" || level == "info" || level == "warn" || level == "error"));
    components.insert((*j)["component"].string);
  }
  CHECK(components.count("rlr-node") == 1);
  CHECK(components.count("transport") == 1);
}

TEST_CASE("kv: redis-cli round trip through the kv app", "[process][kv]") {
  const RunResult apps = proc::run({kNode, "--list-apps"});
  if (!contains(apps.out, "kv")) {
    WARN("rlr-node was built without the kv app; skipping the redis-cli round trip");
    return;
  }
  const std::string redis_cli = "/usr/bin/redis-cli";
  if (::access(redis_cli.c_str(), X_OK) != 0) {
    WARN("redis-cli is not installed (Debian package redis-tools); skipping");
    return;
  }
  const auto resp_ports = proc::free_ports(3);
  std::string resp_peers;
  for (int j = 1; j <= 3; ++j) {
    resp_peers += (j > 1 ? "," : "") + std::to_string(j) + "=127.0.0.1:" + std::to_string(resp_ports[static_cast<std::size_t>(j - 1)]);
  }
  Cluster c(3, "", [&](int i) {
    return "[app]\nname = \"kv\"\nlisten = \"127.0.0.1:" + std::to_string(resp_ports[static_cast<std::size_t>(i - 1)]) +
           "\"\nresp_peers = \"" + resp_peers + "\"\n";
  });
  c.start_all();
  const int leader = c.wait_leader();
  INFO(c.logs());
  REQUIRE(leader > 0);
  const std::string lport = std::to_string(resp_ports[static_cast<std::size_t>(leader - 1)]);
  auto cli = [&](const std::string& port, std::vector<std::string> args) {
    std::vector<std::string> argv{redis_cli, "-h", "127.0.0.1", "-p", port};
    argv.insert(argv.end(), args.begin(), args.end());
    return proc::run(argv, 20s);
  };
  // The RESP listener may come up a moment after the leader is known.
  RunResult ping;
  for (int i = 0; i < 50; ++i) {
    ping = cli(lport, {"PING"});
    if (contains(ping.out, "PONG")) break;
    std::this_thread::sleep_for(100ms);
  }
  INFO(ping.all());
  REQUIRE(contains(ping.out, "PONG"));
  const RunResult set = cli(lport, {"SET", "greeting", "hello world"});
  INFO(set.all());
  CHECK(contains(set.out, "OK"));
  const RunResult get = cli(lport, {"GET", "greeting"});
  INFO(get.all());
  CHECK(contains(get.out, "hello world"));

  // A write sent to a follower is answered with a redirect naming the leader.
  const int follower = leader == 1 ? 2 : 1;
  const RunResult moved = cli(std::to_string(resp_ports[static_cast<std::size_t>(follower - 1)]), {"SET", "k", "v"});
  INFO(moved.all());
  CHECK(contains(moved.out + moved.err, "127.0.0.1:" + lport));
}

namespace {

/// One client request over a raw connection to one node (no redirects): the reply, or
/// a description of what went wrong.
std::variant<rlr::wire::ClientReply, std::string> raw_request(std::uint16_t port, rlr::wire::ClientRequest req) {
  namespace wire = rlr::wire;
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return std::string("connect failed");
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  auto write_all = [fd](const wire::Frame& f) {
    std::size_t off = 0;
    while (off < f.size()) {
      const ssize_t n = ::write(fd, f.data() + off, f.size() - off);
      if (n <= 0) return false;
      off += static_cast<std::size_t>(n);
    }
    return true;
  };
  const std::uint64_t tag = wire::cluster_tag(kCluster);
  wire::FrameReader reader(tag, 1U << 20);
  auto next_frame = [&]() -> std::optional<wire::FrameReader::Item> {
    for (;;) {
      auto item = reader.next();
      if (!item) return std::nullopt;
      if (item.value()) return *item.value();
      std::uint8_t buf[4096];
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) return std::nullopt;
      reader.feed(std::span<const std::uint8_t>(buf, static_cast<std::size_t>(n)));
    }
  };
  wire::Hello h;
  h.kind = wire::PeerKind::Client;
  h.cluster_id = kCluster;
  if (!write_all(wire::encode_hello(h))) return std::string("hello not sent");
  auto ack = next_frame();
  if (!ack || ack->header.type != wire::FrameType::HelloAck) return std::string("no HelloAck");
  if (!write_all(wire::encode_client_request(req, tag))) return std::string("request not sent");
  for (;;) {
    auto f = next_frame();
    if (!f) return std::string("no reply");
    if (f->header.type != wire::FrameType::ClientReply) continue;
    auto r = wire::decode_client_reply(f->payload);
    if (!r) return "bad reply: " + r.status().to_string();
    if (r.value().request_id == req.request_id) return std::move(r).value();
  }
}

rlr::wire::ClientRequest propose_request(const std::string& text, std::uint64_t client_id, std::uint64_t seq) {
  rlr::wire::ClientRequest req;
  req.request_id = 7;
  req.timeout_ms = 5000;
  rlr::wire::ProposeRequest p;
  p.command = rlr::Bytes::copy_of(text);
  p.client_id = client_id;
  p.sequence = seq;
  req.body = p;
  return req;
}

}  // namespace

TEST_CASE("redirect: a follower answers a raw Propose with NotLeader naming the leader's address",
          "[process][redirect]") {
  Cluster c(3);
  c.start_all();
  const int leader = c.wait_leader();
  INFO(c.logs());
  REQUIRE(leader > 0);
  const int follower = leader == 1 ? 2 : 1;
  auto r = raw_request(c.port(follower), propose_request("x", 42, 1));
  REQUIRE(std::holds_alternative<rlr::wire::ClientReply>(r));
  const auto& reply = std::get<rlr::wire::ClientReply>(r);
  CHECK(reply.status.code() == rlr::ErrorCode::NotLeader);
  CHECK(reply.leader.value() == static_cast<std::uint64_t>(leader));
  CHECK(reply.leader_address == c.address(leader));
}

TEST_CASE("forwarding: with forward_proposals a follower relays a Propose to the leader",
          "[process][forwarding]") {
  Cluster c(3, "forward_proposals = true");
  c.start_all();
  const int leader = c.wait_leader();
  INFO(c.logs());
  REQUIRE(leader > 0);
  const int follower = leader == 1 ? 2 : 1;
  auto r = raw_request(c.port(follower), propose_request("forwarded", 77, 1));
  REQUIRE(std::holds_alternative<rlr::wire::ClientReply>(r));
  const auto& reply = std::get<rlr::wire::ClientReply>(r);
  INFO(reply.status.to_string());
  REQUIRE(reply.status.is_ok());
  REQUIRE(reply.propose);
  CHECK(reply.request_id == 7);
  // The client's session travelled with it: the same (client, sequence) sent to the
  // leader directly is the same entry.
  auto again = raw_request(c.port(leader), propose_request("forwarded", 77, 1));
  REQUIRE(std::holds_alternative<rlr::wire::ClientReply>(again));
  const auto& direct = std::get<rlr::wire::ClientReply>(again);
  REQUIRE(direct.propose);
  CHECK(direct.propose->index == reply.propose->index);
}

TEST_CASE("membership: add-learner, promote, transfer-leader and remove through rlr-ctl",
          "[process][membership]") {
  Cluster c(3, "", nullptr, 1);
  c.start_all();
  c.start(4);
  const int leader = c.wait_leader();
  INFO(c.logs());
  REQUIRE(leader > 0);
  REQUIRE(c.ctl({"propose", "before the learner"}).code == 0);

  const RunResult add = c.ctl({"add-learner", "4", c.address(4)});
  INFO(add.all());
  REQUIRE(add.code == 0);
  auto member4 = [&]() -> std::optional<proc::Json> {
    const RunResult s = c.ctl({"status", "--json"});
    auto j = proc::JsonParser(s.out).parse();
    if (!j) return std::nullopt;
    for (const auto& m : (*j)["members"].array) {
      if (static_cast<int>(m["id"].number) == 4) return m;
    }
    return std::nullopt;
  };
  auto m = member4();
  REQUIRE(m);
  CHECK(!(*m)["voter"].boolean);
  CHECK((*m)["reachable"].boolean);

  const RunResult promote = c.ctl({"promote", "4"});
  INFO(promote.all());
  REQUIRE(promote.code == 0);
  m = member4();
  REQUIRE(m);
  CHECK((*m)["voter"].boolean);

  const RunResult transfer = c.ctl({"transfer-leader", "4"});
  INFO(transfer.all());
  REQUIRE(transfer.code == 0);
  CHECK(c.wait_leader(10s, leader) == 4);

  const RunResult remove = c.ctl({"remove", std::to_string(leader)});
  INFO(remove.all());
  REQUIRE(remove.code == 0);
  const RunResult s = c.ctl({"status", "--json"});
  auto j = proc::JsonParser(s.out).parse();
  REQUIRE(j);
  CHECK((*j)["members"].array.size() == 3);
  CHECK(c.ctl({"propose", "after the changes"}).code == 0);
  CHECK(wait_for_log(c.log(4), "elected leader", 5s));
}

TEST_CASE("subscribe: rlr-ctl watch resumes after its node is killed, without gaps or repeats",
          "[process][subscribe]") {
  Cluster c(3);
  c.start_all();
  const int leader = c.wait_leader();
  INFO(c.logs());
  REQUIRE(leader > 0);
  for (const char* t : {"a1", "a2", "a3"}) REQUIRE(c.ctl({"propose", t}).code == 0);

  // Bootstrap from the leader first: the stream starts there, and then loses it.
  std::string boot = c.address(leader);
  for (int i = 1; i <= 3; ++i) {
    if (i != leader) boot += "," + c.address(i);
  }
  const std::string out = c.dir().file("watch.out");
  Process watch({kCtl, "--cluster", kCluster, "--bootstrap", boot, "--timeout-ms", "20000", "watch", "--count", "6"},
                out, c.dir().file("watch.err"));
  auto lines = [&] {
    std::vector<std::string> v;
    std::istringstream in(proc::read_file(out));
    for (std::string l; std::getline(in, l);) v.push_back(l);
    return v;
  };
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (lines().size() < 3 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(50ms);
  REQUIRE(lines().size() == 3);

  c.kill9(leader);
  REQUIRE(c.wait_leader(15s, leader) > 0);
  for (const char* t : {"b1", "b2", "b3"}) REQUIRE(c.ctl({"propose", t}).code == 0);

  const auto code = watch.wait_exit(20s);
  INFO(proc::read_file(out) << "\n" << proc::read_file(c.dir().file("watch.err")));
  REQUIRE(code);
  CHECK(*code == 0);
  const auto got = lines();
  REQUIRE(got.size() == 6);
  const std::vector<std::string> want{"a1", "a2", "a3", "b1", "b2", "b3"};
  std::uint64_t last = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    std::istringstream l(got[i]);
    std::uint64_t index = 0;
    std::uint64_t term = 0;
    std::string text;
    l >> index >> term >> text;
    CHECK(index > last);
    CHECK(text == want[i]);
    last = index;
  }
}

TEST_CASE("subscribe: rlr-ctl watch shows sessions as fields, and the runtime's entries only with --all",
          "[process][subscribe]") {
  Cluster c(3);
  c.start_all();
  INFO(c.logs());
  REQUIRE(c.wait_leader() > 0);
  REQUIRE(c.ctl({"propose", "x1"}).code == 0);
  REQUIRE(c.ctl({"propose", "x2"}).code == 0);

  // Two commands, each from its own rlr-ctl (its own client session), sequence 1.
  const RunResult sessions = c.ctl({"watch", "--count", "2", "--sessions"});
  INFO(sessions.all());
  REQUIRE(sessions.code == 0);
  std::istringstream s(sessions.out);
  std::set<std::string> clients;
  for (const char* want : {"x1", "x2"}) {
    std::uint64_t index = 0;
    std::uint64_t term = 0;
    std::string session;
    std::string text;
    s >> index >> term >> session >> text;
    CHECK(text == want);
    const auto colon = session.find(':');
    REQUIRE(colon != std::string::npos);
    CHECK(session.substr(0, colon) != "0");
    CHECK(session.substr(colon + 1) == "1");
    clients.insert(session.substr(0, colon));
  }
  CHECK(clients.size() == 2);

  // --all: every index in order, the first leader's no-op first (a second election may
  // add another before the commands).
  const RunResult all = c.ctl({"watch", "--count", "3", "--all"});
  INFO(all.all());
  REQUIRE(all.code == 0);
  std::istringstream a(all.out);
  std::vector<std::string> texts;
  std::uint64_t expect = 1;
  for (std::string line; std::getline(a, line);) {
    std::istringstream l(line);
    std::uint64_t index = 0;
    std::uint64_t term = 0;
    std::string text;
    l >> index >> term >> text;
    CHECK(index == expect++);
    texts.push_back(text);
  }
  REQUIRE(texts.size() == 3);
  CHECK(texts[0] == "<noop>");
  const std::vector<std::string> commands_first{"x1", "x2"};
  std::size_t k = 0;
  for (std::size_t i = 1; i < texts.size(); ++i) {
    if (texts[i] == "<noop>") continue;
    REQUIRE(k < commands_first.size());
    CHECK(texts[i] == commands_first[k++]);
  }
  CHECK(k >= 1);
}
