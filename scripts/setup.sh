#!/usr/bin/env bash
# Installs every Debian package prefrl needs to build, test and run (run as root on Debian 12).
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential cmake ninja-build git pkg-config ccache python3 python3-numpy python3-torch \
  libtorch-dev libopenblas0-openmp \
  libsqlite3-dev sqlite3 \
  nlohmann-json3-dev libcli11-dev libfmt-dev libspdlog-dev libtomlplusplus-dev \
  libgtest-dev libgmock-dev libbenchmark-dev \
  libcpp-httplib-dev libpng-dev \
  libmujoco-dev libqhull-dev libmuparser-dev \
  libegl-dev libegl-mesa0 libgl1-mesa-dri \
  libavformat-dev libavcodec-dev libavutil-dev libswscale-dev \
  chromium fonts-dejavu-core \
  clang libclang-rt-14-dev
# The browser tests drive Debian's chromium with Playwright (playwright-core from the npm
# registry, pinned by tests/web/package-lock.json). The machine's Node.js is used if present.
if ! command -v npm >/dev/null 2>&1; then
  $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
fi
(cd "$(dirname "$0")/../tests/web" && npm ci --no-audit --no-fund --loglevel=error)
