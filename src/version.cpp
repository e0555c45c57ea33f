#include "rlr/version.h"

#include "storage/rocksdb_storage.h"
#include "wire/frame.h"

namespace rlr {

const char* version() noexcept { return RLR_VERSION_STRING; }

unsigned storage_format_version() noexcept { return storage::RocksDbStorage::kFormatVersion; }

unsigned wire_protocol_version() noexcept { return wire::kProtocolVersion; }

}  // namespace rlr
