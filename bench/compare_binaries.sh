#!/usr/bin/env bash
# Speed of two prefrl binaries side by side: pendulum-peer and hopper (HOPPER_STEPS, default
# 200000), seed 1, one thread, in ABBA order (A B B A per pair) so that a machine that slows
# down or speeds up during the measurement affects both alike. Prints each run's steps/s
# (environment steps / training wall time, summary.json) and, per task, the median and mean of
# B/A over the pairs with a 95% bootstrap interval of the mean.
# Usage: bench/compare_binaries.sh A_BINARY B_BINARY [PAIRS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
A=$(realpath "${1:?usage: bench/compare_binaries.sh A_BINARY B_BINARY [PAIRS]}")
B=$(realpath "${2:?usage: bench/compare_binaries.sh A_BINARY B_BINARY [PAIRS]}")
PAIRS=${3:-3}
HOPPER_STEPS=${HOPPER_STEPS:-200000}
ROOT=${ROOT:-$(mktemp -d)}
mkdir -p "$ROOT"
declare -A TASK=(
  [pendulum_peer]="--env pendulum --preset pendulum-peer"
  [hopper]="--env hopper --steps $HOPPER_STEPS"
)
out=$ROOT/sps.tsv
: > "$out"
for task in pendulum_peer hopper; do
  for p in $(seq 1 "$PAIRS"); do
    for which in A B B A; do
      bin=$A; [[ $which == B ]] && bin=$B
      dir=$ROOT/$task-$p-$which-$RANDOM
      "$bin" train ${TASK[$task]} --seed 1 --threads 1 --set run.eval_episodes=0 --set run.progress_every_s=0 \
        --run-dir "$dir" > "$dir.out" 2>&1
      /usr/bin/python3 -c "import json,sys; s=json.load(open('$dir/summary.json')); print('$task\t$p\t$which\t%.1f' % (s['env_steps']/s['wall_s']))" >> "$out"
      rm -rf "$dir" "$dir.out"
    done
  done
done
/usr/bin/python3 - "$out" <<'PY'
import random, statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
for task in sorted({r[0] for r in rows}):
    ratios = []
    for p in sorted({r[1] for r in rows if r[0] == task}):
        a = [float(r[3]) for r in rows if r[0] == task and r[1] == p and r[2] == "A"]
        b = [float(r[3]) for r in rows if r[0] == task and r[1] == p and r[2] == "B"]
        print(f"{task} pair {p}: A {' '.join(f'{x:.0f}' for x in a)} steps/s, B {' '.join(f'{x:.0f}' for x in b)} steps/s")
        ratios.append(statistics.mean(b) / statistics.mean(a))
    rng = random.Random(1)
    boots = sorted(statistics.mean(rng.choice(ratios) for _ in ratios) for _ in range(2000))
    print(f"{task}: B/A steps/s median {statistics.median(ratios):.4f}, mean {statistics.mean(ratios):.4f} "
          f"[{boots[49]:.4f}, {boots[1949]:.4f}] over {len(ratios)} ABBA pairs")
PY
