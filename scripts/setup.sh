#!/usr/bin/env bash
# Installs what is missing (Debian 12 packages only), then configures and builds lmrun in build/.
# Safe to run again: installs nothing that is there, rebuilds only what changed.
#
#   scripts/setup.sh            # Release build in build/
#   BUILD_DIR=out scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build}

# DESIGN.md's dependency list. libopenblas0-pthread matters: without it LibTorch falls back to the
# reference BLAS and matrix products run ~27x slower.
packages=(
  g++ cmake ninja-build
  libtorch-dev libopenblas0-pthread libgloo-dev
  libboost-dev libboost-program-options-dev
  libtomlplusplus-dev libicu-dev libpcre2-dev nlohmann-json3-dev libsentencepiece-dev libedit-dev
  libonnx-dev
  libgtest-dev libgmock-dev libbenchmark-dev
)
# More packages from the caller (scripts/test.sh: the readers the tests check our files with).
read -r -a extra <<<"${LMRUN_EXTRA_PACKAGES:-}"
packages+=("${extra[@]}")

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: need root (or sudo) to apt-get install ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD_DIR" -j "$(nproc)"
