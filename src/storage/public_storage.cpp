#include "storage/public_storage.h"

#include "storage/memory_storage.h"
#include "storage/rocksdb_storage.h"

namespace rlr::storage {

core::Configuration to_configuration(const Membership& m) {
  core::Configuration c;
  c.voters = m.voters;
  c.voters_outgoing = m.voters_outgoing;
  c.learners = m.learners;
  for (const MemberAddress& a : m.addresses) {
    c.addresses.push_back(core::MemberEndpoint{a.id, a.address.port == 0 ? a.address.host : a.address.to_string()});
  }
  c.normalize();
  return c;
}

Membership to_membership(const core::Configuration& c) {
  Membership m;
  m.voters = c.voters;
  m.voters_outgoing = c.voters_outgoing;
  m.learners = c.learners;
  for (const core::MemberEndpoint& e : c.addresses) {
    // Addresses are written from Address::to_string(); one that does not parse back
    // (none should) travels whole in the host, port 0.
    m.addresses.push_back(MemberAddress{e.id, Address::parse(e.address).value_or(Address{e.address, 0})});
  }
  return m;
}

core::SnapshotMeta to_core(const rlr::SnapshotMeta& s) {
  return core::SnapshotMeta{s.index, s.term, to_configuration(s.membership), s.data};
}

rlr::SnapshotMeta to_public(const core::SnapshotMeta& s) {
  return rlr::SnapshotMeta{s.index, s.term, to_membership(s.config), s.data};
}

namespace {

core::HardState to_core(const rlr::HardState& h) { return core::HardState{h.term, h.vote, h.commit}; }
rlr::HardState to_public(const core::HardState& h) { return rlr::HardState{h.term, h.vote, h.commit}; }

}  // namespace

// ---- UserStorage ------------------------------------------------------------------------

Result<HardState> UserStorage::hard_state() const {
  auto h = user_->hard_state();
  if (!h) return h.status();
  return to_core(h.value());
}

Identity UserStorage::identity() const {
  const StorageIdentity id = user_->identity();
  return Identity{id.cluster_id, id.node_id};
}

Result<SnapshotMeta> UserStorage::snapshot() const {
  auto s = user_->snapshot();
  if (!s) return s.status();
  SnapshotMeta out = to_core(s.value());
  if (out.index.is_zero() && out.config.members().empty()) out.config = initial_;
  return out;
}

Status UserStorage::persist(const PersistRequest& req) {
  rlr::PersistRequest r;
  std::optional<rlr::SnapshotMeta> snap;
  if (req.snapshot != nullptr) {
    snap = to_public(*req.snapshot);
    r.snapshot = &*snap;
  }
  r.entries = req.entries;
  if (req.hard_state) r.hard_state = to_public(*req.hard_state);
  r.applied = req.applied;
  return user_->persist(r);
}

Status UserStorage::compact(const SnapshotMeta& s) { return user_->compact(to_public(s)); }

// ---- PublicStorage ----------------------------------------------------------------------

Result<rlr::HardState> PublicStorage::hard_state() const {
  auto h = inner_->hard_state();
  if (!h) return h.status();
  return to_public(h.value());
}

StorageIdentity PublicStorage::identity() const {
  const storage::Identity id = inner_->identity();
  return StorageIdentity{id.cluster_id, id.node_id};
}

Result<rlr::SnapshotMeta> PublicStorage::snapshot() const {
  auto s = inner_->snapshot();
  if (!s) return s.status();
  return to_public(s.value());
}

Status PublicStorage::persist(const rlr::PersistRequest& req) {
  storage::PersistRequest r;
  std::optional<core::SnapshotMeta> snap;
  if (req.snapshot != nullptr) {
    snap = to_core(*req.snapshot);
    r.snapshot = &*snap;
  }
  r.entries = req.entries;
  if (req.hard_state) r.hard_state = to_core(*req.hard_state);
  r.applied = req.applied;
  return inner_->persist(r);
}

Status PublicStorage::compact(const rlr::SnapshotMeta& s) { return inner_->compact(to_core(s)); }

}  // namespace rlr::storage

namespace rlr {

std::shared_ptr<Storage> make_memory_storage(StorageIdentity identity) {
  return std::make_shared<storage::PublicStorage>(std::make_unique<storage::MemoryStorage>(
      storage::Identity{std::move(identity.cluster_id), identity.node_id}, core::Configuration{}));
}

Result<std::shared_ptr<Storage>> open_rocksdb_storage(std::string directory, StorageIdentity identity,
                                                      bool sync) {
  storage::RocksDbOptions o;
  o.path = std::move(directory);
  o.identity = storage::Identity{std::move(identity.cluster_id), identity.node_id};
  o.sync = sync;
  auto opened = storage::RocksDbStorage::open(o);
  if (!opened) return opened.status();
  return std::shared_ptr<Storage>(std::make_shared<storage::PublicStorage>(std::move(opened).value()));
}

}  // namespace rlr
