#!/usr/bin/env bash
# Set up and build (scripts/setup.sh), then run every test with ctest, fast labels first.
#
# The interchange tests check lmrun's files with readers we did not write, installed here:
# Debian's python3-torch (torch.load, and nanoGPT's architecture in PyTorch), and from npm into
# $BUILD_DIR/interop Hugging Face's @huggingface/hub (safetensors headers) and ONNX Runtime
# (onnxruntime-node, which runs the exported ONNX graphs).
set -euo pipefail
cd "$(dirname "$0")/.."
extra="python3-torch"
command -v npm >/dev/null || extra="$extra nodejs npm"  # a machine's own Node.js stays
LMRUN_EXTRA_PACKAGES="$extra" scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
interop="$BUILD_DIR/interop"
if [ ! -f "$interop/node_modules/@huggingface/hub/package.json" ] ||
  [ ! -f "$interop/node_modules/onnxruntime-node/package.json" ]; then
  mkdir -p "$interop"
  # --ignore-scripts: onnxruntime-node's install script fetches optional CUDA binaries from the
  # web; its CPU binaries ship in the package.
  npm install --prefix "$interop" --no-audit --no-fund --silent --ignore-scripts \
    @huggingface/hub@2.17.5 onnxruntime-node@1.30.0
fi
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)" "$@"
