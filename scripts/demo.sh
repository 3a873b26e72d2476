#!/usr/bin/env bash
# Set up and build (scripts/setup.sh), then run experiments/gpt_tiny.toml on the shipped corpus.
# Each demo run gets its own folder under runs/, so no earlier run is overwritten.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
exec "$BUILD_DIR/bin/lmrun" experiments/gpt_tiny.toml \
  --set "experiment.out_dir=runs/gpt_tiny-$(date +%Y%m%d-%H%M%S)" "$@"
