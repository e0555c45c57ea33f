// The smallest useful program that embeds librlr: three nodes in one process on
// loopback, a replicated counter as the state machine, only the leader's copy letting
// outputs out. Copy it as the start of your own sequencer.
//
//   embed DATA_DIR [BASE_PORT]    nodes listen on BASE_PORT+1..+3 (default 17410)
//
// Exit status 0 when every replica applied the same total and every output got out.
#include <rlr/node.h>
#include <rlr/state_machine.h>
#include <rlr/version.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

/// The business state: a running total of the amounts proposed. Deterministic, as every
/// replica applies the same commands in the same order.
class Counter final : public rlr::RoleAwareStateMachine {
 public:
  void apply(const rlr::Entry& e, const rlr::ApplyContext&, rlr::Egress& out) override {
    total_ += std::stoll(std::string(e.payload.as_string_view()));
    out.emit("total", rlr::Bytes::copy_of(std::to_string(total_.load())));  // gated
  }
  [[nodiscard]] rlr::LogIndex last_applied() const override { return {}; }  // in memory
  [[nodiscard]] long long total() const { return total_; }

 private:
  std::atomic<long long> total_{0};
};

/// Where outputs that pass the egress gate go: a socket, a database; here a count.
class CountingSink final : public rlr::EgressSink {
 public:
  void deliver(const rlr::Output&) override { ++delivered; }
  std::atomic<int> delivered{0};
};

struct Replica {
  std::unique_ptr<rlr::Node> node;
  std::shared_ptr<Counter> counter = std::make_shared<Counter>();
  std::shared_ptr<CountingSink> sink = std::make_shared<CountingSink>();
  std::shared_ptr<rlr::ApplyRunner> runner;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: embed DATA_DIR [BASE_PORT]\n");
    return 2;
  }
  const std::string root = argv[1];
  const auto base = static_cast<std::uint16_t>(argc > 2 ? std::stoi(argv[2]) : 17410);
  std::printf("librlr %s (headers %s)\n", rlr::version(), RLR_VERSION_STRING);

  std::vector<Replica> replicas(3);
  for (std::uint64_t i = 1; i <= 3; ++i) {
    rlr::NodeBuilder b;
    b.cluster_id("embed-demo").id(rlr::NodeId{i}).listen("127.0.0.1", base + i);
    const std::string dir = root + "/n" + std::to_string(i);
    std::filesystem::create_directories(dir);  // the node creates its files, not the parents
    b.data_dir(dir);
    for (std::uint64_t j = 1; j <= 3; ++j) b.member(rlr::NodeId{j}, "127.0.0.1", base + j);
    auto node = b.build();
    if (!node) return std::fprintf(stderr, "node %lu: %s\n", i, node.status().to_string().c_str()), 1;
    Replica& r = replicas[i - 1];
    r.node = std::move(node).value();
    rlr::ApplyOptions apply;
    apply.egress = rlr::EgressMode::LeaderOnly;
    apply.sink = r.sink;
    auto runner = r.node->attach(r.counter, apply);
    if (!runner) return std::fprintf(stderr, "attach: %s\n", runner.status().to_string().c_str()), 1;
    r.runner = std::move(runner).value();
  }

  // Proposals go to the leader; a follower would answer NotLeader with a hint.
  rlr::Node* leader = nullptr;
  for (int waited = 0; leader == nullptr && waited < 1000; ++waited) {
    for (Replica& r : replicas) {
      if (r.node->role() == rlr::Role::Leader) leader = r.node.get();
    }
    std::this_thread::sleep_for(10ms);
  }
  if (leader == nullptr) return std::fprintf(stderr, "no leader elected\n"), 1;

  rlr::LogIndex last;
  for (int amount = 1; amount <= 100; ++amount) {
    auto done = leader->propose_sync(rlr::Bytes::copy_of(std::to_string(amount)), 5s);
    if (!done) return std::fprintf(stderr, "propose: %s\n", done.status().to_string().c_str()), 1;
    last = done.value().index;
  }

  // Every replica applies every entry; wait for all of them.
  for (Replica& r : replicas) {
    for (int waited = 0; r.runner->applied() < last && waited < 1000; ++waited) std::this_thread::sleep_for(10ms);
  }
  // Every output left at least once, through whichever node led (more than once only
  // if leadership moved and a new leader re-emitted what was not acknowledged).
  int failures = 0;
  int delivered = 0;
  for (std::size_t i = 0; i < replicas.size(); ++i) {
    const Replica& r = replicas[i];
    std::printf("node %zu: %-8s total %lld, outputs let out %d\n", i + 1,
                r.node.get() == leader ? "leader" : "follower", r.counter->total(), r.sink->delivered.load());
    if (r.counter->total() != 5050) ++failures;
    delivered += r.sink->delivered;
  }
  if (delivered < 100) ++failures;
  for (Replica& r : replicas) r.node->stop();
  std::printf("%s\n", failures == 0 ? "ok: the replicas agree" : "FAILED");
  return failures == 0 ? 0 : 1;
}
