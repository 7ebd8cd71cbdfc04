#!/usr/bin/env bash
# Overhead of prefrl's instrumentation on the pendulum-peer benchmark (bench/pendulum_peer.sh),
# measured two ways.
#
#   bench/instrumentation_overhead.sh wall [PAIRS=6]
#     Wall clock. Seeds 1..PAIRS, each run twice: everything on (the default) and with the parts
#     that can be switched off turned off (--set health.enabled=false --set run.tensorboard=false:
#     no health checks, no health/* metrics, no TensorBoard file). The two runs of a seed are
#     back to back, in alternating order (ABBA), so that a shared machine's drift cancels.
#     Prints steps/s (environment steps / wall time of the run) per run, the per-seed ratio and
#     its mean; metrics.jsonl, the phase timers and the other statistics stay on in both.
#
#   bench/instrumentation_overhead.sh callgrind [SEED=1]
#     Instruction counts (valgrind's callgrind: exact and repeatable on a noisy machine; slow,
#     ~20 minutes). One run; prints the instructions spent inside each instrumentation function
#     (inclusive) and their share of the whole run: writing metrics.jsonl and TensorBoard, the
#     health checks, the phase timers, resident memory, database size and counts, summary.json
#     heartbeats, progress lines, and the predicted-vs-true correlations (one of DESIGN.md's
#     three health numbers, scored on fresh clips every iteration). Overlaps (a timer read
#     inside the metric writer) are counted twice, so the total is an upper bound.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-wall}
BIN=${PREFRL:-build/prefrl}
ROOT=${ROOT:-runs/overhead-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$ROOT"
TRAIN=(train --env pendulum --preset pendulum-peer --set run.eval_episodes=0)
OFF=(--set health.enabled=false --set run.tensorboard=false)

if [ "$MODE" = wall ]; then
  PAIRS=${2:-6}
  for s in $(seq 1 "$PAIRS"); do
    if [ $((s % 2)) -eq 1 ]; then order="on off"; else order="off on"; fi
    for v in $order; do
      extra=(); [ "$v" = off ] && extra=("${OFF[@]}")
      "$BIN" "${TRAIN[@]}" --seed "$s" --run-dir "$ROOT/s$s-$v" "${extra[@]}" > "$ROOT/s$s-$v.out" 2>&1
    done
  done
  python3 - "$ROOT" "$PAIRS" <<'PY'
import json, statistics, sys
root, pairs = sys.argv[1], int(sys.argv[2])
sps = lambda d: (lambda j: j["env_steps"] / j["wall_s"])(json.load(open(f"{root}/{d}/summary.json")))
ratios = []
for s in range(1, pairs + 1):
    on, off = sps(f"s{s}-on"), sps(f"s{s}-off")
    ratios.append(on / off)
    print(f"seed {s}: instrumentation on {on:8.0f} steps/s | switchable parts off {off:8.0f} steps/s | on/off {on / off:.3f}")
m = statistics.mean(ratios)
se = statistics.stdev(ratios) / len(ratios) ** 0.5 if len(ratios) > 1 else float("nan")
print(f"pendulum-peer: on/off steps/s ratio {m:.4f} ± {se:.4f} (standard error over {pairs} seeds): "
      f"overhead {100 * (1 - m):+.2f}% ± {100 * se:.2f}%")
PY
elif [ "$MODE" = callgrind ]; then
  SEED=${2:-1}
  valgrind --tool=callgrind --callgrind-out-file="$ROOT/callgrind.out" "$BIN" "${TRAIN[@]}" --seed "$SEED" \
    --run-dir "$ROOT/run" > "$ROOT/run.out" 2>&1
  callgrind_annotate --inclusive=yes --threshold=100 "$ROOT/callgrind.out" > "$ROOT/annotate.txt"
  python3 - "$ROOT/annotate.txt" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
total = int(re.search(r"^([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", text, re.M).group(1).replace(",", ""))
# Instrumentation, by what it does => function names as callgrind_annotate prints them.
parts = {
    "metrics.jsonl + TensorBoard writer": ["prefrl::MetricWriter::log(", "prefrl::MetricWriter::flush("],
    "health checks": ["prefrl::HealthMonitor::observe("],
    "phase timers (steady_clock::now)": ["std::chrono::_V2::steady_clock::now("],
    "resident memory": ["prefrl::resident_memory_mb("],
    "database size and counts": ["prefrl::PrefDB::file_size(", "prefrl::PrefDB::count_pending(", "prefrl::PrefDB::count_labels("],
    "summary.json heartbeats": ["prefrl::RunDir::write_json("],
    "progress lines": ["prefrl::RunLog::progress("],
    "predicted-vs-true correlation": ["prefrl::RewardModel::segment_returns(", "prefrl::pearson("],
}
rows = {}
for line in text.splitlines():
    m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+\S*:(.*)$", line) or re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)$", line)
    if not m: continue
    ir, fn = int(m.group(1).replace(",", "")), m.group(2)
    for part, names in parts.items():
        for n in names:
            if fn.startswith(n) or (":" + n) in fn or fn.split(" [")[0].startswith(n):
                rows.setdefault(part, {})[n] = max(rows.get(part, {}).get(n, 0), ir)
spent = 0
for part in parts:
    ir = sum(rows.get(part, {}).values())
    spent += ir
    print(f"{part:<40} {ir:>16,} instructions  {100 * ir / total:6.3f}%")
print(f"{'all instrumentation (upper bound)':<40} {spent:>16,} instructions  {100 * spent / total:6.3f}% of {total:,}")
print(f"=> the run without it would execute {total - spent:,}: instrumentation adds {100 * spent / (total - spent):.2f}%")
PY
else
  echo "usage: bench/instrumentation_overhead.sh wall [PAIRS] | callgrind [SEED]" >&2
  exit 2
fi
