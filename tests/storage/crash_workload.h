// The workload of the crash tests (SIGKILL and simulated power loss): batches of entries
// whose payloads name their own index and the last index of their batch, written with a
// hard state whose term rises and whose vote is derived from the term. From that alone a
// recovered store can be checked: every payload intact, no torn batch, no entry ahead of
// the stored hard state.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "storage/rocksdb_storage.h"
#include "storage_test_util.h"

namespace rlr::storage::test {

/// The vote stored with a term (kNoNode with term 0, the initial hard state).
NodeId vote_for(std::uint64_t term);

/// Entries (last, last + n], all of `term`, each knowing its batch ends at last + n.
std::vector<Entry> workload_batch(std::uint64_t last, std::uint64_t n, std::uint64_t term);

/// The hard state persisted with a batch of `term`.
HardState workload_hard_state(std::uint64_t term, std::uint64_t commit);

/// Checks recovered entries; returns what is wrong with the first bad one, or "".
std::string check_workload_entries(const std::vector<Entry>& entries, Term snapshot_term,
                                   Term hs_term, std::uint64_t last);

RocksDbOptions workload_options(const std::string& path);

}  // namespace rlr::storage::test
