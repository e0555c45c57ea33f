// rlr::Client against real nodes on loopback TCP, in one process (NodeBuilder, memory
// storage): discovery, pipelined proposals with sessions, subscriptions that resume,
// failover, and the errors a caller can get.
#include <utility>  // before Asio: Boost 1.74 under C++20 needs it

#include <catch2/catch.hpp>

#include <boost/asio.hpp>
#include <functional>

#include <atomic>
#include <condition_variable>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "harness.h"
#include "rlr/client.h"
#include "rlr/node.h"

namespace {

using namespace std::chrono_literals;

constexpr const char* kCluster = "client-test";

class Nodes {
 public:
  explicit Nodes(int n) : ports_(proc::free_ports(static_cast<std::size_t>(n))), nodes_(static_cast<std::size_t>(n)) {
    for (int i = 1; i <= n; ++i) start(i);
  }
  void start(int i) {
    rlr::NodeBuilder b;
    b.cluster_id(kCluster).id(rlr::NodeId{static_cast<std::uint64_t>(i)}).listen("127.0.0.1", port(i));
    for (int j = 1; j <= static_cast<int>(ports_.size()); ++j) {
      b.member(rlr::NodeId{static_cast<std::uint64_t>(j)}, "127.0.0.1", port(j));
    }
    b.storage(rlr::StorageKind::Memory).tick(std::chrono::milliseconds{10}).election_ticks(15).heartbeat_ticks(3);
    auto n = b.build();
    REQUIRE(n);
    nodes_[static_cast<std::size_t>(i - 1)] = std::move(n).value();
  }
  void stop(int i) {
    auto& n = nodes_[static_cast<std::size_t>(i - 1)];
    n->stop();
    n.reset();
  }
  [[nodiscard]] std::uint16_t port(int i) const { return ports_[static_cast<std::size_t>(i - 1)]; }
  [[nodiscard]] std::string address(int i) const { return "127.0.0.1:" + std::to_string(port(i)); }
  [[nodiscard]] std::vector<rlr::Address> addresses() const {
    std::vector<rlr::Address> v;
    for (int i = 1; i <= static_cast<int>(ports_.size()); ++i) v.push_back(rlr::Address{"127.0.0.1", port(i)});
    return v;
  }
  rlr::ClientOptions options() const {
    rlr::ClientOptions o;
    o.cluster_id = kCluster;
    o.bootstrap = addresses();
    o.total_timeout = 15s;
    o.request_timeout = 3s;
    return o;
  }

 private:
  std::vector<std::uint16_t> ports_;
  std::vector<std::unique_ptr<rlr::Node>> nodes_;
};

}  // namespace

TEST_CASE("client: pipelined proposals commit once each, in submission order", "[client]") {
  Nodes nodes(3);
  auto c = rlr::Client::connect(nodes.options());
  REQUIRE(c);
  REQUIRE(c.value()->client_id() != 0);

  constexpr int kCount = 1000;  // well past the 128 kept in flight
  std::mutex mu;
  std::condition_variable cv;
  std::map<int, rlr::Result<rlr::ProposeResult>> results;
  for (int i = 0; i < kCount; ++i) {
    c.value()->propose(rlr::Bytes::copy_of("cmd " + std::to_string(i)), [&, i](rlr::Result<rlr::ProposeResult> r) {
      std::lock_guard lock(mu);
      results.emplace(i, std::move(r));
      cv.notify_all();
    });
  }
  {
    std::unique_lock lock(mu);
    REQUIRE(cv.wait_for(lock, 30s, [&] { return results.size() == kCount; }));
  }
  std::uint64_t last = 0;
  for (auto& [i, r] : results) {
    INFO("proposal " << i << ": " << r.status().to_string());
    REQUIRE(r);
    CHECK(r.value().index.value() > last);
    last = r.value().index.value();
  }

  SECTION("a subscription sees every command as proposed, with its session, in contiguous batches") {
    auto sub = c.value()->subscribe(rlr::LogIndex{1});
    REQUIRE(sub);
    std::vector<rlr::CommittedEntry> got;
    rlr::LogIndex covered{1};
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline && covered.value() <= last) {
      auto batch = sub.value()->next(200ms);
      REQUIRE(batch);
      CHECK(batch.value().from == covered);
      for (auto& e : batch.value().entries) {
        CHECK(e.index >= batch.value().from);
        CHECK(e.index < batch.value().next);
        got.push_back(std::move(e));
      }
      covered = batch.value().next;
    }
    REQUIRE(got.size() == static_cast<std::size_t>(kCount));
    // The leader's no-op (index 1 at least) was skipped, not lost: the batches covered it.
    CHECK(got.front().index.value() > 1);
    CHECK(covered.value() == last + 1);
    for (std::size_t i = 0; i < got.size(); ++i) {
      CHECK(got[i].kind == rlr::EntryKind::Normal);
      CHECK(got[i].payload.as_string_view() == "cmd " + std::to_string(i));
      CHECK(got[i].client_id == c.value()->client_id());
      if (i > 0) {
        CHECK(got[i].index > got[i - 1].index);
        CHECK(got[i].sequence > got[i - 1].sequence);
      }
    }
    CHECK(sub.value()->position() == covered);
  }

  SECTION("with include_internal a subscription sees every index, the runtime's entries too") {
    auto sub = c.value()->subscribe(rlr::LogIndex{1}, rlr::SubscribeOptions{.include_internal = true});
    REQUIRE(sub);
    std::vector<rlr::CommittedEntry> got;
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline && (got.empty() || got.back().index.value() < last)) {
      auto batch = sub.value()->next(200ms);
      REQUIRE(batch);
      for (auto& e : batch.value().entries) got.push_back(std::move(e));
    }
    int commands = 0;
    int noops = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
      CHECK(got[i].index.value() == i + 1);
      CHECK(got[i].kind != rlr::EntryKind::Session);
      if (got[i].kind == rlr::EntryKind::Noop) ++noops;
      if (got[i].kind == rlr::EntryKind::Normal) {
        CHECK(got[i].payload.as_string_view() == "cmd " + std::to_string(commands));
        CHECK(got[i].client_id == c.value()->client_id());
        ++commands;
      }
    }
    CHECK(commands == kCount);
    CHECK(noops >= 1);
  }
}

TEST_CASE("client: submissions waiting for the client's thread are bounded; beyond, Busy at once",
          "[client]") {
  Nodes nodes(1);
  auto c = rlr::Client::connect(nodes.options());
  REQUIRE(c);
  rlr::Client& client = *c.value();
  // Hold the client's thread inside a callback: everything proposed meanwhile waits for it.
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  client.propose(rlr::Bytes::copy_of("hold"), [&](rlr::Result<rlr::ProposeResult> r) {
    CHECK(r);
    entered.set_value();
    released.wait();
  });
  REQUIRE(entered.get_future().wait_for(10s) == std::future_status::ready);

  constexpr int kWaiting = 10000;  // the documented bound (rlr/client.h)
  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  std::atomic<int> answered{0};
  for (int i = 0; i < kWaiting; ++i) {
    client.propose(rlr::Bytes::copy_of("w"), [&](rlr::Result<rlr::ProposeResult> r) {
      (r ? ok : failed).fetch_add(1);
      answered.fetch_add(1);
    });
  }
  CHECK(answered.load() == 0);  // all taken, none answered while the client's thread is held
  // One more does not fit: refused at once, on this thread.
  std::optional<rlr::Status> refusal;
  std::thread::id ran_on;
  client.propose(rlr::Bytes::copy_of("one too many"), [&](rlr::Result<rlr::ProposeResult> r) {
    refusal = r.status();
    ran_on = std::this_thread::get_id();
  });
  REQUIRE(refusal.has_value());
  CHECK(refusal->code() == rlr::ErrorCode::Busy);
  CHECK(ran_on == std::this_thread::get_id());

  release.set_value();
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (answered.load() < kWaiting && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
  CHECK(answered.load() == kWaiting);
  CHECK(ok.load() == kWaiting);  // taken, then committed: none lost
  CHECK(failed.load() == 0);
}

TEST_CASE("client: proposals and subscriptions survive the leader's loss", "[client]") {
  Nodes nodes(3);
  auto c = rlr::Client::connect(nodes.options());
  REQUIRE(c);
  auto first = c.value()->propose_sync(rlr::Bytes::copy_of("before"));
  REQUIRE(first);
  auto leader = c.value()->leader();
  REQUIRE(leader);
  auto sub = c.value()->subscribe(rlr::LogIndex{1});
  REQUIRE(sub);

  nodes.stop(static_cast<int>(leader.value().value()));

  auto second = c.value()->propose_sync(rlr::Bytes::copy_of("after"));
  INFO(second.status().to_string());
  REQUIRE(second);
  CHECK(second.value().index > first.value().index);
  auto new_leader = c.value()->leader();
  REQUIRE(new_leader);
  CHECK(new_leader.value() != leader.value());

  std::vector<std::string> commands;
  std::uint64_t expect = 1;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (commands.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    auto batch = sub.value()->next(200ms);
    if (!batch) continue;  // Unavailable while it looks for a node
    CHECK(batch.value().from.value() == expect);
    expect = batch.value().next.value();
    for (const auto& e : batch.value().entries) {
      CHECK(e.kind == rlr::EntryKind::Normal);
      commands.emplace_back(e.payload.as_string_view());
    }
  }
  CHECK(commands == std::vector<std::string>{"before", "after"});
}

TEST_CASE("client: cluster info, roles and read index", "[client]") {
  Nodes nodes(3);
  auto c = rlr::Client::connect(nodes.options());
  REQUIRE(c);
  REQUIRE(c.value()->propose_sync(rlr::Bytes::copy_of("x")));
  auto info = c.value()->cluster_info();
  REQUIRE(info);
  CHECK(info.value().role == rlr::Role::Leader);
  CHECK(info.value().members.size() == 3);
  int leaders = 0;
  for (const auto& a : nodes.addresses()) {
    auto r = c.value()->role(a);
    REQUIRE(r);
    leaders += r.value() == rlr::Role::Leader ? 1 : 0;
    auto own = c.value()->cluster_info(a);
    REQUIRE(own);
    CHECK(own.value().cluster_id == kCluster);
  }
  CHECK(leaders == 1);
  auto ri = c.value()->read_index();
  REQUIRE(ri);
  CHECK(ri.value().value() >= 2);
}

TEST_CASE("client: the errors a caller can get", "[client]") {
  SECTION("bad options") {
    rlr::ClientOptions o;
    o.cluster_id = kCluster;
    CHECK(rlr::Client::connect(o).status().code() == rlr::ErrorCode::InvalidArgument);
    o.bootstrap = {rlr::Address{"no-port", 0}};
    CHECK(rlr::Client::connect(o).status().code() == rlr::ErrorCode::InvalidArgument);
    o.bootstrap = {rlr::Address{"bad host", 7001}};
    CHECK(rlr::Client::connect(o).status().code() == rlr::ErrorCode::InvalidArgument);
  }
  SECTION("nobody listening") {
    rlr::ClientOptions o;
    o.cluster_id = kCluster;
    o.bootstrap = {rlr::Address{"127.0.0.1", proc::free_ports(1)[0]}};
    o.total_timeout = 500ms;
    o.request_timeout = 200ms;
    const auto start = std::chrono::steady_clock::now();
    auto c = rlr::Client::connect(o);
    CHECK(c.status().code() == rlr::ErrorCode::Unavailable);
    CHECK(std::chrono::steady_clock::now() - start < 5s);
  }
  SECTION("wrong cluster id and wrong token are refused") {
    Nodes nodes(1);
    auto o = nodes.options();
    o.cluster_id = "someone-else";
    CHECK(rlr::Client::connect(o).status().code() == rlr::ErrorCode::WrongCluster);
    o = nodes.options();
    o.auth_token = "wrong";
    CHECK(rlr::Client::connect(o).status().code() == rlr::ErrorCode::InvalidArgument);
  }
  SECTION("a blocking call from a callback is refused, not a deadlock") {
    Nodes nodes(1);
    auto c = rlr::Client::connect(nodes.options());
    REQUIRE(c);
    std::promise<rlr::ErrorCode> inner;
    c.value()->propose(rlr::Bytes::copy_of("outer"), [&](rlr::Result<rlr::ProposeResult>) {
      inner.set_value(c.value()->propose_sync(rlr::Bytes::copy_of("inner")).status().code());
    });
    auto f = inner.get_future();
    REQUIRE(f.wait_for(10s) == std::future_status::ready);
    CHECK(f.get() == rlr::ErrorCode::InvalidArgument);
  }
}

TEST_CASE("client: a node that accepts but never answers does not hold up leader discovery", "[client]") {
  // A listener that accepts connections and stays silent, listed first.
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor silent(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  std::vector<boost::asio::ip::tcp::socket> held;
  std::function<void()> accept = [&] {
    silent.async_accept([&](boost::system::error_code ec, boost::asio::ip::tcp::socket s) {
      if (ec) return;
      held.push_back(std::move(s));
      accept();
    });
  };
  accept();
  std::thread t([&] { io.run(); });
  struct Join {
    boost::asio::io_context& io;
    std::thread& t;
    ~Join() {
      io.stop();
      t.join();
    }
  } join{io, t};

  Nodes nodes(1);  // just started: no leader until its election timeout (150-300 ms)
  auto o = nodes.options();
  o.bootstrap.insert(o.bootstrap.begin(), rlr::Address{"127.0.0.1", silent.local_endpoint().port()});
  o.request_timeout = 20s;  // a round waiting for the silent node would outlast total_timeout
  o.total_timeout = 8s;
  auto c = rlr::Client::connect(o);
  REQUIRE(c);
  auto r = c.value()->propose_sync(rlr::Bytes::copy_of("x"));
  INFO(r.status().to_string());
  CHECK(r);
}
