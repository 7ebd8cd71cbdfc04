#!/usr/bin/env bash
# Fuzzes what users can type or send: the config parser (TOML/JSON files, --set) and the
# labeling server's HTTP handling, with libFuzzer under AddressSanitizer + UBSan.
#
# Usage: bench/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 300 s; targets: config http)
#
# Builds with clang into build-fuzz/ (-DPREFRL_FUZZ=ON; the first build takes a while), then
# runs each target for the given time from the committed seed corpus (tests/data/fuzz/NAME/).
# New interesting inputs go to build-fuzz/corpus/NAME/ (copy small ones into the seed corpus
# to keep them in the suite's replay); a failing input is saved as build-fuzz/artifacts/NAME/crash-*
# and the script exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-300}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(config http)
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
CC=clang CXX=clang++ cmake -S . -B build-fuzz "${GEN[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPREFRL_FUZZ=ON \
  -DPREFRL_BUILD_TESTS=OFF -DPREFRL_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz -j2 --target $(printf 'fuzz_%s ' "${TARGETS[@]}")
status=0
for t in "${TARGETS[@]}"; do
  mkdir -p "build-fuzz/corpus/$t" "build-fuzz/artifacts/$t"
  echo "== fuzz_$t for ${SECS} s"
  if ! ASAN_OPTIONS=detect_leaks=0 "build-fuzz/fuzz_$t" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=4096 \
      -max_len=4096 -print_final_stats=1 -artifact_prefix="build-fuzz/artifacts/$t/" \
      "build-fuzz/corpus/$t" "tests/data/fuzz/$t" 2> "build-fuzz/fuzz_$t.log"; then
    status=1
    echo "fuzz_$t FAILED: see build-fuzz/fuzz_$t.log and build-fuzz/artifacts/$t/"
  fi
  grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)" "build-fuzz/fuzz_$t.log" || true
  echo "corpus: $(ls "build-fuzz/corpus/$t" | wc -l) inputs in build-fuzz/corpus/$t"
done
exit $status
