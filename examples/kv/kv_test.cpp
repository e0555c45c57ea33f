// The kv example: the RESP parser (incremental, pipelined, malformed input), the command
// codec, the state machine, and the RESP server end to end over a loopback socket against
// a fake node.
#include <catch2/catch.hpp>

#include <utility>  // before Boost.Asio

#include <atomic>
#include <filesystem>
#include <random>

#include <unistd.h>

#include <boost/asio.hpp>
#include <fmt/format.h>

#include "kv/kv_app.h"
#include "kv/kv_store.h"
#include "kv/resp.h"
#include "kv/resp_server.h"
#include "rlr/node.h"

using rlr::kv::resp::Parser;
using Args = std::vector<std::string>;

namespace {

/// Feeds `input` in pieces of `chunk` bytes and collects every command (and the error).
std::vector<Args> parse_all(std::string_view input, std::size_t chunk, std::string* error = nullptr) {
  Parser p;
  std::vector<Args> out;
  Args args;
  std::string err;
  for (std::size_t i = 0; i < input.size(); i += chunk) {
    p.feed(input.substr(i, chunk));
    while (true) {
      const auto s = p.next(args, err);
      if (s == Parser::State::Command) {
        out.push_back(args);
        continue;
      }
      if (s == Parser::State::Error && error != nullptr) *error = err;
      if (s == Parser::State::Error) return out;
      break;
    }
  }
  return out;
}

}  // namespace

TEST_CASE("resp: a multibulk command, whole and byte by byte", "[kv][resp]") {
  const std::string req = "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\n";
  for (std::size_t chunk : {req.size(), std::size_t{1}, std::size_t{2}, std::size_t{7}}) {
    INFO("chunk " << chunk);
    const auto cmds = parse_all(req, chunk);
    REQUIRE(cmds.size() == 1);
    CHECK(cmds[0] == Args{"SET", "key", "va\r\nl"});  // binary-safe bulk strings
  }
}

TEST_CASE("resp: pipelined commands come out one at a time, in order", "[kv][resp]") {
  std::string req;
  for (int i = 0; i < 50; ++i) {
    req += fmt::format("*2\r\n$3\r\nGET\r\n${}\r\nk{}\r\n", std::to_string(i).size() + 1, i);
  }
  req += "PING\r\nECHO \"hello world\"\n*0\r\n\r\nGET 'a b'\r\n";
  for (std::size_t chunk : {req.size(), std::size_t{1}, std::size_t{5}, std::size_t{64}}) {
    const auto cmds = parse_all(req, chunk);
    REQUIRE(cmds.size() == 53);
    for (int i = 0; i < 50; ++i) CHECK(cmds[static_cast<std::size_t>(i)] == Args{"GET", fmt::format("k{}", i)});
    CHECK(cmds[50] == Args{"PING"});
    CHECK(cmds[51] == Args{"ECHO", "hello world"});
    CHECK(cmds[52] == Args{"GET", "a b"});
  }
}

TEST_CASE("resp: an incomplete command waits for more bytes", "[kv][resp]") {
  Parser p;
  Args args;
  std::string err;
  p.feed("*2\r\n$3\r\nGET\r\n$10\r\n01234");
  CHECK(p.next(args, err) == Parser::State::NeedMore);
  p.feed("56789\r");
  CHECK(p.next(args, err) == Parser::State::NeedMore);
  p.feed("\n");
  REQUIRE(p.next(args, err) == Parser::State::Command);
  CHECK(args == Args{"GET", "0123456789"});
  CHECK(p.next(args, err) == Parser::State::NeedMore);
  CHECK(p.buffered() == 0);
}

TEST_CASE("resp: malformed input is a protocol error, and stays one", "[kv][resp]") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"*x\r\n", "invalid multibulk length"},
      {"*99999999999\r\n", "invalid multibulk length"},
      {"*1\r\n:5\r\n", "expected '$'"},
      {"*1\r\n$-5\r\n", "invalid bulk length"},
      {"*1\r\n$abc\r\n", "invalid bulk length"},
      {"*1\r\n$999999999\r\n", "invalid bulk length"},
      {"*1\r\n$3\r\nGETxx", "not terminated by CRLF"},
      {"GET \"unterminated\r\n", "unbalanced quotes"},
      {std::string(70 * 1024, 'a'), "too big inline request"},
      {"*" + std::string(100, '1'), "invalid multibulk length"},
  };
  for (const auto& [input, want] : cases) {
    INFO("input: " << input.substr(0, 40));
    std::string err;
    const auto cmds = parse_all(input, input.size(), &err);
    CHECK(cmds.empty());
    CHECK(err.find(want) != std::string::npos);
  }
  Parser p;
  Args args;
  std::string err;
  p.feed("*1\r\n:5\r\n*1\r\n$4\r\nPING\r\n");
  CHECK(p.next(args, err) == Parser::State::Error);
  CHECK(p.next(args, err) == Parser::State::Error);  // no resynchronization
}

TEST_CASE("resp: arbitrary bytes never crash the parser", "[kv][resp]") {
  std::mt19937_64 rng(11);
  const std::string alphabet = "*$\r\n0123456789-GETSPING \"'";
  for (int round = 0; round < 3000; ++round) {
    std::string input;
    const std::size_t n = rng() % 200;
    for (std::size_t i = 0; i < n; ++i) {
      input.push_back(rng() % 4 == 0 ? static_cast<char>(rng() % 256) : alphabet[rng() % alphabet.size()]);
    }
    Parser p;
    Args args;
    std::string err;
    std::size_t i = 0;
    while (i < input.size()) {
      const std::size_t k = 1 + rng() % 16;
      p.feed(std::string_view(input).substr(i, k));
      i += k;
      Parser::State s;
      while ((s = p.next(args, err)) == Parser::State::Command) {
      }
      if (s == Parser::State::Error) break;
    }
  }
  SUCCEED("no crash");
}

TEST_CASE("resp: reply encoders", "[kv][resp]") {
  using namespace rlr::kv::resp;
  CHECK(simple("OK") == "+OK\r\n");
  CHECK(error("ERR x") == "-ERR x\r\n");
  CHECK(integer(-3) == ":-3\r\n");
  CHECK(bulk("a\r\nb") == "$4\r\na\r\nb\r\n");
  CHECK(null_bulk() == "$-1\r\n");
  CHECK(array({bulk("a"), integer(1)}) == "*2\r\n$1\r\na\r\n:1\r\n");
}

TEST_CASE("kv commands round-trip; malformed ones are rejected", "[kv][codec]") {
  const rlr::kv::KvCommand put{rlr::kv::Op::Put, {"k", std::string("v\0v", 3)}};
  const rlr::kv::KvCommand del{rlr::kv::Op::Delete, {"a", "b", "c"}};
  for (const auto& c : {put, del}) {
    auto bytes = rlr::kv::encode(c);
    auto back = rlr::kv::decode(bytes.span());
    REQUIRE(back);
    CHECK(back.value() == c);
    // Every strict prefix and every one-byte extension is malformed.
    for (std::size_t n = 0; n < bytes.size(); ++n) CHECK(!rlr::kv::decode(bytes.span().first(n)));
    std::vector<std::uint8_t> longer(bytes.span().begin(), bytes.span().end());
    longer.push_back(0);
    CHECK(!rlr::kv::decode(longer));
  }
  CHECK(!rlr::kv::decode(rlr::kv::encode({rlr::kv::Op::Put, {"only-key"}}).span()));
  CHECK(!rlr::kv::decode(rlr::kv::encode({rlr::kv::Op::Delete, {}}).span()));
  std::mt19937_64 rng(3);
  for (int i = 0; i < 5000; ++i) {
    std::vector<std::uint8_t> junk(rng() % 40);
    for (auto& b : junk) b = static_cast<std::uint8_t>(rng());
    if (junk.size() > 4 && i % 2 == 0) {
      junk[0] = 'K';
      junk[1] = 'V';
      junk[2] = 1;
      junk[3] = i % 4 == 0 ? 'P' : 'D';
    }
    (void)rlr::kv::decode(junk);
  }
}

namespace {

class NullEgress final : public rlr::Egress {
 public:
  void emit(std::string_view, rlr::Bytes) override {}
};

void apply(rlr::kv::KvStore& store, std::uint64_t index, const rlr::Bytes& payload) {
  NullEgress egress;
  rlr::ApplyContext ctx;
  ctx.index = rlr::LogIndex{index};
  store.apply(rlr::Entry{rlr::LogIndex{index}, rlr::Term{1}, rlr::EntryKind::Normal, payload}, ctx,
              egress);
}

}  // namespace

TEST_CASE("the kv state machine applies puts and deletes; results reach waiters", "[kv][sm]") {
  rlr::kv::KvStore store;
  std::optional<rlr::kv::KvResult> r3;
  store.when_applied(rlr::LogIndex{3}, [&](std::optional<rlr::kv::KvResult> r) { r3 = r; });
  apply(store, 1, rlr::kv::encode({rlr::kv::Op::Put, {"a", "1"}}));
  apply(store, 2, rlr::kv::encode({rlr::kv::Op::Put, {"b", "2"}}));
  CHECK(!r3);
  apply(store, 3, rlr::kv::encode({rlr::kv::Op::Delete, {"a", "zz"}}));
  REQUIRE(r3);
  CHECK(r3->ok);
  CHECK(r3->deleted == 1);
  CHECK(!store.get("a"));
  CHECK(store.get("b") == "2");
  CHECK(store.size() == 1);
  CHECK(store.last_applied() == rlr::LogIndex{3});
  // A malformed entry changes nothing and yields an error result.
  apply(store, 4, rlr::Bytes::copy_of("garbage"));
  std::optional<rlr::kv::KvResult> r4;
  store.when_applied(rlr::LogIndex{4}, [&](std::optional<rlr::kv::KvResult> r) { r4 = r; });
  REQUIRE(r4);
  CHECK(!r4->ok);
  CHECK(store.size() == 1);
  // wait_applied: satisfied by the store or by the runner's progress.
  const auto soon = std::chrono::steady_clock::now() + std::chrono::milliseconds(20);
  CHECK(store.wait_applied(rlr::LogIndex{4}, {}, soon));
  CHECK(!store.wait_applied(rlr::LogIndex{6}, [] { return rlr::LogIndex{5}; }, soon));
  CHECK(store.wait_applied(rlr::LogIndex{6}, [] { return rlr::LogIndex{6}; }, soon));
}

namespace {

/// A single-node "cluster": proposals apply at once to the store, in order.
class FakeNode final : public rlr::Node {
 public:
  explicit FakeNode(rlr::kv::KvStore& store) : store_(store) {}
  std::atomic<rlr::Role> current_role{rlr::Role::Leader};
  /// When set, proposals are held (not committed) until release_held().
  std::atomic<bool> hold{false};

  void release_held() {
    std::vector<std::pair<rlr::Bytes, rlr::ProposeCallback>> held;
    {
      std::lock_guard lock(mu_);
      held.swap(held_);
    }
    for (auto& [cmd, done] : held) propose(std::move(cmd), std::move(done));
  }
  [[nodiscard]] std::size_t held_count() const {
    std::lock_guard lock(mu_);
    return held_.size();
  }

  void propose(rlr::Bytes command, rlr::ProposeCallback done) override {
    if (hold.load()) {
      std::lock_guard lock(mu_);
      held_.emplace_back(std::move(command), std::move(done));
      return;
    }
    std::uint64_t index = 0;
    {
      std::lock_guard lock(mu_);
      index = ++last_;
      apply(store_, index, command);
    }
    done(rlr::ProposeResult{rlr::LogIndex{index}, rlr::Term{1}});
  }
  void propose(rlr::Bytes command, rlr::ClientSession, rlr::ProposeCallback done) override {
    propose(std::move(command), std::move(done));
  }
  rlr::Result<rlr::ProposeResult> propose_sync(rlr::Bytes, std::chrono::milliseconds) override {
    return rlr::Status{rlr::ErrorCode::InvalidArgument, "unused"};
  }
  rlr::Result<std::unique_ptr<rlr::Subscription>> subscribe(rlr::LogIndex, rlr::SubscribeOptions) override {
    return rlr::Status{rlr::ErrorCode::InvalidArgument, "unused"};
  }
  rlr::Role role() const override { return current_role.load(); }
  rlr::NodeId leader() const override { return rlr::NodeId{current_role.load() == rlr::Role::Leader ? 1U : 2U}; }
  rlr::Address leader_address() const override { return rlr::Address{"127.0.0.1", 7002}; }
  rlr::ClusterInfo cluster_info() const override { return {}; }
  rlr::Result<rlr::LogIndex> read_index(std::chrono::milliseconds) override {
    if (current_role.load() != rlr::Role::Leader) return rlr::Status::not_leader(leader());
    std::lock_guard lock(mu_);
    return rlr::LogIndex{last_};
  }
  rlr::Status add_learner(const rlr::MemberAddress&, std::chrono::milliseconds) override { return {}; }
  rlr::Status promote(rlr::NodeId, std::chrono::milliseconds) override { return {}; }
  rlr::Status remove(rlr::NodeId, std::chrono::milliseconds) override { return {}; }
  rlr::Status transfer_leadership(rlr::NodeId, std::chrono::milliseconds) override { return {}; }
  rlr::Result<std::shared_ptr<rlr::ApplyRunner>> attach(std::shared_ptr<rlr::RoleAwareStateMachine>,
                                                        rlr::ApplyOptions) override {
    return rlr::Status{rlr::ErrorCode::InvalidArgument, "unused"};
  }
  void stop() override {}

 private:
  rlr::kv::KvStore& store_;
  mutable std::mutex mu_;
  std::uint64_t last_ = 0;
  std::vector<std::pair<rlr::Bytes, rlr::ProposeCallback>> held_;
};

/// A blocking RESP client over a real socket.
class TestClient {
 public:
  explicit TestClient(std::uint16_t port) : socket_(ioc_) {
    socket_.connect({boost::asio::ip::make_address("127.0.0.1"), port});
  }
  void send(std::string_view bytes) { boost::asio::write(socket_, boost::asio::buffer(bytes)); }
  /// Reads until `n` complete replies arrived (each reply: one line, or a bulk of two).
  std::string read_replies(int n) {
    std::string got;
    int complete = 0;
    std::size_t pos = 0;
    while (complete < n) {
      std::array<char, 4096> buf{};
      boost::system::error_code ec;
      const std::size_t k = socket_.read_some(boost::asio::buffer(buf), ec);
      if (ec) break;
      got.append(buf.data(), k);
      while (true) {
        const auto nl = got.find("\r\n", pos);
        if (nl == std::string::npos) break;
        const bool bulk_header = got[pos] == '$' && got.compare(pos, 4, "$-1\r") != 0;
        if (bulk_header) {
          const auto len = std::stoul(got.substr(pos + 1, nl - pos - 1));
          if (got.size() < nl + 2 + len + 2) break;
          pos = nl + 2 + len + 2;
        } else {
          pos = nl + 2;
        }
        ++complete;
      }
    }
    return got;
  }
  bool closed_by_peer() {
    std::array<char, 16> buf{};
    boost::system::error_code ec;
    (void)socket_.read_some(boost::asio::buffer(buf), ec);
    return ec == boost::asio::error::eof || ec == boost::asio::error::connection_reset;
  }

 private:
  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::socket socket_;
};

struct ServerFixture {
  ServerFixture()
      : store(std::make_shared<rlr::kv::KvStore>()),
        node(*store),
        service(node, store, {}, {}),
        server(std::move(rlr::kv::RespServer::start(service, "127.0.0.1", 0)).value()) {}
  ~ServerFixture() {
    server->stop();
    service.stop();
  }
  std::shared_ptr<rlr::kv::KvStore> store;
  FakeNode node;
  rlr::kv::KvService service;
  std::unique_ptr<rlr::kv::RespServer> server;
};

}  // namespace

TEST_CASE("resp server: SET/GET/DEL/PING, pipelined, answered in order", "[kv][server]") {
  ServerFixture f;
  TestClient c(f.server->port());
  c.send("PING\r\n");
  CHECK(c.read_replies(1) == "+PONG\r\n");
  std::string pipeline;
  pipeline += "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv1\r\n";
  pipeline += "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
  pipeline += "SET k v2\r\n";
  pipeline += "GET k\r\n";
  pipeline += "GET missing\r\n";
  pipeline += "DEL k missing\r\n";
  pipeline += "EXISTS k\r\n";
  pipeline += "CONFIG GET save\r\n";
  pipeline += "FOO bar\r\n";
  pipeline += "GET\r\n";
  c.send(pipeline);
  const std::string want =
      "+OK\r\n"
      "$2\r\nv1\r\n"
      "+OK\r\n"
      "$2\r\nv2\r\n"
      "$-1\r\n"
      ":1\r\n"
      ":0\r\n"
      "*2\r\n$4\r\nsave\r\n$0\r\n\r\n"
      "-ERR unknown command 'FOO', with args beginning with: 'bar' \r\n"
      "-ERR wrong number of arguments for 'get' command\r\n";
  // The CONFIG reply counts as three "replies" for the reader (array header plus two bulks).
  CHECK(c.read_replies(12) == want);
}

TEST_CASE("resp server: a follower answers writes and reads with the leader's address", "[kv][server]") {
  ServerFixture f;
  f.node.current_role = rlr::Role::Follower;
  TestClient c(f.server->port());
  c.send("SET a b\r\nGET a\r\nPING\r\n");
  CHECK(c.read_replies(3) ==
        "-ERR not leader; leader is 2 at 127.0.0.1:7002\r\n"
        "-ERR not leader; leader is 2 at 127.0.0.1:7002\r\n"
        "+PONG\r\n");
}

TEST_CASE("resp server: a protocol error is answered, then the connection closes", "[kv][server]") {
  ServerFixture f;
  TestClient c(f.server->port());
  c.send("PING\r\n*1\r\n:bad\r\nPING\r\n");
  CHECK(c.read_replies(2) == "+PONG\r\n-ERR Protocol error: expected '$', got ':'\r\n");
  CHECK(c.closed_by_peer());
  // The server keeps serving others.
  TestClient d(f.server->port());
  d.send("QUIT\r\n");
  CHECK(d.read_replies(1) == "+OK\r\n");
  CHECK(d.closed_by_peer());
}

TEST_CASE("resp server: many clients writing and reading concurrently", "[kv][server]") {
  ServerFixture f;
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      TestClient c(f.server->port());
      for (int i = 0; i < 100; ++i) {
        c.send(fmt::format("SET k{} v{}\r\nGET k{}\r\n", t, i, t));
        const std::string want = fmt::format("+OK\r\n${}\r\nv{}\r\n", std::to_string(i).size() + 1, i);
        if (c.read_replies(2) != want) ++bad;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(bad == 0);
  CHECK(f.store->size() == 8);
}

TEST_CASE("resp server: a write answered after the server is gone is dropped safely", "[kv][server]") {
  auto store = std::make_shared<rlr::kv::KvStore>();
  FakeNode node(*store);
  node.hold = true;
  {
    rlr::kv::KvService service(node, store, {}, {});
    auto server = std::move(rlr::kv::RespServer::start(service, "127.0.0.1", 0)).value();
    TestClient c(server->port());
    c.send("PING\r\nSET a 1\r\nSET b 2\r\n");
    CHECK(c.read_replies(1) == "+PONG\r\n");
    for (int i = 0; i < 200 && node.held_count() < 2; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    REQUIRE(node.held_count() == 2);
    server->stop();
    service.stop();
  }
  // The commits arrive after the server and its io_context are gone.
  node.hold = false;
  node.release_held();
  CHECK(store->get("a") == "1");
  CHECK(store->get("b") == "2");
}

TEST_CASE("kv app on a real node: linearizable GET through ReadIndex, SET/DEL through the log", "[kv][node]") {
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("rlr-kv-test-{}", ::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const auto free_port = [] {
    boost::asio::io_context io;
    boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
    return a.local_endpoint().port();
  };
  const std::uint16_t raft_port = free_port();
  const std::uint16_t resp_port = free_port();
  auto built = rlr::NodeBuilder()
                   .cluster_id("kv-test")
                   .id(rlr::NodeId{1})
                   .listen("127.0.0.1", raft_port)
                   .member(rlr::NodeId{1}, "127.0.0.1", raft_port)
                   .data_dir((dir / "n1").string())
                   .tick(std::chrono::milliseconds{5})
                   .build();
  INFO(built.status().to_string());
  REQUIRE(built);
  auto node = std::move(built).value();
  rlr::apps::AppContext ctx{*node, dir.string(), {{"listen", fmt::format("127.0.0.1:{}", resp_port)}},
                            rlr::EgressMode::LeaderOnly};
  auto app = rlr::kv::make_app();
  REQUIRE(app->start(ctx).is_ok());
  TestClient c(resp_port);
  for (int i = 0; i < 400 && node->role() != rlr::Role::Leader; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  REQUIRE(node->role() == rlr::Role::Leader);
  // The first read may point at the leader's no-op, which the store never sees.
  c.send("GET nothing\r\n");
  CHECK(c.read_replies(1) == "$-1\r\n");
  c.send("SET k hello\r\nGET k\r\nDEL k k2\r\nGET k\r\nDBSIZE\r\n");
  CHECK(c.read_replies(5) == "+OK\r\n$5\r\nhello\r\n:1\r\n$-1\r\n:0\r\n");
  // A bad listen setting fails to start, naming the setting.
  auto bad_app = rlr::kv::make_app();
  rlr::apps::AppContext bad_ctx{*node, dir.string(), {{"listen", "nowhere"}}, rlr::EgressMode::LeaderOnly};
  const rlr::Status s = bad_app->start(bad_ctx);
  CHECK(s.code() == rlr::ErrorCode::InvalidArgument);
  CHECK(s.message().find("listen") != std::string::npos);
  app->stop();
  node->stop();
  std::filesystem::remove_all(dir);
}
