#!/usr/bin/env bash
# Set up and build (scripts/setup.sh), then run every test with ctest, fast labels first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)" "$@"
