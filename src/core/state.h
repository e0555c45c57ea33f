// The durable state of one core (core-private): what must survive a restart, and what a
// restart reads back. Storage persists these; the core produces and consumes them.
#pragma once

#include <vector>

#include "core/configuration.h"
#include "rlr/types.h"

namespace rlr::core {

/// The state that must be durable before votes or acknowledgements leave the node.
struct HardState {
  Term term;
  NodeId vote;
  LogIndex commit;
  friend bool operator==(const HardState&, const HardState&) = default;
};

/// Metadata of a snapshot: the log up to and including `index` is replaced by it.
/// `data` is opaque to the core (RLR metadata such as client sessions; never business
/// state).
struct SnapshotMeta {
  LogIndex index;
  Term term;
  Configuration config;
  Bytes data;
  friend bool operator==(const SnapshotMeta&, const SnapshotMeta&) = default;
};

/// Everything a node needs to resume after a restart, read back from storage.
/// A founding member of a new cluster starts with an empty log and a snapshot at
/// index 0 whose config lists the initial voters; a node that will join later starts
/// with an empty configuration and waits to be added.
struct RestoreState {
  HardState hard_state;
  SnapshotMeta snapshot;
  std::vector<Entry> entries;  ///< entries after snapshot.index, in order
  LogIndex applied;            ///< entries up to here were applied (default: snapshot)
};

}  // namespace rlr::core
