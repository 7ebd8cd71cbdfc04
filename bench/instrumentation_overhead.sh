#!/usr/bin/env bash
# Overhead of prefrl's instrumentation on the pendulum-peer benchmark (bench/pendulum_peer.sh),
# measured two ways.
#
#   bench/instrumentation_overhead.sh wall [PAIRS=6]
#     Wall clock. Seeds 1..PAIRS, each run twice: everything on (the default) and with the parts
#     that can be switched off turned off (--set health.enabled=false --set run.tensorboard=false:
#     no health checks, no health/* metrics, no TensorBoard file). The two runs of a seed are
#     back to back, in alternating order (ABBA), so that a shared machine's drift cancels.
#     Prints per run steps/s (environment steps / wall time of training) and CPU seconds of the
#     whole process, the per-seed on/off ratios and their medians; metrics.jsonl, the phase
#     timers and the other statistics stay on in both.
#
#   bench/instrumentation_overhead.sh callgrind [SEED=1]
#     Instruction counts (valgrind's callgrind: exact and repeatable on a noisy machine; slow,
#     about 25 CPU-minutes: give it a free core). One run; prints the instructions spent inside each instrumentation function
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
  python3 - "$BIN" "$ROOT" "$PAIRS" "${TRAIN[@]}" -- "${OFF[@]}" <<'PY'
import json, resource, statistics, subprocess, sys
binary, root, pairs = sys.argv[1], sys.argv[2], int(sys.argv[3])
rest = sys.argv[4:]
train, off = rest[:rest.index("--")], rest[rest.index("--") + 1:]
def run(seed, variant):
    d = f"{root}/s{seed}-{variant}"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(d + ".out", "w") as out:
        subprocess.run([binary] + train + ["--seed", str(seed), "--run-dir", d] + (off if variant == "off" else []),
                       stdout=out, stderr=subprocess.STDOUT, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    s = json.load(open(d + "/summary.json"))
    db = sum(json.loads(l)["value"] or 0 for l in open(d + "/metrics.jsonl") if '"time/database_s"' in l)
    return s["env_steps"] / s["wall_s"], cpu, db
sps_ratio, cpu_ratio = [], []
for seed in range(1, pairs + 1):
    order = ["on", "off"] if seed % 2 else ["off", "on"]
    r = {v: run(seed, v) for v in order}
    sps_ratio.append(r["on"][0] / r["off"][0])
    cpu_ratio.append(r["on"][1] / r["off"][1])
    print(f"seed {seed}: on {r['on'][0]:7.0f} steps/s, {r['on'][1]:5.2f} s CPU (database {r['on'][2]:5.2f} s) | "
          f"off {r['off'][0]:7.0f} steps/s, {r['off'][1]:5.2f} s CPU (database {r['off'][2]:5.2f} s) | "
          f"steps/s on/off {sps_ratio[-1]:.3f}, CPU on/off {cpu_ratio[-1]:.3f}")
med = statistics.median
print(f"pendulum-peer over {pairs} seeds: steps/s on/off median {med(sps_ratio):.4f} "
      f"(overhead {100 * (1 / med(sps_ratio) - 1):+.2f}%); CPU time on/off median {med(cpu_ratio):.4f} "
      f"(overhead {100 * (med(cpu_ratio) - 1):+.2f}%). Medians, because a shared machine's disk stalls "
      "(see 'database' seconds: SQLite commits waiting on fsync) hit single runs by 10x.")
PY
elif [ "$MODE" = callgrind ]; then
  SEED=${2:-1}
  valgrind --tool=callgrind --callgrind-out-file="$ROOT/callgrind.out" "$BIN" "${TRAIN[@]}" --seed "$SEED" \
    --run-dir "$ROOT/run" > "$ROOT/run.out" 2>&1
  callgrind_annotate --inclusive=yes --threshold=100 "$ROOT/callgrind.out" > "$ROOT/annotate.txt"
  callgrind_annotate --inclusive=yes --tree=caller --threshold=100 "$ROOT/callgrind.out" > "$ROOT/callers.txt"
  python3 - "$ROOT/annotate.txt" "$ROOT/callers.txt" <<'PY'
import re, sys
flat, tree = open(sys.argv[1]).read(), open(sys.argv[2]).read()
row = re.compile(r"^\s*([<*]?)\s*([\d,]+) \(\s*[\d.]+%\)\s+([<*]\s+)?(.*)$")
def parse(line):
    m = row.match(line)
    if not m: return None
    rest = m.group(4)
    fn = rest.split(":", 1)[1] if ":" in rest.split(" ")[0] else rest
    return (m.group(3) or m.group(1) or "").strip(), int(m.group(2).replace(",", "")), fn
incl = {}
for line in flat.splitlines():
    p = parse(line)
    if p: incl.setdefault(p[2].split("(")[0].strip(), p[1])
def cost(name): return incl.get(name, 0)
# Calls of `callee` made directly from prefrl::train (the caller tree: "<" lines above a "*" line).
def edge_from_train(callee):
    block = []
    for line in tree.splitlines():
        p = parse(line)
        if not p: block = []; continue
        if p[0] == "*":
            if p[2].startswith(callee + "("):
                return sum(c for k, c, fn in block if fn.startswith("prefrl::train(prefrl::TrainConfig"))
            block = []
        else:
            block.append(p)
    return 0
train = cost("prefrl::train")
after = {n: cost(n) for n in ["prefrl::reward_true_correlation", "prefrl::(anonymous namespace)::heldout_correlation",
                              "prefrl::evaluate_policy", "prefrl::PPOAgent::save", "prefrl::RewardModel::save"]}
loop = train - sum(after.values())
parts = {
    "metrics.jsonl + TensorBoard writer": cost("prefrl::MetricWriter::log") + cost("prefrl::MetricWriter::flush"),
    "health checks": cost("prefrl::HealthMonitor::observe"),
    "phase timers (steady_clock::now)": cost("std::chrono::_V2::steady_clock::now"),
    "resident memory": cost("prefrl::resident_memory_mb"),
    "database size and counts": cost("prefrl::SqlitePrefStore::file_size") + cost("prefrl::SqlitePrefStore::count_pending") + cost("prefrl::SqlitePrefStore::count_labels"),
    "summary.json heartbeats": cost("prefrl::RunDir::write_json"),
    "progress lines": cost("prefrl::RunLog::progress"),
    "predicted-vs-true correlation (fresh clips)": edge_from_train("prefrl::RewardModel::segment_returns") + cost("prefrl::pearson"),
}
print(f"instructions of training (prefrl::train without its closing figures and checkpoints): {loop:,}")
spent = 0
for part, ir in parts.items():
    spent += ir
    print(f"  {part:<46} {ir:>14,}  {100 * ir / loop:6.3f}%")
print(f"  {'all instrumentation (upper bound)':<46} {spent:>14,}  {100 * spent / loop:6.3f}% of training")
print(f"=> training without it would execute {loop - spent:,} instructions: instrumentation adds {100 * spent / (loop - spent):.2f}%")
print(f"(after training, outside steps/s: final correlations {after['prefrl::reward_true_correlation'] + after['prefrl::(anonymous namespace)::heldout_correlation']:,})")
PY
else
  echo "usage: bench/instrumentation_overhead.sh wall [PAIRS] | callgrind [SEED]" >&2
  exit 2
fi
