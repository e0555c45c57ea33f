// rlr-sim: the deterministic simulation of a librlr cluster, from the command line.
#include <atomic>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <unistd.h>

#include <fmt/format.h>

#include "demo.h"
#include "simulation.h"

namespace {

/// The seed the thread is running, for the abort report below.
thread_local std::uint64_t t_running_seed = 0;

/// An RLR_INVARIANT in the runtime aborts the process: name the seed that got there, so
/// a multi-seed run says what to replay. Runs on the aborting thread; writes with
/// write(2) only.
extern "C" void report_seed_on_abort(int /*signal*/) {
  char buf[96] = "rlr-sim: aborted while running seed ";
  std::size_t n = std::char_traits<char>::length(buf);
  const auto r = std::to_chars(buf + n, buf + sizeof buf - 48, t_running_seed);
  n = static_cast<std::size_t>(r.ptr - buf);
  const char tail[] = " (replay it with --seed and --verbose)\n";
  for (const char c : tail) {
    if (c != '\0') buf[n++] = c;
  }
  (void)!::write(2, buf, n);
  std::signal(SIGABRT, SIG_DFL);
}

using rlr::sim::SimConfig;
using rlr::sim::SimResult;

constexpr std::string_view kUsage = R"(rlr-sim: deterministic simulation of a librlr Raft cluster

usage:
  rlr-sim --seed S  [--steps N] [--nodes K] [--bug NAME] [--faults NAME] [--verbose]
  rlr-sim --seeds A-B [--steps N] [--nodes K] [--bug NAME] [--faults NAME] [--jobs J]
          (both also take --no-liveness)
  rlr-sim --demo [--seed S]
  rlr-sim --help

Runs 3 to 7 nodes of the real runtime (node::Replica: the Raft core with the node's
persistence policy, batching, sessions, compaction and waiters) against a simulated
network (latency, loss, duplication, reordering, symmetric and one-way partitions) and
simulated disks (fsync delays and stalls; a crash loses unsynced writes or keeps some),
with crashes and restarts, membership changes, leadership transfers, ReadIndex reads,
proposals with and without client sessions, retries, and the replicas' own compaction;
each node's application runs under the runtime's apply engine (sessions, roles, the
egress gate and outbox, digests) and delivers its outputs to one downstream.
Everything derives from the seed: a failing run replays exactly. After every step (one
tick of simulated time) it checks election safety, log matching, leader completeness,
that acknowledged writes survive and name their committed entry, exactly-once session
commands, state machine safety, that committed entries never change, gap-free applies,
linearizable reads, bounded queues, that every node's application reaches the same
state and outputs, that outputs leave only through the leader, one output per key and
agreeing digest checkpoints; after every heal it checks liveness (a new proposal commits
within ten of the longest election timeouts: 400 ticks), and at the end that downstream
holds every output of what the leader applied.

options:
  --seed S        run one seed
  --seeds A-B     run every seed from A to B (inclusive)
  --steps N       ticks of simulated time per seed (default 10000)
  --nodes K       cluster size 3..7 (default: derived from each seed)
  --bug NAME      switch on a deliberate bug, to show the checks catch it: in the core
                  commit-previous-term-by-count | grant-vote-without-log-check |
                  forget-vote-on-restart; in the runtime ack-before-durable |
                  skip-session-check | forget-sessions-on-snapshot; in the apply loop
                  emit-from-follower | skip-reemit
  --faults NAME   fault mix: mixed (default) | elections | partitions | figure8
                  | disconnects | silences
  --no-liveness   check safety only (a liveness failure would end the run early)
  --jobs J        run seeds on J threads (output stays in seed order)
  --verbose       print every event: messages, fsyncs, applies, faults
  --demo          a narrated 5-node run for people: elections, faults, commits, verdict
  --help          this text

modes:
  CI (ctest sim-*):   rlr-sim --seeds 1-500 --steps 10000 --faults F --jobs 2, for every
                      fault mix F
  long soak:          rlr-sim --seeds 1-20000 --steps 10000 --jobs 2
                      (not run by default; also with --faults elections, partitions
                      and figure8)

exit status: 0 when no invariant broke, 1 on a violation, 2 on bad usage.
The last line printed is always: seeds=<n> steps=<n> violations=<n>
)";

struct Args {
  std::uint64_t seed_first = 1;
  std::uint64_t seed_last = 1;
  bool seeds_given = false;
  SimConfig base;
  bool verbose = false;
  bool demo = false;
  unsigned jobs = 1;
};

template <class T>
bool parse_number(std::string_view s, T& out) {
  const auto* end = s.data() + s.size();
  const auto [ptr, ec] = std::from_chars(s.data(), end, out);
  return ec == std::errc{} && ptr == end;
}

int usage_error(const std::string& message) {
  fmt::print(stderr, "rlr-sim: {}\n(see rlr-sim --help)\n", message);
  fmt::print("seeds=0 steps=0 violations=0\n");
  return 2;
}

std::optional<int> parse(int argc, char** argv, Args& args) {
  std::vector<std::string_view> a(argv + 1, argv + argc);
  for (std::size_t i = 0; i < a.size(); ++i) {
    const std::string_view flag = a[i];
    auto value = [&]() -> std::optional<std::string_view> {
      if (i + 1 >= a.size()) return std::nullopt;
      return a[++i];
    };
    if (flag == "--help" || flag == "-h") {
      fmt::print("{}", kUsage);
      return 0;
    }
    if (flag == "--verbose" || flag == "-v") {
      args.verbose = true;
    } else if (flag == "--no-liveness") {
      args.base.check_liveness = false;
    } else if (flag == "--demo") {
      args.demo = true;
    } else if (flag == "--seed") {
      const auto v = value();
      if (!v || !parse_number(*v, args.seed_first)) return usage_error("--seed needs a number");
      args.seed_last = args.seed_first;
      args.seeds_given = true;
    } else if (flag == "--seeds") {
      const auto v = value();
      const auto dash = v ? v->find('-') : std::string_view::npos;
      if (dash == std::string_view::npos || !parse_number(v->substr(0, dash), args.seed_first) ||
          !parse_number(v->substr(dash + 1), args.seed_last) || args.seed_last < args.seed_first) {
        return usage_error("--seeds needs a range A-B with A <= B");
      }
      args.seeds_given = true;
    } else if (flag == "--steps") {
      const auto v = value();
      if (!v || !parse_number(*v, args.base.steps) || args.base.steps == 0) {
        return usage_error("--steps needs a positive number");
      }
    } else if (flag == "--nodes") {
      const auto v = value();
      if (!v || !parse_number(*v, args.base.nodes) || args.base.nodes < 3 || args.base.nodes > 7) {
        return usage_error("--nodes needs a number from 3 to 7");
      }
    } else if (flag == "--bug") {
      const auto v = value();
      const auto bug = v ? rlr::sim::parse_bug(*v) : std::nullopt;
      if (!bug) return usage_error("unknown --bug; see --help for the names");
      args.base.bug = *bug;
    } else if (flag == "--faults") {
      const auto v = value();
      if (!v || rlr::sim::find_fault_profile(*v) == nullptr) {
        return usage_error("unknown --faults; see --help for the names");
      }
      args.base.faults = std::string(*v);
    } else if (flag == "--jobs") {
      const auto v = value();
      if (!v || !parse_number(*v, args.jobs) || args.jobs == 0 || args.jobs > 64) {
        return usage_error("--jobs needs a number from 1 to 64");
      }
    } else {
      return usage_error(fmt::format("unknown argument '{}'", flag));
    }
  }
  return std::nullopt;
}

void report_failure(const SimResult& r) {
  const rlr::sim::Violation& first = r.violations.front();
  fmt::print("FAIL seed {} ({} nodes, faults '{}') at t={}: {}: {}\n", r.config.seed, r.nodes,
             r.config.faults, first.tick, first.invariant, first.detail);
  for (std::size_t i = 1; i < r.violations.size(); ++i) {
    fmt::print("  also at t={}: {}: {}\n", r.violations[i].tick, r.violations[i].invariant,
               r.violations[i].detail);
  }
  fmt::print("  cluster at the failure:\n{}", r.cluster_state);
  fmt::print("  replay: {}\n  trace:  {} --verbose\n", r.replay_command, r.replay_command);
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (const auto exit_code = parse(argc, argv, args)) return *exit_code;

  if (args.demo) {
    rlr::sim::Trace trace(rlr::sim::TraceLevel::Narrative, stdout);
    const auto violations = rlr::sim::run_demo(args.seeds_given ? args.seed_first : 7, trace);
    fmt::print("seeds=1 steps={} violations={}\n", rlr::sim::kDemoTicks, violations);
    return violations == 0 ? 0 : 1;
  }

  std::signal(SIGABRT, report_seed_on_abort);
  const std::uint64_t count = args.seed_last - args.seed_first + 1;
  const bool single = count == 1;
  std::vector<SimResult> results(count);
  const auto run_one = [&](std::uint64_t k) {
    SimConfig config = args.base;
    config.seed = args.seed_first + k;
    t_running_seed = config.seed;
    rlr::sim::Trace trace(single && args.verbose ? rlr::sim::TraceLevel::Verbose
                                                 : rlr::sim::TraceLevel::Quiet,
                          stdout);
    results[k] = rlr::sim::run_simulation(config, trace);
  };

  std::uint64_t violations = 0;
  std::uint64_t failed_seeds = 0;
  std::uint64_t printed = 0;
  const auto print_ready = [&](std::uint64_t upto) {
    for (; printed < upto; ++printed) {
      SimResult& r = results[printed];
      if (!r.ok()) {
        ++failed_seeds;
        violations += r.violations.size();
        report_failure(r);
      }
      if (single) fmt::print("seed {} ({} nodes): {}\n", r.config.seed, r.nodes, r.summary);
      r = SimResult{};  // free the memory of finished runs
    }
  };

  const unsigned jobs = single ? 1 : std::min<std::uint64_t>(args.jobs, count);
  if (jobs <= 1) {
    for (std::uint64_t k = 0; k < count; ++k) {
      run_one(k);
      print_ready(k + 1);
      std::fflush(stdout);
    }
  } else {
    std::atomic<std::uint64_t> next{0};
    std::vector<std::thread> workers;
    for (unsigned j = 0; j < jobs; ++j) {
      workers.emplace_back([&] {
        for (std::uint64_t k = next++; k < count; k = next++) run_one(k);
      });
    }
    for (auto& w : workers) w.join();
    print_ready(count);
  }
  if (!single && failed_seeds > 0) {
    fmt::print("{} of {} seeds failed\n", failed_seeds, count);
  }
  fmt::print("seeds={} steps={} violations={}\n", count, args.base.steps, violations);
  return violations == 0 ? 0 : 1;
}
