// The log hook (rlr/log.h): record formats, levels, the fatal handler, and a node that
// says everything through its sink and nothing on stderr.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "rlr/log.h"
#include "rlr/node.h"
#include "tcp_cluster.h"
#include "util/invariant.h"
#include "util/logger.h"

using namespace rlr;
using namespace std::chrono_literals;

namespace {

/// 2026-12-07T10:00:00.123456Z
std::chrono::system_clock::time_point fixed_time() {
  return std::chrono::system_clock::time_point{std::chrono::seconds{1'796'637'600}} + 123'456us;
}

/// Keeps copies of every record it is given.
class CaptureSink final : public LogSink {
 public:
  struct Copy {
    LogLevel level;
    std::string component;
    NodeId node;
    std::string message;
    std::vector<std::pair<std::string, std::string>> fields;
    [[nodiscard]] std::string field(std::string_view key) const {
      for (const auto& [k, v] : fields) {
        if (k == key) return v;
      }
      return {};
    }
  };
  explicit CaptureSink(LogLevel min) : min_(min) {}
  void write(const LogRecord& r) noexcept override {
    Copy c{r.level, std::string(r.component), r.node, std::string(r.message), {}};
    for (const LogField& f : r.fields) c.fields.emplace_back(f.key, f.value);
    std::lock_guard lock(mu_);
    records_.push_back(std::move(c));
  }
  [[nodiscard]] LogLevel min_level() const noexcept override { return min_; }
  [[nodiscard]] std::vector<Copy> records() const {
    std::lock_guard lock(mu_);
    return records_;
  }

 private:
  const LogLevel min_;
  mutable std::mutex mu_;
  std::vector<Copy> records_;
};

/// Sends fd 2 to a file for its lifetime, then puts it back.
class StderrToFile {
 public:
  explicit StderrToFile(const std::filesystem::path& file) {
    std::fflush(stderr);
    saved_ = ::dup(STDERR_FILENO);
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    REQUIRE(saved_ >= 0);
    REQUIRE(fd >= 0);
    REQUIRE(::dup2(fd, STDERR_FILENO) == STDERR_FILENO);
    ::close(fd);
  }
  ~StderrToFile() {
    std::fflush(stderr);
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
  }
  StderrToFile(const StderrToFile&) = delete;
  StderrToFile& operator=(const StderrToFile&) = delete;

 private:
  int saved_ = -1;
};

std::string file_contents(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("log: a text line has the time, level, component, node, message and fields", "[log]") {
  const LogField fields[] = {{"peer", "2"}, {"address", "127.0.0.1:7002"}, {"why", "no route = \"down\""}};
  LogRecord r;
  r.level = LogLevel::Warn;
  r.component = "transport";
  r.node = NodeId{1};
  r.message = "dial failed\nagain";
  r.fields = fields;
  r.time = fixed_time();
  CHECK(format_log_record(r, LogFormat::Text) ==
        "2026-12-07T10:00:00.123456Z WARN  transport node=1: dial failed again peer=2 "
        "address=127.0.0.1:7002 why=\"no route = \\\"down\\\"\"");

  r.node = kNoNode;
  r.fields = {};
  r.level = LogLevel::Error;
  r.message = "x";
  CHECK(format_log_record(r, LogFormat::Text) == "2026-12-07T10:00:00.123456Z ERROR transport: x");
}

TEST_CASE("log: a JSON line is one object with escaped strings; a field never hides a member",
          "[log]") {
  const LogField fields[] = {{"peer", "2"}, {"node", "shadow"}, {"tab", "a\tb\x01"}};
  LogRecord r;
  r.level = LogLevel::Info;
  r.component = "node";
  r.node = NodeId{7};
  r.message = "say \"hi\" \\ bye\n";
  r.fields = fields;
  r.time = fixed_time();
  CHECK(format_log_record(r, LogFormat::Json) ==
        R"({"time":"2026-12-07T10:00:00.123456Z","level":"info","component":"node","node":7,)"
        R"("message":"say \"hi\" \\ bye\n","peer":"2","field.node":"shadow","tab":"a\tb\u0001"})");
}

TEST_CASE("log: levels parse from their names and nothing else", "[log]") {
  for (LogLevel l : {LogLevel::Debug, LogLevel::Info, LogLevel::Warn, LogLevel::Error}) {
    LogLevel out = l == LogLevel::Debug ? LogLevel::Error : LogLevel::Debug;
    REQUIRE(parse_log_level(to_string(l), out));
    CHECK(out == l);
  }
  LogLevel out = LogLevel::Info;
  CHECK_FALSE(parse_log_level("WARN", out));
  CHECK_FALSE(parse_log_level("warning", out));
  CHECK_FALSE(parse_log_level("", out));
  CHECK(out == LogLevel::Info);
}

TEST_CASE("log: a Logger passes records at or above the sink's level, stamped with its node",
          "[log]") {
  auto sink = std::make_shared<CaptureSink>(LogLevel::Warn);
  const util::Logger log(sink, "node", NodeId{3});
  CHECK_FALSE(log.enabled(LogLevel::Info));
  CHECK(log.enabled(LogLevel::Warn));
  log.log(LogLevel::Info, "quiet");
  log.logf(LogLevel::Debug, {}, "quieter {}", 1);
  log.logf(LogLevel::Error, {{"k", "v"}}, "loud {}", 2);
  const auto got = sink->records();
  REQUIRE(got.size() == 1);
  CHECK(got[0].level == LogLevel::Error);
  CHECK(got[0].component == "node");
  CHECK(got[0].node == NodeId{3});
  CHECK(got[0].message == "loud 2");
  CHECK(got[0].field("k") == "v");

  const util::Logger none;  // no sink: drops everything
  CHECK_FALSE(none.enabled(LogLevel::Error));
  none.log(LogLevel::Error, "nowhere");
}

namespace {
std::string g_fatal_report;
void capture_fatal(std::string_view report) noexcept { g_fatal_report = report; }
}  // namespace

TEST_CASE("log: an invariant's report goes to the installed fatal handler", "[log]") {
  const FatalHandler before = set_fatal_handler(&capture_fatal);
  util::report_fatal("replica.cpp:1: invariant violated: x [y]\n");
  CHECK(set_fatal_handler(before) == &capture_fatal);
  CHECK(g_fatal_report == "replica.cpp:1: invariant violated: x [y]\n");
}

TEST_CASE("log: a node says what its transport sees through its sink, and nothing on stderr",
          "[log][tcp]") {
  testing::TempDir dir;
  auto sink = std::make_shared<CaptureSink>(LogLevel::Debug);
  const std::uint16_t self = testing::free_port();
  // Peers 2 and 3 are on ports nobody listens on: every dial to them fails.
  const std::uint16_t dead2 = testing::free_port();
  const std::uint16_t dead3 = testing::free_port();
  const auto stderr_file = dir.path() / "stderr";
  {
    const StderrToFile redirect(stderr_file);
    auto built = NodeBuilder()
                     .cluster_id("log-test")
                     .id(NodeId{1})
                     .listen("127.0.0.1", self)
                     .member(NodeId{1}, "127.0.0.1", self)
                     .member(NodeId{2}, "127.0.0.1", dead2)
                     .member(NodeId{3}, "127.0.0.1", dead3)
                     .data_dir((dir.path() / "n1").string())
                     .log_sink(sink)
                     .build();
    REQUIRE(built.is_ok());
    auto node = std::move(built).value();
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    auto said_about = [&](std::string_view peer) {
      for (const auto& r : sink->records()) {
        if (r.component == "transport" && r.field("peer") == peer) return true;
      }
      return false;
    };
    while ((!said_about("2") || !said_about("3")) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(10ms);
    }
    node->stop();
  }
  const auto records = sink->records();
  bool found = false;
  for (const auto& r : records) {
    if (r.component != "transport" || r.field("peer") != "2") continue;
    found = true;
    CHECK(r.node == NodeId{1});
    CHECK(r.level == LogLevel::Warn);
    CHECK(r.field("address") == fmt::format("127.0.0.1:{}", dead2));
    CHECK_FALSE(r.message.empty());
  }
  CHECK(found);
  CHECK(file_contents(stderr_file).empty());
}
