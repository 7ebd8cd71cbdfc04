#!/usr/bin/env bash
# Builds prefrl and runs the whole test suite with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
cd build && ctest -j2 --output-on-failure --timeout 900
