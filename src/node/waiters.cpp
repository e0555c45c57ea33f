#include "node/waiters.h"

namespace rlr::node {
namespace {

/// The waiter an element of a waiter container is: a map's value, or the element itself.
template <class K, class V>
V& waiter_of(std::pair<const K, V>& item) {
  return item.second;
}
template <class W>
W& waiter_of(W& item) {
  return item;
}

/// Calls answer(w) for every waiter of `c` due at `now` and erases it.
template <class C, class Answer>
void expire_due(C& c, Clock::time_point now, Answer&& answer) {
  for (auto it = c.begin(); it != c.end();) {
    if (waiter_of(*it).deadline <= now) {
      answer(waiter_of(*it));
      it = c.erase(it);
    } else {
      ++it;
    }
  }
}

/// Calls answer(w) for every waiter of `c` and empties it.
template <class C, class Answer>
void drain_all(C& c, Answer&& answer) {
  for (auto& item : c) answer(waiter_of(item));
  c.clear();
}

}  // namespace

void Waiters::expire(Clock::time_point now, std::vector<Completion>& out) {
  const Status timeout{ErrorCode::Timeout, "no outcome within the timeout; the entry may still commit"};
  while (!proposals.empty() && proposals.front().deadline <= now) {
    Proposal p = std::move(proposals.front());
    proposals.pop_front();
    if (!p.internal) ++timed_out;
    finish(out, p, timeout);
  }
  expire_due(sessions, now, [&](Session& w) {
    ++timed_out;
    complete(out, w.done, timeout);
  });
  expire_due(reads, now, [](Read& w) {
    w.done(Status{ErrorCode::Timeout, "read index not confirmed in time"});
  });
  expire_due(transfers, now, [](Transfer& w) {
    w.done(Status{ErrorCode::Timeout, "leadership transfer did not complete in time"});
  });
  expire_due(configs, now, [](Config& w) {
    w.done(Status{ErrorCode::Timeout, "configuration change not final in time"});
  });
}

void Waiters::fail_all(const Status& why, std::vector<Completion>& out) {
  drain_all(proposals, [&](Proposal& p) { finish(out, p, why); });
  drain_all(sessions, [&](Session& w) { complete(out, w.done, why); });
  drain_all(reads, [&](Read& w) { w.done(why); });
  drain_all(transfers, [&](Transfer& w) { w.done(why); });
  drain_all(configs, [&](Config& w) { w.done(why); });
}

void Waiters::release_proposals(std::vector<Completion>& out) {
  // A former leader cannot learn these outcomes before its proposers would time out
  // (cut off from the others, it may never learn them). A client with a session retries
  // at the next leader and gets the original entry if it committed.
  const Status why{ErrorCode::Timeout, "leadership lost before the entry committed; it may still commit"};
  std::deque<Proposal> kept;
  for (auto& p : proposals) {
    if (p.internal) {
      kept.push_back(std::move(p));  // membership bookkeeping: resolved by commit or timeout
    } else {
      ++released;
      complete(out, p.done, why);
    }
  }
  proposals = std::move(kept);
  // Retries waiting for an entry of this term: the same holds for them.
  released += sessions.size();
  for (auto& [index, w] : sessions) complete(out, w.done, why);
  sessions.clear();
}

}  // namespace rlr::node
