#!/usr/bin/env bash
# The demo: a simulated 5-node cluster with elections, commits, injected faults and the
# safety verdict, from one seed. (It becomes a real multi-process cluster once the node
# runtime lands.)
set -euo pipefail
cd "$(dirname "$0")/.."
source cmake/deps.sh
rlr_install_deps
rlr_build rlr-sim
exec build/bin/rlr-sim --demo "$@"
