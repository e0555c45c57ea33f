// node::ApplyEngine on its own: the egress gate, re-emission above the watermark, and
// digests, driven entry by entry without a node.
#include <catch2/catch.hpp>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/entry_payloads.h"
#include "node/apply_engine.h"

namespace rlr::node {
namespace {

constexpr NodeId kSelf{1};
constexpr NodeId kOther{2};

/// One output per command, its payload the command.
class EchoMachine final : public RoleAwareStateMachine {
 public:
  void apply(const Entry& e, const ApplyContext& ctx, Egress& egress) override {
    applied_ = ctx.index;
    egress.emit("echo", e.payload);
  }
  [[nodiscard]] LogIndex last_applied() const override { return applied_; }

 private:
  LogIndex applied_;
};

class RecordingSink final : public EgressSink {
 public:
  void deliver(const Output& out) override { delivered.push_back(out.key.index.value()); }
  [[nodiscard]] std::set<std::uint64_t> indexes() const {
    return {delivered.begin(), delivered.end()};
  }
  std::vector<std::uint64_t> delivered;
};

struct Harness {
  explicit Harness(ApplyBug bug = ApplyBug::None) {
    ApplyOptions o;
    o.egress = EgressMode::LeaderOnly;
    o.sink = sink;
    o.digest_interval = 4;
    core::Configuration config;
    config.voters = {kSelf, kOther};
    engine = std::make_unique<ApplyEngine>(kSelf, std::make_shared<EchoMachine>(), o,
                                           SessionTable(1000, 100), config, false,
                                           [this](Term t) { return leading == t; }, LogIndex{});
    engine->set_testing_bug(bug);
  }
  void noop(std::uint64_t i, std::uint64_t t, NodeId leader) {
    engine->apply(Entry{LogIndex{i}, Term{t}, EntryKind::Noop, core::encode_noop(leader)});
  }
  void command(std::uint64_t i, std::uint64_t t) {
    engine->apply(Entry{LogIndex{i}, Term{t}, EntryKind::Normal, Bytes::copy_of(std::to_string(i))});
  }

  std::shared_ptr<RecordingSink> sink = std::make_shared<RecordingSink>();
  Term leading;  ///< the term this node leads now (0: none)
  std::unique_ptr<ApplyEngine> engine;
};

}  // namespace

TEST_CASE("apply: outputs leave only while this node leads the entry's term", "[apply][egress]") {
  Harness h;
  h.leading = Term{1};
  h.noop(1, 1, kSelf);
  h.command(2, 1);
  h.leading = Term{};  // deposed before entry 3 is applied
  h.command(3, 1);
  CHECK(h.sink->indexes() == std::set<std::uint64_t>{2});
  // A follower of term 2 emits nothing.
  h.noop(4, 2, kOther);
  h.command(5, 2);
  CHECK(h.sink->indexes() == std::set<std::uint64_t>{2});
}

TEST_CASE("apply: a leader re-elected in the next term re-emits its own earlier term's "
          "entries that committed only now",
          "[apply][egress]") {
  Harness h;
  h.leading = Term{1};
  h.noop(1, 1, kSelf);
  h.command(2, 1);
  // Term 1 ends with 3 and 4 uncommitted; this node wins term 2 and commits them with
  // its new no-op, so it applies them while leading term 2, not term 1: gate closed.
  h.leading = Term{2};
  h.command(3, 1);
  h.command(4, 1);
  CHECK(h.sink->indexes() == std::set<std::uint64_t>{2});
  h.noop(5, 2, kSelf);
  CHECK(h.sink->indexes() == std::set<std::uint64_t>{2, 3, 4});
  h.command(6, 2);
  CHECK(h.sink->indexes() == std::set<std::uint64_t>{2, 3, 4, 6});
}

TEST_CASE("apply: a new leader re-emits only above the committed watermark", "[apply][egress]") {
  Harness h;
  h.noop(1, 1, kOther);
  h.command(2, 1);
  h.command(3, 1);
  h.engine->apply(Entry{LogIndex{4}, Term{1}, EntryKind::Watermark, core::encode_watermark(LogIndex{2})});
  h.command(5, 1);
  CHECK(h.sink->delivered.empty());
  h.leading = Term{2};
  h.noop(6, 2, kSelf);
  CHECK(h.sink->indexes() == std::set<std::uint64_t>{3, 5});
}

TEST_CASE("apply: the skip-reemit testing bug loses what the old leader never delivered",
          "[apply][egress]") {
  Harness h(ApplyBug::SkipReemit);
  h.noop(1, 1, kOther);
  h.command(2, 1);
  h.leading = Term{2};
  h.noop(3, 2, kSelf);
  CHECK(h.sink->delivered.empty());
}

TEST_CASE("apply: the emit-from-follower testing bug opens a follower's gate", "[apply][egress]") {
  Harness h(ApplyBug::EmitFromFollower);
  h.noop(1, 1, kOther);
  h.command(2, 1);
  CHECK(h.sink->indexes() == std::set<std::uint64_t>{2});
}

TEST_CASE("apply: the watermark to propose is what the sink acknowledged, capped at applied",
          "[apply][watermark]") {
  class AckSink final : public EgressSink {
   public:
    void deliver(const Output&) override {}
    [[nodiscard]] LogIndex acknowledged() const override { return acked; }
    LogIndex acked;
  };
  auto sink = std::make_shared<AckSink>();
  ApplyOptions o;
  o.sink = sink;
  ApplyEngine engine(kSelf, std::make_shared<EchoMachine>(), o, SessionTable(1000, 100),
                     core::Configuration{}, false, [](Term) { return true; }, LogIndex{});
  CHECK_FALSE(engine.watermark_to_propose(LogIndex{}).has_value());  // nothing acknowledged
  engine.apply(Entry{LogIndex{1}, Term{1}, EntryKind::Noop, core::encode_noop(kSelf)});
  engine.apply(Entry{LogIndex{2}, Term{1}, EntryKind::Normal, Bytes::copy_of("x")});
  sink->acked = LogIndex{5};
  CHECK(engine.watermark_to_propose(LogIndex{}) == LogIndex{2});  // capped at applied
  CHECK_FALSE(engine.watermark_to_propose(LogIndex{2}).has_value());  // already proposed
  engine.apply(Entry{LogIndex{3}, Term{1}, EntryKind::Watermark, core::encode_watermark(LogIndex{2})});
  CHECK(engine.watermark_to_propose(LogIndex{}) == LogIndex{3});
  sink->acked = LogIndex{2};
  CHECK_FALSE(engine.watermark_to_propose(LogIndex{}).has_value());  // at the committed one
}

}  // namespace rlr::node
