#include "sim_app.h"

#include <fmt/format.h>


namespace rlr::sim {

// ---- Downstream ------------------------------------------------------------------------

Downstream::Applied* Downstream::at(LogIndex i) {
  if (i.is_zero()) return nullptr;
  if (applied_.size() < i.value()) applied_.resize(i.value());
  return &applied_[i.value() - 1];
}

void Downstream::on_recorded(NodeId id, const Output& out) {
  Applied* a = at(out.key.index);
  if (a == nullptr || out.key.position >= kMaxOutputs) {
    checker_.fail("state machines agree",
                  fmt::format("node {} recorded output {}/{}, outside what the test state machine "
                              "emits",
                              id.value(), out.key.index.value(), out.key.position));
    return;
  }
  Bytes& slot = a->recorded[out.key.position];
  if (slot.empty()) {
    slot = out.payload;
  } else if (slot != out.payload) {
    checker_.fail("state machines agree",
                  fmt::format("node {} recorded output {}/{} unlike the one another node recorded",
                              id.value(), out.key.index.value(), out.key.position));
  }
}

void Downstream::on_applied(NodeId id, LogIndex i, std::uint64_t state, std::uint32_t outputs) {
  Applied* a = at(i);
  if (a == nullptr) return;
  if (a->known && (a->state != state || a->outputs != outputs)) {
    checker_.fail("state machines agree",
                  fmt::format("node {}'s application after index {} has state {:x} and {} outputs "
                              "there; another node's had {:x} and {}",
                              id.value(), i.value(), state, outputs, a->state, a->outputs));
    return;
  }
  a->known = true;
  a->state = state;
  a->outputs = outputs;
  advance();
}

std::optional<std::uint64_t> Downstream::state_at(LogIndex i) const {
  if (i.is_zero()) return std::uint64_t{0};
  if (applied_.size() < i.value() || !applied_[i.value() - 1].known) return std::nullopt;
  return applied_[i.value() - 1].state;
}

void Downstream::on_delivered(NodeId id, bool leads_now, const Output& out) {
  ++delivered_;
  if (!leads_now) {
    checker_.fail("egress from the leader only",
                  fmt::format("node {} delivered output {}/{} downstream while it does not lead",
                              id.value(), out.key.index.value(), out.key.position));
    return;
  }
  Applied* a = at(out.key.index);
  if (a == nullptr || out.key.position >= kMaxOutputs || a->recorded[out.key.position].empty() ||
      a->recorded[out.key.position] != out.payload) {
    checker_.fail("one output per key",
                  fmt::format("node {} delivered output {}/{}, which no state machine recorded so",
                              id.value(), out.key.index.value(), out.key.position));
    return;
  }
  if (a->received[out.key.position]) {
    ++redelivered_;  // at-least-once: the same key again, deduplicated downstream
    return;
  }
  a->received[out.key.position] = true;
  advance();
}

void Downstream::advance() {
  while (complete_through_.value() < applied_.size()) {
    const Applied& a = applied_[complete_through_.value()];
    if (!a.known) return;
    for (std::uint32_t p = 0; p < a.outputs; ++p) {
      if (!a.received[p]) return;
    }
    complete_through_ = complete_through_.next();
  }
}

void Downstream::on_checkpoint(NodeId id, const DigestCheckpoint& cp) {
  const auto [it, first] = checkpoints_.try_emplace(cp.index, cp.digest);
  if (first) return;
  ++checkpoints_compared_;
  if (it->second != cp.digest) {
    checker_.fail("output digests agree",
                  fmt::format("node {}'s output digest at index {} is {:x}; another node's is {:x}",
                              id.value(), cp.index.value(), cp.digest, it->second));
  }
}

void Downstream::check_complete(NodeId leader, LogIndex from, LogIndex through) {
  for (LogIndex i = from.next(); i <= through; i = i.next()) {
    const Applied* a = i.value() <= applied_.size() ? &applied_[i.value() - 1] : nullptr;
    if (a == nullptr || !a->known) {
      checker_.fail("nothing missing",
                    fmt::format("leader {} applied through {}, but index {} is unknown downstream",
                                leader.value(), through.value(), i.value()));
      return;
    }
    for (std::uint32_t p = 0; p < a->outputs; ++p) {
      if (!a->received[p]) {
        checker_.fail("nothing missing",
                      fmt::format("after the heal, output {}/{} never reached downstream (leader "
                                  "{} applied through {}; downstream complete through {})",
                                  i.value(), p, leader.value(), through.value(),
                                  complete_through_.value()));
        return;
      }
    }
  }
}

// ---- SimStateMachine ---------------------------------------------------------------------

void SimStateMachine::apply(const Entry& entry, const ApplyContext& ctx, Egress& egress) {
  // FNV-1a over the command, chained onto the state.
  std::uint64_t h = state_ ^ 0xcbf29ce484222325ULL;
  for (std::uint8_t b : entry.payload.span()) h = (h ^ b) * 0x100000001b3ULL;
  state_ = h;
  applied_ = ctx.index;
  outputs_ = 1 + static_cast<std::uint32_t>(state_ % 3 == 0);
  for (std::uint32_t p = 0; p < outputs_; ++p) {
    Bytes payload = Bytes::copy_of(fmt::format("{}/{}/{:x}", ctx.index.value(), p, state_));
    downstream_.on_recorded(id_, Output{OutputKey{ctx.index, p}, "fills", payload});
    egress.emit("fills", std::move(payload));
  }
}

}  // namespace rlr::sim
