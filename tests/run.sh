#!/usr/bin/env bash
# Runs the whole default test suite on a fresh Debian machine: installs what is
# missing, builds everything in ./build, runs every test with CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
source cmake/deps.sh
rlr_install_deps
rlr_build
cd build
ctest --output-on-failure --timeout 1500 "$@"
