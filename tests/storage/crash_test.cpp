// Crash safety with real RocksDB and real fsync: a child process appends batches with a
// rising term and reports each acknowledged persist over a pipe; the parent kills it
// with SIGKILL at a random moment, reopens the store and checks that nothing
// acknowledged was lost, no partial batch is visible, and the hard state never moved
// back. One directory is reused across rounds, so state accumulates.
//
// The child is this test binary re-executed in `--crash-child` mode (see main.cpp):
// fork() alone would leave it with the parent's RocksDB thread pools minus their
// threads. No store is open in the parent when it forks.
//
// Replay: RLR_CRASH_SEED=<seed> RLR_CRASH_ROUNDS=<n> rlr-storage-tests "[crash]"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "crash_workload.h"
#include "storage/rocksdb_storage.h"
#include "storage_test_util.h"

namespace rlr::storage::test {
namespace {

constexpr std::size_t kAll = std::numeric_limits<std::size_t>::max();

/// One message from child to parent; written with one write() (< PIPE_BUF: atomic).
struct Ack {
  std::uint64_t kind;  // 0: opened; 1: persist (a = last index, b = term); 2: compact (a = index)
  std::uint64_t a;
  std::uint64_t b;
  std::uint64_t c;
};

[[noreturn]] void child_fail(const char* what, const Status& s) {
  std::fprintf(stderr, "crash child: %s: %s\n", what, s.to_string().c_str());
  std::_Exit(3);
}

}  // namespace

int crash_child_main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: --crash-child DIR SEED FD\n");
    return 2;
  }
  const std::string dir = argv[2];
  std::mt19937_64 rng(std::strtoull(argv[3], nullptr, 10));
  const int fd = std::atoi(argv[4]);

  auto opened = RocksDbStorage::open(workload_options(dir));
  if (!opened) child_fail("open", opened.status());
  RocksDbStorage& s = *opened.value();
  auto hs = s.hard_state();
  if (!hs) child_fail("hard state", hs.status());
  std::uint64_t term = std::max<std::uint64_t>(hs.value().term.value(), 1);
  std::uint64_t last = s.last_index().value();
  const Ack ready{0, last, term, 0};
  if (::write(fd, &ready, sizeof ready) != static_cast<ssize_t>(sizeof ready)) std::_Exit(4);

  for (std::uint64_t batch = 0;; ++batch) {
    if (rng() % 4 == 0) ++term;
    const std::uint64_t n = 1 + rng() % 40;
    const std::vector<Entry> entries = workload_batch(last, n, term);
    PersistRequest req;
    req.entries = entries;
    req.hard_state = workload_hard_state(term, last);
    if (Status st = s.persist(req); !st) child_fail("persist", st);
    last += n;
    const Ack ack{1, last, term, vote_for(term).value()};
    if (::write(fd, &ack, sizeof ack) != static_cast<ssize_t>(sizeof ack)) std::_Exit(4);

    if (batch % 25 == 24 && last > 300) {
      const LogIndex to{last - 200};
      auto t = s.read(to, to, 1, kAll);
      if (!t) child_fail("read before compact", t.status());
      SnapshotMeta snap;
      snap.index = to;
      snap.term = t.value().front().term;
      snap.config = config_of({1, 2, 3});
      if (Status st = s.compact(snap); !st) child_fail("compact", st);
      const Ack cack{2, to.value(), snap.term.value(), 0};
      if (::write(fd, &cack, sizeof cack) != static_cast<ssize_t>(sizeof cack)) std::_Exit(4);
    }
  }
}

namespace {

std::uint64_t env_or(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

std::string self_exe() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  REQUIRE(n > 0);
  return std::string(buf, static_cast<std::size_t>(n));
}

/// Runs the child for `kill_after` (counted from the fork, or from the moment the child
/// reports its store open when `from_open`), then SIGKILLs it; returns its acks.
std::vector<Ack> run_child_and_kill(const std::string& exe, const std::string& dir,
                                    std::uint64_t seed, std::chrono::microseconds kill_after,
                                    bool from_open) {
  int fds[2];
  REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
  const std::string seed_arg = std::to_string(seed);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // Only async-signal-safe calls until exec. dup2 clears close-on-exec on the copy.
    constexpr int kChildFd = 100;
    if (fds[1] == kChildFd) {
      if (::fcntl(kChildFd, F_SETFD, 0) < 0) ::_exit(5);
    } else if (::dup2(fds[1], kChildFd) < 0) {
      ::_exit(5);
    }
    char fd_arg[] = "100";
    char mode[] = "--crash-child";
    char* const args[] = {const_cast<char*>(exe.c_str()), mode, const_cast<char*>(dir.c_str()),
                          const_cast<char*>(seed_arg.c_str()), fd_arg, nullptr};
    ::execv(exe.c_str(), args);
    ::_exit(6);
  }
  ::close(fds[1]);

  std::vector<Ack> acks;
  std::string buf;
  enum class Got { Data, Timeout, Eof };
  auto drain = [&](int timeout_ms) {
    pollfd p{fds[0], POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return Got::Timeout;
    char chunk[4096];
    const ssize_t n = ::read(fds[0], chunk, sizeof chunk);
    if (n <= 0) return Got::Eof;
    buf.append(chunk, static_cast<std::size_t>(n));
    return Got::Data;
  };
  if (from_open) {
    while (buf.empty()) {
      if (drain(30000) != Got::Data) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        ::close(fds[0]);
        FAIL("crash child did not open its store (see its stderr above)");
      }
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + kill_after;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    if (drain(static_cast<int>(left.count())) == Got::Eof) {
      // The child died on its own. Reap it and report.
      int status = 0;
      ::waitpid(pid, &status, 0);
      ::close(fds[0]);
      FAIL("crash child exited early, wait status " << status << " (see its stderr above)");
    }
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  while (drain(1000) == Got::Data) {
  }
  ::close(fds[0]);
  if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
    FAIL("crash child was not killed by SIGKILL, wait status " << status);
  }
  REQUIRE(buf.size() % sizeof(Ack) == 0);
  acks.resize(buf.size() / sizeof(Ack));
  if (!acks.empty()) std::memcpy(acks.data(), buf.data(), buf.size());
  return acks;
}

}  // namespace

TEST_CASE("crash: SIGKILL during synced appends loses nothing acknowledged", "[crash]") {
  const std::uint64_t seed = env_or("RLR_CRASH_SEED", 20261122);
  const std::uint64_t rounds = env_or("RLR_CRASH_ROUNDS", 50);
  INFO("replay: RLR_CRASH_SEED=" << seed << " RLR_CRASH_ROUNDS=" << rounds
                                 << " rlr-storage-tests \"[crash]\"");
  std::mt19937_64 rng(seed);
  const std::string exe = self_exe();
  TempDir dir("rlr-crash");
  const auto o = workload_options(dir.sub("db"));
  { RLR_REQUIRE_OK(RocksDbStorage::open(o)); }  // created before the first kill

  std::uint64_t acked_last = 0;       // highest acknowledged last index, all rounds
  std::uint64_t acked_term = 0;       // term of the latest acknowledged hard state
  std::uint64_t acked_compact = 0;    // highest acknowledged compaction
  std::uint64_t recovered_last = 0;   // highest last index seen after a recovery
  std::uint64_t recovered_term = 0;   // highest term seen after a recovery
  std::uint64_t rounds_with_acks = 0;
  std::uint64_t total_acks = 0;

  for (std::uint64_t round = 0; round < rounds; ++round) {
    // Opening takes the child tens of milliseconds (exec, recovery), so most rounds
    // count the 5-60 ms from the moment the store is open, to kill during appends; one
    // round in four counts from the fork and so also kills during startup and recovery.
    const auto kill_after = std::chrono::microseconds(5000 + rng() % 55001);
    const bool from_open = rng() % 4 != 0;
    const std::uint64_t child_seed = rng();
    INFO("round " << round << ", kill " << kill_after.count() << " us after "
                  << (from_open ? "the store opened" : "fork"));
    const std::vector<Ack> acks =
        run_child_and_kill(exe, o.path, child_seed, kill_after, from_open);
    std::vector<std::pair<std::uint64_t, std::uint64_t>> acked_index_terms;
    bool persisted = false;
    for (const Ack& a : acks) {
      if (a.kind == 0) continue;
      if (a.kind == 1) {
        persisted = true;
        ++total_acks;
        REQUIRE(a.a > acked_last);
        REQUIRE(a.b >= acked_term);
        acked_last = a.a;
        acked_term = a.b;
        acked_index_terms.emplace_back(a.a, a.b);
      } else {
        acked_compact = std::max(acked_compact, a.a);
      }
    }
    rounds_with_acks += persisted ? 1 : 0;

    auto opened = RocksDbStorage::open(o);
    RLR_REQUIRE_OK(opened);
    const RocksDbStorage& s = *opened.value();
    const HardState hs = s.hard_state().value();
    const SnapshotMeta snap = s.snapshot().value();
    const std::uint64_t last = s.last_index().value();
    INFO("recovered last " << last << " term " << hs.term.value() << "; acked last "
                           << acked_last << " term " << acked_term);

    REQUIRE(last >= acked_last);
    REQUIRE(last >= recovered_last);
    REQUIRE(hs.term.value() >= acked_term);
    REQUIRE(hs.term.value() >= recovered_term);
    REQUIRE(hs.vote == vote_for(hs.term.value()));
    REQUIRE(hs.commit.value() <= last);
    REQUIRE(snap.index.value() >= acked_compact);
    REQUIRE(s.first_index() == snap.index.next());

    const auto entries = read_all(s);
    REQUIRE(entries.size() == last - snap.index.value());
    const std::string damage = check_workload_entries(entries, snap.term, hs.term, last);
    INFO(damage);
    REQUIRE(damage.empty());
    for (auto [index, term] : acked_index_terms) {
      if (index > snap.index.value()) {
        REQUIRE(entries[index - snap.index.value() - 1].term == Term{term});
      }
    }
    auto rs = s.load();
    RLR_REQUIRE_OK(rs);
    recovered_last = last;
    recovered_term = hs.term.value();
  }
  INFO("rounds with acknowledged persists: " << rounds_with_acks << ", acks " << total_acks);
  CHECK(rounds_with_acks * 2 >= rounds);  // most kills land during appends
  CHECK(acked_last > 0);
}

}  // namespace rlr::storage::test
