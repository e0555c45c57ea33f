#include "sim_node.h"

#include <fmt/format.h>

#include "sim_cluster.h"

namespace rlr::sim {

// ---- SimStore ------------------------------------------------------------------------

LogIndex SimStore::first_index() const { return node_.storage.durable().snapshot.index.next(); }

LogIndex SimStore::last_index() const { return node_.storage.last_index(); }

Result<std::vector<Entry>> SimStore::read(LogIndex from, LogIndex to, std::size_t max_entries,
                                          std::size_t max_bytes) const {
  std::vector<Entry> out;
  std::size_t bytes = 0;
  for (LogIndex i = from; i <= to && out.size() < max_entries; i = i.next()) {
    const Entry* e = node_.storage.entry_at(i);
    if (e == nullptr) {
      if (miss_.empty()) {
        miss_ = fmt::format("entries {}..{} asked for, entry {} is not on the disk (disk log {}..{})",
                            from.value(), to.value(), i.value(), first_index().value(),
                            last_index().value());
      }
      return Status{ErrorCode::Corruption, miss_};
    }
    bytes += e->payload.size();
    if (!out.empty() && bytes > max_bytes) break;
    out.push_back(*e);
  }
  entries_read_ += out.size();
  return out;
}

Result<core::HardState> SimStore::hard_state() const { return node_.storage.durable().hard_state; }

storage::Identity SimStore::identity() const { return storage::Identity{"sim", node_.id}; }

Result<core::SnapshotMeta> SimStore::snapshot() const { return node_.storage.durable().snapshot; }

Status SimStore::persist(const storage::PersistRequest& req) {
  if (node_.disk_broken) return Status{ErrorCode::IoError, "simulated disk: the write failed"};
  if (node_.storage.queued() != 0) {
    return Status{ErrorCode::InvalidArgument, "a synchronous write while fsyncs are queued"};
  }
  node_.cluster.on_entries_written(node_, req.entries);
  PendingWrite w;
  if (req.snapshot != nullptr) w.snapshot = *req.snapshot;
  w.entries.assign(req.entries.begin(), req.entries.end());
  w.hard_state = req.hard_state;
  node_.storage.enqueue(std::move(w));
  std::string error;
  (void)node_.storage.complete_next(error);
  if (!error.empty()) return Status{ErrorCode::InvalidArgument, error};
  return Status::ok();
}

Status SimStore::compact(const core::SnapshotMeta& s) {
  if (node_.disk_broken) return Status{ErrorCode::IoError, "simulated disk: the write failed"};
  if (node_.storage.queued() != 0) {
    return Status{ErrorCode::InvalidArgument, "compaction while fsyncs are queued"};
  }
  node_.storage.save_snapshot(s);
  ++compactions_;
  return Status::ok();
}

// ---- SimDisk and SimWire ---------------------------------------------------------------

void SimDisk::submit(node::WriteStep step) { cluster_.on_write_submitted(node_, std::move(step)); }

bool SimDisk::idle() const { return node_.storage.queued() == 0; }

void SimDisk::drain() { cluster_.on_drain(node_); }

void SimWire::send(std::vector<core::Message>& msgs) {
  for (core::Message& m : msgs) cluster_.send(node_, std::move(m));
  msgs.clear();
}

// ---- SimNode ---------------------------------------------------------------------------

SimNode::SimNode(SimCluster& cluster_, std::size_t slot_, NodeId id_, SimStorage storage_)
    : cluster(cluster_),
      slot(slot_),
      id(id_),
      storage(std::move(storage_)),
      disk(cluster_, *this),
      wire(cluster_, *this) {}

void SimNode::on_soft_state(const core::SoftState& s) { cluster.on_soft_state(*this, s); }

void SimNode::on_committed(const std::vector<Entry>& entries) { cluster.on_committed(*this, entries); }

void SimNode::on_snapshot_installed(LogIndex index) { cluster.on_snapshot_installed(*this, index); }

void SimNode::log(LogLevel, std::string_view line) { cluster.on_warn(*this, line); }

void SimNode::on_storage_failed(const Status& /*why*/) { cluster.on_storage_failed(*this); }

}  // namespace rlr::sim
