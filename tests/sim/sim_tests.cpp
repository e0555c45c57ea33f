// Tests of the simulator itself: its disk and network models, its determinism, its
// ability to catch deliberately broken cores, and the seeds that once failed.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/raft_log.h"
#include "invariants.h"
#include "sim_network.h"
#include "sim_storage.h"
#include "simulation.h"

namespace {

using rlr::Bytes;
using rlr::Entry;
using rlr::LogIndex;
using rlr::NodeId;
using rlr::Term;
using rlr::sim::Bug;
using rlr::sim::SimConfig;
using rlr::sim::SimResult;

Entry entry(std::uint64_t index, std::uint64_t term) {
  return Entry{LogIndex{index}, Term{term}, rlr::EntryKind::Normal,
               Bytes::copy_of(std::to_string(index * 1000 + term))};
}

rlr::sim::PendingWrite write_of(std::vector<Entry> entries) {
  rlr::sim::PendingWrite w;
  w.entries = std::move(entries);
  return w;
}

SimResult run(const SimConfig& config) {
  rlr::sim::Trace quiet;
  return rlr::sim::run_simulation(config, quiet);
}

bool is_safety_violation(const SimResult& r) {
  return !r.ok() && r.violations.front().invariant != "liveness";
}

std::string describe(const SimResult& r) {
  if (r.ok()) return "no violation";
  return r.violations.front().invariant + ": " + r.violations.front().detail + "\n  replay: " +
         r.replay_command;
}

/// How a deliberate bug is provoked: the fault mix, the cluster size, and how far to look.
struct BugHunt {
  Bug bug;
  std::string faults;
  std::size_t nodes;
  std::uint64_t steps;
  std::uint64_t max_seed;
};

/// Searches seeds 1..max_seed with the bug on; returns the first seed with a safety
/// violation (0 if none), after checking that the correct core passes every seed searched.
std::uint64_t hunt(const BugHunt& h) {
  SimConfig config;
  config.bug = h.bug;
  config.faults = h.faults;
  config.nodes = h.nodes;
  config.steps = h.steps;
  config.check_liveness = false;  // a stall must not end the search early
  std::uint64_t found = 0;
  for (std::uint64_t seed = 1; seed <= h.max_seed && found == 0; ++seed) {
    config.seed = seed;
    const SimResult r = run(config);
    if (is_safety_violation(r)) {
      found = seed;
      INFO("bug found by seed " << seed << ": " << describe(r));
      CHECK(r.replay_command.find("--bug") != std::string::npos);
    }
  }
  if (found == 0) return 0;
  // Without the bug, the very same runs break nothing.
  config.bug = Bug::None;
  for (std::uint64_t seed = 1; seed <= found; ++seed) {
    config.seed = seed;
    const SimResult r = run(config);
    INFO("correct core, seed " << seed << ": " << describe(r));
    REQUIRE(r.ok());
  }
  return found;
}

}  // namespace

// ---- the simulated disk -------------------------------------------------------------

TEST_CASE("sim storage: a write is durable only once its fsync completes; a crash loses it",
          "[sim][storage]") {
  rlr::sim::SimStorage disk(rlr::core::SnapshotMeta{}, rlr::sim::kInitialStateHash);
  auto w = write_of({entry(1, 1), entry(2, 1)});
  w.complete_tick = 5;
  disk.enqueue(std::move(w));
  CHECK_FALSE(disk.has_due(4));
  CHECK(disk.durable().entries.empty());
  disk.crash();
  CHECK_FALSE(disk.has_due(100));
  CHECK(disk.last_index() == LogIndex{0});
}

TEST_CASE("sim storage: writes complete in order, never before an earlier one", "[sim][storage]") {
  rlr::sim::SimStorage disk(rlr::core::SnapshotMeta{}, rlr::sim::kInitialStateHash);
  auto slow = write_of({entry(1, 1)});
  slow.complete_tick = 10;
  auto fast = write_of({entry(2, 1)});
  fast.complete_tick = 2;
  disk.enqueue(std::move(slow));
  disk.enqueue(std::move(fast));
  CHECK_FALSE(disk.has_due(9));
  std::string error;
  REQUIRE(disk.has_due(10));
  (void)disk.complete_next(error);
  REQUIRE(disk.has_due(10));
  (void)disk.complete_next(error);
  CHECK(error.empty());
  CHECK(disk.last_index() == LogIndex{2});
}

TEST_CASE("sim storage: persisting entries truncates the stored suffix first", "[sim][storage]") {
  rlr::sim::SimStorage disk(rlr::core::SnapshotMeta{}, rlr::sim::kInitialStateHash);
  std::string error;
  disk.enqueue(write_of({entry(1, 1), entry(2, 1), entry(3, 1)}));
  (void)disk.complete_next(error);
  disk.enqueue(write_of({entry(2, 2)}));
  (void)disk.complete_next(error);
  CHECK(error.empty());
  CHECK(disk.last_index() == LogIndex{2});
  CHECK(disk.term_at(LogIndex{2}) == Term{2});
  // A gap is a broken contract, reported rather than stored.
  disk.enqueue(write_of({entry(5, 2)}));
  (void)disk.complete_next(error);
  CHECK_FALSE(error.empty());
  CHECK(disk.last_index() == LogIndex{2});
}

TEST_CASE("sim storage: a snapshot replaces the entries it covers", "[sim][storage]") {
  std::string error;
  rlr::core::SnapshotMeta snap;
  snap.index = LogIndex{2};
  snap.term = Term{1};
  SECTION("the stored log continues the snapshot: the suffix stays") {
    rlr::sim::SimStorage disk(rlr::core::SnapshotMeta{}, rlr::sim::kInitialStateHash);
    disk.enqueue(write_of({entry(1, 1), entry(2, 1), entry(3, 1)}));
    (void)disk.complete_next(error);
    disk.save_snapshot(snap);
    CHECK(disk.durable().snapshot.index == LogIndex{2});
    CHECK(disk.durable().entries.size() == 1);
    CHECK(disk.last_index() == LogIndex{3});
  }
  SECTION("the stored entry at the snapshot index has another term: everything goes") {
    rlr::sim::SimStorage disk(rlr::core::SnapshotMeta{}, rlr::sim::kInitialStateHash);
    disk.enqueue(write_of({entry(1, 1), entry(2, 2), entry(3, 2)}));
    (void)disk.complete_next(error);
    disk.save_snapshot(snap);
    CHECK(disk.durable().entries.empty());
    CHECK(disk.last_index() == LogIndex{2});
  }
}

// ---- the simulated network ----------------------------------------------------------

TEST_CASE("sim network: partitions cut messages, also those already in flight", "[sim][network]") {
  rlr::sim::SimNetwork net(rlr::sim::SimRng(7));
  rlr::sim::NetworkProfile lossless;
  lossless.loss_chance = 0;
  lossless.duplicate_chance = 0;
  lossless.slow_chance = 0;
  net.set_profile(lossless);
  rlr::core::Message m;
  m.from = NodeId{1};
  m.to = NodeId{2};
  net.send(m, 0);
  net.block(NodeId{1}, NodeId{2});
  CHECK_FALSE(net.pop_due(100).has_value());
  net.send(m, 100);  // cut when sent
  CHECK(net.in_flight() == 0);
  m.from = NodeId{2};
  m.to = NodeId{1};
  net.send(m, 100);  // the other direction still works: the block is one-way
  CHECK(net.pop_due(200).has_value());
  net.heal();
  CHECK_FALSE(net.has_partitions());
}

TEST_CASE("sim network: a link delivers in order unless a message takes the slow path",
          "[sim][network]") {
  rlr::sim::SimNetwork net(rlr::sim::SimRng(11));
  rlr::sim::NetworkProfile p;
  p.latency_max_ticks = 5;
  p.loss_chance = 0;
  p.duplicate_chance = 0;
  p.slow_chance = 0;
  net.set_profile(p);
  for (std::uint64_t i = 1; i <= 50; ++i) {
    rlr::core::Message m;
    m.from = NodeId{1};
    m.to = NodeId{2};
    m.context = i;
    net.send(std::move(m), i / 3);
  }
  std::uint64_t last = 0;
  while (auto m = net.pop_due(1000)) {
    CHECK(m->context == last + 1);
    last = m->context;
  }
  CHECK(last == 50);
}

// ---- whole runs ---------------------------------------------------------------------

TEST_CASE("a run is a pure function of its seed", "[sim]") {
  SimConfig config;
  config.seed = 4242;
  config.steps = 3000;
  const SimResult a = run(config);
  const SimResult b = run(config);
  CHECK(a.summary == b.summary);
  CHECK(a.cluster_state == b.cluster_state);
  CHECK(a.steps_run == b.steps_run);
  config.seed = 4243;
  CHECK(run(config).summary != a.summary);
}

TEST_CASE("the node count derives from the seed unless given, and the replay names it", "[sim]") {
  SimConfig config;
  config.seed = 99;
  config.steps = 200;
  const SimResult derived = run(config);
  CHECK(derived.nodes >= 3);
  CHECK(derived.nodes <= 7);
  config.nodes = derived.nodes;
  const SimResult explicit_nodes = run(config);
  CHECK(explicit_nodes.summary == derived.summary);
  CHECK(derived.replay_command ==
        "build/bin/rlr-sim --seed 99 --steps 200 --nodes " + std::to_string(derived.nodes));
}

TEST_CASE("every fault mix runs without a safety violation on a correct core", "[sim]") {
  for (const auto& profile : rlr::sim::fault_profiles()) {
    for (std::uint64_t seed = 1; seed <= 10; ++seed) {
      SimConfig config;
      config.seed = seed;
      config.steps = 3000;
      config.faults = std::string(profile.name);
      config.check_liveness = false;
      const SimResult r = run(config);
      INFO(describe(r));
      CHECK(r.ok());
    }
  }
}

/// Runs seeds 1..12 of the `faults` mix for 4,000 steps each: every run must be safe and
/// live; `each` sees every result (to count what the mix must make happen).
template <class Each>
void run_twelve_seeds(const std::string& faults, Each&& each) {
  for (std::uint64_t seed = 1; seed <= 12; ++seed) {
    SimConfig config;
    config.seed = seed;
    config.steps = 4000;
    config.faults = faults;
    const SimResult r = run(config);
    INFO(describe(r));
    CHECK(r.ok());
    each(r);
  }
}

TEST_CASE("runs with a memory limit evict entries, read them back from disk, and stay safe",
          "[sim][evict]") {
  // Most seeds draw a limit of a few entries in memory; their leaders must then read
  // entries back for followers that lag, restart or join, and every check still holds
  // (the log matching and completeness checks read evicted entries from the disk).
  int reading = 0;
  run_twelve_seeds("mixed", [&](const SimResult& r) { reading += r.entries_read_back > 0 ? 1 : 0; });
  CHECK(reading >= 6);
}

TEST_CASE("silent links reported as lost connections keep every run safe and live", "[sim][silences]") {
  // The silences mix tells a follower its leader's connection dropped whenever it heard
  // nothing for half an election timeout: after real partitions, and as false alarms
  // when heartbeats are only lost or slow. Either way every check must hold, and the
  // notices must actually happen (a mix that never sends one proves nothing).
  int noticed = 0;
  run_twelve_seeds("silences", [&](const SimResult& r) { noticed += r.silence_notices > 0 ? 1 : 0; });
  CHECK(noticed >= 10);
}

TEST_CASE("disks that start refusing writes keep every run safe and live", "[sim][disks]") {
  // The disks mix breaks a node's disk now and then: its next write fails, the replica
  // stops taking part (a leader hands over first) and the node restarts on a mended
  // disk. Every check must hold, and the failures must happen, to leaders too.
  int failing = 0;
  std::uint64_t leaders = 0;
  run_twelve_seeds("disks", [&](const SimResult& r) {
    failing += r.storage_failures > 0 ? 1 : 0;
    leaders += r.leader_storage_failures;
  });
  CHECK(failing >= 10);
  CHECK(leaders >= 3);
}

TEST_CASE("the checker fails a log index whose evicted entry is on no disk", "[sim][evict]") {
  rlr::sim::InvariantChecker checker;
  rlr::core::RaftLog a(rlr::core::SnapshotMeta{}, {entry(1, 1), entry(2, 1), entry(3, 2)});
  rlr::core::RaftLog b(rlr::core::SnapshotMeta{}, {entry(1, 1), entry(2, 1), entry(3, 2)});
  const auto in_memory = [](const rlr::core::RaftLog& log) {
    return [&log](LogIndex i) -> const Entry* { return &log.at(i); };
  };
  checker.check_logs_match(NodeId{1}, a, in_memory(a), NodeId{2}, b, in_memory(b));
  REQUIRE(checker.ok());
  // Node 2 evicted entry 2 but its disk does not have it.
  const auto lost = [&b](LogIndex i) -> const Entry* { return i == LogIndex{2} ? nullptr : &b.at(i); };
  checker.check_logs_match(NodeId{1}, a, in_memory(a), NodeId{2}, b, lost);
  REQUIRE_FALSE(checker.ok());
  CHECK(checker.violations().front().invariant == "evicted entries are durable");
}

// ---- the simulator catches broken cores ---------------------------------------------

TEST_CASE("the simulator catches a leader that commits an earlier term's entry by counting "
          "(Raft Figure 8)", "[sim][bug]") {
  CHECK(hunt({Bug::CommitPreviousTermByCount, "figure8", 3, 3000, 200}) != 0);
}

TEST_CASE("the simulator catches votes granted without the log check (§5.4.1)", "[sim][bug]") {
  CHECK(hunt({Bug::GrantVoteWithoutLogCheck, "mixed", 0, 3000, 200}) != 0);
}

TEST_CASE("the simulator catches a node that forgets its vote in a crash", "[sim][bug]") {
  CHECK(hunt({Bug::ForgetVoteOnRestart, "elections", 0, 3000, 200}) != 0);
}

// ---- the simulator catches broken runtimes --------------------------------------------

TEST_CASE("the simulator catches a runtime that acknowledges writes before they are durable",
          "[sim][bug]") {
  CHECK(hunt({Bug::AckBeforeDurable, "mixed", 0, 3000, 50}) != 0);
}

TEST_CASE("the simulator catches a leader that appends a session retry again", "[sim][bug]") {
  CHECK(hunt({Bug::SkipSessionCheck, "mixed", 0, 3000, 50}) != 0);
}

TEST_CASE("the simulator catches a replica that keeps its old session table over a snapshot",
          "[sim][bug]") {
  CHECK(hunt({Bug::ForgetSessionsOnSnapshot, "mixed", 0, 3000, 100}) != 0);
}

// ---- the simulator catches broken apply loops ------------------------------------------

TEST_CASE("the simulator catches outputs that leave a follower", "[sim][bug][egress]") {
  CHECK(hunt({Bug::EmitFromFollower, "mixed", 0, 3000, 20}) != 0);
}

TEST_CASE("the simulator catches a new leader that does not re-emit above the watermark",
          "[sim][bug][egress]") {
  CHECK(hunt({Bug::SkipReemit, "mixed", 0, 3000, 50}) != 0);
}

TEST_CASE("egress runs deliver, acknowledge and compare digests", "[sim][egress]") {
  SimConfig config;
  config.seed = 3;
  const SimResult r = run(config);
  INFO(describe(r));
  REQUIRE(r.ok());
  CHECK(r.outputs_delivered > 1000);
  CHECK(r.digests_compared > 10);
}

// ---- seeds that once failed -----------------------------------------------------------

namespace {

struct RegressionCase {
  std::string line;
  SimConfig config;
};

/// regression_seeds.txt: one replay command's arguments per line (--seed, --steps,
/// --nodes, --faults, --bug, --no-liveness); '#' starts a comment.
std::vector<RegressionCase> load_regression_seeds() {
  std::vector<RegressionCase> cases;
  std::ifstream in(RLR_SIM_REGRESSION_SEEDS);
  REQUIRE(in.good());
  std::string line;
  while (std::getline(in, line)) {
    const std::string args = line.substr(0, line.find('#'));
    std::istringstream words(args);
    std::string flag;
    SimConfig config;
    bool any = false;
    while (words >> flag) {
      any = true;
      std::string value;
      if (flag == "--no-liveness") {
        config.check_liveness = false;
      } else if (words >> value) {
        if (flag == "--seed") config.seed = std::stoull(value);
        else if (flag == "--steps") config.steps = std::stoull(value);
        else if (flag == "--nodes") config.nodes = std::stoull(value);
        else if (flag == "--faults") config.faults = value;
        else if (flag == "--bug") config.bug = rlr::sim::parse_bug(value).value_or(Bug::None);
        else FAIL("unknown flag in regression_seeds.txt: " << flag);
      }
    }
    if (any) cases.push_back({line, config});
  }
  return cases;
}

}  // namespace

TEST_CASE("seeds that once failed pass", "[sim][regression]") {
  for (const RegressionCase& c : load_regression_seeds()) {
    const SimResult r = run(c.config);
    INFO(c.line << "\n  -> " << describe(r));
    CHECK(r.ok());
  }
}
