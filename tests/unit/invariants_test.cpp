// The core's invariants (core/invariants.h): each class of violation is reported by the
// pure check that Raft applies, a consistent state passes, RLR_INVARIANT aborts the
// process, and a core with check_invariants set aborts on a violation it is handed.
#include <csignal>
#include <cstring>
#include <string>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "core/invariants.h"
#include "test_cluster.h"
#include "util/invariant.h"

namespace rlr::test {
namespace {

using core::LogMarks;
using core::Progress;
using core::violated_invariant;

/// A consistent state: snapshot 10, applied 20, commit 25, persisted 30, unstable 31,
/// last 40.
LogMarks valid_marks() { return LogMarks{I(10), I(20), I(25), I(30), I(31), I(40)}; }

/// The statement of the invariant `m` violates ("" when none).
std::string broken(const LogMarks& m) {
  const char* v = violated_invariant(m);
  return v == nullptr ? "" : v;
}

std::string broken(const Progress& pr, std::size_t max_inflight = 4) {
  const char* v = violated_invariant(pr, max_inflight);
  return v == nullptr ? "" : v;
}

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

/// Runs `f` in a child process (stderr silenced) and returns whether it died of SIGABRT.
template <class F>
bool aborts(F f) {
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, STDERR_FILENO);
    try {
      f();
    } catch (...) {
      _exit(2);
    }
    _exit(0);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

TEST_CASE("invariants: a consistent state violates none", "[invariants]") {
  CHECK(broken(valid_marks()).empty());
  // A freshly restored node: everything durable, nothing pending.
  CHECK(broken(LogMarks{I(5), I(5), I(7), I(9), I(10), I(9)}).empty());
  // An installed snapshot counts as applied before it is durable.
  CHECK(broken(LogMarks{I(50), I(50), I(50), I(30), I(51), I(50)}).empty());
  Progress pr;
  pr.match = I(3);
  pr.next = I(9);
  pr.inflight = {I(5), I(8)};
  CHECK(broken(pr).empty());
}

TEST_CASE("invariants: commit never passes the log's end", "[invariants]") {
  LogMarks m = valid_marks();
  m.commit = I(41);
  CHECK(starts_with(broken(m), "commit <= last"));
}

TEST_CASE("invariants: applied entries are committed and durable", "[invariants]") {
  LogMarks m = valid_marks();
  m.applied = I(26);
  CHECK(starts_with(broken(m), "applied <= commit"));
  m = valid_marks();
  m.persisted = I(15);  // applied 20 is not durable, and not the snapshot
  CHECK(starts_with(broken(m), "applied <= persisted"));
}

TEST_CASE("invariants: only entries of the log, handed out to persist, are durable",
          "[invariants]") {
  LogMarks m = valid_marks();
  m.persisted = I(41);
  m.unstable = I(42);
  CHECK(starts_with(broken(m), "persisted <= last"));
  m = valid_marks();
  m.unstable = I(30);
  CHECK(starts_with(broken(m), "persisted < unstable"));
  m = valid_marks();
  m.unstable = I(42);
  CHECK(starts_with(broken(m), "unstable <= last + 1"));
}

TEST_CASE("invariants: a snapshot covers only applied, committed entries", "[invariants]") {
  LogMarks m = valid_marks();
  m.snapshot = I(21);
  CHECK(starts_with(broken(m), "snapshot <= applied"));
  m.snapshot = I(26);
  CHECK(starts_with(broken(m), "snapshot <= applied"));
}

TEST_CASE("invariants: a follower's progress has match < next and a sane window",
          "[invariants]") {
  Progress pr;
  pr.match = I(9);
  pr.next = I(9);
  CHECK(starts_with(broken(pr), "match < next"));
  pr.next = I(20);
  pr.inflight = {I(12), I(11)};
  CHECK(starts_with(broken(pr), "inflight appends end above match"));
  pr.inflight = {I(9)};
  CHECK(starts_with(broken(pr), "inflight appends end above match"));
  pr.inflight = {I(12), I(20)};
  CHECK(starts_with(broken(pr), "inflight appends end below next"));
  pr.inflight = {I(11), I(12), I(13), I(14), I(15)};
  CHECK(starts_with(broken(pr, 4), "inflight <= max_inflight_appends"));
}

TEST_CASE("invariants: RLR_INVARIANT aborts the process when its condition is false",
          "[invariants]") {
  CHECK(aborts([] { RLR_INVARIANT(1 + 1 == 3, "arithmetic holds"); }));
  CHECK_FALSE(aborts([] { RLR_INVARIANT(1 + 1 == 2, "arithmetic holds"); }));
}

TEST_CASE("invariants: a core that checks them aborts on a persist mark from the future",
          "[invariants]") {
  const auto members = config_of({1, 2, 3});
  core::RaftOptions o = paper_options(1);
  REQUIRE(o.check_invariants);
  auto ack_ahead = [&] {
    core::Raft r = make_node(o, members, HardState{T(2), N(0), I(0)});
    r.ack_persisted(core::PersistMark{I(0), T(0), T(3)});  // term 3 > the core's 2
  };
  CHECK(aborts(ack_ahead));
  o.check_invariants = false;
  CHECK_FALSE(aborts(ack_ahead));
}

}  // namespace
}  // namespace rlr::test
